#include "eve/eval/vqa_eval.h"

#include <fmt/format.h>

#include <algorithm>
#include <array>
#include <cmath>
#include <limits>
#include <unordered_map>
#include <unordered_set>
#include <utility>

#include "eve/core/error.h"
#include "eve/core/log.h"
#include "eve/core/threads.h"
#include "eve/eval/first_items.h"
#include "eve/eval/python_text.h"
#include "eve/io/json_stream.h"

namespace eve::eval {

using io::for_each_list_element;
using io::json;
using io::json_kind;
using io::JsonCursor;

namespace {

// ---------------------------------------------------------------------------------------
// The official normalisation tables.

// processPunctuation's marks, in the official order (the order does not change the result:
// each mark is handled on its own).
constexpr std::string_view kMarks = ";/[]\"{}()=+\\_-><@`,?!";

// At most this many periods are deleted: the official call passes re.UNICODE (32) where
// re.sub expects its count argument.
constexpr int kMaxPeriodsDeleted = 32;

const std::unordered_map<std::string_view, std::string_view>& number_words() {
  static const std::unordered_map<std::string_view, std::string_view> table = {
      {"none", "0"}, {"zero", "0"}, {"one", "1"}, {"two", "2"},   {"three", "3"}, {"four", "4"},
      {"five", "5"}, {"six", "6"},  {"seven", "7"}, {"eight", "8"}, {"nine", "9"},  {"ten", "10"}};
  return table;
}

bool is_article(std::string_view w) { return w == "a" || w == "an" || w == "the"; }

// The contraction table as the official file spells it: spelling -> canonical form. The
// capitalised keys can never match (words are lower-cased first) and "somebody'd" maps to
// "somebodyd" (reversed upstream); both kept as they are.
const std::unordered_map<std::string_view, std::string_view>& contractions() {
  static const std::unordered_map<std::string_view, std::string_view> table = {
      {"aint", "ain't"}, {"arent", "aren't"}, {"cant", "can't"}, {"couldve", "could've"},
      {"couldnt", "couldn't"}, {"couldn'tve", "couldn't've"}, {"couldnt've", "couldn't've"},
      {"didnt", "didn't"}, {"doesnt", "doesn't"}, {"dont", "don't"}, {"hadnt", "hadn't"},
      {"hadnt've", "hadn't've"}, {"hadn'tve", "hadn't've"}, {"hasnt", "hasn't"},
      {"havent", "haven't"}, {"hed", "he'd"}, {"hed've", "he'd've"}, {"he'dve", "he'd've"},
      {"hes", "he's"}, {"howd", "how'd"}, {"howll", "how'll"}, {"hows", "how's"},
      {"Id've", "I'd've"}, {"I'dve", "I'd've"}, {"Im", "I'm"}, {"Ive", "I've"},
      {"isnt", "isn't"}, {"itd", "it'd"}, {"itd've", "it'd've"}, {"it'dve", "it'd've"},
      {"itll", "it'll"}, {"let's", "let's"}, {"maam", "ma'am"}, {"mightnt", "mightn't"},
      {"mightnt've", "mightn't've"}, {"mightn'tve", "mightn't've"}, {"mightve", "might've"},
      {"mustnt", "mustn't"}, {"mustve", "must've"}, {"neednt", "needn't"}, {"notve", "not've"},
      {"oclock", "o'clock"}, {"oughtnt", "oughtn't"}, {"ow's'at", "'ow's'at"},
      {"'ows'at", "'ow's'at"}, {"'ow'sat", "'ow's'at"}, {"shant", "shan't"},
      {"shed've", "she'd've"}, {"she'dve", "she'd've"}, {"she's", "she's"},
      {"shouldve", "should've"}, {"shouldnt", "shouldn't"}, {"shouldnt've", "shouldn't've"},
      {"shouldn'tve", "shouldn't've"}, {"somebody'd", "somebodyd"},
      {"somebodyd've", "somebody'd've"}, {"somebody'dve", "somebody'd've"},
      {"somebodyll", "somebody'll"}, {"somebodys", "somebody's"}, {"someoned", "someone'd"},
      {"someoned've", "someone'd've"}, {"someone'dve", "someone'd've"},
      {"someonell", "someone'll"}, {"someones", "someone's"}, {"somethingd", "something'd"},
      {"somethingd've", "something'd've"}, {"something'dve", "something'd've"},
      {"somethingll", "something'll"}, {"thats", "that's"}, {"thered", "there'd"},
      {"thered've", "there'd've"}, {"there'dve", "there'd've"}, {"therere", "there're"},
      {"theres", "there's"}, {"theyd", "they'd"}, {"theyd've", "they'd've"},
      {"they'dve", "they'd've"}, {"theyll", "they'll"}, {"theyre", "they're"},
      {"theyve", "they've"}, {"twas", "'twas"}, {"wasnt", "wasn't"}, {"wed've", "we'd've"},
      {"we'dve", "we'd've"}, {"weve", "we've"}, {"werent", "weren't"}, {"whatll", "what'll"},
      {"whatre", "what're"}, {"whats", "what's"}, {"whatve", "what've"}, {"whens", "when's"},
      {"whered", "where'd"}, {"wheres", "where's"}, {"whereve", "where've"}, {"whod", "who'd"},
      {"whod've", "who'd've"}, {"who'dve", "who'd've"}, {"wholl", "who'll"}, {"whos", "who's"},
      {"whove", "who've"}, {"whyll", "why'll"}, {"whyre", "why're"}, {"whys", "why's"},
      {"wont", "won't"}, {"wouldve", "would've"}, {"wouldnt", "wouldn't"},
      {"wouldnt've", "wouldn't've"}, {"wouldn'tve", "wouldn't've"}, {"yall", "y'all"},
      {"yall'll", "y'all'll"}, {"y'allll", "y'all'll"}, {"yall'd've", "y'all'd've"},
      {"y'alld've", "y'all'd've"}, {"y'all'dve", "y'all'd've"}, {"youd", "you'd"},
      {"youd've", "you'd've"}, {"you'dve", "you'd've"}, {"youll", "you'll"},
      {"youre", "you're"}, {"youve", "you've"}};
  return table;
}

bool is_ascii_digit(char c) { return c >= '0' && c <= '9'; }

std::string normalize(std::string_view s) {
  return vqa_process_digit_article(vqa_process_punctuation(s));
}

// ---------------------------------------------------------------------------------------
// Canonical text of JSON values for the record comparison: two records are equal exactly
// when Python's dict comparison says so (1 == 1.0 == true; key order irrelevant).

void canon_integer(std::string& out, int64_t v) { out += 'n' + std::to_string(v); }
void canon_unsigned(std::string& out, uint64_t v) { out += 'n' + std::to_string(v); }
void canon_float(std::string& out, double v) {
  if (std::floor(v) == v && v >= -9223372036854775808.0 && v < 9223372036854775808.0) {
    canon_integer(out, static_cast<int64_t>(v));
  } else if (std::floor(v) == v && v > 0 && v < 18446744073709551616.0) {
    canon_unsigned(out, static_cast<uint64_t>(v));
  } else {
    out += fmt::format("f{:.17g}", v);
  }
}
void canon_string(std::string& out, std::string_view v) {
  out += 's' + std::to_string(v.size()) + ':';
  out += v;
}

void canon_json(std::string& out, const json& v) {
  switch (v.type()) {
    case json::value_t::null: out += 'z'; break;
    case json::value_t::boolean: canon_integer(out, v.get<bool>() ? 1 : 0); break;
    case json::value_t::number_integer: canon_integer(out, v.get<int64_t>()); break;
    case json::value_t::number_unsigned: canon_unsigned(out, v.get<uint64_t>()); break;
    case json::value_t::number_float: canon_float(out, v.get<double>()); break;
    case json::value_t::string: canon_string(out, v.get_ref<const std::string&>()); break;
    case json::value_t::array:
      out += '[' + std::to_string(v.size()) + ':';
      for (const auto& e : v) canon_json(out, e);
      break;
    case json::value_t::object:  // nlohmann keeps keys sorted
      out += '{' + std::to_string(v.size()) + ':';
      for (const auto& [k, e] : v.items()) {
        canon_string(out, k);
        canon_json(out, e);
      }
      break;
    default: out += 'b'; break;
  }
}

// ---------------------------------------------------------------------------------------
// Reader of the annotation file: walks the text once, interning what it keeps.

bool fits_int64(const json& v) {
  return v.is_number_integer() &&
         (!v.is_number_unsigned() ||
          v.get<uint64_t>() <= static_cast<uint64_t>(std::numeric_limits<int64_t>::max()));
}

class AnnotationReader {
 public:
  AnnotationReader(std::string_view text, VqaAnnotations& out) : c_(text, out.path), out_(out) {
    out_.answer_offsets.push_back(0);
  }

