#include <gtest/gtest.h>

#include <unistd.h>

#include <thread>

#include "eve/io/image_store.h"
#include "eve/io/tar.h"
#include "common/io_test_util.h"

namespace {

using eve::io::ImageStore;
using eve::io::ImageStoreWriter;
using eve::test::expect_error;
using eve::test::TempDir;

// Fake "JPEG" bytes of a given size, different per key.
std::string image(const std::string& key, size_t n) {
  std::string s = "\xff\xd8" + key;
  while (s.size() < n) s += char('a' + s.size() % 26);
  s.resize(n);
  return s;
}

const std::vector<std::pair<std::string, size_t>> kImages = {
    {"COCO_val2014_000000391895", 3000}, {"000000001", 1},  {"img two", 700},
    {"caf\xc3\xa9", 5000},               {"big", 25000},     {"tail", 10},
};

void write_store(const std::string& dir, uint64_t shard_bytes) {
  ImageStoreWriter w(dir, shard_bytes);
  for (auto& [k, n] : kImages) w.add(k, image(k, n));
  EXPECT_TRUE(w.contains("big"));
  EXPECT_FALSE(w.contains("nope"));
  w.finish();
}

TEST(ImageStore, WritesShardsAndReadsBackByKey) {
  TempDir dir;
  write_store(dir.path(), 20480);
  // 20 KiB shards (sizes count headers, padding and the end-of-archive record):
  // [COCO, 000000001, img two, café] fill 20480 bytes; big exceeds the limit by itself and
  // gets a shard of its own; then tail.
  EXPECT_EQ(dir.list(), (std::vector<std::string>{"images-00000.tar", "images-00001.tar",
                                                  "images-00002.tar", "images.idx"}));
  ImageStore s(dir.path());
  ASSERT_EQ(s.size(), kImages.size());
  std::vector<std::string> keys;
  for (auto& [k, n] : kImages) {
    keys.push_back(k);
    EXPECT_TRUE(s.contains(k));
    EXPECT_EQ(s.read(k), image(k, n)) << k;
  }
  EXPECT_EQ(s.keys(), keys);
  EXPECT_EQ(s.locate("big").shard, 1u);
  EXPECT_EQ(s.locate("tail").shard, 2u);
  EXPECT_EQ(s.locate("COCO_val2014_000000391895").offset, 512u);
  EXPECT_EQ(s.locate("img two").size, 700u);
  // The shards are plain tar archives of <key>.jpg whose data sits where the index says.
  eve::io::TarReader r(dir.file("images-00000.tar"));
  eve::io::TarMember m;
  std::vector<std::string> names;
  while (r.next(m)) {
    names.push_back(m.name);
    std::string key = m.name.substr(0, m.name.size() - 4);
    EXPECT_EQ(m.offset, s.locate(key).offset);
    EXPECT_EQ(r.read(), s.read(key));
  }
  EXPECT_EQ(names, (std::vector<std::string>{"COCO_val2014_000000391895.jpg", "000000001.jpg",
                                             "img two.jpg", "caf\xc3\xa9.jpg"}));
  EXPECT_EQ(eve::test::read_bytes(dir.file("images-00000.tar")).size(), 20480u);
  EXPECT_EQ(eve::test::read_bytes(dir.file("images-00001.tar")).size(), 30720u);
  EXPECT_EQ(eve::test::read_bytes(dir.file("images-00002.tar")).size(), 10240u);
  expect_error([&] { s.read("missing"); }, {"images.idx", "key 'missing'", "no such image"});
}

TEST(ImageStore, WritingIsByteIdentical) {
  TempDir a, b;
  write_store(a.path(), 8000);
  write_store(b.path(), 8000);
  ASSERT_EQ(a.list(), b.list());
  for (auto& f : a.list())
    EXPECT_EQ(eve::test::read_bytes(a.file(f)), eve::test::read_bytes(b.file(f))) << f;
  std::string idx = eve::test::read_bytes(a.file("images.idx"));
  EXPECT_EQ(idx.substr(0, idx.find("COCO")),
            "eve-image-index 1\nshards " + std::to_string(a.list().size() - 1) + "\nimages 6\n");
  EXPECT_NE(idx.find("COCO_val2014_000000391895\t0\t512\t3000\n"), std::string::npos) << idx;
}

TEST(ImageStore, ConcurrentReadsAgree) {
  TempDir dir;
  write_store(dir.path(), 8000);
  ImageStore s(dir.path());
  std::vector<std::thread> threads;
  std::vector<int> bad(4, 0);
  for (int t = 0; t < 4; ++t)
    threads.emplace_back([&, t] {
      for (int rep = 0; rep < 50; ++rep)
        for (auto& [k, n] : kImages)
          if (s.read(k) != image(k, n)) ++bad[t];
    });
  for (auto& th : threads) th.join();
  EXPECT_EQ(bad, std::vector<int>(4, 0));
}

TEST(ImageStore, EmptyStoreAndCustomPrefix) {
  TempDir dir;
  ImageStoreWriter(dir.path(), 1 << 20, "val").finish();
  EXPECT_EQ(dir.list(), std::vector<std::string>{"val.idx"});
  ImageStore s(dir.path(), "val");
  EXPECT_EQ(s.size(), 0u);
  EXPECT_TRUE(s.keys().empty());
}

TEST(ImageStore, WriterRejectsBadKeysAndDuplicates) {
  TempDir dir;
  ImageStoreWriter w(dir.path(), 1 << 20);
  w.add("a", "x");
  expect_error([&] { w.add("a", "y"); }, {"duplicate image key", "key 'a'"});
  expect_error([&] { w.add("", "y"); }, {"bad image key: empty key"});
  expect_error([&] { w.add("a/b", "y"); }, {"'/' in key", "key 'a/b'"});
  expect_error([&] { w.add("a\tb", "y"); }, {"control character in key"});
  expect_error([&] { w.add(std::string(201, 'k'), "y"); }, {"key longer than 200 bytes"});
  expect_error([&] { w.add("\xff", "y"); }, {"not valid UTF-8"});
  EXPECT_EQ(w.size(), 1u);
  expect_error([&] { ImageStoreWriter(dir.file("nope")); }, {"not a directory"});
}

TEST(ImageStore, AbandonedWriterLeavesNoIndexAndNoTempFiles) {
  TempDir dir;
  {
    ImageStoreWriter w(dir.path(), 4000);
    w.add("one", image("one", 3000));
    w.add("two", image("two", 3000));  // closes shard 0, opens shard 1
  }
  EXPECT_EQ(dir.list(), std::vector<std::string>{"images-00000.tar"});
  expect_error([&] { ImageStore s(dir.path()); }, {"images.idx", "image index not found", "eve-prep"});
}

struct BadIndex {
  const char* name;
  std::string text;
  std::vector<std::string> expect;
};

TEST(ImageStore, HostileIndexesAreRejectedClearly) {
  TempDir dir;
  {
    ImageStoreWriter w(dir.path(), 1 << 20);
    w.add("a", image("a", 100));
    w.finish();
  }
  const std::string head = "eve-image-index 1\nshards 1\nimages 1\n";
  std::vector<BadIndex> cases = {
      {"bad magic", "eve-image-index 7\nshards 1\nimages 0\n", {":1:", "not an image index"}},
      {"bad shards line", "eve-image-index 1\nshards x\nimages 0\n", {":2:", "shards <count>"}},
      {"missing shard", "eve-image-index 1\nshards 2\nimages 0\n",
       {"images-00001.tar", "missing"}},
      {"fields", head + "a\t0\t512\n", {":4:", "key<TAB>shard<TAB>offset<TAB>size"}},
      {"not a number", head + "a\t0\t5x2\t100\n", {":4:", "non-negative integers"}},
      {"shard range", head + "a\t3\t512\t100\n", {":4:", "shard 3 out of range"}},
      {"outside shard", head + "a\t0\t10200\t100\n", {":4:", "lie outside", "10240 bytes"}},
      {"bad key", head + "a/b\t0\t512\t100\n", {":4:", "'/' in key"}},
      {"duplicate", "eve-image-index 1\nshards 1\nimages 2\na\t0\t512\t100\na\t0\t512\t100\n",
       {":5:", "duplicate key 'a'"}},
      {"count", head, {"index lists 0 images but its header says 1"}},
      {"no newline", head + "a\t0\t512\t100", {":4:", "truncated index"}},
  };
  for (const auto& c : cases) {
    SCOPED_TRACE(c.name);
    eve::test::write_bytes(dir.file("images.idx"), c.text);
    std::string what = expect_error([&] { ImageStore s(dir.path()); }, {"images"});
    for (const auto& e : c.expect)
      EXPECT_NE(what.find(e), std::string::npos) << "lacks \"" << e << "\": " << what;
  }
  // A shard cut short after the index was written: reading reports it.
  eve::test::write_bytes(dir.file("images.idx"), head + "a\t0\t512\t100\n");
  ImageStore s(dir.path());
  ::truncate(dir.file("images-00000.tar").c_str(), 600);
  expect_error([&] { s.read("a"); }, {"images-00000.tar", "key 'a'", "shorter than the index says"});
}

}  // namespace
