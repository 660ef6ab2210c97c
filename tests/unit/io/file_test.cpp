#include <gtest/gtest.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <csignal>
#include <stdexcept>

#include "eve/io/file.h"
#include "common/io_test_util.h"

namespace {

using eve::io::AtomicWriter;
using eve::io::LineReader;
using eve::test::expect_error;
using eve::test::TempDir;

std::vector<std::string> lines_of(const std::string& path, size_t max_line = LineReader::kDefaultMaxLine) {
  LineReader r(path, max_line);
  std::vector<std::string> out;
  std::string line;
  while (r.next(line)) {
    out.push_back(line);
    EXPECT_EQ(r.line_number(), out.size());
  }
  return out;
}

TEST(AtomicWriter, CommitCreatesAndReplacesWithoutLeftovers) {
  TempDir dir;
  std::string p = dir.file("out.txt");
  eve::io::write_file_atomic(p, "first");
  EXPECT_EQ(eve::test::read_bytes(p), "first");
  {
    AtomicWriter w(p);
    w.write("sec");
    w.write(std::string("ond"));
    EXPECT_EQ(w.size(), 6u);
    EXPECT_EQ(eve::test::read_bytes(p), "first");  // the old file stays until commit
    w.commit();
    w.commit();  // idempotent
  }
  EXPECT_EQ(eve::test::read_bytes(p), "second");
  EXPECT_EQ(dir.list(), std::vector<std::string>{"out.txt"});
}

TEST(AtomicWriter, ExceptionBeforeCommitLeavesOldFileAndNoTemp) {
  TempDir dir;
  std::string p = dir.file("out.txt");
  eve::io::write_file_atomic(p, "old");
  try {
    AtomicWriter w(p);
    w.write("half of the new cont");
    throw std::runtime_error("boom");
  } catch (const std::runtime_error&) {
  }
  EXPECT_EQ(eve::test::read_bytes(p), "old");
  EXPECT_EQ(dir.list(), std::vector<std::string>{"out.txt"});
  try {
    AtomicWriter w(dir.file("new.txt"));
    w.write("partial");
    throw std::runtime_error("boom");
  } catch (const std::runtime_error&) {
  }
  EXPECT_EQ(dir.list(), std::vector<std::string>{"out.txt"});
}

TEST(AtomicWriter, KilledWriterLeavesNothingUnderTheFinalName) {
  TempDir dir;
  std::string p = dir.file("out.bin");
  pid_t pid = ::fork();
  ASSERT_GE(pid, 0);
  if (pid == 0) {
    AtomicWriter w(p);
    w.write(std::string(1 << 20, 'x'));
    ::raise(SIGKILL);  // no destructor, no commit
    ::_exit(0);
  }
  int st = 0;
  ::waitpid(pid, &st, 0);
  ASSERT_TRUE(WIFSIGNALED(st));
  EXPECT_FALSE(eve::io::file_exists(p));
  // Only the temp file (named after the final one) is left by a SIGKILL.
  for (const auto& f : dir.list()) EXPECT_EQ(f.rfind("out.bin.tmp.", 0), 0u) << f;
}

TEST(AtomicWriter, WriteAtPatchesEarlierBytes) {
  TempDir dir;
  std::string p = dir.file("h.bin");
  AtomicWriter w(p);
  w.write("HDR?body");
  w.write_at(3, "!", 1);
  expect_error([&] { w.write_at(6, "xyz", 3); }, {"past the end"});
  w.commit();
  EXPECT_EQ(eve::test::read_bytes(p), "HDR!body");
  expect_error([&] { w.write("more"); }, {"write after commit"});
}

TEST(AtomicWriter, ErrorsNameTheFile) {
  TempDir dir;
  // Missing parents are created; a parent that is a file and a directory as the output are
  // named (io::prepare_output).
  { AtomicWriter w(dir.file("missing/deeper/out.txt")); w.write("x"); w.commit(); }
  EXPECT_EQ(eve::io::read_file(dir.file("missing/deeper/out.txt")), "x");
  { AtomicWriter w(dir.file("plain")); w.commit(); }
  expect_error([&] { AtomicWriter w(dir.file("plain/out.txt")); }, {dir.file("plain"), "is not a directory"});
  expect_error([&] { AtomicWriter w(dir.file("missing")); }, {dir.file("missing"), "is a directory"});
  AtomicWriter out("-");
  EXPECT_TRUE(out.is_stdout());
  expect_error([&] { out.write_at(0, "x", 1); }, {"<stdout>", "cannot rewrite"});
  expect_error([&] { eve::io::read_file(dir.file("nope")); }, {dir.file("nope"), "cannot open"});
}

TEST(Utf8, AcceptsWellFormedAndRejectsMalformed) {
  EXPECT_TRUE(eve::io::is_valid_utf8(""));
  EXPECT_TRUE(eve::io::is_valid_utf8("plain ascii"));
  EXPECT_TRUE(eve::io::is_valid_utf8("caf\xc3\xa9 \xe2\x82\xac \xf0\x9d\x84\x9e"));
  EXPECT_TRUE(eve::io::is_valid_utf8("\xf4\x8f\xbf\xbf"));  // U+10FFFF
  EXPECT_FALSE(eve::io::is_valid_utf8("\xc0\xaf"));          // overlong '/'
  EXPECT_FALSE(eve::io::is_valid_utf8("\xe0\x80\xaf"));      // overlong
  EXPECT_FALSE(eve::io::is_valid_utf8("\xed\xa0\x80"));      // surrogate
  EXPECT_FALSE(eve::io::is_valid_utf8("\xf4\x90\x80\x80"));  // > U+10FFFF
  EXPECT_FALSE(eve::io::is_valid_utf8("\xe2\x82"));          // truncated
  EXPECT_FALSE(eve::io::is_valid_utf8("\x80"));              // lone continuation
  EXPECT_FALSE(eve::io::is_valid_utf8("\xff"));
}

TEST(LineReader, HandlesLfCrlfAndAMissingFinalNewline) {
  TempDir dir;
  std::string p = dir.file("t.txt");
  eve::test::write_bytes(p, "one\r\ntwo\n\nthree\r\n\r\nlast");
  EXPECT_EQ(lines_of(p), (std::vector<std::string>{"one", "two", "", "three", "", "last"}));
  eve::test::write_bytes(p, "a\nb\n");
  EXPECT_EQ(lines_of(p), (std::vector<std::string>{"a", "b"}));
  eve::test::write_bytes(p, "");
  EXPECT_TRUE(lines_of(p).empty());
  eve::test::write_bytes(p, "lone\rcr\n");  // a CR inside a line stays
  EXPECT_EQ(lines_of(p), (std::vector<std::string>{"lone\rcr"}));
}

TEST(LineReader, LinesLongerThanTheReadBuffer) {
  TempDir dir;
  std::string p = dir.file("t.txt");
  std::string big(300000, 'x');
  big[123456] = 'y';
  eve::test::write_bytes(p, "s\n" + big + "\r\n" + big);
  auto lines = lines_of(p);
  ASSERT_EQ(lines.size(), 3u);
  EXPECT_EQ(lines[1], big);
  EXPECT_EQ(lines[2], big);
}

TEST(LineReader, OverLongLineIsReportedWithItsNumber) {
  TempDir dir;
  std::string p = dir.file("t.txt");
  eve::test::write_bytes(p, "0123456789\n0123456789\r\n01234567890\n");
  LineReader r(p, 10);
  std::string line;
  ASSERT_TRUE(r.next(line));  // exactly the limit: fine
  ASSERT_TRUE(r.next(line));  // CRLF does not count
  EXPECT_EQ(line, "0123456789");
  expect_error([&] { r.next(line); }, {p + ":3: line longer than 10 bytes"});
}

TEST(LineReader, NulByteIsAnErrorNamingTheLine) {
  TempDir dir;
  std::string p = dir.file("t.txt");
  eve::test::write_bytes(p, std::string("ok\nbad\0line\nafter\n", 18));
  LineReader r(p);
  std::string line;
  ASSERT_TRUE(r.next(line));
  expect_error([&] { r.next(line); }, {p + ":2: NUL byte inside a text line"});
  EXPECT_EQ(r.where(), p + ":2");
  expect_error([&] { LineReader missing(dir.file("nope")); }, {"nope", "cannot open"});
}

TEST(LineReader, ReadsStdinFromAPipe) {
  TempDir dir;
  std::string p = dir.file("t.txt");
  eve::test::write_bytes(p, "x\r\ny");
  eve::test::with_stdin_pipe(p, [] {
    LineReader r("-");
    std::string line;
    ASSERT_TRUE(r.next(line));
    EXPECT_EQ(line, "x");
    ASSERT_TRUE(r.next(line));
    EXPECT_EQ(line, "y");
    EXPECT_EQ(r.where(), "<stdin>:2");
    EXPECT_FALSE(r.next(line));
  });
}

}  // namespace