  void read() {
    if (c_.peek() != '{') {
      fail("expected an object with an \"annotations\" list, found " + c_.kind(), {});
    }
    bool found = false;
    c_.object([&](std::string_view key) {
      if (key != "annotations") {
        c_.skip();
        return;
      }
      if (found) fail("the member \"annotations\" appears twice", {});
      found = true;
      if (c_.peek() != '[') fail("\"annotations\" must be a list, found " + c_.kind(), {});
      c_.array([&](size_t) { annotation(); });
    });
    c_.finish();
    if (!found) {
      throw Error("expected an object with an \"annotations\" list, found no \"annotations\"",
                  out_.path, {}, "is this a VQA annotation file?");
    }
  }

 private:
  std::string where() const { return fmt::format("annotations[{}]", out_.question_ids.size()); }
  std::string record_where(size_t record) const {
    return fmt::format("annotations[{}]: \"answers\"[{}]", out_.question_ids.size(), record);
  }
  [[noreturn]] void fail(const std::string& what, const std::string& where) const {
    throw Error(what, out_.path, where);
  }

  uint32_t type_string(const char* name) {
    if (c_.peek() != '"') fail(fmt::format("\"{}\" must be a string, found {}", name, c_.kind()), where());
    return out_.types.intern(c_.string(scratch_));
  }

