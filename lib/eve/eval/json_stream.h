// Streaming reads of large JSON documents (the VQA annotation, question and result files run
// to 170 MB): SAX events instead of one DOM for the whole file, syntax errors reported with
// file:line, and the elements of one list handed over one at a time.
#pragma once

#include <nlohmann/json.hpp>

#include <cstddef>
#include <functional>
#include <string>
#include <string_view>
#include <vector>

namespace eve::eval {

using json = nlohmann::json;

// Throws eve::Error "file:line: invalid JSON: <message>" for a syntax error at byte offset
// `position` of `text` (nlohmann's 1-based count of characters read).
[[noreturn]] void throw_json_syntax_error(const std::string& path, std::string_view text,
                                          size_t position, const std::string& message);

// Builds one JSON value from SAX events. Python semantics for duplicate object keys: the
// last one wins.
class JsonValueBuilder {
 public:
  // Each returns true when the event completed the value being built.
  bool scalar(json value);
  void start_object();
  void start_array();
  void key(std::string key) { key_ = std::move(key); }
  bool end_container();
  bool building() const { return !stack_.empty(); }
  // The completed value (moved out); the builder is ready for the next one.
  json take() { return std::move(root_); }

 private:
  json* add(json value);
  json root_;
  std::vector<json*> stack_;
  std::string key_;
};

// A SAX handler that sees fewer kinds of events: every scalar as one json value, containers
// opening and closing, keys; syntax errors throw via throw_json_syntax_error.
class JsonEventHandler : public nlohmann::json_sax<json> {
 public:
  JsonEventHandler(const std::string& path, std::string_view text) : path_(path), text_(text) {}

  virtual bool on_scalar(json value) = 0;
  virtual bool on_start(bool array) = 0;
  virtual bool on_end() = 0;

  bool null() override { return on_scalar(nullptr); }
  bool boolean(bool v) override { return on_scalar(v); }
  bool number_integer(number_integer_t v) override { return on_scalar(v); }
  bool number_unsigned(number_unsigned_t v) override { return on_scalar(v); }
  bool number_float(number_float_t v, const string_t&) override { return on_scalar(v); }
  bool string(string_t& v) override { return on_scalar(std::move(v)); }
  bool binary(binary_t&) override { return true; }
  bool start_object(std::size_t) override { return on_start(false); }
  bool start_array(std::size_t) override { return on_start(true); }
  bool end_object() override { return on_end(); }
  bool end_array() override { return on_end(); }
  bool parse_error(std::size_t position, const std::string&,
                   const nlohmann::detail::exception& e) override {
    throw_json_syntax_error(path_, text_, position, e.what());
  }

 protected:
  const std::string& path_;
  std::string_view text_;
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

}  // namespace eve::eval
