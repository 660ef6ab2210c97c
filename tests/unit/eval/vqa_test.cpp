// VQA v2 accuracy: every normalisation rule with hand-checked cases, the leave-one-out,
// the 2021 vs legacy2017 difference, Python 2 rounding, and malformed inputs.
#include <gtest/gtest.h>

#include <nlohmann/json.hpp>

#include <string>
#include <vector>

#include "eve/core/error.h"
#include "common/error_of.h"
#include "eve/core/threads.h"
#include "eve/eval/vqa_eval.h"

namespace {

using eve::eval::VqaEvaluator;
using eve::eval::vqa_clean_whitespace;
using eve::eval::vqa_process_digit_article;
using eve::eval::vqa_process_punctuation;
using nlohmann::json;

std::string normalize(const std::string& s) {
  return vqa_process_digit_article(vqa_process_punctuation(s));
}

using eve::test::error_of;

// Annotation, question and result files for the given questions.
struct Set {
  json annotations = {{"annotations", json::array()}};
  json questions = {{"task_type", "Open-Ended"}, {"questions", json::array()}};
  json results = json::array();

  void add(int64_t qid, const std::vector<std::string>& humans, const std::string& prediction,
           const std::string& qtype = "what is", const std::string& atype = "other") {
    json answers = json::array();
    for (size_t j = 0; j < humans.size(); ++j) {
      answers.push_back({{"answer", humans[j]}, {"answer_confidence", "yes"}, {"answer_id", j + 1}});
    }
    annotations["annotations"].push_back(
        {{"question_id", qid}, {"question_type", qtype}, {"answer_type", atype}, {"answers", answers}});
    questions["questions"].push_back({{"question_id", qid}, {"image_id", 1}, {"question", "?"}});
    results.push_back({{"question_id", qid}, {"answer", prediction}});
  }

