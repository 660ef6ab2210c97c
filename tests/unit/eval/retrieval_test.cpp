// Retrieval recall: ground truth by entry position, variable captions per image, ties,
// rank lists with position and name ids, malformed inputs.
#include <gtest/gtest.h>

#include <cmath>
#include <string>
#include <vector>

#include "eve/core/error.h"
#include "common/error_of.h"
#include "eve/core/threads.h"
#include "eve/eval/retrieval_eval.h"

namespace {

using eve::eval::kNotRetrieved;
using eve::eval::parse_rank_lists;
using eve::eval::parse_retrieval_annotations;
using eve::eval::RetrievalDirection;

using eve::test::error_of;

// Three images with 2, 1 and 3 captions: texts 0-1 -> image 0, text 2 -> image 1, texts 3-5
// -> image 2.
const char* kAnn = R"([{"image": "a.jpg", "caption": ["a0", "a1"]},
                       {"image": "b.jpg", "caption": ["b0"]},
                       {"image": "c.jpg", "caption": ["c0", "c1", "c2"]}])";

TEST(Retrieval, TextsNumberedImageByImage) {
  auto ann = parse_retrieval_annotations(kAnn, "test.json");
  EXPECT_EQ(ann.image_count(), 3u);
  EXPECT_EQ(ann.text_count(), 6u);
  EXPECT_EQ(ann.text_offsets, (std::vector<uint32_t>{0, 2, 3, 6}));
  EXPECT_EQ(ann.text_image, (std::vector<uint32_t>{0, 0, 1, 2, 2, 2}));
  // eve-prep's JSON Lines records give the same numbering.
  auto lines = parse_retrieval_annotations(
      "{\"image\": \"a.jpg\", \"texts\": [\"a0\", \"a1\"]}\n\n{\"image\": \"b.jpg\", \"texts\": [\"b0\"]}\n",
      "test.jsonl");
  EXPECT_EQ(lines.text_image, (std::vector<uint32_t>{0, 0, 1}));
}

TEST(Retrieval, RanksFromScoreMatrices) {
  auto ann = parse_retrieval_annotations(kAnn, "test.json");
  // Image 0: its best text (1) has score .8, one text (.9) above -> rank 1.
  // Image 1: text 2 is the top -> 0. Image 2: best of texts 3-5 is .5; .6, .7, .9 above -> 3.
  const std::vector<float> i2t = {.1f, .8f, .3f, .9f, .2f, .0f,
                                  .1f, .2f, .9f, .3f, .4f, .5f,
                                  .9f, .7f, .6f, .5f, .1f, .2f};
  EXPECT_EQ(eve::eval::image_to_text_ranks(ann, i2t.data(), "i2t.npy", nullptr),
            (std::vector<int64_t>{1, 0, 3}));
  const std::vector<float> t2i = {.9f, .1f, .2f,   // text 0 -> image 0: rank 0
                                  .1f, .9f, .2f,   // text 1 -> image 0: rank 2
                                  .5f, .5f, .1f,   // text 2 -> image 1: tie, nothing above -> 0
                                  .1f, .2f, .3f,   // text 3 -> image 2: 0
                                  .3f, .2f, .1f,   // text 4 -> image 2: 2
                                  .2f, .3f, .1f};  // text 5 -> image 2: 2
  auto t2i_ranks = eve::eval::text_to_image_ranks(ann, t2i.data(), "t2i.npy", nullptr);
  EXPECT_EQ(t2i_ranks, (std::vector<int64_t>{0, 2, 0, 0, 2, 2}));
  auto s = eve::eval::retrieval_recall({1, 0, 3}, t2i_ranks);
  EXPECT_EQ(s.txt_r1, 100.0 * 1 / 3);
  EXPECT_EQ(s.txt_r5, 100.0);
  EXPECT_EQ(s.img_r1, 100.0 * 3 / 6);
  EXPECT_EQ(s.img_r10, 100.0);
  EXPECT_EQ(s.txt_r_mean, (s.txt_r1 + s.txt_r5 + s.txt_r10) / 3);
  EXPECT_EQ(s.r_mean, (s.txt_r_mean + s.img_r_mean) / 2);
}

TEST(Retrieval, RecallCountsEveryQueryInTheDenominator) {
  auto s = eve::eval::retrieval_recall({0, 4, 9, 10, kNotRetrieved}, {0});
  EXPECT_EQ(s.txt_r1, 20.0);
  EXPECT_EQ(s.txt_r5, 40.0);
  EXPECT_EQ(s.txt_r10, 60.0);
}

TEST(Retrieval, ImageWithoutCaptionsIsNeverRetrieved) {
  auto ann = parse_retrieval_annotations(R"([{"caption": ["x"]}, {"caption": []}])", "t.json");
  const std::vector<float> i2t = {1.f, 0.f};
  EXPECT_EQ(eve::eval::image_to_text_ranks(ann, i2t.data(), "i2t.npy", nullptr),
            (std::vector<int64_t>{0, kNotRetrieved}));
}