  void annotation() {
    if (c_.peek() != '{') fail("expected an annotation object, found " + c_.kind(), where());
    bool has_id = false, has_qtype = false, has_atype = false, has_answers = false;
    int64_t question_id = 0;
    uint32_t question_type = 0, answer_type = 0;
    c_.object([&](std::string_view key) {
      if (key == "question_id") {
        json v = c_.value();
        if (!fits_int64(v)) fail("\"question_id\" must be an integer, found " + json_kind(v), where());
        question_id = v.get<int64_t>();
        has_id = true;
      } else if (key == "question_type") {
        question_type = type_string("question_type");
        has_qtype = true;
      } else if (key == "answer_type") {
        answer_type = type_string("answer_type");
        has_atype = true;
      } else if (key == "answers") {
        if (c_.peek() != '[') fail("\"answers\" must be a list of objects, found " + c_.kind(), where());
        // A repeated "answers" key replaces the earlier list (Python keeps the last one).
        out_.answers.resize(out_.answer_offsets.back());
        out_.answer_records.resize(out_.answer_offsets.back());
        c_.array([&](size_t j) { record(j); });
        has_answers = true;
      } else {
        c_.skip();
      }
    });
    const char* missing = !has_id ? "question_id" : !has_qtype ? "question_type"
                        : !has_atype ? "answer_type" : !has_answers ? "answers" : nullptr;
    if (missing) fail(fmt::format("missing \"{}\"", missing), where());
    if (out_.answers.size() == out_.answer_offsets.back()) {
      fail(fmt::format("question_id {} has an empty \"answers\" list", question_id), where());
    }
    auto [it, fresh] = out_.index.emplace(question_id, static_cast<uint32_t>(out_.size()));
    if (!fresh) {
      throw repeated_id(out_.path, where(), "question_id", std::to_string(question_id),
                        fmt::format("annotations[{}]", it->second));
    }
    out_.question_ids.push_back(question_id);
    out_.question_types.push_back(question_type);
    out_.answer_types.push_back(answer_type);
    out_.answer_offsets.push_back(static_cast<uint32_t>(out_.answers.size()));
  }

