// Python's string and rounding rules as the official evaluators see them (eval/python_text.h):
// whitespace of either Python, strip(), split(), lower() and Python 2's round().
#include <gtest/gtest.h>

#include <string>
#include <string_view>
#include <vector>

#include "eve/eval/python_text.h"

namespace {

namespace py = eve::eval::py;
using py::Flavor;

TEST(PythonText, WhitespaceOfBothPythons) {
  for (char32_t cp : {U'\t', U'\n', U'\v', U'\f', U'\r', U'\x1c', U'\x1f', U' ', U'\u0085', U'\u00A0',
                      U'\u1680', U'\u2000', U'\u200A', U'\u2028', U'\u2029', U'\u202F', U'\u205F',
                      U'\u3000'}) {
    EXPECT_TRUE(py::is_space(cp, Flavor::python2)) << static_cast<uint32_t>(cp);
    EXPECT_TRUE(py::is_space(cp, Flavor::python3)) << static_cast<uint32_t>(cp);
  }
  for (char32_t cp : {U'a', U'\x1b', U'\x21', U'\u200B', U'\uFEFF', U'\u00AD'}) {
    EXPECT_FALSE(py::is_space(cp, Flavor::python2)) << static_cast<uint32_t>(cp);
    EXPECT_FALSE(py::is_space(cp, Flavor::python3)) << static_cast<uint32_t>(cp);
  }
  // MONGOLIAN VOWEL SEPARATOR: a space to Python 2 only.
  EXPECT_TRUE(py::is_space(U'\u180E', Flavor::python2));
  EXPECT_FALSE(py::is_space(U'\u180E', Flavor::python3));
}

TEST(PythonText, StripAndSplitOnUnicodeWhitespace) {
  const std::string mvs = "\xe1\xa0\x8e";  // U+180E
  const std::string nbsp = "\xc2\xa0";     // U+00A0
  EXPECT_EQ(py::strip(" \t" + nbsp + "a b" + nbsp + "\n", Flavor::python3), "a b");
  EXPECT_EQ(py::strip(mvs + "x" + mvs, Flavor::python2), "x");
  EXPECT_EQ(py::strip(mvs + "x" + mvs, Flavor::python3), mvs + "x" + mvs);
  EXPECT_EQ(py::strip("   ", Flavor::python3), "");
  EXPECT_EQ(py::strip("", Flavor::python3), "");
  // A malformed byte is not whitespace and stays.
  EXPECT_EQ(py::strip(" \xff ", Flavor::python3), "\xff");

  using Words = std::vector<std::string_view>;
  EXPECT_EQ(py::split("  two  words\t", Flavor::python3), (Words{"two", "words"}));
  EXPECT_EQ(py::split("a" + mvs + "b", Flavor::python2), (Words{"a", "b"}));
  EXPECT_EQ(py::split("a" + mvs + "b", Flavor::python3), (Words{"a" + mvs + "b"}));
  EXPECT_EQ(py::split("\xc3\xa9t\xc3\xa9" + nbsp + "x", Flavor::python3), (Words{"\xc3\xa9t\xc3\xa9", "x"}));
  EXPECT_TRUE(py::split(" \n ", Flavor::python3).empty());
}

TEST(PythonText, LowerUsesSimpleMappings) {
  EXPECT_EQ(py::lower(U'A'), U'a');
  EXPECT_EQ(py::lower(U'\u00C9'), U'\u00E9');
  EXPECT_EQ(py::lower(U'\u0130'), U'i');
  EXPECT_EQ(py::lower(U'\u2126'), U'\u03C9');   // OHM SIGN
  EXPECT_EQ(py::lower(U'\u212A'), U'k');        // KELVIN SIGN
  EXPECT_EQ(py::lower(U'\u01C5'), U'\u01C6');   // titlecase Dz
  EXPECT_EQ(py::lower(U'\U00010400'), U'\U00010428');
  EXPECT_EQ(py::lower(U'\u0100'), U'\u0101');   // stride-2 run
  EXPECT_EQ(py::lower(U'\u0101'), U'\u0101');
  EXPECT_EQ(py::lower(U'\u00DF'), U'\u00DF');
  EXPECT_EQ(py::lower("ÀÉÎ ok"), "àéî ok");
}

TEST(PythonText, LowerOfTextKeepsMalformedBytesAndEncodesEveryLength) {
  EXPECT_EQ(py::lower("ABC xyz"), "abc xyz");                             // the ASCII path
  EXPECT_EQ(py::lower("A\xff" "B"), "a\xff" "b");                         // a stray byte passes
  EXPECT_EQ(py::lower("\xe2\x84\xa6"), "\xcf\x89");                       // 3 bytes to 2
  EXPECT_EQ(py::lower("\xc4\xb0"), "i");                                  // 2 bytes to 1
  EXPECT_EQ(py::lower("\xf0\x90\x90\x80"), "\xf0\x90\x90\xa8");           // 4 bytes to 4
}

TEST(PythonText, RoundHalfAwayFromZeroOnTheExactValue) {
  EXPECT_EQ(py::round_python2(12.625, 2), 12.63);  // Python 3 and printf: 12.62
  EXPECT_EQ(py::round_python2(-12.625, 2), -12.63);
  EXPECT_EQ(py::round_python2(0.125, 2), 0.13);
  EXPECT_EQ(py::round_python2(2.675, 2), 2.67);    // the double is below 2.675
  EXPECT_EQ(py::round_python2(1.005, 2), 1.0);     // the double is below 1.005
  EXPECT_EQ(py::round_python2(0.005, 2), 0.01);    // the double is above 0.005
  EXPECT_EQ(py::round_python2(100.0, 2), 100.0);
  EXPECT_EQ(py::round_python2(62.574999999999996, 2), 62.57);
  EXPECT_EQ(py::round_python2(2.5, 0), 3.0);
  EXPECT_EQ(py::round_python2(1e300, 2), 1e300);
}

}  // namespace
