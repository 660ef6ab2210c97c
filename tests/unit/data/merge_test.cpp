#include <gtest/gtest.h>
#include <sys/stat.h>

#include <filesystem>
#include <map>
#include <nlohmann/json.hpp>

#include "eve/core/error.h"
#include "eve/data/merge.h"
#include "eve/io/image_store.h"
#include "eve/io/jsonl.h"
#include "common/io_test_util.h"

using namespace eve;
using namespace eve::data;
using eve::test::expect_error;
using eve::test::read_bytes;
using eve::test::TempDir;
using eve::test::write_bytes;
namespace fs = std::filesystem;
using ordered_json = nlohmann::ordered_json;

namespace {

using Images = std::vector<std::pair<std::string, std::string>>;

// A dataset dir as eve-prep writes it, from a few stand-in image bytes and record files.
struct PartSpec {
  std::string task = "vqa";
  int size = 24;
  int index = 0, count = 1;
  std::string source = "train.json";
  Images images;
  std::map<std::string, std::string> files = {{"train.jsonl", ""}};
  ordered_json skipped = ordered_json::array();
  uint64_t shard_bytes = uint64_t{1} << 20;
};

std::string make_part(const TempDir& t, const std::string& name, const PartSpec& s) {
  const std::string dir = t.file(name);
  fs::create_directories(dir);
  io::ImageStoreWriter store(dir, s.shard_bytes);
  for (const auto& [key, bytes] : s.images) store.add(key, bytes);
  store.finish();
  ordered_json splits = ordered_json::object();
  uint64_t records = 0;
  for (const auto& [file, text] : s.files) {
    write_bytes(dir + "/" + file, text);
    const uint64_t n = static_cast<uint64_t>(std::count(text.begin(), text.end(), '\n'));
    if (file.find(".ids.") != std::string::npos) continue;
    splits[file.substr(0, file.size() - 6)] = {{"file", file}, {"records", n}};
    records += n;
  }
  std::map<std::string, uint64_t> reasons;
  for (const auto& e : s.skipped) ++reasons[e["reason"].get<std::string>()];
  ordered_json m;
  m["tool"] = "eve-prep test";
  m["task"] = s.task;
  m["sources"] = ordered_json::array({{{"split", "train"}, {"file", s.source}}});
  m["image_policy"] = {{"short_side", s.size}, {"jpeg_quality", 95}};
  m["shard"] = {{"index", s.index}, {"count", s.count}};
  m["splits"] = splits;
  m["counts"] = {{"images", s.images.size()},
                 {"images_skipped", s.skipped.size()},
                 {"records", records},
                 {"records_skipped", s.skipped.size()}};
  m["skipped_by_reason"] = reasons;
  m["bad_fraction"] = 0.0;
  m["max_bad"] = 0.001;
  m["skipped"] = s.skipped;
  write_bytes(dir + "/manifest.json", m.dump(2) + "\n");
  return dir;
}

std::string image(size_t n, char c) { return std::string(n, c); }

// Parts 0/2 and 1/2 of one run, holding these images.
std::pair<PartSpec, PartSpec> halves(Images first, Images second, uint64_t shard_bytes = uint64_t{1} << 20) {
  PartSpec a;
  a.count = 2;
  a.shard_bytes = shard_bytes;
  a.images = std::move(first);
  PartSpec b = a;
  b.index = 1;
  b.images = std::move(second);
  return {a, b};
}

MergeReport merge(const std::string& out, std::vector<std::string> parts) {
  MergeOptions o;
  o.out = out;
  o.parts = std::move(parts);
  return merge_datasets(o);
}

// The text of the eve::Error that f throws.
std::string error_of(const std::function<void()>& f) { return expect_error(f, {}); }

}  // namespace

