// eve-score's three subcommands as library calls: each reads its inputs, checks them, scores
// them and returns the result as one JSON object with the keys the official tools use. The
// program prints it (JSON or, via format_score_table, a table for people).
#pragma once

#include <nlohmann/json.hpp>

#include <string>

#include "eve/eval/retrieval_eval.h"

namespace eve::eval {

using ordered_json = nlohmann::ordered_json;

struct VqaScoreOptions {
  std::string annotations;  // v2_mscoco_val2014_annotations.json
  std::string questions;    // v2_OpenEnded_mscoco_val2014_questions.json
  std::string results;      // [{"question_id", "answer"}, ...]
  std::string evaluator = "current";  // current | legacy2017
  int threads = 0;          // 0 = all cores
  // With check_submission, no annotations: the results are checked as an upload to the
  // evaluation server for `split` ("" = the questions' data_subtype).
  bool check_submission = false;
  std::string split;
};

struct Nlvr2ScoreOptions {
  std::string gold;         // JSON Lines with identifier and label
  std::string predictions;  // CSV identifier,prediction
};

struct RetrievalScoreOptions {
  std::string annotations;  // Karpathy-split test JSON (or eve-prep retrieval JSONL)
  // A dataset dir of eve-prep and its split: alone, DATA/SPLIT.jsonl is the annotation; with
  // `annotations`, its records give the images their store keys as further ids.
  std::string data, split = "test";
  std::string i2t_scores, t2i_scores;  // .npy matrices: images x texts, texts x images
  std::string i2t_ranks, t2i_ranks;    // or JSONL rank lists
  int threads = 0;
};

// {"overall", "perAnswerType", "perQuestionType"} in percent (rounded as the official Python 2
// evaluator does), plus "questions" and "evaluator".
ordered_json score_vqa(const VqaScoreOptions& options);
// The results checked as an upload (submission.h): warnings logged; problems logged one a line,
// then eve::Error. Returns {"submission", "split", "questions", "answers", "normalised"}.
ordered_json check_vqa_submission_file(const VqaScoreOptions& options);
// {"accuracy", "consistency"} as fractions, plus "examples" and "groups".
ordered_json score_nlvr2(const Nlvr2ScoreOptions& options);
// {"txt_r1", "txt_r5", "txt_r10", "txt_r_mean", "img_r1", ..., "r_mean"} in percent, plus
// "images" and "texts". Exactly one of the two input pairs must be given, and the annotations
// or the dataset dir or both (else UsageError).
ordered_json score_retrieval(const RetrievalScoreOptions& options);
// Those numbers of computed recalls, as eve-score retrieval and eve-finetune's results give them.
ordered_json retrieval_scores_json(const RetrievalScores& scores);

// A plain-text table of any of the results above, one "name  value" row per number, nested
// objects as indented sections; percentages and fractions printed with their full value.
std::string format_score_table(const ordered_json& result);

}  // namespace eve::eval
