#include "eve/eval/score.h"

#include <fmt/format.h>

#include <chrono>
#include <future>
#include <memory>
#include <unordered_map>

#include "eve/core/error.h"
#include "eve/core/log.h"
#include "eve/core/threads.h"
#include "eve/eval/first_items.h"
#include "eve/eval/nlvr2_eval.h"
#include "eve/eval/retrieval_eval.h"
#include "eve/eval/submission.h"
#include "eve/eval/vqa_eval.h"
#include "eve/io/file.h"
#include "eve/io/input_text.h"
#include "eve/io/npy.h"

namespace eve::eval {
namespace {

std::string display(const std::string& path) { return path == "-" ? "<stdin>" : path; }

// The ids that occur more than once, each once, in order of their second occurrence; ""
// (an absent id) is never counted.
std::vector<std::string> repeated(const std::vector<std::string>& ids) {
  std::unordered_map<std::string, int> seen;
  std::vector<std::string> out;
  for (const auto& id : ids) {
    if (!id.empty() && ++seen[id] == 2) out.push_back(id);
  }
  return out;
}

// A float score matrix with its shape checked; float32 data is used in place, half
// precision converted.
class ScoreMatrix {
 public:
  ScoreMatrix(const std::string& path, size_t rows, size_t cols, const char* rows_name,
              const char* cols_name)
      : array_(io::read_npy(path)) {
    if (array_.dtype != io::DType::f32 && array_.dtype != io::DType::f16 &&
        array_.dtype != io::DType::bf16) {
      throw Error("score matrix must be float32, float16 or bfloat16", display(path));
    }
    if (array_.shape.size() != 2 || array_.shape[0] != static_cast<int64_t>(rows) ||
        array_.shape[1] != static_cast<int64_t>(cols)) {
      std::string shape;
      for (size_t i = 0; i < array_.shape.size(); ++i) {
        shape += (i ? ", " : "") + std::to_string(array_.shape[i]);
      }
      throw Error(fmt::format("score matrix has shape ({}), expected ({}, {}): {} x {} of the "
                              "annotation",
                              shape, rows, cols, rows_name, cols_name),
                  display(path));
    }
    if (array_.dtype != io::DType::f32) {
      converted_ = array_.to_f32();
      array_.data.clear();
      array_.data.shrink_to_fit();
    }
  }
  // Row-major rows x cols floats (.npy data is little-endian, as is every supported host).
  const float* data() const {
    return converted_.empty() ? reinterpret_cast<const float*>(array_.data.data()) : converted_.data();
  }