TEST(DataMerge, IndexRenumbersShardsInPartOrderWithOffsetsKept) {
  TempDir t;
  // Two 3000-byte images per shard (tar pads a shard to 10240 bytes).
  const auto [a, b] = halves({{"a1", image(3000, '1')}, {"a2", image(3000, '2')}, {"a3", image(3000, '3')}},
                             {{"b1", image(100, 'x')}, {"b2", image(9000, 'y')}}, 10240);
  const std::string pa = make_part(t, "a", a), pb = make_part(t, "b", b);
  io::ImageStore sa(pa), sb(pb);
  ASSERT_EQ(sa.locate("a3").shard, 1u);

  MergeReport r = merge(t.file("m"), {pa, pb});
  EXPECT_FALSE(r.up_to_date);
  EXPECT_EQ(r.images, 5u);
  EXPECT_EQ(r.shards, 4u);
  EXPECT_EQ(r.shards_linked, 4u);
  EXPECT_EQ(r.duplicate_images, 0u);
  EXPECT_TRUE(r.warnings.empty());
  io::ImageStore m(t.file("m"));
  EXPECT_EQ(m.keys(), (std::vector<std::string>{"a1", "a2", "a3", "b1", "b2"}));
  const std::map<std::string, uint32_t> shard = {{"a1", 0}, {"a2", 0}, {"a3", 1}, {"b1", 2}, {"b2", 3}};
  for (const auto& [key, s] : shard) {
    const io::ImageStore& part = key[0] == 'a' ? sa : sb;
    EXPECT_EQ(m.locate(key).shard, s) << key;
    EXPECT_EQ(m.locate(key).offset, part.locate(key).offset) << key;
    EXPECT_EQ(m.locate(key).size, part.locate(key).size) << key;
    EXPECT_EQ(m.read(key), part.read(key)) << key;
  }
  EXPECT_EQ(read_bytes(t.file("m/images-00002.tar")), read_bytes(pb + "/images-00000.tar"));
  struct stat st {};
  ASSERT_EQ(::stat(t.file("m/images-00003.tar").c_str(), &st), 0);
  EXPECT_EQ(st.st_nlink, 2u) << "shards are hard links to the parts' own";
  EXPECT_EQ(t.list(), (std::vector<std::string>{"a", "b", "m"})) << "no temporary dir left";

  MergeOptions copy;
  copy.out = t.file("c");
  copy.parts = {pa, pb};
  copy.hard_links = false;
  r = merge_datasets(copy);
  EXPECT_EQ(r.shards_copied, 4u);
  ASSERT_EQ(::stat(t.file("c/images-00003.tar").c_str(), &st), 0);
  EXPECT_EQ(st.st_nlink, 1u);
  EXPECT_EQ(read_bytes(t.file("c/images.idx")), read_bytes(t.file("m/images.idx")));
}

TEST(DataMerge, KeyInSeveralPartsIsKeptOnceFromTheFirstPart) {
  TempDir t;
  const auto [a, b] =
      halves({{"k1", image(50, '1')}, {"shared", image(70, 's')}}, {{"k3", image(60, '3')}, {"shared", image(70, 's')}});
  const std::string pa = make_part(t, "a", a), pb = make_part(t, "b", b);
  MergeReport r = merge(t.file("m"), {pa, pb});
  EXPECT_EQ(r.images, 3u);
  EXPECT_EQ(r.duplicate_images, 1u);
  io::ImageStore m(t.file("m"));
  EXPECT_EQ(m.keys(), (std::vector<std::string>{"k1", "shared", "k3"}));
  EXPECT_EQ(m.locate("shared").shard, 0u);
  EXPECT_EQ(m.locate("shared").offset, io::ImageStore(pa).locate("shared").offset);
  const auto manifest = io::read_json(t.file("m/manifest.json"));
  EXPECT_EQ(manifest["duplicate_images"], 1);
  EXPECT_EQ(manifest["counts"]["images"], 3);
}

TEST(DataMerge, KeyWithOtherBytesInAnotherPartIsAnError) {
  TempDir t;
  auto [a, b] = halves({{"k1", image(50, '1')}, {"shared", image(70, 's')}},
                       {{"shared", image(70, 'S')}});  // same size, other bytes
  const std::string pa = make_part(t, "a", a), pb = make_part(t, "b", b);
  EXPECT_EQ(error_of([&] { merge(t.file("m"), {pa, pb}); }),
            pb + "/images.idx:key 'shared': image bytes differ from those of the same key in " + pa +
                " (the parts were prepared from different images or with different options)");
  b.images = {{"shared", image(71, 's')}};  // other size
  eve::io::remove_tree(pb);
  make_part(t, "b", b);
  EXPECT_NE(error_of([&] { merge(t.file("m"), {pa, pb}); }).find("key 'shared': image bytes differ"),
            std::string::npos);
  EXPECT_EQ(t.list(), (std::vector<std::string>{"a", "b"})) << "nothing written";
}

