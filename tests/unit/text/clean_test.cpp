// EVE's pre_caption / pre_question rules, each checked on examples worked out by hand (and
// confirmed against the Python functions).
#include <gtest/gtest.h>

#include "eve/core/error.h"
#include "eve/text/clean.h"

namespace {

using eve::text::clean_caption;
using eve::text::clean_question;
using eve::text::CleanMode;

TEST(CleanCaption, LowercasesAndDeletesPunctuation) {
  EXPECT_EQ(clean_caption("A Dog, running!"), "a dog running");
  EXPECT_EQ(clean_caption("Hello \"World\" (test) *#:;~`x"), "hello world test x");
  EXPECT_EQ(clean_caption("it's the dog's ball?"), "its the dogs ball");
}

TEST(CleanCaption, HyphenAndSlashBecomeSpaces) {
  EXPECT_EQ(clean_caption("well-known a/b"), "well known a b");
  // "-" becomes a space, and the two spaces then collapse into one.
  EXPECT_EQ(clean_caption("a - b"), "a b");
}

TEST(CleanCaption, PersonTagAfterLowercasing) {
  EXPECT_EQ(clean_caption("a <PERSON> and <person>"), "a person and person");
}

TEST(CleanCaption, CollapsesOnlyRunsOfTwoOrMoreWhitespace) {
  EXPECT_EQ(clean_caption("a  b\t\tc\td"), "a b c\td");
  EXPECT_EQ(clean_caption("\xC2\xA0\xC2\xA0x\xE3\x80\x80\xE3\x80\x80y"), "x y");  // NBSP, U+3000
}

TEST(CleanCaption, StripsTrailingNewlineAndOuterSpaces) {
  EXPECT_EQ(clean_caption("  spaced out  \n"), "spaced out");
  EXPECT_EQ(clean_caption("a\n"), "a");
  EXPECT_EQ(clean_caption("\ta"), "\ta");  // only spaces are stripped at the start
}

TEST(CleanCaption, KeepsMaxWords) {
  EXPECT_EQ(clean_caption("one two three four five", 3), "one two three");
  EXPECT_EQ(clean_caption("one two three", 3), "one two three");
  EXPECT_EQ(clean_caption("one two three four", 0), "one two three four");
  std::string forty, thirty;
  for (int i = 0; i < 40; ++i) forty += "w ";
  for (int i = 0; i < 30; ++i) thirty += i ? " w" : "w";
  EXPECT_EQ(clean_caption(forty), thirty);  // default: 30 words
}

TEST(CleanCaption, UnicodeLowercasingFollowsPython) {
  EXPECT_EQ(clean_caption("\xC3\x89 \xC3\x88 \xC7\x84"), "\xC3\xA9 \xC3\xA8 \xC7\x86");  // É È Ǆ
  EXPECT_EQ(clean_caption("\xC4\xB0stanbul"), "i\xCC\x87stanbul");  // İ -> i + U+0307
  // ΟΔΟΣ ΣΑΣ Σ: word-final capital sigma becomes ς, a lone one σ.
  EXPECT_EQ(clean_caption("\xCE\x9F\xCE\x94\xCE\x9F\xCE\xA3 \xCE\xA3\xCE\x91\xCE\xA3 \xCE\xA3"),
            "\xCE\xBF\xCE\xB4\xCE\xBF\xCF\x82 \xCF\x83\xCE\xB1\xCF\x82 \xCF\x83");
  EXPECT_EQ(eve::text::unicode_lower("\xD0\x9F\xD0\xA0\xD0\x98"), "\xD0\xBF\xD1\x80\xD0\xB8");  // ПРИ
}

TEST(CleanCaption, EmptyAfterCleaningThrows) {
  EXPECT_THROW(clean_caption(" ?! "), eve::text::EmptyText);
  EXPECT_THROW(clean_caption(""), eve::text::EmptyText);
  try {
    clean_caption("...");
    FAIL();
  } catch (const eve::Error& e) {
    EXPECT_STREQ(e.what(), "text is empty after cleaning");
  }
}

TEST(CleanCaption, RejectsInvalidUtf8) {
  try {
    clean_caption("a\xFF");
    FAIL();
  } catch (const eve::Error& e) {
    EXPECT_STREQ(e.what(), "invalid UTF-8");
  }
}

TEST(CleanQuestion, KeepsBacktickAndPersonTag) {
  EXPECT_EQ(clean_question("Hello \"World\" (test) *#:;~`x?"), "hello world test `x");
  EXPECT_EQ(clean_question("Is <PERSON> here?"), "is <person> here");
}

TEST(CleanQuestion, NoWhitespaceCollapseOnlyTrailingSpacesStripped) {
  EXPECT_EQ(clean_question("a  b\t\tc"), "a  b\t\tc");
  EXPECT_EQ(clean_question("  what is it ?  "), "  what is it");
  EXPECT_EQ(clean_question("what\n"), "what\n");
}

TEST(CleanQuestion, WordLimitCountsEmptyPieces) {
  // "a  b c".split(" ") is ["a", "", "b", "c"]: the empty piece counts as a word.
  EXPECT_EQ(clean_question("a  b c", 3), "a  b");
  EXPECT_EQ(clean_question("what-is/this thing", 3), "what is this");
}

TEST(CleanQuestion, EmptyAfterCleaningThrows) {
  EXPECT_THROW(clean_question("?? "), eve::text::EmptyText);
}

TEST(CleanMode, ParsesNamesAndRejectsOthers) {
  EXPECT_EQ(eve::text::parse_clean_mode("caption"), CleanMode::caption);
  EXPECT_EQ(eve::text::parse_clean_mode("question"), CleanMode::question);
  EXPECT_EQ(eve::text::parse_clean_mode("none"), CleanMode::none);
  try {
    eve::text::parse_clean_mode("Caption");
    FAIL();
  } catch (const eve::UsageError& e) {
    EXPECT_STREQ(e.what(), "unknown cleaning mode 'Caption' (expected caption, question or none)");
  }
  EXPECT_EQ(eve::text::clean_text("Keep It!", CleanMode::none), "Keep It!");
  EXPECT_THROW(eve::text::clean_text("", CleanMode::none), eve::text::EmptyText);
  EXPECT_EQ(eve::text::clean_text("a b c d", CleanMode::caption, 2), "a b");
  EXPECT_EQ(eve::text::default_max_words(CleanMode::caption), 30);
  EXPECT_EQ(eve::text::default_max_words(CleanMode::question), 50);
}

}  // namespace