TEST(Retrieval, DuplicateImageEntriesAreWrongAnswers) {
  // The same picture twice: ground truth is the entry position, so the copy scoring higher
  // pushes the true entry down.
  auto ann = parse_retrieval_annotations(R"([{"image": "p.jpg", "caption": ["x"]},
                                              {"image": "p.jpg", "caption": ["y"]}])", "t.json");
  const std::vector<float> t2i = {.4f, .6f, .4f, .6f};
  EXPECT_EQ(eve::eval::text_to_image_ranks(ann, t2i.data(), "t2i.npy", nullptr),
            (std::vector<int64_t>{1, 0}));
}

TEST(Retrieval, NanIsAnError) {
  auto ann = parse_retrieval_annotations(kAnn, "test.json");
  std::vector<float> i2t(18, 0.f);
  i2t[6 + 4] = NAN;
  EXPECT_EQ(error_of([&] { eve::eval::image_to_text_ranks(ann, i2t.data(), "i2t.npy", nullptr); }),
            "i2t.npy: score at row 1, column 4 is NaN");
}

TEST(Retrieval, ThreadsDoNotChangeRanks) {
  std::string text = "[";
  for (int i = 0; i < 700; ++i) text += std::string(i ? "," : "") + R"({"caption": ["a", "b", "c"]})";
  text += "]";
  auto ann = parse_retrieval_annotations(text, "t.json");
  std::vector<float> i2t(ann.image_count() * ann.text_count());
  for (size_t k = 0; k < i2t.size(); ++k) i2t[k] = static_cast<float>((k * 2654435761u) % 1000);
  eve::ThreadPool pool(3);
  EXPECT_EQ(eve::eval::image_to_text_ranks(ann, i2t.data(), "x", nullptr),
            eve::eval::image_to_text_ranks(ann, i2t.data(), "x", &pool));
}

TEST(Retrieval, RankListsByPositionOrName) {
  auto ann = parse_retrieval_annotations(kAnn, "test.json");
  const std::string i2t =
      "{\"query\": 0, \"results\": [[3, 0.9], [1, 0.8], [0, 0.1]]}\n"
      "{\"query\": \"b.jpg\", \"results\": [[\"b.jpg#0\", 2], [\"a.jpg#1\", 1]]}\n"
      "{\"query\": 2, \"results\": [[0, 0.5], [1, 0.4]]}\n";
  EXPECT_EQ(parse_rank_lists(i2t, "i2t.jsonl", ann, RetrievalDirection::image_to_text),
            (std::vector<int64_t>{1, 0, kNotRetrieved}));
  std::string t2i;
  for (int t = 0; t < 6; ++t) {
    t2i += "{\"query\": " + std::to_string(t) + ", \"results\": [[\"c.jpg\", 0.9], [1, 0.5], [0, 0.5]]}\n";
  }
  EXPECT_EQ(parse_rank_lists(t2i, "t2i.jsonl", ann, RetrievalDirection::text_to_image),
            (std::vector<int64_t>{1, 1, 1, 0, 0, 0}));
}

TEST(Retrieval, RankListErrors) {
  auto ann = parse_retrieval_annotations(kAnn, "test.json");
  auto i2t = [&](const std::string& text) {
    return error_of([&] { parse_rank_lists(text, "r.jsonl", ann, RetrievalDirection::image_to_text); });
  };
  EXPECT_EQ(i2t("{\"query\": 0, \"results\": []}\n"),
            "r.jsonl: 2 image queries have no line (first positions: 1, 2) (rank every image and "
            "every text of test.json)");
  EXPECT_EQ(i2t("{\"query\": 0, \"results\": []}\n{\"query\": \"a.jpg\", \"results\": []}\n"),
            "r.jsonl:2: query \"a.jpg\" repeats line 1");
  EXPECT_EQ(i2t("{\"query\": 3, \"results\": []}\n"),
            "r.jsonl:1: image id 3 is out of range (the annotation has 3 images)");
  EXPECT_EQ(i2t("{\"query\": \"z.jpg\", \"results\": []}\n"), "r.jsonl:1: unknown image \"z.jpg\"");
  EXPECT_EQ(i2t("{\"query\": 0, \"results\": [[\"a.jpg#2\", 1]]}\n"),
            "r.jsonl:1: text id \"a.jpg#2\": the image has 2 caption(s)");
  EXPECT_EQ(i2t("{\"query\": 0, \"results\": [[\"a.jpg\", 1]]}\n"),
            "r.jsonl:1: text id \"a.jpg\" is not \"<image>#<caption index>\"");
  EXPECT_EQ(i2t("{\"query\": 0, \"results\": [[1, 1], [1, 0.5]]}\n"), "r.jsonl:1: result 1 is listed twice");
  EXPECT_EQ(i2t("{\"query\": 0, \"results\": [[1, \"high\"]]}\n"),
            "r.jsonl:1: \"results\" must be a list of [id, score] pairs, found [1,\"high\"]");
  EXPECT_EQ(i2t("{\"query\": 0}\n"), "r.jsonl:1: expected {\"query\": id, \"results\": [[id, score], ...]}");
  auto dup = parse_retrieval_annotations(R"([{"image": "p", "caption": ["x"]}, {"image": "p", "caption": ["y"]}])", "d.json");
  EXPECT_EQ(error_of([&] {
              parse_rank_lists("{\"query\": \"p\", \"results\": []}", "r.jsonl", dup,
                               RetrievalDirection::image_to_text);
            }),
            "r.jsonl:1: image \"p\" appears more than once in d.json (use entry positions (integers) as ids)");
}

