// EVE's text cleaning, applied to every caption and question before tokenization (training
// the tokenizer and encoding use the same rules). The two functions reproduce the Python
// `pre_caption` and `pre_question` of the EVE/VLMo/ALBEF code base character for character,
// including Python's Unicode lower-casing (str.lower(), Unicode 14.0, with the final-sigma
// rule) and Python's notion of whitespace (str.isspace()).
//
// clean_caption(text, max_words), in this order:
//   1. lower-case the whole text (Python str.lower(): full Unicode mapping, so "İ" becomes
//      "i" + U+0307 and a word-final capital sigma becomes "ς");
//   2. delete every one of  , . ' ! ? " ( ) * # : ; ~ `  (ASCII only, backtick included);
//   3. replace each "-" and each "/" by one space;
//   4. replace "<person>" by "person";
//   5. replace every run of two or more whitespace characters by one space (a single tab or
//      newline on its own stays as it is, like Python's re.sub(r"\s{2,}", " ", ...));
//   6. remove trailing "\n" characters, then leading and trailing spaces (" " only);
//   7. split on single spaces and keep the first max_words pieces joined by single spaces
//      (max_words <= 0 keeps everything).
//
// clean_question(text, max_words), in this order:
//   1. lower-case as above;
//   2. delete every one of  , . ' ! ? " ( ) * # : ; ~  (no backtick);
//   3. replace each "-" and each "/" by one space;
//   4. remove trailing spaces (" " only; leading spaces, tabs and newlines stay, and runs of
//      spaces are NOT collapsed);
//   5. split on single spaces (empty pieces between two spaces count as words) and keep the
//      first max_words pieces joined by single spaces (max_words <= 0 keeps everything).
//
// Both throw EmptyText when nothing is left, and eve::Error for invalid UTF-8; callers add
// the file and line. CleanMode::none returns the text unchanged (still rejecting empty
// text and invalid UTF-8).
#pragma once

#include <string>
#include <string_view>

#include "eve/core/error.h"

namespace eve::text {

enum class CleanMode { caption, question, none };

// EVE's defaults: captions 30 words (retrieval; NLVR2 uses 40), questions 50 words (the
// test-time limit; training uses 30).
constexpr int kCaptionMaxWords = 30;
constexpr int kQuestionMaxWords = 50;

// "caption", "question" or "none"; throws eve::UsageError naming the accepted values.
CleanMode parse_clean_mode(std::string_view name);
const char* clean_mode_name(CleanMode mode);
// The default word limit of a mode (0 for none).
int default_max_words(CleanMode mode);

// The text was empty after cleaning.
class EmptyText : public Error {
 public:
  EmptyText() : Error("text is empty after cleaning") {}
};

std::string clean_caption(std::string_view text, int max_words = kCaptionMaxWords);
std::string clean_question(std::string_view text, int max_words = kQuestionMaxWords);
// Dispatches on mode; max_words < 0 means the mode's default.
std::string clean_text(std::string_view text, CleanMode mode, int max_words = -1);

// Python's str.lower() on UTF-8 text (input must be valid UTF-8).
std::string unicode_lower(std::string_view text);

}  // namespace eve::text