  // One human answer record: its "answer", and every other member as canonical text.
  void record(size_t j) {
    if (c_.peek() != '{') fail("expected an answer object, found " + c_.kind(), record_where(j));
    bool has_answer = false;
    uint32_t answer = 0;
    members_used_ = 0;
    c_.object([&](std::string_view key) {
      if (key == "answer") {
        if (c_.peek() != '"') fail("\"answer\" must be a string, found " + c_.kind(), record_where(j));
        answer = out_.texts.intern(c_.string(scratch_));
        has_answer = true;
        return;
      }
      if (members_used_ == members_.size()) members_.emplace_back();
      auto& [k, v] = members_[members_used_++];
      k.assign(key);
      v.clear();
      if (c_.peek() == '"') {
        canon_string(v, c_.string(scratch_));
      } else {
        canon_json(v, c_.value());
      }
    });
    if (!has_answer) fail("missing \"answer\"", record_where(j));
    // Members in key order; for a repeated key the last one counts (Python's json).
    std::stable_sort(members_.begin(), members_.begin() + static_cast<std::ptrdiff_t>(members_used_),
                     [](const auto& a, const auto& b) { return a.first < b.first; });
    fingerprint_.clear();
    for (size_t i = 0; i < members_used_; ++i) {
      if (i + 1 < members_used_ && members_[i + 1].first == members_[i].first) continue;
      canon_string(fingerprint_, members_[i].first);
      fingerprint_ += members_[i].second;
    }
    out_.answers.push_back(answer);
    out_.answer_records.push_back(out_.records.intern(fingerprint_));
  }