TEST(DataMerge, MissingRecordFileNamesThePartAndTheFile) {
  TempDir t;
  PartSpec a;
  a.count = 2;
  a.files = {{"train.jsonl", "{\"a\":1}\n"}, {"val.jsonl", "{\"v\":1}\n"}};
  PartSpec b = a;
  b.index = 1;
  b.files = {{"train.jsonl", "{\"b\":1}\n"}};
  const std::string pa = make_part(t, "a", a), pb = make_part(t, "b", b);
  // b's manifest has no "val" split: all the run's val records fell into a.
  MergeReport r = merge(t.file("m"), {pa, pb});
  EXPECT_EQ(r.lines_by_file, (std::map<std::string, uint64_t>{{"train.jsonl", 2}, {"val.jsonl", 1}}));
  EXPECT_EQ(read_bytes(t.file("m/val.jsonl")), "{\"v\":1}\n");

  // A file the part's manifest says it has, missing.
  const std::string pc = make_part(t, "c", a);
  fs::remove(pc + "/val.jsonl");
  const std::string hint = " has (every part must hold the same record files: prepare and encode every part the same way)";
  EXPECT_EQ(error_of([&] { merge(t.file("m2"), {pb, pc}); }),
            pc + ": no val.jsonl, which its manifest.json lists (the dataset dir is incomplete)");
  // A split the part lacks in a merge of other inputs (another run).
  b.source = "other.json";
  eve::io::remove_tree(pb);
  make_part(t, "b", b);
  EXPECT_EQ(error_of([&] { merge(t.file("m2"), {pa, pb}); }), pb + ": no val.jsonl, which " + pa + hint);
  EXPECT_EQ(error_of([&] { merge(t.file("m2"), {pb, pa}); }), pb + ": no val.jsonl, which " + pa + hint);
  EXPECT_FALSE(fs::exists(t.file("m2")));
}

TEST(DataMerge, TaskOrImagePolicyMismatchNamesThePartAndKey) {
  TempDir t;
  PartSpec a;
  const std::string pa = make_part(t, "a", a);
  PartSpec b = a;
  b.task = "nlvr2";
  b.source = "other.json";
  const std::string pb = make_part(t, "b", b);
  EXPECT_EQ(error_of([&] { merge(t.file("m"), {pa, pb}); }),
            pb + "/manifest.json: \"task\" is \"nlvr2\", but " + pa +
                "/manifest.json has \"vqa\" (merge parts of one task prepared with the same image options)");
  PartSpec c = a;
  c.size = 32;
  c.source = "third.json";
  const std::string pc = make_part(t, "c", c);
  EXPECT_EQ(error_of([&] { merge(t.file("m"), {pa, pc}); }),
            pc + "/manifest.json: \"image_policy.short_side\" is 32, but " + pa +
                "/manifest.json has 24 (merge parts of one task prepared with the same image options)");
}

TEST(DataMerge, RecordsConcatenateInPartOrderAndManifestAddsUp) {
  TempDir t;
  PartSpec a;
  a.count = 3;
  a.images = {{"i1", image(10, '1')}, {"gone_a", image(5, 'g')}};
  a.files = {{"train.jsonl", "{\"r\":1}\n{\"r\":2}\n"}, {"train.ids.jsonl", "{\"r\":1,\"ids\":[4]}"}};
  a.skipped = ordered_json::array({{{"image", "gone.jpg"},
                                    {"key", "gone"},
                                    {"reason", "missing"},
                                    {"records", {"a.json: [3]"}},
                                    {"records_total", 1}}});
  PartSpec b = a;
  b.index = 2;
  b.images = {{"i2", image(10, '2')}};
  b.files = {{"train.jsonl", "{\"r\":3}\n"}, {"train.ids.jsonl", "{\"r\":3,\"ids\":[5]}\n"}};
  b.skipped = ordered_json::array({{{"image", "gone.jpg"},
                                    {"key", "gone"},
                                    {"reason", "missing"},
                                    {"records", {"a.json: [9]"}},
                                    {"records_total", 1}},
                                   {{"image", "bad.jpg"},
                                    {"key", "bad"},
                                    {"reason", "truncated"},
                                    {"records", {"a.json: [7]"}},
                                    {"records_total", 1}}});
  const std::string pa = make_part(t, "a", a), pb = make_part(t, "b", b);
  MergeReport r = merge(t.file("m"), {pa, pb});
  ASSERT_EQ(r.warnings.size(), 1u);
  EXPECT_EQ(r.warnings[0], "merging 2 of the 3 parts of the --shard run of " + pa + "; missing: 1/3");
  EXPECT_EQ(read_bytes(t.file("m/train.jsonl")), "{\"r\":1}\n{\"r\":2}\n{\"r\":3}\n");
  EXPECT_EQ(read_bytes(t.file("m/train.ids.jsonl")), "{\"r\":1,\"ids\":[4]}\n{\"r\":3,\"ids\":[5]}\n")
      << "a last line without a newline gets one";
  EXPECT_EQ(r.lines_by_file, (std::map<std::string, uint64_t>{{"train.ids.jsonl", 2}, {"train.jsonl", 3}}));
  EXPECT_EQ(r.records, 3u);

  const auto m = io::read_json(t.file("m/manifest.json"));
  EXPECT_EQ(m["task"], "vqa");
  EXPECT_EQ(m["sources"].size(), 1u) << "the same inputs are listed once";
  EXPECT_EQ(m["shard"].dump(), R"({"count":1,"index":0})");
  EXPECT_EQ(m["splits"].dump(), R"({"train":{"file":"train.jsonl","records":3}})");
  EXPECT_EQ(m["counts"].dump(), R"({"images":3,"images_skipped":2,"records":3,"records_skipped":3})");
  EXPECT_EQ(m["skipped_by_reason"].dump(), R"({"missing":1,"truncated":1})");
  EXPECT_DOUBLE_EQ(m["bad_fraction"].get<double>(), 2.0 / 5.0);
  ASSERT_EQ(m["skipped"].size(), 2u);
  EXPECT_EQ(m["skipped"][0]["records"].dump(), R"(["a.json: [3]","a.json: [9]"])");
  EXPECT_EQ(m["skipped"][0]["records_total"], 2);
  EXPECT_EQ(m["merged_from"][0]["path"], pa);
  EXPECT_EQ(m["merged_from"][1]["shard"].dump(), R"({"count":3,"index":2})");
}

