#include "eve/eval/nlvr2_eval.h"

#include <fmt/format.h>

#include <unordered_set>

#include "eve/core/error.h"
#include "eve/eval/first_items.h"
#include "eve/eval/python_text.h"
#include "eve/io/file.h"
#include "eve/io/jsonl.h"

namespace eve::eval {
namespace {

// Calls fn(line, line_number) for each line; `universal` also ends lines at a lone "\r"
// (Python's text mode), otherwise only "\n" ends a line and a trailing "\r" is dropped.
template <typename Fn>
void for_each_line(std::string_view text, bool universal, const Fn& fn) {
  uint64_t number = 0;
  size_t begin = 0;
  while (begin < text.size()) {
    size_t end = universal ? text.find_first_of("\r\n", begin) : text.find('\n', begin);
    if (end == std::string_view::npos) end = text.size();
    std::string_view line = text.substr(begin, end - begin);
    size_t next = end + 1;
    if (end < text.size() && text[end] == '\r' && end + 1 < text.size() && text[end + 1] == '\n') {
      next = end + 2;
    }
    if (!universal && !line.empty() && line.back() == '\r') line.remove_suffix(1);
    fn(line, ++number);
    begin = next;
  }
}

}  // namespace

std::string nlvr2_consistency_key(const std::string& identifier) {
  size_t first = identifier.find('-');
  size_t second = first == std::string::npos ? first : identifier.find('-', first + 1);
  if (second == std::string::npos) {
    throw Error("identifier \"" + identifier + "\" has fewer than three dash-separated fields",
                {}, {}, "NLVR2 identifiers look like dev-850-0-0");
  }
  size_t third_end = identifier.find('-', second + 1);
  if (third_end == std::string::npos) third_end = identifier.size();
  return identifier.substr(0, second + 1) + identifier.substr(third_end);
}

Nlvr2Labels parse_nlvr2_labels(std::string_view text, const std::string& path) {
  Nlvr2Labels out;
  out.path = path;
  for_each_line(text, false, [&](std::string_view line, uint64_t number) {
    if (line.find_first_not_of(" \t\r") == std::string_view::npos) return;
    const std::string where = std::to_string(number);
    io::json record = io::parse_json(line, path, where);
    if (!record.is_object()) throw Error("expected a JSON object on each line", path, where);
    auto id = record.find("identifier");
    if (id == record.end() || !id->is_string()) {
      throw Error("expected a string \"identifier\"", path, where);
    }
    auto label = record.find("label");
    std::string value;
    if (label != record.end() && label->is_string()) {
      value = label->get<std::string>();
    } else if (label != record.end() && label->is_boolean()) {
      value = label->get<bool>() ? "True" : "False";
    } else {
      throw Error("expected a \"label\" (\"True\" or \"False\")", path, where);
    }
    try {
      nlvr2_consistency_key(id->get<std::string>());
    } catch (const Error& e) {
      throw Error(e.message(), path, where, e.hint());
    }
    out.identifiers.push_back(id->get<std::string>());
    out.labels.push_back(std::move(value));
    out.lines.push_back(number);
  });
  if (out.identifiers.empty()) throw Error("no labelled examples", path);
  return out;
}

Nlvr2Predictions parse_nlvr2_predictions(std::string_view text, const std::string& path) {
  Nlvr2Predictions out;
  out.path = path;
  bool first = true;
  for_each_line(text, true, [&](std::string_view raw, uint64_t number) {
    const std::string where = std::to_string(number);
    if (!io::is_valid_utf8(raw)) throw Error("invalid UTF-8", path, where);
    std::string_view line = py::strip(raw, py::Flavor::python3);
    if (line.empty()) return;
    size_t comma = line.find(',');
    if (comma == std::string_view::npos) {
      throw Error("expected \"identifier,prediction\", found no comma", path, where);
    }
    std::string identifier(line.substr(0, comma));
    std::string_view rest = line.substr(comma + 1);
    std::string prediction(rest.substr(0, rest.find(',')));
    const bool is_header = first && identifier == "identifier";
    first = false;
    if (is_header) {
      out.header = true;
      return;
    }
    ++out.lines;
    auto [it, fresh] = out.by_identifier.insert_or_assign(std::move(identifier), std::move(prediction));
    if (!fresh) ++out.duplicates;
  });
  return out;
}

Nlvr2Scores evaluate_nlvr2(const Nlvr2Labels& labels, const Nlvr2Predictions& predictions) {
  std::vector<std::string> missing;
  std::unordered_set<std::string> seen_missing;
  for (const auto& id : labels.identifiers) {
    if (!predictions.by_identifier.count(id) && seen_missing.insert(id).second) missing.push_back(id);
  }
  if (!missing.empty()) {
    throw Error(fmt::format("{} labelled example(s) have no prediction (first: {})", missing.size(),
                            first_items(missing)),
                predictions.path, {}, "predict every identifier of " + labels.path);
  }
  Nlvr2Scores s;
  s.examples = labels.identifiers.size();
  // Groups in order of first appearance; a group stays consistent while all its examples
  // are correct.
  std::unordered_map<std::string, bool> group_ok;
  for (size_t i = 0; i < s.examples; ++i) {
    const std::string& prediction = predictions.by_identifier.at(labels.identifiers[i]);
    const bool correct = py::lower(prediction) == py::lower(labels.labels[i]);
    s.correct += correct;
    auto [it, fresh] = group_ok.emplace(nlvr2_consistency_key(labels.identifiers[i]), true);
    if (!correct) it->second = false;
  }
  s.groups = group_ok.size();
  for (const auto& [key, ok] : group_ok) s.consistent_groups += ok;
  std::unordered_set<std::string> labelled(labels.identifiers.begin(), labels.identifiers.end());
  for (const auto& [id, p] : predictions.by_identifier) s.unknown_predictions += !labelled.count(id);
  s.accuracy = static_cast<double>(s.correct) / static_cast<double>(s.examples);
  s.consistency = static_cast<double>(s.consistent_groups) / static_cast<double>(s.groups);
  return s;
}

}  // namespace eve::eval
