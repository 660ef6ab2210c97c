#include <gtest/gtest.h>

#include <cstring>

#include "eve/io/jsonl.h"
#include "eve/io/tar.h"
#include "common/io_test_util.h"

namespace {

using eve::io::TarMember;
using eve::io::TarReader;
using eve::io::TarWriter;
using eve::test::expect_error;
using eve::test::Hostile;
using eve::test::TempDir;
using eve::test::to_hex;


// All regular members as (name, data).
std::vector<std::pair<std::string, std::string>> read_all(const std::string& path,
                                                          eve::io::TarReadOptions opt = {}) {
  std::vector<std::pair<std::string, std::string>> out;
  TarReader r(path, opt);
  TarMember m;
  while (r.next(m)) out.emplace_back(m.name, r.read());
  return out;
}

// A raw ustar header block with a correct checksum.
std::string raw_header(const std::string& name, uint64_t size, char type = '0',
                       const std::string& link = {}) {
  std::string h(512, '\0');
  std::memcpy(&h[0], name.data(), std::min<size_t>(name.size(), 100));
  std::snprintf(&h[100], 8, "%07o", 0644);
  std::snprintf(&h[108], 8, "%07o", 0);
  std::snprintf(&h[116], 8, "%07o", 0);
  std::snprintf(&h[124], 12, "%011llo", static_cast<unsigned long long>(size));
  std::snprintf(&h[136], 12, "%011o", 0);
  h[156] = type;
  std::memcpy(&h[157], link.data(), std::min<size_t>(link.size(), 100));
  std::memcpy(&h[257], "ustar\0" "00", 8);
  std::memset(&h[148], ' ', 8);
  unsigned sum = 0;
  for (unsigned char c : h) sum += c;
  std::snprintf(&h[148], 8, "%06o", sum);
  return h;
}

std::string block_pad(std::string data) {
  data.append((512 - data.size() % 512) % 512, '\0');
  return data;
}

std::string end_marker() { return std::string(1024, '\0'); }

TEST(Tar, WriterIsDeterministicAndReadsBack) {
  TempDir dir;
  std::vector<std::pair<std::string, std::string>> files = {
      {"a.jpg", "jpeg bytes"},
      {"empty", ""},
      {"dir/b.txt", std::string(512, 'b')},
      {std::string(120, 'p') + "/" + std::string(90, 'q'), "ustar prefix split"},
      {std::string(300, 'x'), "needs a pax path"},
  };
  std::vector<uint64_t> offsets;
  for (const char* name : {"one.tar", "two.tar"}) {
    TarWriter w(dir.file(name));
    offsets.clear();
    for (auto& [n, d] : files) {
      uint64_t before = w.size();
      offsets.push_back(w.add(n, d));
      EXPECT_EQ(w.size() - before, TarWriter::member_bytes(n, d.size())) << n;
    }
    uint64_t size = w.size();
    w.finish();
    EXPECT_EQ(eve::test::read_bytes(dir.file(name)).size(), size + TarWriter::finish_bytes(size));
  }
  std::string bytes = eve::test::read_bytes(dir.file("one.tar"));
  EXPECT_EQ(bytes, eve::test::read_bytes(dir.file("two.tar")));
  EXPECT_EQ(bytes.size() % 10240, 0u);
  EXPECT_EQ(bytes.substr(offsets[0], 10), "jpeg bytes");
  EXPECT_EQ(read_all(dir.file("one.tar")), files);
  TarReader r(dir.file("one.tar"));
  TarMember m;
  for (size_t k = 0; k < files.size(); ++k) {
    ASSERT_TRUE(r.next(m));  // data left unread is skipped
    EXPECT_EQ(m.offset, offsets[k]);
    EXPECT_EQ(m.size, files[k].second.size());
  }
  EXPECT_FALSE(r.next(m));
  EXPECT_FALSE(r.next(m));
}

TEST(Tar, WriterRejectsUnsafeNames) {
  TempDir dir;
  TarWriter w(dir.file("x.tar"));
  expect_error([&] { w.add("../evil", "x"); }, {"bad member name: '..' in path", "member '../evil'"});
  expect_error([&] { w.add("/etc/passwd", "x"); }, {"absolute path"});
  expect_error([&] { w.add("a\nb", "x"); }, {"control character", "member 'a\\x0ab'"});
  expect_error([&] { w.add("", "x"); }, {"empty name"});
  EXPECT_EQ(eve::io::tar_name_problem("a/..b/c.."), "");
  EXPECT_EQ(eve::io::tar_name_problem("a/../c"), "'..' in path");
}

TEST(Tar, AbandonedWriterLeavesNothing) {
  TempDir dir;
  {
    TarWriter w(dir.file("x.tar"));
    w.add("a", "b");
  }
  EXPECT_EQ(dir.list(), std::vector<std::string>{});
}

TEST(Tar, ReaderSkipsDirectoriesAndOptionallyLinks) {
  TempDir dir;
  std::string p = dir.file("l.tar");
  eve::test::write_bytes(p, raw_header("./", 0, '5') + raw_header("./d/", 0, '5') +
                                raw_header("./d/a.jpg", 3) + block_pad("abc") +
                                raw_header("d/link.jpg", 0, '2', "a.jpg") +
                                raw_header("d/hard.jpg", 0, '1', "d/a.jpg") + end_marker());
  expect_error([&] { read_all(p); },
               {p, "member 'd/link.jpg'", "symbolic link to 'a.jpg'", "never followed"});
  eve::io::TarReadOptions opt;
  opt.skip_special = true;
  TarReader r(p, opt);
  TarMember m;
  ASSERT_TRUE(r.next(m));
  EXPECT_EQ(m.name, "d/a.jpg");
  EXPECT_EQ(r.read(), "abc");
  EXPECT_FALSE(r.next(m));
  EXPECT_EQ(r.skipped(), 2u);
}

TEST(Tar, ReaderFollowsPaxAndGnuLongNames) {
  TempDir dir;
  std::string longname(150, 'L');
  std::string rec = "30 path=" + std::string("pax/name.jpg") + "\n";
  rec = std::to_string(rec.size()) + rec.substr(2);
  std::string p = dir.file("x.tar");
  eve::test::write_bytes(
      p, raw_header("././@PaxHeader", rec.size(), 'x') + block_pad(rec) +
             raw_header("truncated-name", 2) + block_pad("hi") +
             raw_header("././@LongLink", longname.size() + 1, 'L') + block_pad(longname + '\0') +
             raw_header(longname.substr(0, 100), 1) + block_pad("z") +
             raw_header("././@PaxHeader", 12, 'g') + block_pad("12 comment=\n") +
             raw_header("plain", 0) + end_marker());
  auto all = read_all(p);
  ASSERT_EQ(all.size(), 3u);
  EXPECT_EQ(all[0], std::make_pair(std::string("pax/name.jpg"), std::string("hi")));
  EXPECT_EQ(all[1], std::make_pair(longname, std::string("z")));
  EXPECT_EQ(all[2].first, "plain");
}

TEST(Tar, ReadsFromStdinStream) {
  TempDir dir;
  {
    TarWriter w(dir.file("s.tar"));
    w.add("a", std::string(3000, 'a'));
    w.add("b", "bee");
    w.finish();
  }
  // "-" reads stdin, here a pipe, which cannot seek.
  eve::test::with_stdin_pipe(dir.file("s.tar"), [] {
    TarReader r("-");
    TarMember m;
    ASSERT_TRUE(r.next(m));  // "a" left unread: skipped by reading through the pipe
    ASSERT_TRUE(r.next(m));
    EXPECT_EQ(m.name, "b");
    EXPECT_EQ(r.read(), "bee");
    EXPECT_FALSE(r.next(m));
  });
}

// ---- hostile archives -------------------------------------------------------------


TEST(Tar, HostileArchivesAreRejectedClearly) {
  std::string good = raw_header("ok.jpg", 600) + block_pad(std::string(600, 'o'));
  std::string bad_sum = raw_header("ok.jpg", 600);
  bad_sum[10] ^= 1;  // name changes, checksum does not
  std::string bad_pax = "99 path=x\n";
  std::vector<Hostile> cases = {
      {"empty file", "", {"empty file: not a tar archive"}},
      {"not a tar", std::string(2048, 'z'), {"bad header checksum", "is this a tar archive?"}},
      {"bad checksum", good + bad_sum + std::string(600, 'o') + end_marker(),
       {"bad header checksum", "at offset 1536", "corrupt"}},
      {"cut inside a header", good + raw_header("next.jpg", 1).substr(0, 200),
       {"truncated inside a header block", "after member 'ok.jpg'"}},
      {"cut inside data", raw_header("ok.jpg", 600) + std::string(300, 'o'),
       {"member 'ok.jpg'", "truncated inside member data (600 bytes, 300 present)"}},
      {"cut inside padding", raw_header("ok.jpg", 600) + std::string(700, 'o'),
       {"member 'ok.jpg'", "truncated inside the padding"}},
      {"no end marker", good, {"ends without the end-of-archive marker", "after member 'ok.jpg'"}},
      {"dot-dot", raw_header("a/../../etc/passwd", 1) + block_pad("x") + end_marker(),
       {"unsafe member name: '..' in path", "member 'a/../../etc/passwd'"}},
      {"absolute", raw_header("/etc/passwd", 1) + block_pad("x") + end_marker(),
       {"unsafe member name: absolute path"}},
      {"control char", raw_header("a\x1b[31m.jpg", 1) + block_pad("x") + end_marker(),
       {"control character", "member 'a\\x1b[31m.jpg'"}},
      {"invalid utf-8", raw_header("caf\xe9.jpg", 1) + block_pad("x") + end_marker(),
       {"not valid UTF-8"}},
      {"hard link", raw_header("h.jpg", 0, '1', "/etc/shadow") + end_marker(),
       {"member 'h.jpg'", "hard link to '/etc/shadow'"}},
      {"device", raw_header("dev", 0, '3') + end_marker(), {"character device"}},
      {"malformed pax", raw_header("p", bad_pax.size(), 'x') + block_pad(bad_pax) + good + end_marker(),
       {"malformed pax extended header record"}},
      {"huge pax", raw_header("p", uint64_t{1} << 30, 'x') + end_marker(),
       {"pax extended header of 1073741824 bytes is implausibly large"}},
      {"cut in pax", raw_header("p", 700, 'x') + std::string(100, '1'),
       {"truncated inside a pax extended header"}},
      {"pax then end", raw_header("p", 9, 'x') + block_pad("9 path=x\n") + end_marker(),
       {"ends right after an extended header"}},
      {"sparse", raw_header("s", 0, 'S') + end_marker(), {"sparse members are not supported"}},
      {"bad size field", [] {
         std::string h = raw_header("s", 0);
         std::memcpy(&h[124], "12x4", 4);
         std::memset(&h[148], ' ', 8);
         unsigned sum = 0;
         for (unsigned char c : h) sum += c;
         std::snprintf(&h[148], 8, "%06o", sum);
         return h + end_marker();
       }(),
       {"bad size field"}},
  };
  TempDir dir;
  eve::test::check_hostile(dir.path(), "shard.tar", cases,
                           [](const std::string& p) { read_all(p); });
}

// A name that is not UTF-8 but otherwise safe: an error by default, a flagged member with
// allow_non_utf8_names; a name unsafe in another way stays an error with it.
TEST(Tar, NonUtf8NamesCanBeLetThrough) {
  TempDir dir;
  const std::string odd = raw_header("caf\xe9.jpg", 1) + block_pad("x");
  eve::test::write_bytes(dir.file("odd.tar"), odd + raw_header("ok.jpg", 2) + block_pad("ok") + end_marker());
  eve::test::write_bytes(dir.file("bad.tar"), raw_header("../caf\xe9.jpg", 1) + block_pad("x") + end_marker());
  eve::io::TarReadOptions opt;
  opt.allow_non_utf8_names = true;
  TarReader r(dir.file("odd.tar"), opt);
  TarMember m;
  ASSERT_TRUE(r.next(m));
  EXPECT_EQ(m.name, "caf\xe9.jpg");
  EXPECT_TRUE(m.name_not_utf8);
  EXPECT_EQ(r.read(), "x");
  ASSERT_TRUE(r.next(m));
  EXPECT_EQ(m.name, "ok.jpg");
  EXPECT_FALSE(m.name_not_utf8);
  EXPECT_FALSE(r.next(m));
  TarReader unsafe(dir.file("bad.tar"), opt);
  expect_error([&] { unsafe.next(m); }, {"'..' in path"});
  TarReader strict(dir.file("odd.tar"));
  expect_error([&] { strict.next(m); }, {"not valid UTF-8", "member 'caf\\xe9.jpg'"});
  EXPECT_EQ(eve::io::shown_name("a\x1b\xc3\xa9\xff\xc3"), "a\\x1b\xc3\xa9\\xff\\xc3");
}

// ---- interop ----------------------------------------------------------------------

TEST(TarInterop, ReadsPythonAndGnuTarArchives) {
  TempDir dir;
  std::string out;
  ASSERT_EQ(eve::test::run_reference("tar_interop.py", "write", dir.path(), &out), 0) << out;
  auto manifest = eve::io::read_json(dir.file("manifest.json"));
  ASSERT_EQ(manifest.size(), 5u);
  for (auto& [archive, want] : manifest.items()) {
    SCOPED_TRACE(archive);
    auto got = read_all(dir.file(archive));
    ASSERT_EQ(got.size(), want.size());
    for (size_t k = 0; k < got.size(); ++k) {
      EXPECT_EQ(got[k].first, want[k][0].get<std::string>());
      EXPECT_EQ(to_hex(got[k].second), want[k][1].get<std::string>()) << got[k].first;
    }
  }
}

TEST(TarInterop, OurArchivesReadInPythonAndGnuTar) {
  TempDir dir;
  std::vector<std::pair<std::string, std::string>> files = {
      {"000001.jpg", "\xff\xd8 jpeg \xff\xd9"},
      {"sub/\xc3\xa9t\xc3\xa9.txt", "utf-8 name"},
      {std::string(130, 'a') + "/" + std::string(60, 'b') + ".jpg", "prefix split"},
      {std::string(260, 'c') + ".jpg", "pax path"},
      {"zero", ""},
  };
  TarWriter w(dir.file("ours.tar"));
  eve::io::json manifest;
  for (auto& [n, d] : files) {
    w.add(n, d);
    manifest["ours.tar"].push_back({n, to_hex(d)});
  }
  w.finish();
  eve::io::write_file_atomic(dir.file("manifest.json"), manifest.dump());
  std::string out;
  EXPECT_EQ(eve::test::run_reference("tar_interop.py", "check", dir.path(), &out), 0) << out;
  EXPECT_NE(out.find("checked 5 members, 0 bad"), std::string::npos) << out;
  ASSERT_EQ(eve::test::run_command("tar -tvf " + eve::test::quote(dir.file("ours.tar")), &out), 0)
      << out;
  EXPECT_NE(out.find("-rw-r--r-- root/root        10 1970-01-01 00:00 000001.jpg"),
            std::string::npos)
      << out;
  EXPECT_NE(out.find(std::string(260, 'c') + ".jpg"), std::string::npos) << out;
  EXPECT_EQ(out.find("tar:"), std::string::npos) << out;  // no warnings
}

}  // namespace