  JsonCursor c_;
  VqaAnnotations& out_;
  std::string scratch_, fingerprint_;
  std::vector<std::pair<std::string, std::string>> members_;
  size_t members_used_ = 0;
};

int64_t question_id_of(const json& element, const std::string& path, const std::string& where) {
  if (!element.is_object()) {
    throw Error("expected an object with a \"question_id\", found " + json_kind(element), path,
                where);
  }
  auto it = element.find("question_id");
  if (it == element.end()) throw Error("missing \"question_id\"", path, where);
  if (!fits_int64(*it)) {
    throw Error("\"question_id\" must be an integer, found " + json_kind(*it), path, where);
  }
  return it->get<int64_t>();
}

// The compared form of every distinct string, as ids into one pool: `plain` is used when the
// human answers of a question agree, `normal` when they differ.
struct Forms {
  std::vector<uint32_t> plain, normal;
};

template <typename Fn>
Forms forms_of(size_t n, const Fn& at, VqaEvaluator evaluator, bool human, StringPool& keys,
               ThreadPool* pool) {
  std::vector<std::string> plain(n), normal(n);
  for_chunks(pool, n, [&](size_t begin, size_t end) {
    for (size_t i = begin; i < end; ++i) {
      const std::string& raw = at(i);
      if (evaluator == VqaEvaluator::current) {
        plain[i] = vqa_clean_whitespace(raw);
        normal[i] = normalize(plain[i]);
      } else if (human) {
        plain[i] = raw;
        normal[i] = vqa_process_punctuation(raw);
      } else {
        normal[i] = normalize(vqa_clean_whitespace(raw));
        plain[i] = normal[i];
      }
    }
  });
  Forms f;
  f.plain.resize(n);
  f.normal.resize(n);
  for (size_t i = 0; i < n; ++i) {
    f.plain[i] = keys.intern(plain[i]);
    f.normal[i] = keys.intern(normal[i]);
  }
  return f;
}

// The official leave-one-out for one question. keys[j]: compared form of record j;
// records[j]: its other members; predicted: the compared form of the prediction.
double leave_one_out(const uint32_t* keys, const uint32_t* records, size_t n, uint32_t predicted) {
  size_t matching = 0;
  for (size_t i = 0; i < n; ++i) matching += keys[i] == predicted;
  double sum = 0;
  for (size_t j = 0; j < n; ++j) {
    size_t others = matching;
    if (keys[j] == predicted) {
      // Every record equal to record j (itself included) is left out.
      for (size_t i = 0; i < n; ++i) others -= keys[i] == predicted && records[i] == records[j];
    }
    sum += std::min(1.0, static_cast<double>(others) / 3);
  }
  return sum / static_cast<double>(n);
}

double percent(double sum, size_t n) { return py::round_python2(100 * sum / static_cast<double>(n), 2); }

}  // namespace

VqaEvaluator parse_vqa_evaluator(const std::string& name) {
  if (name == "current") return VqaEvaluator::current;
  if (name == "legacy2017") return VqaEvaluator::legacy2017;
  throw UsageError("unknown evaluator \"" + name + "\"", {}, {}, "use current or legacy2017");
}

const char* vqa_evaluator_name(VqaEvaluator evaluator) {
  return evaluator == VqaEvaluator::current ? "current" : "legacy2017";
}

std::string vqa_process_punctuation(std::string_view s) {
  // Which marks are deleted (rather than turned into a space) is decided on the input.
  bool digit_comma_digit = false;
  for (size_t i = 1; i + 1 < s.size(); ++i) {
    if (s[i] == ',' && is_ascii_digit(s[i - 1]) && is_ascii_digit(s[i + 1])) {
      digit_comma_digit = true;
      break;
    }
  }
  std::array<bool, 128> is_mark{}, delete_mark{};
  for (char m : kMarks) is_mark[static_cast<unsigned char>(m)] = true;
  for (size_t i = 0; i < s.size(); ++i) {
    auto c = static_cast<unsigned char>(s[i]);
    if (c >= 128 || !is_mark[c]) continue;
    if (digit_comma_digit || (i + 1 < s.size() && s[i + 1] == ' ') || (i > 0 && s[i - 1] == ' ')) {
      delete_mark[c] = true;
    }
  }
  std::string marked;
  marked.reserve(s.size());
  for (char ch : s) {
    auto c = static_cast<unsigned char>(ch);
    if (c < 128 && is_mark[c]) {
      if (!delete_mark[c]) marked += ' ';
    } else {
      marked += ch;
    }
  }
  // Periods not followed by a digit go (the look-ahead reads the text before deletion).
  std::string out;
  out.reserve(marked.size());
  int deleted = 0;
  for (size_t i = 0; i < marked.size(); ++i) {
    if (marked[i] == '.' && deleted < kMaxPeriodsDeleted &&
        !(i + 1 < marked.size() && is_ascii_digit(marked[i + 1]))) {
      ++deleted;
      continue;
    }
    out += marked[i];
  }
  return out;
}

std::string vqa_process_digit_article(std::string_view s) {
  const std::string low = py::lower(s);
  const auto& numbers = number_words();
  const auto& table = contractions();
  std::string out;
  out.reserve(low.size());
  for (std::string_view word : py::split(low, py::Flavor::python2)) {
    if (auto it = numbers.find(word); it != numbers.end()) word = it->second;
    if (is_article(word)) continue;
    if (auto it = table.find(word); it != table.end()) word = it->second;
    if (!out.empty()) out += ' ';
    out += word;
  }
  return out;
}

std::string vqa_clean_whitespace(std::string_view s) {
  std::string t(s);
  std::replace(t.begin(), t.end(), '\n', ' ');
  std::replace(t.begin(), t.end(), '\t', ' ');
  return std::string(py::strip(t, py::Flavor::python2));
}

std::string vqa_normalized_answer(std::string_view s) { return normalize(vqa_clean_whitespace(s)); }

double vqa_question_accuracy(const std::vector<std::string>& human_answers,
                             std::string_view prediction, VqaEvaluator evaluator) {
  if (human_answers.empty()) throw Error("a question needs at least one human answer");
  StringPool texts, keys;
  std::vector<uint32_t> ids;
  for (const auto& a : human_answers) ids.push_back(texts.intern(a));
  std::vector<std::string> pred{std::string(prediction)};
  Forms h = forms_of(texts.size(), [&](size_t i) -> const std::string& { return texts[i]; },
                     evaluator, true, keys, nullptr);
  Forms p = forms_of(1, [&](size_t) -> const std::string& { return pred[0]; }, evaluator, false,
                     keys, nullptr);
  bool differ = false;
  for (uint32_t id : ids) differ = differ || h.plain[id] != h.plain[ids[0]];
  std::vector<uint32_t> k, records;
  for (size_t j = 0; j < ids.size(); ++j) {
    k.push_back(differ ? h.normal[ids[j]] : h.plain[ids[j]]);
    records.push_back(static_cast<uint32_t>(j));  // distinct records
  }
  return leave_one_out(k.data(), records.data(), k.size(), differ ? p.normal[0] : p.plain[0]);
}

VqaAnnotations parse_vqa_annotations(std::string_view text, const std::string& path) {
  VqaAnnotations out;
  out.path = path;
  AnnotationReader(text, out).read();
  return out;
}

VqaQuestions parse_vqa_questions(std::string_view text, const std::string& path) {
  VqaQuestions out;
  out.path = path;
  std::vector<std::vector<std::string>> choices;
  std::unordered_map<int64_t, size_t> first;  // question_id -> its position
  json top = for_each_list_element(
      path, text, "questions", "an object with a \"questions\" list",
      [&](json& q, size_t i) {
        const std::string where = fmt::format("questions[{}]", i);
        const int64_t id = question_id_of(q, path, where);
        auto [seen, fresh] = first.emplace(id, i);
        if (!fresh) {
          throw repeated_id(path, where, "question_id", std::to_string(id),
                            fmt::format("questions[{}]", seen->second));
        }
        out.question_ids.push_back(id);
        auto it = q.find("multiple_choices");
        std::vector<std::string> c;
        if (it != q.end()) {
          if (!it->is_array()) throw Error("\"multiple_choices\" must be a list", path, where);
          for (const auto& e : *it) {
            if (!e.is_string()) throw Error("\"multiple_choices\" must hold strings", path, where);
            c.push_back(e.get<std::string>());
          }
        }
        choices.push_back(std::move(c));
      });
  if (auto it = top.find("task_type"); it != top.end() && it->is_string()) {
    out.task_type = it->get<std::string>();
  }
  if (auto it = top.find("data_subtype"); it != top.end() && it->is_string()) {
    out.data_subtype = it->get<std::string>();
  }
  if (out.task_type == "Multiple Choice") out.multiple_choices = std::move(choices);
  return out;
}

VqaResults parse_vqa_results(std::string_view text, const std::string& path) {
  VqaResults out;
  out.path = path;
  for_each_list_element(path, text, {}, "a list of {\"question_id\", \"answer\"} objects",
                        [&](json& r, size_t i) {
                          const std::string where = fmt::format("[{}]", i);
                          out.question_ids.push_back(question_id_of(r, path, where));
                          auto it = r.find("answer");
                          if (it == r.end()) throw Error("missing \"answer\"", path, where);
                          if (!it->is_string()) {
                            throw Error("\"answer\" must be a string, found " + json_kind(*it),
                                        path, where);
                          }
                          out.answers.push_back(std::move(it->get_ref<std::string&>()));
                        });
  return out;
}

VqaScores evaluate_vqa(const VqaAnnotations& ann, const VqaQuestions& questions,
                       const VqaResults& results, VqaEvaluator evaluator, ThreadPool* pool) {
  const size_t n = ann.size();
  if (n == 0) throw Error("no annotated questions", ann.path);

  // The questions file must cover the annotations (catches mixed-up splits).
  {
    std::unordered_set<int64_t> asked(questions.question_ids.begin(), questions.question_ids.end());
    std::vector<int64_t> absent;
    for (int64_t id : ann.question_ids) {
      if (!asked.count(id)) absent.push_back(id);
    }
    if (!absent.empty()) {
      throw Error(fmt::format("{} annotated question(s) are not in the questions file (first: {})",
                              absent.size(), first_items(absent)),
                  questions.path, {}, "are the questions and annotations of the same split?");
    }
  }

  // Results by question; a later entry for the same question wins (the official index is a
  // dict filled in file order).
  VqaScores scores;
  std::vector<int64_t> unknown;
  std::vector<int32_t> chosen(n, -1);
  for (size_t r = 0; r < results.question_ids.size(); ++r) {
    auto it = ann.index.find(results.question_ids[r]);
    if (it == ann.index.end()) {
      unknown.push_back(results.question_ids[r]);
      continue;
    }
    if (chosen[it->second] >= 0) ++scores.duplicate_results;
    chosen[it->second] = static_cast<int32_t>(r);
  }
  std::vector<int64_t> missing;
  for (size_t q = 0; q < n; ++q) {
    if (chosen[q] < 0) missing.push_back(ann.question_ids[q]);
  }
  if (!missing.empty() || !unknown.empty()) {
    std::string what = "results do not match the annotated questions:";
    if (!missing.empty()) {
      what += fmt::format(" {} question(s) have no answer (first: {})", missing.size(),
                          first_items(missing));
    }
    if (!unknown.empty()) {
      what += fmt::format("{} {} answer(s) are for questions not in the annotations (first: {})",
                          missing.empty() ? "" : ";", unknown.size(), first_items(unknown));
    }
    throw Error(what, results.path, {}, "score against the annotations of the same split");
  }
  if (!questions.multiple_choices.empty()) {
    std::unordered_map<int64_t, size_t> at;
    for (size_t i = 0; i < questions.question_ids.size(); ++i) at[questions.question_ids[i]] = i;
    for (size_t q = 0; q < n; ++q) {
      const auto& allowed = questions.multiple_choices[at[ann.question_ids[q]]];
      const std::string& answer = results.answers[chosen[q]];
      if (std::find(allowed.begin(), allowed.end(), answer) == allowed.end()) {
        throw Error(fmt::format("answer \"{}\" to question {} is not one of its multiple choices",
                                answer, ann.question_ids[q]),
                    results.path);
      }
    }
  }

  // Compared forms, computed once per distinct string.
  StringPool keys, predicted;
  std::vector<uint32_t> pred_of(n);
  for (size_t q = 0; q < n; ++q) pred_of[q] = predicted.intern(results.answers[chosen[q]]);
  Forms human = forms_of(ann.texts.size(), [&](size_t i) -> const std::string& { return ann.texts[i]; },
                         evaluator, true, keys, pool);
  Forms pred = forms_of(predicted.size(), [&](size_t i) -> const std::string& { return predicted[i]; },
                        evaluator, false, keys, pool);

  scores.accuracies.resize(n);
  std::vector<uint8_t> identical(n, 0);
  for_chunks(pool, n, [&](size_t begin, size_t end) {
    std::vector<uint32_t> k;
    for (size_t q = begin; q < end; ++q) {
      const uint32_t first = ann.answer_offsets[q], last = ann.answer_offsets[q + 1];
      const uint32_t* texts = ann.answers.data() + first;
      const uint32_t* records = ann.answer_records.data() + first;
      const size_t count = last - first;
      // "Do the humans disagree?" is asked of the stripped answers (current) or of the raw
      // strings (legacy2017); `plain` holds exactly those forms.
      bool differ = false;
      for (size_t j = 1; j < count && !differ; ++j) differ = human.plain[texts[j]] != human.plain[texts[0]];
      k.resize(count);
      for (size_t j = 0; j < count; ++j) k[j] = differ ? human.normal[texts[j]] : human.plain[texts[j]];
      const uint32_t p = differ ? pred.normal[pred_of[q]] : pred.plain[pred_of[q]];
      scores.accuracies[q] = leave_one_out(k.data(), records, count, p);
      for (size_t i = 0; i < count && !identical[q]; ++i) {
        for (size_t j = i + 1; j < count; ++j) {
          if (k[i] == k[j] && records[i] == records[j]) {
            identical[q] = 1;
            break;
          }
        }
      }
    }
  });

  // Aggregates in annotation order, summed as Python's sum() does.
  double total = 0;
  std::vector<double> type_sum(ann.types.size(), 0.0), answer_type_sum(ann.types.size(), 0.0);
  std::vector<size_t> type_count(ann.types.size(), 0), answer_type_count(ann.types.size(), 0);
  for (size_t q = 0; q < n; ++q) {
    const double acc = scores.accuracies[q];
    total += acc;
    type_sum[ann.question_types[q]] += acc;
    ++type_count[ann.question_types[q]];
    answer_type_sum[ann.answer_types[q]] += acc;
    ++answer_type_count[ann.answer_types[q]];
    scores.identical_record_questions += identical[q];
  }
  scores.questions = n;
  scores.overall = percent(total, n);
  for (uint32_t t = 0; t < ann.types.size(); ++t) {
    if (type_count[t]) scores.per_question_type[ann.types[t]] = percent(type_sum[t], type_count[t]);
    if (answer_type_count[t]) {
      scores.per_answer_type[ann.types[t]] = percent(answer_type_sum[t], answer_type_count[t]);
    }
  }
  return scores;
}

}  // namespace eve::eval