  eve::eval::VqaScores score(VqaEvaluator e = VqaEvaluator::current, eve::ThreadPool* pool = nullptr) const {
    auto a = eve::eval::parse_vqa_annotations(annotations.dump(), "ann.json");
    auto q = eve::eval::parse_vqa_questions(questions.dump(), "ques.json");
    auto r = eve::eval::parse_vqa_results(results.dump(), "res.json");
    return eve::eval::evaluate_vqa(a, q, r, e, pool);
  }
};

std::vector<std::string> ten(const std::string& a) { return std::vector<std::string>(10, a); }

// ---------------------------------------------------------------------------------------
// processPunctuation

TEST(VqaPunctuation, MarksBecomeSpacesUnlessNextToASpace) {
  EXPECT_EQ(vqa_process_punctuation("hot-dog"), "hot dog");
  EXPECT_EQ(vqa_process_punctuation("left - right"), "left  right");
  EXPECT_EQ(vqa_process_punctuation("red, white"), "red white");
  EXPECT_EQ(vqa_process_punctuation("what?!"), "what  ");
  // The decision is per mark and made on the original text: " -" deletes every hyphen,
  // while the slash (never next to a space) still becomes a space.
  EXPECT_EQ(vqa_process_punctuation("a -b-c/d"), "a bc d");
}

TEST(VqaPunctuation, AllTwentyOneMarks) {
  EXPECT_EQ(vqa_process_punctuation("a;b/c[d]e\"f{g}h(i)j=k+l\\m_n-o>p<q@r`s,t?u!v"),
            "a b c d e f g h i j k l m n o p q r s t u v");
  // Not marks: colon, apostrophe, hash, dollar, percent, ampersand, star, caret, tilde, bar.
  EXPECT_EQ(vqa_process_punctuation("10:30 it's #1 $5 5% a&b * ^ ~ |"),
            "10:30 it's #1 $5 5% a&b * ^ ~ |");
}

TEST(VqaPunctuation, DigitCommaDigitAnywhereDeletesEveryMark) {
  EXPECT_EQ(vqa_process_punctuation("1,000"), "1000");
  EXPECT_EQ(vqa_process_punctuation("t-shirt 1,5"), "tshirt 15");
  EXPECT_EQ(vqa_process_punctuation("a-b 1,2 (c)"), "ab 12 c");
  EXPECT_EQ(vqa_process_punctuation("1, 000"), "1 000");
  // Only ASCII digits count (the official regex runs without re.UNICODE).
  EXPECT_EQ(vqa_process_punctuation("\xef\xbc\x91,\xef\xbc\x92"), "\xef\xbc\x91 \xef\xbc\x92");
}

TEST(VqaPunctuation, PeriodsKeptOnlyBeforeADigit) {
  EXPECT_EQ(vqa_process_punctuation("5."), "5");
  EXPECT_EQ(vqa_process_punctuation("u.s.a."), "usa");
  EXPECT_EQ(vqa_process_punctuation("3.5"), "3.5");
  EXPECT_EQ(vqa_process_punctuation(".5"), ".5");
  EXPECT_EQ(vqa_process_punctuation("a..5"), "a.5");
  // The period rule looks at the text after the marks were handled.
  EXPECT_EQ(vqa_process_punctuation("3.-5"), "3 5");
  EXPECT_EQ(vqa_process_punctuation("3.-5 -x"), "3.5 x");
}

TEST(VqaPunctuation, AtMostThirtyTwoPeriodsAreDeleted) {
  EXPECT_EQ(vqa_process_punctuation(std::string(40, '.') + "x"), std::string(8, '.') + "x");
  EXPECT_EQ(vqa_process_punctuation(std::string(32, '.')), "");
}

// ---------------------------------------------------------------------------------------
// processDigitArticle

TEST(VqaDigitArticle, NumberWordsUpToTen) {
  EXPECT_EQ(vqa_process_digit_article("Two"), "2");
  EXPECT_EQ(vqa_process_digit_article("none"), "0");
  EXPECT_EQ(vqa_process_digit_article("zero one ten"), "0 1 10");
  EXPECT_EQ(vqa_process_digit_article("eleven twenty"), "eleven twenty");
  EXPECT_EQ(vqa_process_digit_article("the one"), "1");
}

TEST(VqaDigitArticle, ArticlesDropped) {
  EXPECT_EQ(vqa_process_digit_article("The Dog"), "dog");
  EXPECT_EQ(vqa_process_digit_article("a an the"), "");
  EXPECT_EQ(vqa_process_digit_article("theater and anteater"), "theater and anteater");
}

TEST(VqaDigitArticle, Contractions) {
  EXPECT_EQ(vqa_process_digit_article("dont know"), "don't know");
  EXPECT_EQ(vqa_process_digit_article("whats youre yall"), "what's you're y'all");
  EXPECT_EQ(vqa_process_digit_article("shouldnt've"), "shouldn't've");
  EXPECT_EQ(vqa_process_digit_article("oclock"), "o'clock");
  EXPECT_EQ(vqa_process_digit_article("twas"), "'twas");
  // Reversed upstream: the apostrophe form maps to the plain one.
  EXPECT_EQ(vqa_process_digit_article("somebody'd"), "somebodyd");
  // Not in the table, or only with a capital that lower-casing removes first.
  EXPECT_EQ(vqa_process_digit_article("im ive its hell Im Ive"), "im ive its hell im ive");
}

TEST(VqaDigitArticle, PythonTwoWhitespaceAndLowerCase) {
  EXPECT_EQ(vqa_process_digit_article("  spaced\t out\n"), "spaced out");
  EXPECT_EQ(vqa_process_digit_article("x\xc2\xa0y"), "x y");         // U+00A0
  EXPECT_EQ(vqa_process_digit_article("x\xe1\xa0\x8ey"), "x y");      // U+180E (Python 2 only)
  EXPECT_EQ(vqa_process_digit_article("x\xe3\x80\x80y"), "x y");      // U+3000
  EXPECT_EQ(vqa_process_digit_article("x\xe2\x80\x8by"), "x\xe2\x80\x8by");  // U+200B is not
  EXPECT_EQ(vqa_process_digit_article("Caf\xc3\xa9 \xc3\x89" "COLE"), "caf\xc3\xa9 \xc3\xa9" "cole");
  // Python 2 lower-cases code point by code point: no final sigma, U+0130 -> "i".
  EXPECT_EQ(vqa_process_digit_article("\xce\xa3\xce\x91\xce\xa3"), "\xcf\x83\xce\xb1\xcf\x83");
  EXPECT_EQ(vqa_process_digit_article("\xc4\xb0stanbul"), "istanbul");
}

TEST(VqaNormalize, WorkedExamples) {
  EXPECT_EQ(normalize("Two"), "2");
  EXPECT_EQ(normalize("The Dog"), "dog");
  EXPECT_EQ(normalize("hot-dog"), "hot dog");
  EXPECT_EQ(normalize("1,000"), "1000");
  EXPECT_EQ(normalize("red, white"), "red white");
  EXPECT_EQ(normalize("t-shirt 1,5"), "tshirt 15");
  EXPECT_EQ(normalize("left - right"), "left right");
  EXPECT_EQ(normalize("dont know"), "don't know");
  EXPECT_EQ(normalize("10:30"), "10:30");
  EXPECT_EQ(normalize("Yes."), "yes");
  EXPECT_EQ(normalize("A Dog!"), "dog");
}

TEST(VqaCleanWhitespace, TabsNewlinesAndStrip) {
  EXPECT_EQ(vqa_clean_whitespace("\tyes\n"), "yes");
  EXPECT_EQ(vqa_clean_whitespace(" yes  no "), "yes  no");
  EXPECT_EQ(vqa_clean_whitespace("yes\xe3\x80\x80"), "yes");
  EXPECT_EQ(vqa_clean_whitespace("\xe1\xa0\x8eyes"), "yes");
  EXPECT_EQ(vqa_clean_whitespace("a\tb"), "a b");
}

// ---------------------------------------------------------------------------------------
// One question

double acc(const std::vector<std::string>& humans, const std::string& pred,
           VqaEvaluator e = VqaEvaluator::current) {
  return eve::eval::vqa_question_accuracy(humans, pred, e);
}

TEST(VqaAccuracy, LeaveOneOutOverTenAnswers) {
  const double expected[] = {0.0, 0.3, 0.6, 0.9, 1.0, 1.0, 1.0};
  for (int k = 0; k <= 6; ++k) {
    std::vector<std::string> humans(10, "no");
    for (int j = 0; j < k; ++j) humans[j] = "yes";
    EXPECT_NEAR(acc(humans, "yes"), expected[k], 1e-12) << k << " humans agree";
  }
  // The arithmetic is Python's: the ten min(1, n/3) summed in record order, then / 10.
  double sum = 0;
  for (int j = 0; j < 10; ++j) sum += std::min(1.0, (j < 2 ? 1.0 : 2.0) / 3);
  EXPECT_EQ(acc({"yes", "yes", "no", "no", "no", "no", "no", "no", "no", "no"}, "yes"), sum / 10);
}

TEST(VqaAccuracy, CurrentNormalisesOnlyWhenHumansDisagree) {
  EXPECT_EQ(acc(ten("yes"), "yes"), 1.0);
  EXPECT_EQ(acc(ten("yes"), "Yes"), 0.0);
  EXPECT_EQ(acc(ten("yes"), "yes."), 0.0);
  EXPECT_EQ(acc(ten("yes"), " yes\t"), 1.0);  // cleaning is not normalisation
  std::vector<std::string> mixed = {"yes", "yes", "yes", "yes", "no", "no", "no", "no", "no", "no"};
  EXPECT_EQ(acc(mixed, "Yes."), 1.0);
  // Stripped human answers that become identical count as agreeing.
  std::vector<std::string> padded = ten("yes");
  padded[0] = " yes ";
  EXPECT_EQ(acc(padded, "Yes"), 0.0);
}

TEST(VqaAccuracy, LegacyAlwaysNormalisesThePrediction) {
  EXPECT_EQ(acc(ten("yes"), "Yes.", VqaEvaluator::legacy2017), 1.0);
  EXPECT_EQ(acc(ten("none"), "none", VqaEvaluator::legacy2017), 0.0);  // pred -> "0"
  EXPECT_EQ(acc(ten("none"), "none", VqaEvaluator::current), 1.0);
  // Humans only get the punctuation step: "ten" stays "ten", so 2 humans match, not 3.
  std::vector<std::string> humans = {"10", "10", "ten", "x", "x", "x", "x", "x", "x", "x"};
  EXPECT_NEAR(acc(humans, "ten", VqaEvaluator::current), 0.9, 1e-12);
  EXPECT_NEAR(acc(humans, "ten", VqaEvaluator::legacy2017), 0.6, 1e-12);
  // Legacy does not strip human answers.
  std::vector<std::string> spaced = {" red", " red", " red", " red", "x", "x", "x", "x", "x", "x"};
  EXPECT_EQ(acc(spaced, "red", VqaEvaluator::legacy2017), 0.0);
  EXPECT_EQ(acc(spaced, "red", VqaEvaluator::current), 1.0);
}

// ---------------------------------------------------------------------------------------
// Whole files

TEST(VqaEvaluate, AggregatesPerTypeInPercent) {
  Set s;
  s.add(1, ten("yes"), "yes", "is the", "yes/no");
  s.add(2, ten("yes"), "no", "is the", "yes/no");
  s.add(3, {"2", "2", "two", "3", "3", "3", "3", "3", "3", "3"}, "two", "how many", "number");
  auto r = s.score();
  EXPECT_EQ(r.questions, 3u);
  EXPECT_EQ(r.per_answer_type.at("yes/no"), 50.0);
  EXPECT_EQ(r.per_answer_type.at("number"), 90.0);
  EXPECT_EQ(r.per_question_type.at("is the"), 50.0);
  EXPECT_EQ(r.per_question_type.at("how many"), 90.0);
  EXPECT_EQ(r.overall, 63.33);
}

TEST(VqaEvaluate, OverallUsesPythonTwoRounding) {
  // 101 of 800 questions right: 100 * 101 / 800 = 12.625 exactly -> 12.63 (Python 3: 12.62).
  Set s;
  for (int q = 0; q < 800; ++q) s.add(q, ten("yes"), q < 101 ? "yes" : "no");
  EXPECT_EQ(s.score().overall, 12.63);
}

TEST(VqaEvaluate, LastResultForAQuestionWins) {
  Set s;
  s.add(7, ten("cat"), "cat");
  s.results.insert(s.results.begin() + 1, json{{"question_id", 7}, {"answer", "dog"}});
  auto r = s.score();
  EXPECT_EQ(r.overall, 0.0);
  EXPECT_EQ(r.duplicate_results, 1u);
}

TEST(VqaEvaluate, IdenticalRecordsAreLeftOutTogether) {
  // Without a distinct answer_id the ten records are equal dicts: leaving one out leaves out
  // all ten, so even the right answer scores 0 (the official behaviour).
  json answers = json::array();
  for (int j = 0; j < 10; ++j) answers.push_back({{"answer", "yes"}});
  Set s;
  s.add(1, ten("yes"), "yes");
  s.annotations["annotations"][0]["answers"] = answers;
  auto r = s.score();
  EXPECT_EQ(r.overall, 0.0);
  EXPECT_EQ(r.identical_record_questions, 1u);
  // Records compare as Python dicts: 1 == 1.0 == true, key order and nesting included.
  answers = json::array();
  for (int j = 0; j < 10; ++j) {
    answers.push_back({{"answer", "yes"}, {"answer_id", j < 5 ? json(j) : json(j * 1.0)},
                       {"meta", {{"b", j}, {"a", {1, 2}}}}});
  }
  s.annotations["annotations"][0]["answers"] = answers;
  EXPECT_EQ(s.score().overall, 100.0);
  answers[9]["answer_id"] = 1.0;  // now equal to record 1
  answers[9]["meta"]["b"] = true;
  s.annotations["annotations"][0]["answers"] = answers;
  auto twin = s.score();
  EXPECT_EQ(twin.identical_record_questions, 1u);
  EXPECT_EQ(twin.overall, 100.0);  // 8 others still match for every record
}

TEST(VqaEvaluate, ResultsMustAnswerExactlyTheAnnotatedQuestions) {
  Set s;
  for (int q = 1; q <= 8; ++q) s.add(q, ten("a"), "a");
  s.results.erase(s.results.begin(), s.results.begin() + 7);
  s.results.push_back({{"question_id", 99}, {"answer", "x"}});
  EXPECT_EQ(error_of([&] { s.score(); }),
            "res.json: results do not match the annotated questions: 7 question(s) have no answer "
            "(first: 1, 2, 3, 4, 5, ...); 1 answer(s) are for questions not in the annotations "
            "(first: 99) (score against the annotations of the same split)");
}

TEST(VqaEvaluate, QuestionsFileMustCoverTheAnnotations) {
  Set s;
  s.add(1, ten("a"), "a");
  s.add(2, ten("a"), "a");
  s.questions["questions"].erase(1);
  EXPECT_EQ(error_of([&] { s.score(); }),
            "ques.json: 1 annotated question(s) are not in the questions file (first: 2) (are the "
            "questions and annotations of the same split?)");
}

TEST(VqaEvaluate, MultipleChoiceAnswersMustBeAChoice) {
  Set s;
  s.add(1, ten("red"), "red");
  s.questions["task_type"] = "Multiple Choice";
  s.questions["questions"][0]["multiple_choices"] = {"red", "blue"};
  EXPECT_EQ(s.score().overall, 100.0);
  s.results[0]["answer"] = "green";
  EXPECT_EQ(error_of([&] { s.score(); }),
            "res.json: answer \"green\" to question 1 is not one of its multiple choices");
}

TEST(VqaEvaluate, ResultsIndependentOfThreads) {
  Set s;
  const std::vector<std::string> pool = {"yes", "Yes", "no", "2", "two", "a dog", "dog", "red,",
                                         "1,000", "1000", "hot-dog", "u.s.a."};
  for (int q = 0; q < 3000; ++q) {
    std::vector<std::string> humans;
    for (int j = 0; j < 10; ++j) humans.push_back(pool[(q * 7 + j * (q % 5)) % pool.size()]);
    s.add(q, humans, pool[(q * 13) % pool.size()], "t" + std::to_string(q % 37));
  }
  auto one = s.score(VqaEvaluator::current, nullptr);
  eve::ThreadPool threads(3);
  auto many = s.score(VqaEvaluator::current, &threads);
  EXPECT_EQ(one.accuracies, many.accuracies);
  EXPECT_EQ(one.per_question_type, many.per_question_type);
  EXPECT_EQ(one.overall, many.overall);
}

// ---------------------------------------------------------------------------------------
// Malformed inputs

TEST(VqaParse, AnnotationErrorsNameTheRecord) {
  auto parse = [](const std::string& text) {
    return error_of([&] { eve::eval::parse_vqa_annotations(text, "ann.json"); });
  };
  const std::string ok = R"({"question_id": 1, "question_type": "what", "answer_type": "other", "answers": [{"answer": "x", "answer_id": 1}]})";
  EXPECT_EQ(parse("[]"), "ann.json: expected an object with an \"annotations\" list, found a list");
  EXPECT_EQ(parse(R"({"info": {}})"),
            "ann.json: expected an object with an \"annotations\" list, found no \"annotations\" "
            "(is this a VQA annotation file?)");
  EXPECT_EQ(parse(R"({"annotations": 5})"), "ann.json: \"annotations\" must be a list, found an integer");
  EXPECT_EQ(parse(R"({"annotations": [)" + ok + R"(, 3]})"),
            "ann.json:annotations[1]: expected an annotation object, found an integer");
  EXPECT_EQ(parse(R"({"annotations": [{"question_id": 1, "question_type": "what", "answers": [{"answer": "x"}]}]})"),
            "ann.json:annotations[0]: missing \"answer_type\"");
  EXPECT_EQ(parse(R"({"annotations": [{"question_id": "1"}]})"),
            "ann.json:annotations[0]: \"question_id\" must be an integer, found a string");
  EXPECT_EQ(parse(R"({"annotations": [{"question_id": 1, "question_type": ["what"]}]})"),
            "ann.json:annotations[0]: \"question_type\" must be a string, found a list");
  EXPECT_EQ(parse(R"({"annotations": [{"question_id": 1, "question_type": "w", "answer_type": "o", "answers": []}]})"),
            "ann.json:annotations[0]: question_id 1 has an empty \"answers\" list");
  EXPECT_EQ(parse(R"({"annotations": [{"question_id": 1, "answers": [{"answer": "x"}, {"answer": 2}]}]})"),
            "ann.json:annotations[0]: \"answers\"[1]: \"answer\" must be a string, found an integer");
  EXPECT_EQ(parse(R"({"annotations": [{"question_id": 1, "answers": [{"answer_id": 1}]}]})"),
            "ann.json:annotations[0]: \"answers\"[0]: missing \"answer\"");
  EXPECT_EQ(parse(R"({"annotations": [{"question_id": 1, "answers": "yes"}]})"),
            "ann.json:annotations[0]: \"answers\" must be a list of objects, found a string");
  EXPECT_EQ(parse(R"({"annotations": [)" + ok + "," + ok + "]}"),
            "ann.json: annotations[1].question_id 1 repeats annotations[0]");
  EXPECT_EQ(parse("{\"annotations\": [\n" + ok + ",\n{\"question_id\": 2,,}]}"),
            "ann.json:3: invalid JSON: expected an object key (a string), found ','");
}

TEST(VqaParse, UnknownMembersAreSkipped) {
  auto a = eve::eval::parse_vqa_annotations(
      R"({"info": {"x": [1, {"y": 2}]}, "annotations": [{"extra": [[]], "question_id": 5,
          "question_type": "what", "answer_type": "other", "image_id": 3,
          "answers": [{"answer": "x", "answer_id": 1}, {"answer": "y", "answer_id": 2}]}],
          "license": "cc"})",
      "ann.json");
  ASSERT_EQ(a.size(), 1u);
  EXPECT_EQ(a.question_ids[0], 5);
  EXPECT_EQ(a.answer_offsets, (std::vector<uint32_t>{0, 2}));
  EXPECT_EQ(a.texts[a.answers[1]], "y");
  EXPECT_NE(a.answer_records[0], a.answer_records[1]);
}

