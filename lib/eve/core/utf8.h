// Encoding one Unicode code point as UTF-8: the JSON reader's \u escapes, Python's lower()
// and the caption cleaner all produce text code point by code point, and share this one
// encoder.
#pragma once

#include <string>

namespace eve {

// Appends the UTF-8 bytes of cp (1 to 4 of them). The caller passes a code point below
// 0x110000; surrogates are encoded as they are, which only well-formed input avoids.
inline void append_utf8(std::string& out, char32_t cp) {
  if (cp < 0x80) {
    out += static_cast<char>(cp);
  } else if (cp < 0x800) {
    out += static_cast<char>(0xC0 | (cp >> 6));
    out += static_cast<char>(0x80 | (cp & 0x3F));
  } else if (cp < 0x10000) {
    out += static_cast<char>(0xE0 | (cp >> 12));
    out += static_cast<char>(0x80 | ((cp >> 6) & 0x3F));
    out += static_cast<char>(0x80 | (cp & 0x3F));
  } else {
    out += static_cast<char>(0xF0 | (cp >> 18));
    out += static_cast<char>(0x80 | ((cp >> 12) & 0x3F));
    out += static_cast<char>(0x80 | ((cp >> 6) & 0x3F));
    out += static_cast<char>(0x80 | (cp & 0x3F));
  }
}

}  // namespace eve
