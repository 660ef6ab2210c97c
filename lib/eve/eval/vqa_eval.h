// VQA v2 accuracy exactly as the official evaluator (GT-Vision-Lab/VQA vqaEval.py) computes
// it: answer normalisation in its order and scope, leave-one-out over the human answer
// records, Python 2 rounding of the reported percentages. Two generations of the evaluator:
//  - current (2021, a013f00): human answers and the prediction get "\n"/"\t" -> " " and
//    strip(); only when the human answers are not all identical are all of them and the
//    prediction normalised (punctuation, then digits/articles/contractions).
//  - legacy2017 (a4f1afd; the logic LAVIS/BLIP evaluate with): the prediction is always
//    cleaned and fully normalised; human answers are never stripped and, only when they
//    differ, get the punctuation step alone.
#pragma once

#include <cstdint>
#include <map>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include "eve/core/string_pool.h"

namespace eve {
class ThreadPool;
}

namespace eve::eval {

enum class VqaEvaluator { current, legacy2017 };

// "current" or "legacy2017"; anything else throws eve::UsageError.
VqaEvaluator parse_vqa_evaluator(const std::string& name);
const char* vqa_evaluator_name(VqaEvaluator evaluator);

// processPunctuation: 21 marks deleted or turned into a space (decided on the original
// text), then every "." not followed by a digit deleted (at most 32 of them).
std::string vqa_process_punctuation(std::string_view s);
// processDigitArticle: lower-case, split on whitespace, number words to digits, drop
// articles, expand contractions, join with single spaces.
std::string vqa_process_digit_article(std::string_view s);
// "\n" and "\t" become spaces, then Python 2's unicode.strip().
std::string vqa_clean_whitespace(std::string_view s);
// The current evaluator's fully normalised form of an answer (whitespace cleaned, then
// punctuation, digits, articles and contractions): what a prediction is compared as when the
// human answers of its question differ.
std::string vqa_normalized_answer(std::string_view s);

// One question scored from plain strings (each human answer a distinct record, as in the
// official data with distinct answer_id): the mean over held-out records of
// min(1, matches among the others / 3), in [0, 1].
double vqa_question_accuracy(const std::vector<std::string>& human_answers,
                             std::string_view prediction, VqaEvaluator evaluator);

// The annotation file, interned: question q has human answer records
// [answer_offsets[q], answer_offsets[q+1]).
struct VqaAnnotations {
  std::string path;
  std::vector<int64_t> question_ids;
  std::vector<uint32_t> question_types;  // ids into `types`
  std::vector<uint32_t> answer_types;    // ids into `types`
  std::vector<uint32_t> answer_offsets;  // size questions + 1
  std::vector<uint32_t> answers;         // the "answer" strings, ids into `texts`
  // Every other member of an answer record (answer_confidence, answer_id, ...) as one
  // canonical string, ids into `records`: the official leave-one-out compares whole records.
  std::vector<uint32_t> answer_records;
  StringPool types, texts, records;
  std::unordered_map<int64_t, uint32_t> index;  // question_id -> position

  size_t size() const { return question_ids.size(); }
};

struct VqaQuestions {
  std::string path;
  std::string task_type;  // "Open-Ended" or "Multiple Choice" (VQA v1)
  std::string data_subtype;  // "val2014", "test-dev2015", "test2015", ... ("" when absent)
  std::vector<int64_t> question_ids;
  // Only for "Multiple Choice": the allowed answers of each question, in question order.
  std::vector<std::vector<std::string>> multiple_choices;
};

struct VqaResults {
  std::string path;
  std::vector<int64_t> question_ids;
  std::vector<std::string> answers;
};

// Parsers take the file's text; `path` only names it in errors. Malformed input throws
// eve::Error naming the file and the record ("annotations[17]", "[3]", or a line).
VqaAnnotations parse_vqa_annotations(std::string_view text, const std::string& path);
VqaQuestions parse_vqa_questions(std::string_view text, const std::string& path);
VqaResults parse_vqa_results(std::string_view text, const std::string& path);

struct VqaScores {
  double overall = 0;  // percent, rounded as Python 2's round(x, 2)
  std::map<std::string, double> per_answer_type;
  std::map<std::string, double> per_question_type;
  std::vector<double> accuracies;  // per annotated question, unrounded, in [0, 1]
  size_t questions = 0;
  size_t duplicate_results = 0;      // result entries overridden by a later one
  size_t identical_record_questions = 0;  // questions with indistinguishable answer records
};

// Checks that the results answer exactly the annotated questions (else eve::Error naming how
// many are missing/unknown and the first ids) and scores them. `pool` may be null.
VqaScores evaluate_vqa(const VqaAnnotations& annotations, const VqaQuestions& questions,
                       const VqaResults& results, VqaEvaluator evaluator, ThreadPool* pool);

}  // namespace eve::eval
