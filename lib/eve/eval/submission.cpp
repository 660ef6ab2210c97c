#include "eve/eval/submission.h"

#include <fmt/format.h>

#include <unordered_map>
#include <unordered_set>

#include "eve/core/error.h"
#include "eve/eval/first_items.h"
#include "eve/io/jsonl.h"

namespace eve::eval {
namespace {

using io::json;

// How many ids or positions a problem line names: enough to find the pattern, short enough to read.
constexpr size_t kShown = 20;

std::string plural(size_t n, const char* one, const char* many) {
  return fmt::format("{} {}", n, n == 1 ? one : many);
}

// "(first 20: a, b, ...)" or "(a, b)" when all are shown.
template <typename T>
std::string listed(const std::vector<T>& items) {
  return fmt::format("({}{})", items.size() > kShown ? "first 20: " : "", first_items(items, kShown));
}

bool is_test_split(const std::string& s) { return s == kVqaTestDev || s == kVqaTest; }

bool method_chars(std::string_view s) {
  if (s.empty()) return false;
  for (char c : s) {
    const bool ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '_' ||
                    c == '-';
    if (!ok) return false;
  }
  return true;
}

std::string base_name(const std::string& path) {
  const size_t slash = path.rfind('/');
  return slash == std::string::npos ? path : path.substr(slash + 1);
}

// Reads data_subtype and --split into the split to check for; a mismatch is a problem.
std::string pick_split(const VqaQuestions& q, const std::string& requested, VqaSubmissionCheck& out) {
  const std::string& subtype = q.data_subtype;
  if (requested.empty()) {
    if (is_test_split(subtype)) return subtype;
    out.problems.push_back(fmt::format(
        "{}: data_subtype is \"{}\", not test-dev2015 or test2015, the splits the evaluation server "
        "scores (give --split to check for one of them anyway)",
        q.path, subtype));
    return {};
  }
  if (is_test_split(subtype) && subtype != requested) {
    out.problems.push_back(fmt::format("{}: data_subtype is \"{}\", but --split is {}: the questions of another split",
                                       q.path, subtype, requested));
  } else if (!is_test_split(subtype)) {
    out.warnings.push_back(fmt::format("{}: data_subtype is \"{}\"; checked as {}, as --split says", q.path,
                                       subtype, requested));
  }
  return requested;
}

}  // namespace

bool is_vqa_submission_name(std::string_view name, std::string_view split) {
  constexpr std::string_view head = "vqa_", long_head = "OpenEnded_mscoco_", tail = "_results.json";
  if (name.substr(0, head.size()) != head) return false;
  name.remove_prefix(head.size());
  if (name.substr(0, long_head.size()) == long_head && name.substr(0, split.size()) != split) {
    name.remove_prefix(long_head.size());
  }
  if (name.substr(0, split.size()) != split || name.size() < split.size() + 1 || name[split.size()] != '_') {
    return false;
  }
  name.remove_prefix(split.size() + 1);
  if (name.size() <= tail.size() || name.substr(name.size() - tail.size()) != tail) return false;
  return method_chars(name.substr(0, name.size() - tail.size()));
}

VqaSubmissionCheck check_vqa_submission(const VqaQuestions& questions, std::string_view results,
                                        const std::string& results_path, const std::string& split) {
  VqaSubmissionCheck out;
  out.questions = questions.question_ids.size();
  out.split = pick_split(questions, split, out);

  const json doc = io::parse_json(results, results_path);
  if (!doc.is_array()) {
    throw Error("expected a list of {\"question_id\", \"answer\"} objects, found a JSON " +
                    std::string(doc.type_name()),
                results_path);
  }
  out.answers = doc.size();
  std::unordered_set<int64_t> asked(questions.question_ids.begin(), questions.question_ids.end());
  std::unordered_map<int64_t, size_t> answered;  // question_id -> entries
  std::vector<std::string> malformed;
  std::vector<int64_t> not_strings, repeated, unknown;
  for (size_t i = 0; i < doc.size(); ++i) {
    const json& e = doc[i];
    const auto id = e.is_object() ? e.find("question_id") : e.end();
    if (!e.is_object() || id == e.end() || !id->is_number_integer()) {
      malformed.push_back(fmt::format("[{}]", i));
      continue;
    }
    const int64_t qid = id->get<int64_t>();
    if (++answered[qid] == 2) repeated.push_back(qid);
    if (!asked.count(qid)) unknown.push_back(qid);
    const auto a = e.find("answer");
    if (a == e.end() || !a->is_string()) {
      not_strings.push_back(qid);
      continue;
    }
    const std::string& answer = a->get_ref<const std::string&>();
    std::string scored = vqa_normalized_answer(answer);
    if (scored != answer) {
      if (out.normalised < kShown) out.normalised_first.push_back({qid, answer, std::move(scored)});
      ++out.normalised;
    }
  }
  std::vector<int64_t> missing;
  for (int64_t qid : questions.question_ids) {
    if (!answered.count(qid)) missing.push_back(qid);
  }
  if (!malformed.empty()) {
    out.problems.push_back(fmt::format("{}: {} not {{\"question_id\": integer, \"answer\": string}} {}",
                                       results_path, plural(malformed.size(), "entry is", "entries are"),
                                       listed(malformed)));
  }
  if (!not_strings.empty()) {
    out.problems.push_back(fmt::format("{}: {} not a string, or absent (question ids {})", results_path,
                                       plural(not_strings.size(), "answer is", "answers are"),
                                       first_items(not_strings, kShown)));
  }
  if (!repeated.empty()) {
    out.problems.push_back(fmt::format("{}: {} answered more than once {}", results_path,
                                       plural(repeated.size(), "question is", "questions are"), listed(repeated)));
  }
  if (!missing.empty()) {
    out.problems.push_back(fmt::format("{}: {} of the {} questions of {} have no answer {}", results_path,
                                       missing.size(), out.questions, questions.path, listed(missing)));
  }
  // The questions say which file they are; --split decides only for files that do not.
  const bool dev = questions.data_subtype == kVqaTestDev ||
                   (!is_test_split(questions.data_subtype) && out.split == kVqaTestDev);
  if (dev) {
    out.warnings.push_back(fmt::format(
        "{} holds the test-dev2015 questions, a subset of test2015: the evaluation server wants an answer "
        "to every test2015 question, for the test-dev phase too; check against the test2015 questions "
        "before uploading",
        questions.path));
  }
  if (!unknown.empty()) {
    std::string line = fmt::format("{}: {} for questions not in {} {}", results_path,
                                   plural(unknown.size(), "answer is", "answers are"), questions.path,
                                   listed(unknown));
    // Answers to the rest of test2015 belong in a test-dev upload; only the test2015 file can tell.
    if (dev) {
      out.warnings.push_back(line + ": the rest of test2015 if the file is complete");
    } else {
      out.problems.push_back(line);
    }
  }
  if (!out.split.empty()) {
    if (results_path == "-" || results_path == "<stdin>") {
      out.warnings.push_back("the results come from standard input: their file name is not checked");
    } else if (!is_vqa_submission_name(base_name(results_path), out.split)) {
      out.problems.push_back(fmt::format(
          "{}: the evaluation server wants the file named vqa_{}_<method>_results.json (<method>: letters, "
          "digits, '_' or '-')",
          results_path, out.split));
    }
  }
  return out;
}

}  // namespace eve::eval
