#include "eve/eval/json_stream.h"

#include <algorithm>

#include "eve/core/error.h"

namespace eve::eval {

void throw_json_syntax_error(const std::string& path, std::string_view text, size_t position,
                             const std::string& message) {
  // nlohmann's text: "[json.exception.parse_error.101] parse error at line 3, column 7:
  // syntax error while parsing value - ..."; keep what follows the location.
  std::string msg = message;
  if (auto p = msg.find("] "); p != std::string::npos) msg = msg.substr(p + 2);
  if (msg.rfind("parse error", 0) == 0) {
    if (auto p = msg.find(": "); p != std::string::npos) msg = msg.substr(p + 2);
  }
  size_t end = std::min(position > 0 ? position - 1 : 0, text.size());
  size_t line = 1 + static_cast<size_t>(std::count(text.begin(), text.begin() + end, '\n'));
  throw Error("invalid JSON: " + msg, path, std::to_string(line));
}

json* JsonValueBuilder::add(json value) {
  if (stack_.empty()) {
    root_ = std::move(value);
    return &root_;
  }
  json& top = *stack_.back();
  if (top.is_object()) {
    json& slot = top[key_];
    slot = std::move(value);
    return &slot;
  }
  top.push_back(std::move(value));
  return &top.back();
}

bool JsonValueBuilder::scalar(json value) {
  add(std::move(value));
  return stack_.empty();
}

void JsonValueBuilder::start_object() { stack_.push_back(add(json::object())); }

void JsonValueBuilder::start_array() { stack_.push_back(add(json::array())); }

bool JsonValueBuilder::end_container() {
  stack_.pop_back();
  return stack_.empty();
}

std::string json_kind(const json& value) {
  switch (value.type()) {
    case json::value_t::null: return "null";
    case json::value_t::object: return "an object";
    case json::value_t::array: return "a list";
    case json::value_t::string: return "a string";
    case json::value_t::boolean: return "a boolean";
    case json::value_t::number_integer:
    case json::value_t::number_unsigned: return "an integer";
    case json::value_t::number_float: return "a number";
    default: return "a binary value";
  }
}

namespace {

// SAX handler: finds the list, builds its elements one at a time, skips everything else.
class ListStreamer : public JsonEventHandler {
 public:
  ListStreamer(const std::string& path, std::string_view text, const std::string& key,
               const std::string& what, const std::function<void(json&, size_t)>& fn)
      : JsonEventHandler(path, text), key_(key), what_(what), fn_(fn) {}

  bool key(string_t& k) override {
    if (state_ == State::element) {
      builder_.key(std::move(k));
    } else if (state_ == State::root_object) {
      if (k == key_) {
        if (found_) throw Error("the member \"" + key_ + "\" appears twice", path_);
        state_ = State::target;
      } else {
        last_key_ = std::move(k);
        state_ = State::skip;
        skip_depth_ = 0;
      }
    }
    return true;
  }

  json finish() {
    if (!found_) wrong_shape(key_.empty() ? "nothing" : "no \"" + key_ + "\" member");
    return std::move(scalars_);
  }

 private:
  enum class State { root, root_object, target, skip, list, element, done };

  bool on_start(bool array) override {
    switch (state_) {
      case State::root:
        if (key_.empty() != array) wrong_shape(array ? "a list" : "an object");
        state_ = array ? State::list : State::root_object;
        found_ = found_ || array;
        return true;
      case State::target:
        if (!array) wrong_shape("\"" + key_ + "\": an object");
        // A repeated key replaces the earlier list (Python keeps the last one).
        state_ = State::list;
        found_ = true;
        count_ = 0;
        return true;
      case State::skip:
        ++skip_depth_;
        return true;
      case State::list:
        state_ = State::element;
        [[fallthrough]];
      case State::element:
        if (array) {
          builder_.start_array();
        } else {
          builder_.start_object();
        }
        return true;
      default:
        return true;
    }
  }

  bool on_end() override {
    switch (state_) {
      case State::skip:
        if (--skip_depth_ == 0) state_ = State::root_object;
        return true;
      case State::element:
        if (builder_.end_container()) deliver();
        return true;
      case State::list:
        state_ = key_.empty() ? State::done : State::root_object;
        return true;
      default:
        state_ = State::done;  // the root object closes
        return true;
    }
  }

  bool on_scalar(json v) override {
    switch (state_) {
      case State::root:
        wrong_shape(json_kind(v));
      case State::target:
        wrong_shape("\"" + key_ + "\": " + json_kind(v));
      case State::skip:
        if (skip_depth_ == 0) {
          scalars_[last_key_] = std::move(v);
          state_ = State::root_object;
        }
        return true;
      case State::list:
        fn_(v, count_++);
        return true;
      case State::element:
        if (builder_.scalar(std::move(v))) deliver();
        return true;
      default:
        return true;
    }
  }

  void deliver() {
    json v = builder_.take();
    state_ = State::list;
    fn_(v, count_++);
  }

  [[noreturn]] void wrong_shape(const std::string& found) const {
    throw Error("expected " + what_ + ", found " + found, path_);
  }

  const std::string& key_;
  const std::string& what_;
  const std::function<void(json&, size_t)>& fn_;
  State state_ = State::root;
  JsonValueBuilder builder_;
  size_t skip_depth_ = 0;
  size_t count_ = 0;
  bool found_ = false;
  std::string last_key_;
  json scalars_ = json::object();
};

}  // namespace

json for_each_list_element(const std::string& path, std::string_view text, const std::string& key,
                           const std::string& what,
                           const std::function<void(json& element, size_t index)>& fn) {
  ListStreamer handler(path, text, key, what, fn);
  json::sax_parse(text.begin(), text.end(), &handler);
  return handler.finish();
}

}  // namespace eve::eval
