#include "eve/io/jsonl.h"

#include <algorithm>

#include "eve/core/error.h"

namespace eve::io {
namespace {

// Deepest nesting of arrays/objects in `text` (outside strings). nlohmann parses any depth
// but serialises recursively, so a hostile line of a million '[' would crash a later dump.
size_t nesting_depth(std::string_view text) {
  size_t depth = 0, deepest = 0;
  bool in_string = false;
  for (size_t i = 0; i < text.size(); ++i) {
    char c = text[i];
    if (in_string) {
      if (c == '\\') ++i;
      else if (c == '"') in_string = false;
    } else if (c == '"') {
      in_string = true;
    } else if (c == '[' || c == '{') {
      deepest = std::max(deepest, ++depth);
    } else if ((c == ']' || c == '}') && depth > 0) {
      --depth;
    }
  }
  return deepest;
}

template <typename J>
J parse_impl(std::string_view text, const std::string& file, const std::string& where) {
  if (!is_valid_utf8(text)) throw Error("invalid UTF-8", file, where);
  if (nesting_depth(text) > kMaxJsonDepth)
    throw Error("JSON nested deeper than " + std::to_string(kMaxJsonDepth) + " levels", file,
                where);
  try {
    return J::parse(text.begin(), text.end());
  } catch (const typename J::parse_error& e) {
    // nlohmann's text is "[json.exception.parse_error.101] parse error at line 1, column 5:
    // syntax error ..."; keep what follows the bracket.
    std::string msg = e.what();
    auto pos = msg.find("] ");
    throw Error("invalid JSON: " + (pos == std::string::npos ? msg : msg.substr(pos + 2)), file,
                where);
  }
}

std::string display(const std::string& path) { return path == "-" ? "<stdin>" : path; }

}  // namespace

json parse_json(std::string_view text, const std::string& file, const std::string& where) {
  return parse_impl<json>(text, file, where);
}

ordered_json parse_ordered_json(std::string_view text, const std::string& file,
                                const std::string& where) {
  return parse_impl<ordered_json>(text, file, where);
}

json read_json(const std::string& path) { return parse_json(read_file(path), display(path)); }

JsonlReader::JsonlReader(const std::string& path, size_t max_line) : lines_(path, max_line) {}

bool JsonlReader::next_line(std::string& line) {
  while (lines_.next(line)) {
    if (line.find_first_not_of(" \t\r") != std::string::npos) return true;
  }
  return false;
}

bool JsonlReader::next(json& record) {
  if (!next_line(buf_)) return false;
  std::string file = display(lines_.path());
  std::string where = std::to_string(lines_.line_number());
  record = parse_json(buf_, file, where);
  if (!record.is_object()) throw Error("expected a JSON object on each line", file, where);
  return true;
}

bool JsonlReader::next(ordered_json& record) {
  if (!next_line(buf_)) return false;
  std::string file = display(lines_.path());
  std::string where = std::to_string(lines_.line_number());
  record = parse_ordered_json(buf_, file, where);
  if (!record.is_object()) throw Error("expected a JSON object on each line", file, where);
  return true;
}

namespace {
template <typename J>
std::string dump_line(const J& record, const std::string& where) {
  try {
    return record.dump() + "\n";
  } catch (const typename J::type_error& e) {
    // nlohmann's text: "[json.exception.type_error.316] invalid UTF-8 byte at index 4: 0xE9".
    std::string detail = e.what();
    const auto pos = detail.find("] ");
    detail = pos == std::string::npos ? std::string() : " (" + detail.substr(pos + 2) + ")";
    throw Error("cannot write a JSON string that is not valid UTF-8" + detail, {}, where);
  }
}
}  // namespace

std::string to_jsonl_line(const json& record, const std::string& where) { return dump_line(record, where); }
std::string to_jsonl_line(const ordered_json& record, const std::string& where) { return dump_line(record, where); }

std::string dump_lenient(const json& value, int indent) {
  return value.dump(indent, ' ', false, json::error_handler_t::replace);
}
std::string dump_lenient(const ordered_json& value, int indent) {
  return value.dump(indent, ' ', false, ordered_json::error_handler_t::replace);
}

}  // namespace eve::io
