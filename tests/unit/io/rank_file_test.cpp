// Ranks lines (io/rank_file.h): both layouts, and the reader taking each back unchanged.
#include <gtest/gtest.h>

#include "eve/io/jsonl.h"
#include "eve/io/rank_file.h"
#include "common/io_test_util.h"

namespace {

using eve::io::RankLayout;

eve::io::RankLine sample_line() {
  eve::io::RankLine line;
  line.query = "\"img1#0\"";
  line.hits = {{"\"img7\"", "0.5", 0.5f}, {"\"a, \\\"b]\"", "-100.0", -100.0f}};
  return line;
}

TEST(RankFile, SpacedLayoutIsEveRanks) {
  std::string buf;
  eve::io::append_rank_line(buf, sample_line());
  EXPECT_EQ(buf, "{\"query\": \"img1#0\", \"results\": [[\"img7\", 0.5], [\"a, \\\"b]\", -100.0]]}\n");
}

TEST(RankFile, CompactLayoutIsAJsonDumpOfTheLine) {
  std::string buf;
  eve::io::append_rank_line(buf, sample_line(), RankLayout::compact);
  using J = eve::io::ordered_json;
  J want{{"query", "img1#0"},
         {"results", J::array({J::array({"img7", 0.5f}), J::array({"a, \"b]", -100.0f})})}};
  EXPECT_EQ(buf, eve::io::to_jsonl_line(want));
}

TEST(RankFile, ReaderTakesBothLayoutsBack) {
  eve::test::TempDir dir;
  for (RankLayout layout : {RankLayout::spaced, RankLayout::compact}) {
    std::string buf;
    eve::io::append_rank_line(buf, sample_line(), layout);
    eve::test::write_bytes(dir.file("r.jsonl"), buf);
    eve::io::RankReader r(dir.file("r.jsonl"));
    eve::io::RankLine got;
    ASSERT_TRUE(r.next(got));
    EXPECT_EQ(got.query, sample_line().query);
    ASSERT_EQ(got.hits.size(), 2u);
    for (size_t j = 0; j < 2; ++j) {
      EXPECT_EQ(got.hits[j].id, sample_line().hits[j].id);
      EXPECT_EQ(got.hits[j].score_text, sample_line().hits[j].score_text);
      EXPECT_EQ(got.hits[j].score, sample_line().hits[j].score);
    }
    EXPECT_FALSE(r.next(got));
  }
}

}  // namespace
