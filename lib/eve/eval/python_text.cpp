#include "eve/eval/python_text.h"

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <iterator>

#include "eve/core/utf8.h"

namespace eve::eval::py {
namespace {

struct LowerRun {
  uint32_t first, count, stride;
  int32_t delta;
};

constexpr LowerRun kLowerRuns[] = {
#include "eve/eval/lowercase_table.inc"
};

// Decodes one code point at s[i] and advances i. Malformed bytes decode as themselves
// (0x80..0xFF) so that nothing is lost; callers get validated UTF-8 in practice.
char32_t decode(std::string_view s, size_t& i) {
  auto b = static_cast<unsigned char>(s[i]);
  size_t len = b < 0x80 ? 1 : (b >> 5) == 0x6 ? 2 : (b >> 4) == 0xE ? 3 : (b >> 3) == 0x1E ? 4 : 0;
  if (len == 0 || i + len > s.size()) {
    ++i;
    return b;
  }
  if (len == 1) {
    ++i;
    return b;
  }
  char32_t cp = b & (0x7F >> len);
  for (size_t k = 1; k < len; ++k) {
    auto c = static_cast<unsigned char>(s[i + k]);
    if ((c & 0xC0) != 0x80) {
      ++i;
      return b;
    }
    cp = (cp << 6) | (c & 0x3F);
  }
  i += len;
  return cp;
}

bool is_ascii(std::string_view s) {
  return std::all_of(s.begin(), s.end(), [](char c) { return static_cast<unsigned char>(c) < 0x80; });
}

}  // namespace

bool is_space(char32_t cp, Flavor flavor) {
  if (cp < 0x80) return (cp >= 0x09 && cp <= 0x0D) || (cp >= 0x1C && cp <= 0x20);
  switch (cp) {
    case 0x85: case 0xA0: case 0x1680: case 0x2028: case 0x2029: case 0x202F: case 0x205F:
    case 0x3000:
      return true;
    case 0x180E:
      return flavor == Flavor::python2;
    default:
      return cp >= 0x2000 && cp <= 0x200A;
  }
}

std::string_view strip(std::string_view s, Flavor flavor) {
  size_t begin = 0;
  while (begin < s.size()) {
    size_t next = begin;
    if (!is_space(decode(s, next), flavor)) break;
    begin = next;
  }
  // Scan forward remembering where the last non-space code point ends: UTF-8 cannot be
  // decoded backwards safely when it might be malformed.
  size_t end = begin;
  for (size_t i = begin; i < s.size();) {
    char32_t cp = decode(s, i);
    if (!is_space(cp, flavor)) end = i;
  }
  return s.substr(begin, end - begin);
}

std::vector<std::string_view> split(std::string_view s, Flavor flavor) {
  std::vector<std::string_view> words;
  size_t word_begin = std::string_view::npos;
  for (size_t i = 0; i < s.size();) {
    size_t at = i;
    char32_t cp = decode(s, i);
    if (is_space(cp, flavor)) {
      if (word_begin != std::string_view::npos) words.push_back(s.substr(word_begin, at - word_begin));
      word_begin = std::string_view::npos;
    } else if (word_begin == std::string_view::npos) {
      word_begin = at;
    }
  }
  if (word_begin != std::string_view::npos) words.push_back(s.substr(word_begin));
  return words;
}

char32_t lower(char32_t cp) {
  if (cp < 0x80) return (cp >= 'A' && cp <= 'Z') ? cp + 32 : cp;
  // Runs are sorted by first code point; find the last run starting at or before cp.
  auto it = std::upper_bound(std::begin(kLowerRuns), std::end(kLowerRuns), cp,
                             [](char32_t c, const LowerRun& r) { return c < r.first; });
  // Runs never overlap in range for stride 1, but stride-2 runs interleave with others,
  // so look back over the few runs whose span can still cover cp.
  for (auto r = it; r != std::begin(kLowerRuns);) {
    --r;
    uint32_t last = r->first + (r->count - 1) * r->stride;
    if (cp <= last && (cp - r->first) % r->stride == 0) {
      return static_cast<char32_t>(static_cast<int64_t>(cp) + r->delta);
    }
    if (cp - r->first > 0x200) break;  // no run is that long
  }
  return cp;
}

std::string lower(std::string_view s) {
  std::string out;
  out.reserve(s.size());
  if (is_ascii(s)) {
    for (char c : s) out += (c >= 'A' && c <= 'Z') ? static_cast<char>(c + 32) : c;
    return out;
  }
  for (size_t i = 0; i < s.size();) {
    size_t at = i;
    char32_t cp = decode(s, i);
    if (i - at == 1 && static_cast<unsigned char>(s[at]) >= 0x80) {
      out += s[at];  // a malformed byte passes through untouched
    } else {
      append_utf8(out, lower(cp));
    }
  }
  return out;
}

double round_python2(double x, int ndigits) {
  static constexpr uint64_t kPow10[] = {1, 10, 100, 1000, 10000, 100000, 1000000};
  if (ndigits < 0 || ndigits > 6 || !std::isfinite(x) || x == 0.0) return x;
  const uint64_t scale = kPow10[ndigits];
  const double ax = std::fabs(x);
  if (ax >= 9007199254740992.0 / static_cast<double>(scale)) return x;
  // ax = m * 2^e exactly, with m a 53-bit integer.
  int exp = 0;
  const double frac = std::frexp(ax, &exp);
  const auto m = static_cast<uint64_t>(std::ldexp(frac, 53));
  const int e = exp - 53;
  // ax * 10^ndigits = n * 2^e exactly; n < 2^73.
  const unsigned __int128 n = static_cast<unsigned __int128>(m) * scale;
  uint64_t q;
  if (e >= 0) {
    q = static_cast<uint64_t>(n << e);  // already an integer below 2^53
  } else if (-e >= 127) {
    q = 0;
  } else {
    const int shift = -e;
    const unsigned __int128 whole = n >> shift;
    const unsigned __int128 rest = n - (whole << shift);
    const unsigned __int128 half = static_cast<unsigned __int128>(1) << (shift - 1);
    q = static_cast<uint64_t>(whole) + (rest >= half ? 1 : 0);
  }
  // q < 2^53 converts exactly; one correctly rounded division gives the double nearest
  // to q / 10^ndigits, as Python's string round trip does.
  return std::copysign(static_cast<double>(q) / static_cast<double>(scale), x);
}

}  // namespace eve::eval::py
