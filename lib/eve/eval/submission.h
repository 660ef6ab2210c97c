// An offline check of a VQA v2 results file before it goes to the evaluation server: the
// server refuses a file that misses a question, answers one twice, answers questions it does
// not know, holds an answer that is not a string or is not named as it wants, and it scores
// answers after its normalisation, which the check shows in advance.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "eve/eval/vqa_eval.h"

namespace eve::eval {

// The two test splits the server scores; test-dev2015 is a subset of test2015.
constexpr const char* kVqaTestDev = "test-dev2015";
constexpr const char* kVqaTest = "test2015";

// Whether `file_name` (a base name) follows the server's convention for `split`:
// vqa_<split>_<method>_results.json, or the long form with the task and dataset,
// vqa_OpenEnded_mscoco_<split>_<method>_results.json; <method> is one or more of
// [A-Za-z0-9_-].
bool is_vqa_submission_name(std::string_view file_name, std::string_view split);

// One answer that the server's normalisation changes.
struct NormalisedAnswer {
  int64_t question_id = 0;
  std::string answer, scored_as;
};

struct VqaSubmissionCheck {
  std::string split;           // the split checked for (test-dev2015 or test2015), "" if unknown
  size_t questions = 0;        // in the questions file
  size_t answers = 0;          // entries in the results file
  // Each a line that makes the server refuse the file; counts and the first 20 ids inside.
  std::vector<std::string> problems;
  // Lines worth reading that do not make the file unusable.
  std::vector<std::string> warnings;
  size_t normalised = 0;                  // answers the normalisation changes
  std::vector<NormalisedAnswer> normalised_first;  // the first 20 of them
};

// Checks `results` (the text of a results file named `results_path`) against the questions
// file `questions` for `split` ("" = the questions' data_subtype; else it must match it).
// With the test-dev2015 questions, answers to other questions are not problems (the server
// wants all of test2015) but are counted in a warning. Malformed JSON throws eve::Error.
VqaSubmissionCheck check_vqa_submission(const VqaQuestions& questions, std::string_view results,
                                        const std::string& results_path, const std::string& split);

}  // namespace eve::eval
