// The offline check of a VQA results file for the evaluation server: the split from the
// questions' data_subtype or --split, every problem kind counted with its first ids, the
// test-dev subset, the file name convention, and answers the normalisation changes.
#include <gtest/gtest.h>

#include <string>
#include <vector>

#include "common/error_of.h"
#include "eve/eval/submission.h"

namespace {

using eve::eval::check_vqa_submission;
using eve::eval::is_vqa_submission_name;
using eve::eval::parse_vqa_questions;
using eve::test::error_of;

std::string questions_json(const std::string& subtype, int first, int count) {
  std::string q = "{\"data_subtype\": \"" + subtype + "\", \"task_type\": \"Open-Ended\", \"questions\": [";
  for (int i = 0; i < count; ++i) {
    q += (i ? ", " : "") + std::string("{\"question_id\": ") + std::to_string(first + i) + ", \"image_id\": 1}";
  }
  return q + "]}";
}

std::string results_json(int first, int count, const std::string& answer = "yes") {
  std::string r = "[";
  for (int i = 0; i < count; ++i) {
    r += (i ? ", " : "") + std::string("{\"question_id\": ") + std::to_string(first + i) + ", \"answer\": \"" +
         answer + "\"}";
  }
  return r + "]";
}

TEST(VqaSubmission, FileNames) {
  struct Case {
    const char* name;
    const char* split;
    bool ok;
  };
  const Case cases[] = {{"vqa_test2015_eve_results.json", "test2015", true},
                        {"vqa_test-dev2015_eve-tiny_v2_results.json", "test-dev2015", true},
                        {"vqa_OpenEnded_mscoco_test2015_eve_results.json", "test2015", true},
                        {"vqa_test2015_eve_results.json", "test-dev2015", false},
                        {"vqa_test2015__results.json", "test2015", false},
                        {"vqa_test2015_results.json", "test2015", false},
                        {"vqa_test2015_e ve_results.json", "test2015", false},
                        {"test.json", "test2015", false}};
  for (const Case& c : cases) EXPECT_EQ(is_vqa_submission_name(c.name, c.split), c.ok) << c.name;
}

TEST(VqaSubmission, CompleteFilePasses) {
  auto q = parse_vqa_questions(questions_json("test2015", 1, 30), "q.json");
  auto c = check_vqa_submission(q, results_json(1, 30), "out/vqa_test2015_eve_results.json", "");
  EXPECT_EQ(c.split, "test2015");
  EXPECT_TRUE(c.problems.empty()) << c.problems[0];
  EXPECT_TRUE(c.warnings.empty());
  EXPECT_EQ(c.questions, 30u);
  EXPECT_EQ(c.answers, 30u);
  EXPECT_EQ(c.normalised, 0u);
}

TEST(VqaSubmission, ProblemsAreCountedWithTheFirstTwentyIds) {
  auto q = parse_vqa_questions(questions_json("test2015", 1, 30), "q.json");
  // Questions 1-5 answered twice, 26-30 not at all, 100-124 unknown, one answer a number,
  // one entry without a question_id.
  std::string r = results_json(1, 25);
  r.pop_back();
  r += ", " + results_json(1, 5).substr(1);
  r.pop_back();
  r += ", " + results_json(100, 25).substr(1);
  r.pop_back();
  r += ", {\"question_id\": 7, \"answer\": 7}, {\"answer\": \"no\"}]";
  auto c = check_vqa_submission(q, r, "results.json", "");
  ASSERT_EQ(c.problems.size(), 6u);
  EXPECT_EQ(c.problems[0],
            "results.json: 1 entry is not {\"question_id\": integer, \"answer\": string} ([56])");
  EXPECT_EQ(c.problems[1], "results.json: 1 answer is not a string, or absent (question ids 7)");
  EXPECT_EQ(c.problems[2], "results.json: 6 questions are answered more than once (1, 2, 3, 4, 5, 7)");
  EXPECT_EQ(c.problems[3],
            "results.json: 5 of the 30 questions of q.json have no answer (26, 27, 28, 29, 30)");
  EXPECT_EQ(c.problems[4],
            "results.json: 25 answers are for questions not in q.json (first 20: 100, 101, 102, 103, 104, 105, "
            "106, 107, 108, 109, 110, 111, 112, 113, 114, 115, 116, 117, 118, 119, ...)");
  EXPECT_EQ(c.problems[5].rfind("results.json: the evaluation server wants the file named "
                                "vqa_test2015_<method>_results.json",
                                0),
            0u);
}

TEST(VqaSubmission, TestDevIsASubsetOfTest) {
  // Answers to all of test2015 checked against the test-dev file: a warning, not a problem.
  auto dev = parse_vqa_questions(questions_json("test-dev2015", 1, 10), "dev.json");
  auto c = check_vqa_submission(dev, results_json(1, 30), "vqa_test-dev2015_eve_results.json", "");
  EXPECT_EQ(c.split, "test-dev2015");
  EXPECT_TRUE(c.problems.empty()) << c.problems[0];
  ASSERT_EQ(c.warnings.size(), 2u);
  EXPECT_NE(c.warnings[0].find("wants an answer to every test2015 question"), std::string::npos);
  EXPECT_NE(c.warnings[1].find("20 answers are for questions not in dev.json"), std::string::npos);
  // Missing test-dev answers are still problems.
  c = check_vqa_submission(dev, results_json(1, 9), "vqa_test-dev2015_eve_results.json", "");
  ASSERT_EQ(c.problems.size(), 1u);
  EXPECT_NE(c.problems[0].find("1 of the 10 questions of dev.json have no answer (10)"), std::string::npos);
}

TEST(VqaSubmission, SplitFromTheQuestionsOrTheOption) {
  auto test = parse_vqa_questions(questions_json("test2015", 1, 3), "q.json");
  auto c = check_vqa_submission(test, results_json(1, 3), "vqa_test-dev2015_eve_results.json", "test-dev2015");
  ASSERT_EQ(c.problems.size(), 1u);
  EXPECT_EQ(c.problems[0], "q.json: data_subtype is \"test2015\", but --split is test-dev2015: the questions of "
                           "another split");
  auto val = parse_vqa_questions(questions_json("val2014", 1, 3), "val.json");
  c = check_vqa_submission(val, results_json(1, 3), "vqa_test2015_eve_results.json", "");
  ASSERT_EQ(c.problems.size(), 1u);
  EXPECT_NE(c.problems[0].find("data_subtype is \"val2014\", not test-dev2015 or test2015"), std::string::npos);
  c = check_vqa_submission(val, results_json(1, 3), "vqa_test2015_eve_results.json", "test2015");
  EXPECT_TRUE(c.problems.empty());
  EXPECT_EQ(c.split, "test2015");
}

TEST(VqaSubmission, NormalisedAnswersAreWarnedFirstTwenty) {
  auto q = parse_vqa_questions(questions_json("test2015", 1, 25), "q.json");
  auto c = check_vqa_submission(q, results_json(1, 25, "Two dogs."), "vqa_test2015_eve_results.json", "");
  EXPECT_TRUE(c.problems.empty());
  EXPECT_EQ(c.normalised, 25u);
  ASSERT_EQ(c.normalised_first.size(), 20u);
  EXPECT_EQ(c.normalised_first[0].question_id, 1);
  EXPECT_EQ(c.normalised_first[0].answer, "Two dogs.");
  EXPECT_EQ(c.normalised_first[0].scored_as, "2 dogs");
  // Answers already in the normalised form are left alone.
  c = check_vqa_submission(q, results_json(1, 25, "2 dogs"), "vqa_test2015_eve_results.json", "");
  EXPECT_EQ(c.normalised, 0u);
}

TEST(VqaSubmission, NotAListIsAnError) {
  auto q = parse_vqa_questions(questions_json("test2015", 1, 3), "q.json");
  EXPECT_EQ(error_of([&] { check_vqa_submission(q, "{\"question_id\": 1}", "r.json", ""); }),
            "r.json: expected a list of {\"question_id\", \"answer\"} objects, found a JSON object");
}

}  // namespace
