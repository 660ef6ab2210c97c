// The few Python string and number semantics the official evaluators rely on, reproduced
// exactly on UTF-8 text: which characters are whitespace for strip()/split(), lower(), and
// Python 2's round(x, n) (round half away from zero on the exact binary value).
#pragma once

#include <string>
#include <string_view>
#include <vector>

namespace eve::eval::py {

// Whose whitespace: Python 2's unicode.isspace() includes U+180E (MONGOLIAN VOWEL
// SEPARATOR, a space separator until Unicode 6.3); Python 3's str.isspace() does not.
enum class Flavor { python2, python3 };

bool is_space(char32_t cp, Flavor flavor);

// str.strip() with no arguments. Input must be valid UTF-8.
std::string_view strip(std::string_view s, Flavor flavor);

// str.split() with no arguments: runs of whitespace separate words; no empty words.
std::vector<std::string_view> split(std::string_view s, Flavor flavor);

// unicode.lower() of Python 2: every code point through its simple lower-case mapping
// (Unicode 14 data; U+0130 becomes "i"). ASCII-only input takes a fast path.
std::string lower(std::string_view s);
char32_t lower(char32_t cp);

// Python 2.7's round(x, ndigits) for 0 <= ndigits <= 6: the exact binary value of x is
// rounded to ndigits decimals with ties away from zero, then converted back to the nearest
// double (round(12.625, 2) == 12.63, where Python 3 and printf give 12.62). Exact for
// |x| < 2^53 / 10^ndigits; larger values and non-finite values are returned unchanged.
double round_python2(double x, int ndigits);

}  // namespace eve::eval::py