TEST(Retrieval, AnnotationErrors) {
  auto parse = [](const std::string& text) {
    return error_of([&] { parse_retrieval_annotations(text, "t.json"); });
  };
  EXPECT_EQ(parse(R"([{"image": "a.jpg", "caption": "a dog"}])"),
            "t.json:[0]: \"caption\" is one string, expected the list of the image's captions (a "
            "training file has one caption per entry; score against a test file)");
  EXPECT_EQ(parse(R"([{"image": "a.jpg"}])"), "t.json:[0]: expected a \"caption\" (or \"texts\") list");
  EXPECT_EQ(parse(R"([{"caption": ["a", 3]}])"), "t.json:[0]: \"caption\" must be a list of strings");
  EXPECT_EQ(parse(R"([3])"), "t.json:[0]: expected an object with an image and its captions");
  EXPECT_EQ(parse("[]"), "t.json: no images in the annotation");
  EXPECT_EQ(parse("{\"texts\": [\"a\"]}\n{\"texts\": 5}\n"), "t.json:2: \"texts\" must be a list of strings");
}

}  // namespace

namespace {

// The dataset dir's records of kAnn's images, as eve-prep writes them: store keys for the
// paths, in another order, one image (b.jpg) left out.
const char* kRecords =
    "{\"image\": \"images_c\", \"texts\": [\"c0\", \"c1\", \"c2\"]}\n"
    "{\"image\": \"images_a\", \"texts\": [\"a0\", \"a1\"]}\n";

TEST(Retrieval, DatasetKeysNameTheTestFilesImages) {
  auto ann = parse_retrieval_annotations(kAnn, "test.json");
  eve::eval::add_image_keys(ann, parse_retrieval_annotations(kRecords, "test.jsonl"));
  EXPECT_EQ(ann.keys, (std::vector<std::string>{"images_a", "", "images_c"}));
  // Keys and paths resolve to the same entries, queries and results alike.
  const char* ranks =
      "{\"query\": \"images_a\", \"results\": [[\"images_c#0\", 0.9], [\"a.jpg#1\", 0.8]]}\n"
      "{\"query\": \"b.jpg\", \"results\": [[\"b.jpg#0\", 0.9]]}\n"
      "{\"query\": \"images_c\", \"results\": [[\"images_c#2\", 0.9]]}\n";
  EXPECT_EQ(parse_rank_lists(ranks, "i2t.jsonl", ann, RetrievalDirection::image_to_text),
            (std::vector<int64_t>{1, 0, 0}));
}

TEST(Retrieval, DatasetKeysMustMatchOneEntry) {
  auto ann = parse_retrieval_annotations(kAnn, "test.json");
  auto other = parse_retrieval_annotations("{\"image\": \"images_x\", \"texts\": [\"x0\"]}\n", "test.jsonl");
  EXPECT_EQ(error_of([&] { eve::eval::add_image_keys(ann, other); }),
            "test.jsonl:1: image \"images_x\": no entry of test.json has its captions (give the test file this "
            "split was prepared from)");
  auto twice = parse_retrieval_annotations(R"([{"image": "a.jpg", "caption": ["a0"]},
                                               {"image": "b.jpg", "caption": ["a0"]}])",
                                           "dup.json");
  auto one = parse_retrieval_annotations("{\"image\": \"images_a\", \"texts\": [\"a0\"]}\n", "test.jsonl");
  EXPECT_NE(error_of([&] { eve::eval::add_image_keys(twice, one); }).find("several entries of dup.json"),
            std::string::npos);
  // Without keys, an eve-prep key is unknown, and the message says how to add them.
  auto plain = parse_retrieval_annotations(kAnn, "test.json");
  EXPECT_NE(error_of([&] {
              parse_rank_lists("{\"query\": \"images_a\", \"results\": []}\n", "i2t.jsonl", plain,
                               RetrievalDirection::image_to_text);
            }).find("add --data DIR --split SPLIT"),
            std::string::npos);
}

}  // namespace