TEST(VqaParse, ResultAndQuestionErrors) {
  auto results = [](const std::string& text) {
    return error_of([&] { eve::eval::parse_vqa_results(text, "res.json"); });
  };
  EXPECT_EQ(results(R"({"question_id": 1})"),
            "res.json: expected a list of {\"question_id\", \"answer\"} objects, found an object");
  EXPECT_EQ(results(R"([{"question_id": 1, "answer": "a"}, {"question_id": 2}])"),
            "res.json:[1]: missing \"answer\"");
  EXPECT_EQ(results(R"([{"question_id": 1, "answer": null}])"),
            "res.json:[0]: \"answer\" must be a string, found null");
  EXPECT_EQ(results(R"([{"question_id": 1.5, "answer": "a"}])"),
            "res.json:[0]: \"question_id\" must be an integer, found a number");
  EXPECT_EQ(results(R"(["a"])"),
            "res.json:[0]: expected an object with a \"question_id\", found a string");
  EXPECT_EQ(results("[{\"question_id\": 1, \"answer\": \"a\"}\n"),
            "res.json:2: invalid JSON: expected ']' after a list element, found the end");
  EXPECT_EQ(error_of([] { eve::eval::parse_vqa_questions(R"({"questions": [{"image_id": 1}]})", "q.json"); }),
            "q.json:questions[0]: missing \"question_id\"");
  EXPECT_EQ(error_of([] {
              eve::eval::parse_vqa_questions(
                  R"({"questions": [{"question_id": 1000}, {"question_id": 1001}, {"question_id": 1000}]})", "q.json");
            }),
            "q.json: questions[2].question_id 1000 repeats questions[0]");
  EXPECT_EQ(error_of([] { eve::eval::parse_vqa_questions(R"({"task_type": "Open-Ended"})", "q.json"); }),
            "q.json: expected an object with a \"questions\" list, found no \"questions\" member");
}

TEST(VqaEvaluator, Names) {
  EXPECT_EQ(eve::eval::parse_vqa_evaluator("legacy2017"), VqaEvaluator::legacy2017);
  EXPECT_STREQ(eve::eval::vqa_evaluator_name(VqaEvaluator::current), "current");
  EXPECT_THROW(eve::eval::parse_vqa_evaluator("2017"), eve::UsageError);
}

}  // namespace