 private:
  io::NpyArray array_;
  std::vector<float> converted_;
};

}  // namespace

ordered_json score_vqa(const VqaScoreOptions& options) {
  if (options.check_submission) return check_vqa_submission_file(options);
  if (!options.split.empty()) throw UsageError("--split goes with --check-submission");
  if (options.annotations.empty()) throw UsageError("vqa needs --annotations (or --check-submission)");
  const VqaEvaluator evaluator = parse_vqa_evaluator(options.evaluator);
  int inputs_from_stdin = (options.annotations == "-") + (options.questions == "-") + (options.results == "-");
  if (inputs_from_stdin > 1) throw UsageError("only one input can be read from standard input");
  ThreadPool pool(options.threads);
  const auto start = std::chrono::steady_clock::now();
  auto seconds = [&] { return std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count(); };
  // The questions and results parse beside the (much larger) annotation file.
  auto questions = std::async(std::launch::async, [&] {
    io::InputText in(options.questions);
    return parse_vqa_questions(in.view(), in.name());
  });
  auto results = std::async(std::launch::async, [&] {
    io::InputText in(options.results);
    return parse_vqa_results(in.view(), in.name());
  });
  VqaAnnotations ann;
  std::exception_ptr failure;
  try {
    io::InputText in(options.annotations);
    ann = parse_vqa_annotations(in.view(), in.name());
  } catch (...) {
    failure = std::current_exception();
  }
  VqaQuestions q;
  VqaResults r;
  try {
    q = questions.get();
  } catch (...) {
    if (!failure) failure = std::current_exception();
  }
  try {
    r = results.get();
  } catch (...) {
    if (!failure) failure = std::current_exception();
  }
  if (failure) std::rethrow_exception(failure);
  log::debug("read {} annotated questions, {} questions, {} results in {:.2f} s", ann.size(),
             q.question_ids.size(), r.question_ids.size(), seconds());

  VqaScores s = evaluate_vqa(ann, q, r, evaluator, pool.size() > 1 ? &pool : nullptr);
  log::debug("scored in {:.2f} s ({} distinct human answers)", seconds(), ann.texts.size());
  if (s.duplicate_results) {
    log::warn("{}: {} question(s) answered more than once; the last answer counts, as in the "
              "official evaluator",
              r.path, s.duplicate_results);
  }
  if (s.identical_record_questions) {
    log::warn("{}: {} question(s) have identical answer records (no distinct answer_id); as in "
              "the official evaluator, leaving one out leaves out all its copies",
              ann.path, s.identical_record_questions);
  }
  ordered_json out;
  out["overall"] = s.overall;
  out["perAnswerType"] = ordered_json::object();
  for (const auto& [k, v] : s.per_answer_type) out["perAnswerType"][k] = v;
  out["perQuestionType"] = ordered_json::object();
  for (const auto& [k, v] : s.per_question_type) out["perQuestionType"][k] = v;
  out["questions"] = s.questions;
  out["evaluator"] = vqa_evaluator_name(evaluator);
  return out;
}

ordered_json check_vqa_submission_file(const VqaScoreOptions& options) {
  if (!options.annotations.empty()) {
    throw UsageError("--check-submission takes no --annotations: test answers are scored by the server");
  }
  if (options.questions == "-" && options.results == "-") {
    throw UsageError("only one input can be read from standard input");
  }
  VqaQuestions questions;
  {
    io::InputText in(options.questions);
    questions = parse_vqa_questions(in.view(), in.name());
  }
  io::InputText in(options.results);
  const VqaSubmissionCheck c = check_vqa_submission(questions, in.view(), in.name(), options.split);
  for (const auto& w : c.warnings) log::warn("{}", w);
  if (c.normalised) {
    log::warn("{}: the server's normalisation changes {} answer(s); it scores them as{}:", in.name(),
              c.normalised, c.normalised > c.normalised_first.size() ? " (the first 20)" : "");
    for (const auto& n : c.normalised_first) {
      log::warn("  question {}: \"{}\" -> \"{}\"", n.question_id, n.answer, n.scored_as);
    }
  }
  if (!c.problems.empty()) {
    for (const auto& p : c.problems) log::error("{}", p);
    throw Error(fmt::format("{} problem(s): the evaluation server would refuse this file", c.problems.size()),
                in.name());
  }
  ordered_json out;
  out["submission"] = in.name();
  out["split"] = c.split;
  out["questions"] = c.questions;
  out["answers"] = c.answers;
  out["normalised"] = c.normalised;
  return out;
}

ordered_json score_nlvr2(const Nlvr2ScoreOptions& options) {
  if (options.gold == "-" && options.predictions == "-") {
    throw UsageError("only one input can be read from standard input");
  }
  Nlvr2Labels labels = parse_nlvr2_labels(io::read_file(options.gold), display(options.gold));
  Nlvr2Predictions preds =
      parse_nlvr2_predictions(io::read_file(options.predictions), display(options.predictions));
  Nlvr2Scores s = evaluate_nlvr2(labels, preds);
  if (auto twice = repeated(labels.identifiers); !twice.empty()) {
    log::warn("{}: {} identifier(s) are labelled more than once (first: {}); every label line counts, "
              "as in the official script",
              labels.path, twice.size(), first_items(twice));
  }
  if (preds.duplicates) {
    log::warn("{}: {} identifier(s) predicted more than once; the last line counts", preds.path,
              preds.duplicates);
  }
  if (s.unknown_predictions) {
    log::warn("{}: {} prediction(s) for identifiers not in {} were ignored", preds.path,
              s.unknown_predictions, labels.path);
  }
  ordered_json out;
  out["accuracy"] = s.accuracy;
  out["consistency"] = s.consistency;
  out["examples"] = s.examples;
  out["groups"] = s.groups;
  return out;
}

ordered_json score_retrieval(const RetrievalScoreOptions& options) {
  const bool matrices = !options.i2t_scores.empty() || !options.t2i_scores.empty();
  const bool lists = !options.i2t_ranks.empty() || !options.t2i_ranks.empty();
  if (matrices == lists) {
    throw UsageError("give either --i2t and --t2i (score matrices) or --i2t-ranks and --t2i-ranks");
  }
  if (matrices && (options.i2t_scores.empty() || options.t2i_scores.empty())) {
    throw UsageError("--i2t and --t2i go together");
  }
  if (lists && (options.i2t_ranks.empty() || options.t2i_ranks.empty())) {
    throw UsageError("--i2t-ranks and --t2i-ranks go together");
  }
  if (options.annotations.empty() && options.data.empty()) {
    throw UsageError("give the test annotation (--ann FILE) or the dataset dir (--data DIR --split SPLIT), or both");
  }
  RetrievalAnnotations records;
  if (!options.data.empty()) {
    const std::string file = options.data + "/" + options.split + ".jsonl";
    if (!io::file_exists(file)) {
      throw Error("the dataset dir has no split " + options.split + " (no " + file + ")", options.data);
    }
    records = parse_retrieval_annotations(io::read_file(file), file);
  }
  RetrievalAnnotations ann;
  if (options.annotations.empty()) {
    ann = std::move(records);
  } else {
    ann = parse_retrieval_annotations(io::read_file(options.annotations), display(options.annotations));
    if (!options.data.empty()) add_image_keys(ann, records);
  }
  size_t captionless = 0;
  for (size_t i = 0; i < ann.image_count(); ++i) captionless += ann.text_offsets[i + 1] == ann.text_offsets[i];
  if (captionless) {
    log::warn("{}: {} image(s) have no caption; they count as not retrieved, as in itm_eval", ann.path,
              captionless);
  }
  if (auto twice = repeated(ann.images); !twice.empty()) {
    log::warn("{}: {} image(s) are listed more than once (first: {}); ground truth is by position, so "
              "each entry is another image, as in itm_eval",
              ann.path, twice.size(), first_items(twice));
  }
  std::vector<int64_t> i2t, t2i;
  if (matrices) {
    ThreadPool pool(options.threads);
    ThreadPool* p = pool.size() > 1 ? &pool : nullptr;
    {
      ScoreMatrix m(options.i2t_scores, ann.image_count(), ann.text_count(), "images", "texts");
      i2t = image_to_text_ranks(ann, m.data(), display(options.i2t_scores), p);
    }
    ScoreMatrix m(options.t2i_scores, ann.text_count(), ann.image_count(), "texts", "images");
    t2i = text_to_image_ranks(ann, m.data(), display(options.t2i_scores), p);
  } else {
    i2t = parse_rank_lists(io::read_file(options.i2t_ranks), display(options.i2t_ranks), ann,
                           RetrievalDirection::image_to_text);
    t2i = parse_rank_lists(io::read_file(options.t2i_ranks), display(options.t2i_ranks), ann,
                           RetrievalDirection::text_to_image);
  }
  return retrieval_scores_json(retrieval_recall(i2t, t2i));
}

ordered_json retrieval_scores_json(const RetrievalScores& s) {
  ordered_json out;
  out["txt_r1"] = s.txt_r1;
  out["txt_r5"] = s.txt_r5;
  out["txt_r10"] = s.txt_r10;
  out["txt_r_mean"] = s.txt_r_mean;
  out["img_r1"] = s.img_r1;
  out["img_r5"] = s.img_r5;
  out["img_r10"] = s.img_r10;
  out["img_r_mean"] = s.img_r_mean;
  out["r_mean"] = s.r_mean;
  out["images"] = s.images;
  out["texts"] = s.texts;
  return out;
}

namespace {

void table_rows(const ordered_json& obj, const std::string& indent, size_t width, std::string& out) {
  for (const auto& [key, value] : obj.items()) {
    if (value.is_object()) {
      out += indent + key + "\n";
      size_t w = 0;
      for (const auto& [k, v] : value.items()) w = std::max(w, k.size());
      table_rows(value, indent + "  ", w, out);
      continue;
    }
    std::string shown = value.is_string() ? value.get<std::string>() : value.dump();
    out += fmt::format("{}{:<{}}  {}\n", indent, key, width, shown);
  }
}

}  // namespace

std::string format_score_table(const ordered_json& result) {
  size_t width = 0;
  for (const auto& [k, v] : result.items()) {
    if (!v.is_object()) width = std::max(width, k.size());
  }
  std::string out;
  table_rows(result, "", width, out);
  return out;
}

}  // namespace eve::eval
