// Fast reads of large JSON documents (the VQA annotation, question and result files run to
// 170 MB): a cursor that walks the text in place, handing out strings without copying them
// when they hold no escapes, so readers take what they need and skip the rest; syntax errors
// are reported as "file:line: invalid JSON: ...".
#pragma once

#include <nlohmann/json.hpp>

#include <cstddef>
#include <functional>
#include <string>
#include <string_view>
#include <utility>

namespace eve::io {

using json = nlohmann::json;

class JsonCursor {
 public:
  // `path` names the text in errors; the text must outlive the cursor.
  JsonCursor(std::string_view text, std::string path) : text_(text), path_(std::move(path)) {}

  // The next non-whitespace character, not consumed ('\0' at the end of the text).
  char peek();
  // What the value at the cursor is, for messages: "an object", "a list", "a string",
  // "an integer", "a number", "a boolean", "null". Consumes nothing.
  std::string kind();

  // Parses a string; the view points into the text, or into `scratch` when the string
  // has escapes. Throws unless the cursor is at a string.
  std::string_view string(std::string& scratch);
  // Parses any value into a json DOM (numbers as nlohmann does: int64, uint64 or double).
  json value();
  // Skips any value, checking its syntax.
  void skip();

  // Walks an object: fn(key) for each member, which must consume the member's value (a
  // key with escapes stays valid until fn returns). Throws unless at an object.
  void object(const std::function<void(std::string_view key)>& fn);
  // Walks a list: fn(index) for each element, which must consume it.
  void array(const std::function<void(size_t index)>& fn);

  // Only whitespace may follow the top-level value.
  void finish();

  // Throws eve::Error "file:line: invalid JSON: <what>" at the cursor.
  [[noreturn]] void syntax_error(const std::string& what) const;

 private:
  void expect(char c, const char* after);
  std::string found();
  std::string_view key(std::string& scratch);
  json number();
  void literal(std::string_view word);
  void skip_value(int depth);
  json parse_value(int depth);
  void check_depth(int depth) const;

  std::string_view text_;
  std::string path_;
  size_t pos_ = 0;
};

// Calls fn(element, index) for every element of the JSON list that is the whole document
// (`key` empty) or the member `key` of the top-level object; other members are skipped
// without being built. `what` names the expected shape in errors, e.g.
// "a list of {\"question_id\", \"answer\"} objects". Returns the top-level object's scalar
// members (strings, numbers, booleans, null), an empty object for a top-level list.
json for_each_list_element(const std::string& path, std::string_view text, const std::string& key,
                           const std::string& what,
                           const std::function<void(json& element, size_t index)>& fn);

// A short name of a JSON value's type for messages: "a string", "an object", "null", ...
std::string json_kind(const json& value);

}  // namespace eve::io