TEST(DataMerge, ShardRunsRefuseRepeatsAndMixedCounts) {
  TempDir t;
  PartSpec a;
  a.count = 2;
  const std::string pa = make_part(t, "a", a), pa2 = make_part(t, "a2", a);
  EXPECT_EQ(error_of([&] { merge(t.file("m"), {pa, pa2}); }),
            pa2 + "/manifest.json:shard: part 0/2 is also " + pa + " (each part of a --shard run is merged once)");
  PartSpec b = a;
  b.index = 1, b.count = 3;
  const std::string pb = make_part(t, "b", b);
  EXPECT_EQ(error_of([&] { merge(t.file("m"), {pa, pb}); }),
            pb + "/manifest.json:shard: part 1/3 of the same inputs as " + pa +
                ", which is part 0/2 (merge the parts of one --shard run, all with the same N)");
  // Parts of other inputs are another run: both unsharded, merged without a warning.
  PartSpec c, d;
  d.source = "more.json";
  const std::string pc = make_part(t, "c", c), pd = make_part(t, "d", d);
  MergeReport r = merge(t.file("m"), {pc, pd});
  EXPECT_TRUE(r.warnings.empty());
}

TEST(DataMerge, ArgumentsAndExistingOutput) {
  TempDir t;
  PartSpec a;
  a.images = {{"i", image(10, 'i')}};
  const std::string pa = make_part(t, "a", a);
  EXPECT_THROW(merge(t.file("m"), {}), UsageError);
  EXPECT_EQ(error_of([&] { merge(pa, {pa}); }), "--out " + pa + " is one of the parts");
  EXPECT_THROW(merge(pa + "/.", {pa}), UsageError);
  EXPECT_EQ(error_of([&] { merge(t.file("m"), {pa, t.file("./a")}); }),
            "part " + t.file("./a") + " is given twice (also as " + pa + ")");
  EXPECT_EQ(error_of([&] { merge(t.file("m"), {t.file("nope")}); }),
            t.file("nope") + ": not a directory (each PART is a dataset dir written by eve-prep)");

  EXPECT_FALSE(merge(t.file("m"), {pa}).up_to_date);
  MergeReport again = merge(t.file("m"), {pa});
  EXPECT_TRUE(again.up_to_date);
  EXPECT_EQ(again.images, 1u);
  write_bytes(pa + "/train.jsonl", "{\"changed\":1}\n");  // the part changed since
  EXPECT_EQ(error_of([&] { merge(t.file("m"), {pa}); }),
            t.file("m") + ": already exists and is not a merge of these parts (remove it or give another --out; a "
                          "merge never overwrites)");
  fs::create_directories(t.file("other"));
  EXPECT_NE(error_of([&] { merge(t.file("other"), {pa}); }).find("already exists"), std::string::npos);
}

TEST(DataMerge, PartWithoutIndexOrManifestIsAnError) {
  TempDir t;
  PartSpec a;
  const std::string pa = make_part(t, "a", a);
  fs::remove(pa + "/images.idx");
  EXPECT_NE(error_of([&] { merge(t.file("m"), {pa}); }).find(pa + "/images.idx: image index not found"),
            std::string::npos);
  fs::remove(pa + "/manifest.json");
  EXPECT_EQ(error_of([&] { merge(t.file("m"), {pa}); }),
            pa + ": no manifest.json (each PART is a dataset dir written by eve-prep, finished)");
  fs::create_directories(t.file("b"));
  write_bytes(t.file("b/manifest.json"), R"({"task":"vqa"})");
  EXPECT_EQ(error_of([&] { merge(t.file("m"), {t.file("b")}); }),
            t.file("b/manifest.json") + ": manifest has no valid \"image_policy\" (is this a dataset dir written by "
                                        "eve-prep?)");
  EXPECT_FALSE(fs::exists(t.file("m")));
}
