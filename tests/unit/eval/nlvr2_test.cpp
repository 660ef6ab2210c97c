// NLVR2 accuracy and consistency: grouping, CSV details, duplicates, malformed inputs.
#include <gtest/gtest.h>

#include <string>

#include "eve/core/error.h"
#include "common/error_of.h"
#include "eve/eval/nlvr2_eval.h"

namespace {

using eve::eval::nlvr2_consistency_key;
using eve::eval::parse_nlvr2_labels;
using eve::eval::parse_nlvr2_predictions;

using eve::test::error_of;

eve::eval::Nlvr2Scores score(const std::string& gold, const std::string& csv) {
  return eve::eval::evaluate_nlvr2(parse_nlvr2_labels(gold, "dev.json"),
                                   parse_nlvr2_predictions(csv, "pred.csv"));
}

std::string line(const std::string& id, const std::string& label) {
  return R"({"identifier": ")" + id + R"(", "sentence": "s", "label": ")" + label + "\"}\n";
}

// Sentence 850-0 is paired with four image pairs, 850-1 with two, 851-0 with one.
const std::string kGold = line("dev-850-0-0", "True") + line("dev-850-1-0", "False") +
                          line("dev-850-2-0", "True") + line("dev-850-3-0", "True") +
                          line("dev-850-0-1", "False") + line("dev-850-1-1", "False") +
                          line("dev-851-0-0", "True");

TEST(Nlvr2, ConsistencyKeyBlanksThePairField) {
  EXPECT_EQ(nlvr2_consistency_key("dev-850-0-0"), "dev-850--0");
  EXPECT_EQ(nlvr2_consistency_key("test1-12-3-1"), "test1-12--1");
  EXPECT_EQ(nlvr2_consistency_key("a-b-c"), "a-b-");
  EXPECT_EQ(error_of([] { nlvr2_consistency_key("dev-850"); }),
            "identifier \"dev-850\" has fewer than three dash-separated fields (NLVR2 identifiers "
            "look like dev-850-0-0)");
}

TEST(Nlvr2, AccuracyAndConsistency) {
  const std::string all_right =
      "dev-850-0-0,True\ndev-850-1-0,False\ndev-850-2-0,True\ndev-850-3-0,True\n"
      "dev-850-0-1,False\ndev-850-1-1,False\ndev-851-0-0,True\n";
  auto s = score(kGold, all_right);
  EXPECT_EQ(s.accuracy, 1.0);
  EXPECT_EQ(s.consistency, 1.0);
  EXPECT_EQ(s.groups, 3u);
  // One wrong answer in the four-pair group: 6/7 right, 2 of 3 groups consistent.
  std::string one_wrong = all_right;
  one_wrong.replace(one_wrong.find("dev-850-2-0,True"), 16, "dev-850-2-0,False");
  s = score(kGold, one_wrong);
  EXPECT_EQ(s.correct, 6u);
  EXPECT_EQ(s.accuracy, 6.0 / 7.0);
  EXPECT_EQ(s.consistency, 2.0 / 3.0);
}

TEST(Nlvr2, CsvDetails) {
  const std::string gold = line("dev-1-0-0", "True") + line("dev-1-1-0", "False") +
                           line("dev-2-0-0", "True") + line("dev-3-0-0", "False");
  // Header, CRLF, a lone CR ending a line, trailing blanks, case-insensitive labels, extra
  // fields, a blank line.
  auto s = score(gold,
                 "identifier,prediction\r\ndev-1-0-0,TRUE\rdev-1-1-0,false,0.93  \n\n"
                 "  dev-2-0-0,true\ndev-3-0-0,False");
  EXPECT_EQ(s.accuracy, 1.0);
  // No trimming inside the line: " True" after the comma is a wrong answer; so are "1", "yes".
  s = score(gold, "dev-1-0-0, True\ndev-1-1-0,0\ndev-2-0-0,yes\ndev-3-0-0,False\n");
  EXPECT_EQ(s.correct, 1u);
  EXPECT_EQ(s.consistency, 1.0 / 3.0);
}

TEST(Nlvr2, LaterPredictionWinsAndUnknownOnesAreIgnored) {
  const std::string gold = line("dev-1-0-0", "True");
  auto preds = parse_nlvr2_predictions("dev-1-0-0,False\ndev-1-0-0,True\ndev-9-0-0,True\n", "p.csv");
  EXPECT_EQ(preds.duplicates, 1u);
  auto s = eve::eval::evaluate_nlvr2(parse_nlvr2_labels(gold, "g.json"), preds);
  EXPECT_EQ(s.accuracy, 1.0);
  EXPECT_EQ(s.unknown_predictions, 1u);
}

TEST(Nlvr2, RepeatedLabelLinesCountTwice) {
  auto s = score(line("dev-1-0-0", "True") + line("dev-1-0-0", "True") + line("dev-2-0-0", "True"),
                 "dev-1-0-0,True\ndev-2-0-0,False\n");
  EXPECT_EQ(s.examples, 3u);
  EXPECT_EQ(s.accuracy, 2.0 / 3.0);
  EXPECT_EQ(s.consistency, 0.5);
}

TEST(Nlvr2, BooleanLabelsAreAccepted) {
  auto s = score(R"({"identifier": "dev-1-0-0", "label": true})" "\n"
                 R"({"identifier": "dev-1-1-0", "label": false})" "\n",
                 "dev-1-0-0,True\ndev-1-1-0,True\n");
  EXPECT_EQ(s.accuracy, 0.5);
}

TEST(Nlvr2, MissingPredictionIsAnError) {
  EXPECT_EQ(error_of([] { score(kGold, "dev-850-0-0,True\n"); }),
            "pred.csv: 6 labelled example(s) have no prediction (first: dev-850-1-0, dev-850-2-0, "
            "dev-850-3-0, dev-850-0-1, dev-850-1-1, ...) (predict every identifier of dev.json)");
}

TEST(Nlvr2, MalformedInputs) {
  EXPECT_EQ(error_of([] { parse_nlvr2_predictions("dev-1-0-0,True\n\ndev-1-1-0 True\n", "p.csv"); }),
            "p.csv:3: expected \"identifier,prediction\", found no comma");
  EXPECT_EQ(error_of([] { parse_nlvr2_predictions("dev-1-0-0,Tr\xff\n", "p.csv"); }),
            "p.csv:1: invalid UTF-8");
  EXPECT_EQ(error_of([] { parse_nlvr2_labels(line("dev-1-0-0", "True") + "\n{\"label\": \"True\"}\n", "g.json"); }),
            "g.json:3: expected a string \"identifier\"");
  EXPECT_EQ(error_of([] { parse_nlvr2_labels(R"({"identifier": "dev-1-0-0", "label": 1})", "g.json"); }),
            "g.json:1: expected a \"label\" (\"True\" or \"False\")");
  EXPECT_EQ(error_of([] { parse_nlvr2_labels(R"({"identifier": "dev1", "label": "True"})", "g.json"); }),
            "g.json:1: identifier \"dev1\" has fewer than three dash-separated fields (NLVR2 "
            "identifiers look like dev-850-0-0)");
  EXPECT_EQ(error_of([] { parse_nlvr2_labels("{\"identifier\": \n", "g.json"); }).substr(0, 24),
            "g.json:1: invalid JSON: ");
  EXPECT_EQ(error_of([] { parse_nlvr2_labels("\n\n", "g.json"); }), "g.json: no labelled examples");
}

}  // namespace
