// The whole text of an input file (io/input_text.h): mapped for regular files, read for pipes
// and empty files, and named in messages.
#include <gtest/gtest.h>

#include <string>

#include "eve/io/input_text.h"
#include "common/io_test_util.h"

namespace {

TEST(InputText, RegularFilesEmptyFilesAndPipesGiveTheirBytes) {
  eve::test::TempDir dir;
  std::string bytes = "{\"a\": 1}\n";
  for (int i = 0; i < 3000; ++i) bytes += std::string(1, static_cast<char>(i % 256));
  eve::test::write_bytes(dir.file("big.json"), bytes);
  eve::test::write_bytes(dir.file("empty.json"), "");
  {
    eve::io::InputText in(dir.file("big.json"));
    EXPECT_EQ(in.view(), bytes);
    EXPECT_EQ(in.name(), dir.file("big.json"));
  }
  {
    eve::io::InputText in(dir.file("empty.json"));
    EXPECT_TRUE(in.view().empty());
  }
  eve::test::with_stdin_pipe(dir.file("big.json"), [&] {
    eve::io::InputText in("-");
    EXPECT_EQ(in.view(), bytes);
    EXPECT_EQ(in.name(), "<stdin>");
  });
}

TEST(InputText, MissingFileIsNamed) {
  eve::test::TempDir dir;
  const std::string what =
      eve::test::expect_error([&] { eve::io::InputText in(dir.file("none.json")); }, {"none.json", "cannot open"});
  EXPECT_EQ(what.rfind(dir.file("none.json"), 0), 0u) << what;
}

}  // namespace
