#include "eve/io/json_stream.h"

#include <algorithm>
#include <charconv>
#include <cstdint>

#include "eve/core/error.h"
#include "eve/core/utf8.h"
#include "eve/io/file.h"

namespace eve::io {
namespace {

constexpr int kMaxDepth = 512;

bool is_ws(char c) { return c == ' ' || c == '\n' || c == '\r' || c == '\t'; }
bool is_digit(char c) { return c >= '0' && c <= '9'; }

int hex_value(char c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  return -1;
}

}  // namespace

void JsonCursor::syntax_error(const std::string& what) const {
  const size_t at = std::min(pos_, text_.size());
  const auto line = 1 + std::count(text_.begin(), text_.begin() + static_cast<std::ptrdiff_t>(at), '\n');
  throw Error("invalid JSON: " + what, path_, std::to_string(line));
}

char JsonCursor::peek() {
  while (pos_ < text_.size() && is_ws(text_[pos_])) ++pos_;
  return pos_ < text_.size() ? text_[pos_] : '\0';
}

std::string JsonCursor::kind() {
  switch (peek()) {
    case '{': return "an object";
    case '[': return "a list";
    case '"': return "a string";
    case 't': case 'f': return "a boolean";
    case 'n': return "null";
    case '\0': syntax_error("unexpected end of input");
    default: break;
  }
  const char c = text_[pos_];
  if (c != '-' && !is_digit(c)) syntax_error(std::string("unexpected character '") + c + "'");
  for (size_t i = pos_ + 1; i < text_.size(); ++i) {
    const char d = text_[i];
    if (d == '.' || d == 'e' || d == 'E') return "a number";
    if (!is_digit(d)) break;
  }
  return "an integer";
}

std::string JsonCursor::found() {
  return peek() == '\0' ? "the end" : std::string("'") + text_[pos_] + "'";
}

void JsonCursor::expect(char c, const char* after) {
  if (peek() != c) syntax_error(std::string("expected '") + c + "' " + after + ", found " + found());
  ++pos_;
}

std::string_view JsonCursor::string(std::string& scratch) {
  if (peek() != '"') syntax_error("expected a string, found " + found());
  const size_t begin = ++pos_;
  bool high = false;
  // Fast path: no escapes, the string is a view into the text.
  while (pos_ < text_.size()) {
    const auto c = static_cast<unsigned char>(text_[pos_]);
    if (c == '"' || c == '\\' || c < 0x20) break;
    high |= c >= 0x80;
    ++pos_;
  }
  if (pos_ >= text_.size()) syntax_error("unterminated string");
  if (text_[pos_] == '"') {
    std::string_view s = text_.substr(begin, pos_ - begin);
    if (high && !is_valid_utf8(s)) syntax_error("invalid UTF-8 in a string");
    ++pos_;
    return s;
  }
  scratch.assign(text_.substr(begin, pos_ - begin));
  while (true) {
    if (pos_ >= text_.size()) syntax_error("unterminated string");
    const auto c = static_cast<unsigned char>(text_[pos_]);
    if (c == '"') break;
    if (c < 0x20) syntax_error("control character in a string (escape it)");
    if (c != '\\') {
      high |= c >= 0x80;
      scratch += static_cast<char>(c);
      ++pos_;
      continue;
    }
    if (++pos_ >= text_.size()) syntax_error("unterminated string");
    const char e = text_[pos_++];
    switch (e) {
      case '"': scratch += '"'; break;
      case '\\': scratch += '\\'; break;
      case '/': scratch += '/'; break;
      case 'b': scratch += '\b'; break;
      case 'f': scratch += '\f'; break;
      case 'n': scratch += '\n'; break;
      case 'r': scratch += '\r'; break;
      case 't': scratch += '\t'; break;
      case 'u': {
        auto hex4 = [&]() -> uint32_t {
          if (pos_ + 4 > text_.size()) syntax_error("truncated \\u escape");
          uint32_t v = 0;
          for (int k = 0; k < 4; ++k) {
            const int h = hex_value(text_[pos_ + k]);
            if (h < 0) syntax_error("invalid \\u escape");
            v = v * 16 + static_cast<uint32_t>(h);
          }
          pos_ += 4;
          return v;
        };
        uint32_t cp = hex4();
        if (cp >= 0xD800 && cp < 0xDC00) {
          if (pos_ + 2 > text_.size() || text_[pos_] != '\\' || text_[pos_ + 1] != 'u') {
            syntax_error("unpaired surrogate in a \\u escape");
          }
          pos_ += 2;
          const uint32_t low = hex4();
          if (low < 0xDC00 || low >= 0xE000) syntax_error("unpaired surrogate in a \\u escape");
          cp = 0x10000 + ((cp - 0xD800) << 10) + (low - 0xDC00);
        } else if (cp >= 0xDC00 && cp < 0xE000) {
          syntax_error("unpaired surrogate in a \\u escape");
        }
        append_utf8(scratch, cp);
        break;
      }
      default:
        syntax_error(std::string("invalid escape '\\") + e + "'");
    }
  }
  ++pos_;
  if (high && !is_valid_utf8(scratch)) syntax_error("invalid UTF-8 in a string");
  return scratch;
}

std::string_view JsonCursor::key(std::string& scratch) {
  if (peek() != '"') syntax_error("expected an object key (a string), found " + found());
  return string(scratch);
}

json JsonCursor::number() {
  const size_t begin = pos_;
  if (text_[pos_] != '-' && !is_digit(text_[pos_])) {
    syntax_error(std::string("unexpected character '") + text_[pos_] + "'");
  }
  if (text_[pos_] == '-') ++pos_;
  if (pos_ >= text_.size() || !is_digit(text_[pos_])) syntax_error("invalid number");
  if (text_[pos_] == '0') {
    ++pos_;
  } else {
    while (pos_ < text_.size() && is_digit(text_[pos_])) ++pos_;
  }
  bool integral = true;
  if (pos_ < text_.size() && text_[pos_] == '.') {
    integral = false;
    ++pos_;
    if (pos_ >= text_.size() || !is_digit(text_[pos_])) syntax_error("invalid number");
    while (pos_ < text_.size() && is_digit(text_[pos_])) ++pos_;
  }
  if (pos_ < text_.size() && (text_[pos_] == 'e' || text_[pos_] == 'E')) {
    integral = false;
    ++pos_;
    if (pos_ < text_.size() && (text_[pos_] == '+' || text_[pos_] == '-')) ++pos_;
    if (pos_ >= text_.size() || !is_digit(text_[pos_])) syntax_error("invalid number");
    while (pos_ < text_.size() && is_digit(text_[pos_])) ++pos_;
  }
  const char* first = text_.data() + begin;
  const char* last = text_.data() + pos_;
  if (integral) {
    int64_t i = 0;
    if (std::from_chars(first, last, i).ec == std::errc()) return i;
    uint64_t u = 0;
    if (*first != '-' && std::from_chars(first, last, u).ec == std::errc()) return u;
  }
  double d = 0;
  auto r = std::from_chars(first, last, d);
  if (r.ec == std::errc::result_out_of_range) syntax_error("number out of range");
  return d;
}

void JsonCursor::literal(std::string_view word) {
  if (text_.substr(pos_, word.size()) != word) syntax_error("invalid literal");
  pos_ += word.size();
}

void JsonCursor::check_depth(int depth) const {
  if (depth > kMaxDepth) syntax_error("nested more than 512 levels deep");
}

void JsonCursor::skip_value(int depth) {
  check_depth(depth);
  std::string scratch;
  switch (peek()) {
    case '{':
      ++pos_;
      if (peek() == '}') {
        ++pos_;
        return;
      }
      do {
        key(scratch);
        expect(':', "after an object key");
        skip_value(depth + 1);
      } while (peek() == ',' && ++pos_);
      expect('}', "after an object member");
      return;
    case '[':
      ++pos_;
      if (peek() == ']') {
        ++pos_;
        return;
      }
      do {
        skip_value(depth + 1);
      } while (peek() == ',' && ++pos_);
      expect(']', "after a list element");
      return;
    case '"': string(scratch); return;
    case 't': literal("true"); return;
    case 'f': literal("false"); return;
    case 'n': literal("null"); return;
    case '\0': syntax_error("unexpected end of input");
    default: number(); return;
  }
}

json JsonCursor::parse_value(int depth) {
  check_depth(depth);
  std::string scratch;
  switch (peek()) {
    case '{': {
      json obj = json::object();
      ++pos_;
      if (peek() == '}') {
        ++pos_;
        return obj;
      }
      do {
        std::string k(key(scratch));
        expect(':', "after an object key");
        obj[k] = parse_value(depth + 1);  // a repeated key keeps the last value
      } while (peek() == ',' && ++pos_);
      expect('}', "after an object member");
      return obj;
    }
    case '[': {
      json arr = json::array();
      ++pos_;
      if (peek() == ']') {
        ++pos_;
        return arr;
      }
      do {
        arr.push_back(parse_value(depth + 1));
      } while (peek() == ',' && ++pos_);
      expect(']', "after a list element");
      return arr;
    }
    case '"': return std::string(string(scratch));
    case 't': literal("true"); return true;
    case 'f': literal("false"); return false;
    case 'n': literal("null"); return nullptr;
    case '\0': syntax_error("unexpected end of input");
    default: return number();
  }
}

json JsonCursor::value() { return parse_value(0); }
void JsonCursor::skip() { skip_value(0); }

void JsonCursor::object(const std::function<void(std::string_view key)>& fn) {
  expect('{', "to open an object");
  if (peek() == '}') {
    ++pos_;
    return;
  }
  std::string scratch;
  do {
    std::string_view k = key(scratch);
    expect(':', "after an object key");
    fn(k);
  } while (peek() == ',' && ++pos_);
  expect('}', "after an object member");
}

void JsonCursor::array(const std::function<void(size_t index)>& fn) {
  expect('[', "to open a list");
  if (peek() == ']') {
    ++pos_;
    return;
  }
  size_t i = 0;
  do {
    fn(i++);
  } while (peek() == ',' && ++pos_);
  expect(']', "after a list element");
}

void JsonCursor::finish() {
  if (peek() != '\0') syntax_error("unexpected text after the end of the document");
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

json for_each_list_element(const std::string& path, std::string_view text, const std::string& key,
                           const std::string& what,
                           const std::function<void(json& element, size_t index)>& fn) {
  JsonCursor c(text, path);
  json scalars = json::object();
  auto walk = [&] {
    c.array([&](size_t i) {
      json element = c.value();
      fn(element, i);
    });
  };
  if (key.empty()) {
    if (c.peek() != '[') throw Error("expected " + what + ", found " + c.kind(), path);
    walk();
  } else {
    if (c.peek() != '{') throw Error("expected " + what + ", found " + c.kind(), path);
    bool found = false;
    c.object([&](std::string_view k) {
      if (k == key) {
        if (found) throw Error("the member \"" + key + "\" appears twice", path);
        found = true;
        if (c.peek() != '[') throw Error("expected " + what + ", found \"" + key + "\": " + c.kind(), path);
        walk();
      } else if (c.peek() == '{' || c.peek() == '[') {
        c.skip();
      } else {
        scalars[std::string(k)] = c.value();
      }
    });
    if (!found) throw Error("expected " + what + ", found no \"" + key + "\" member", path);
  }
  c.finish();
  return scalars;
}

}  // namespace eve::io
