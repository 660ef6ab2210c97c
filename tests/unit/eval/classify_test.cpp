// Zero-shot classification scores: top-1 and top-5, multi-label gold, per-class accuracy,
// confused pairs, baselines, and the errors for bad labels and ranks.
#include <gtest/gtest.h>

#include <string>

#include "common/error_of.h"
#include "eve/eval/classify_eval.h"
#include "eve/io/file.h"
#include "common/io_test_util.h"

namespace {

using eve::eval::ClassifyScoreOptions;
using eve::eval::score_classify;
using eve::test::error_of;

// Ranks of one image: `classes` best first, with falling scores.
std::string rank(const std::string& image, std::initializer_list<const char*> classes) {
  std::string r = R"({"query": ")" + image + R"(", "results": [)";
  double score = 0.9;
  for (const char* c : classes) {
    r += (r.back() == '[' ? "" : ", ") + std::string("[\"") + c + "\", " + std::to_string(score) + "]";
    score -= 0.1;
  }
  return r + "]}\n";
}

struct Files {
  eve::test::TempDir dir;
  ClassifyScoreOptions o;
  Files(const std::string& gold, const std::string& ranks, const std::string& field) {
    o.gold = dir.file("labels.jsonl");
    o.ranks = dir.file("ranks.jsonl");
    o.field = field;
    eve::io::write_file_atomic(o.gold, gold);
    eve::io::write_file_atomic(o.ranks, ranks);
  }
};

const std::string kGold =
    R"({"id": "a", "background": "plain", "colors": ["red", "blue"], "count": 2})" "\n"
    R"({"id": "b", "background": "plain", "colors": ["green"], "count": 1})" "\n"
    R"({"id": "c", "background": "dotted", "colors": ["red"], "count": 1})" "\n"
    R"({"id": "d", "background": "striped", "colors": ["blue"], "count": 3})" "\n"
    R"({"id": "unranked", "background": "plain", "colors": ["red"], "count": 1})" "\n";

TEST(Classify, SingleLabelTopOneTopFivePerClassAndConfusedPairs) {
  // a and b right; c's plain is wrong (dotted second); d's plain is wrong, striped last.
  const std::string ranks = rank("a", {"plain", "dotted", "striped"}) + rank("b", {"plain", "striped", "dotted"}) +
                            rank("c", {"plain", "dotted", "striped"}) + rank("d", {"plain", "dotted", "striped"});
  Files f(kGold, ranks, "background");
  const auto r = score_classify(f.o);
  EXPECT_EQ(r["images"], 4);
  EXPECT_EQ(r["classes"], 3);
  EXPECT_DOUBLE_EQ(r["top1"].get<double>(), 50.0);
  EXPECT_DOUBLE_EQ(r["top5"].get<double>(), 100.0);
  EXPECT_DOUBLE_EQ(r["chance_top1"].get<double>(), 100.0 / 3);
  EXPECT_EQ(r["majority_class"], "plain");
  EXPECT_DOUBLE_EQ(r["majority_top1"].get<double>(), 50.0);
  EXPECT_EQ(r["multi_label"], false);
  EXPECT_EQ(r["per_class"]["plain"]["images"], 2);
  EXPECT_DOUBLE_EQ(r["per_class"]["plain"]["top1"].get<double>(), 100.0);
  EXPECT_DOUBLE_EQ(r["per_class"]["dotted"]["top1"].get<double>(), 0.0);
  EXPECT_EQ(r["confused"].dump(), R"({"dotted -> plain":1,"striped -> plain":1})");
}

TEST(Classify, TopFiveCountsOnlyTheFirstFiveResults) {
  const std::string gold = R"({"id": "a", "c": "6"})" "\n";
  Files f(gold, rank("a", {"1", "2", "3", "4", "5", "6"}), "c");
  EXPECT_DOUBLE_EQ(score_classify(f.o)["top5"].get<double>(), 0.0);
  eve::io::write_file_atomic(f.o.ranks, rank("a", {"1", "2", "3", "4", "6", "5"}));
  EXPECT_DOUBLE_EQ(score_classify(f.o)["top5"].get<double>(), 100.0);
}

TEST(Classify, MultiLabelHitIsAnyOfTheListAndMissesCountUnderEachClass) {
  // a: blue is in [red, blue]: right. b: red is not green: wrong. c: red right. d: red wrong.
  const std::string ranks = rank("a", {"blue", "red", "green"}) + rank("b", {"red", "green", "blue"}) +
                            rank("c", {"red", "blue", "green"}) + rank("d", {"red", "green", "blue"});
  Files f(kGold, ranks, "colors");
  const auto r = score_classify(f.o);
  EXPECT_EQ(r["multi_label"], true);
  EXPECT_DOUBLE_EQ(r["top1"].get<double>(), 50.0);
  // Chance: a has 2 of the 3 classes, the others 1: (2 + 1 + 1 + 1) / 3 / 4.
  EXPECT_DOUBLE_EQ(r["chance_top1"].get<double>(), 100.0 * 5 / 12);
  // red and blue are each in two images.
  EXPECT_EQ(r["per_class"]["red"]["images"], 2);
  EXPECT_DOUBLE_EQ(r["per_class"]["red"]["top1"].get<double>(), 100.0);
  EXPECT_DOUBLE_EQ(r["per_class"]["blue"]["top1"].get<double>(), 50.0);
  EXPECT_EQ(r["confused"].dump(), R"({"blue -> red":1,"green -> red":1})");
  f.o.confused = 1;
  EXPECT_EQ(score_classify(f.o)["confused"].size(), 1u);
}

TEST(Classify, NumbersMatchClassIdsByTheirDigits) {
  Files f(kGold, rank("a", {"2", "1"}) + rank("b", {"2", "1"}), "count");
  EXPECT_DOUBLE_EQ(score_classify(f.o)["top1"].get<double>(), 50.0);
}

TEST(Classify, OtherIdField) {
  Files f(R"({"key": 7, "id": "x", "c": "p"})" "\n", R"({"query": 7, "results": [["p", 1.0]]})" "\n", "c");
  f.o.id_field = "key";
  EXPECT_DOUBLE_EQ(score_classify(f.o)["top1"].get<double>(), 100.0);
}

TEST(Classify, BadInputsNameTheFileAndLine) {
  Files f(kGold, rank("a", {"plain"}) + rank("zz", {"plain"}), "background");
  const std::string g = f.o.gold, r = f.o.ranks;
  EXPECT_EQ(error_of([&] { score_classify(f.o); }),
            r + ":2: image \"zz\" has no record in " + g +
                " (the ranks' queries must be images of the labels file (with --id-field naming their ids))");
  eve::io::write_file_atomic(r, rank("a", {"plain"}) + rank("a", {"plain"}));
  EXPECT_EQ(error_of([&] { score_classify(f.o); }), r + ":2: query a repeats line 1");
  eve::io::write_file_atomic(r, "{\"results\": []}\n");
  EXPECT_EQ(error_of([&] { score_classify(f.o); }),
            r + ":1: no \"query\" naming the image (a string or an integer) (give eve-rank's output, images as "
                "--queries)");
  eve::io::write_file_atomic(r, "{\"query\": \"a\", \"results\": [3]}\n");
  EXPECT_EQ(error_of([&] { score_classify(f.o); }), r + ":1: each result must be [class id, score]");
  eve::io::write_file_atomic(r, "");
  EXPECT_EQ(error_of([&] { score_classify(f.o); }),
            r + ": no ranked images (rank the images against the classes with eve-rank)");

  eve::io::write_file_atomic(r, rank("a", {"plain"}));
  f.o.field = "shape";
  EXPECT_EQ(error_of([&] { score_classify(f.o); }), g + ":1: no \"shape\" field (pick the attribute with --field)");
  f.o.field = "background";
  eve::io::write_file_atomic(g, kGold + R"({"id": "a", "background": "plain"})" "\n");
  EXPECT_EQ(error_of([&] { score_classify(f.o); }), g + ":6: id a repeats line 1");
  eve::io::write_file_atomic(g, R"({"id": "a", "background": []})" "\n");
  EXPECT_EQ(error_of([&] { score_classify(f.o); }),
            g + ":1: \"background\" is an empty list: the image has no correct class");
  eve::io::write_file_atomic(g, R"({"id": "a", "background": 1.5})" "\n");
  EXPECT_EQ(error_of([&] { score_classify(f.o); }),
            g + ":1: \"background\" must be a class (string or integer) or a list of them");
  eve::io::write_file_atomic(g, R"({"name": "a", "background": "plain"})" "\n");
  EXPECT_EQ(error_of([&] { score_classify(f.o); }),
            g + ":1: no \"id\" field naming the image (pick the field with --id-field)");
  eve::io::write_file_atomic(g, "\n");
  EXPECT_EQ(error_of([&] { score_classify(f.o); }),
            g + ": no gold records (give the labels as JSON Lines, one record per image)");
  f.o.field.clear();
  EXPECT_EQ(error_of([&] { score_classify(f.o); }),
            "--field is required: which attribute of the gold records to score");
}

}  // namespace