TEST(RemoveTree, RemovesNestedTreesAndLinksButNeverWhatALinkPointsTo) {
  TempDir dir;
  const std::string keep = dir.path() + "/keep", tree = dir.path() + "/tree";
  ASSERT_EQ(::mkdir(keep.c_str(), 0755), 0);
  eve::io::write_file_atomic(keep + "/precious", "x");
  ASSERT_EQ(::mkdir(tree.c_str(), 0755), 0);
  ASSERT_EQ(::mkdir((tree + "/a").c_str(), 0755), 0);
  ASSERT_EQ(::mkdir((tree + "/a/b").c_str(), 0755), 0);
  eve::io::write_file_atomic(tree + "/a/b/f", "data");
  eve::io::write_file_atomic(tree + "/g", "data");
  ASSERT_EQ(::symlink(keep.c_str(), (tree + "/a/link").c_str()), 0);
  eve::io::remove_tree(tree);
  EXPECT_FALSE(eve::io::file_exists(tree));
  EXPECT_TRUE(eve::io::file_exists(keep + "/precious"));
  // A missing path is no error; a plain file is removed too.
  EXPECT_NO_THROW(eve::io::remove_tree(tree));
  EXPECT_TRUE(eve::io::try_remove_tree(keep + "/precious"));
  EXPECT_FALSE(eve::io::file_exists(keep + "/precious"));
}
