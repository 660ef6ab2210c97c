#include <gtest/gtest.h>

#include <cmath>

#include "eve/io/jsonl.h"
#include "common/io_test_util.h"

namespace {

using eve::io::JsonlReader;
using eve::test::expect_error;
using eve::test::TempDir;

TEST(Jsonl, ReadsObjectsAndSkipsBlankLines) {
  TempDir dir;
  std::string p = dir.file("a.jsonl");
  eve::test::write_bytes(p, "{\"image\": \"k1\", \"text\": \"caf\xc3\xa9\"}\n\n   \t\n"
                            "{\"z\": 1, \"a\": [1, 2]}\r\n{\"last\": true}");
  JsonlReader r(p);
  eve::io::json rec;
  ASSERT_TRUE(r.next(rec));
  EXPECT_EQ(rec["text"], "caf\xc3\xa9");
  EXPECT_EQ(r.line_number(), 1u);
  eve::io::ordered_json ord;
  ASSERT_TRUE(r.next(ord));
  EXPECT_EQ(r.line_number(), 4u);  // blank lines counted, not returned
  EXPECT_EQ(ord.begin().key(), "z");  // file order kept
  ASSERT_TRUE(r.next(rec));
  EXPECT_EQ(rec["last"], true);
  EXPECT_FALSE(r.next(rec));
}

TEST(Jsonl, WritesOneLineWithUtf8Unescaped) {
  eve::io::ordered_json rec = {{"text", "caf\xc3\xa9\n"}, {"ids", {1, 2}}};
  EXPECT_EQ(eve::io::to_jsonl_line(rec), "{\"text\":\"caf\xc3\xa9\\n\",\"ids\":[1,2]}\n");
  eve::io::json bad = {{"text", "\xff"}};
  expect_error([&] { eve::io::to_jsonl_line(bad); }, {"not valid UTF-8"});
}

TEST(Jsonl, NonFiniteNumbersAreWrittenAsNull) {
  // Never a bare nan/inf, which no JSON reader takes (the trainers' metrics rely on this).
  eve::io::ordered_json rec = {{"loss", NAN}, {"a", INFINITY}, {"b", -INFINITY}, {"c", 0.5}};
  EXPECT_EQ(eve::io::to_jsonl_line(rec), "{\"loss\":null,\"a\":null,\"b\":null,\"c\":0.5}\n");
}

struct BadLine {
  const char* name;
  std::string line;
  std::vector<std::string> expect;
};

TEST(Jsonl, BadLinesNameFileAndLine) {
  std::vector<BadLine> cases = {
      {"invalid JSON", "{\"a\": 1,}", {"invalid JSON", "syntax error"}},
      {"trailing text", "{\"a\": 1} extra", {"invalid JSON"}},
      {"truncated", "{\"a\": \"unterminated", {"invalid JSON"}},
      {"invalid UTF-8", "{\"a\": \"\xc3\x28\"}", {"invalid UTF-8"}},
      {"array line", "[1, 2]", {"expected a JSON object on each line"}},
      {"string line", "\"just text\"", {"expected a JSON object on each line"}},
      {"deep nesting", "{\"a\": " + std::string(100000, '[') + std::string(100000, ']') + "}",
       {"nested deeper than 512 levels"}},
  };
  TempDir dir;
  std::string p = dir.file("bad.jsonl");
  for (const auto& c : cases) {
    SCOPED_TRACE(c.name);
    eve::test::write_bytes(p, "{\"ok\": 1}\n\n" + c.line + "\n{\"ok\": 2}\n");
    JsonlReader r(p);
    eve::io::json rec;
    ASSERT_TRUE(r.next(rec));
    std::string what = expect_error([&] { r.next(rec); }, {p + ":3: "});
    for (const auto& e : c.expect)
      EXPECT_NE(what.find(e), std::string::npos) << "lacks \"" << e << "\": " << what;
  }
  // Brackets inside strings do not count as nesting.
  eve::test::write_bytes(p, "{\"a\": \"" + std::string(1000, '[') + "\\\"\"}\n");
  JsonlReader r(p);
  eve::io::json rec;
  ASSERT_TRUE(r.next(rec));
  EXPECT_EQ(rec["a"].get<std::string>().size(), 1001u);
}

TEST(Jsonl, VeryLongLineIsReportedNotLoaded) {
  TempDir dir;
  std::string p = dir.file("long.jsonl");
  eve::test::write_bytes(p, "{\"a\": 1}\n{\"text\": \"" + std::string(5000, 'x') + "\"}\n");
  JsonlReader r(p, 1000);
  eve::io::json rec;
  ASSERT_TRUE(r.next(rec));
  expect_error([&] { r.next(rec); }, {p + ":2: line longer than 1000 bytes"});
}

TEST(Jsonl, ReadJsonNamesTheFile) {
  TempDir dir;
  std::string p = dir.file("c.json");
  eve::test::write_bytes(p, "{\"a\":\n [1, 2,\n}");
  expect_error([&] { eve::io::read_json(p); }, {p, "invalid JSON", "line 3"});
  eve::test::write_bytes(p, "{\"a\": {\"b\": [1, 2]}}");
  EXPECT_EQ(eve::io::read_json(p)["a"]["b"][1], 2);
}

}  // namespace
