#include <gtest/gtest.h>

#include <csignal>
#include <filesystem>
#include <map>

#include "eve/core/error.h"
#include "eve/core/signals.h"
#include "eve/data/prep.h"
#include "eve/image/codec.h"
#include "eve/io/image_store.h"
#include "eve/io/jsonl.h"
#include "eve/io/tar.h"
#include "common/image_test_util.h"

using namespace eve;
using namespace eve::data;
using namespace eve::testutil;
namespace fs = std::filesystem;

namespace {

std::string jpeg(int w, int h, uint32_t seed) { return image::encode_jpeg(test_pattern(w, h, seed)); }

std::string error_of(const std::function<void()>& f) {
  try {
    f();
  } catch (const Error& e) {
    return e.what();
  }
  return "(no error)";
}

// Caption pairs over `n` good images img<i>.jpg (40x30 .. ) in dir/img.
std::string make_pairs(const TempDir& dir, int n) {
  fs::create_directories(dir / "img");
  std::string ann = "[";
  for (int i = 0; i < n; ++i) {
    write_bytes(dir / ("img/" + std::to_string(i) + ".jpg"), jpeg(40 + i % 7, 30 + i % 5, static_cast<uint32_t>(i)));
    ann += std::string(i ? "," : "") + "{\"image\":\"img/" + std::to_string(i) + ".jpg\",\"caption\":[\"c" +
           std::to_string(i) + "\",\"d" + std::to_string(i) + "\"],\"image_id\":" + std::to_string(i) + "}";
  }
  write_bytes(dir / "pairs.json", ann + "]");
  return dir / "pairs.json";
}

Collection pairs_collection(const TempDir& dir) {
  Collection c;
  c.task = "pairs";
  read_caption_pairs(c, {"train", dir / "pairs.json"}, dir.path);
  return c;
}

}  // namespace

TEST(PrepReaders, CaptionPairsExpandListsAndCarryFields) {
  TempDir dir("pairs");
  make_pairs(dir, 3);
  Collection c = pairs_collection(dir);
  ASSERT_EQ(c.examples.size(), 6u);
  ASSERT_EQ(c.images.size(), 3u);
  EXPECT_EQ(c.examples[1].record.dump(), R"({"image":"img_0","text":"d0","image_id":0})");
}

TEST(PrepReaders, MalformedAnnotationsNameFileAndPath) {
  TempDir dir("badann");
  write_bytes(dir / "a.json", R"([{"image":"x.jpg","caption":"ok"},{"image":"y.jpg","caption":7}])");
  Collection c;
  EXPECT_EQ(error_of([&] { read_caption_pairs(c, {"train", dir / "a.json"}, ""); }),
            dir / "a.json" + ":[1].caption: field \"caption\" must be a string or a list of strings");
  write_bytes(dir / "b.json", R"([{"caption":"no image"}])");
  EXPECT_EQ(error_of([&] { read_retrieval(c, {"test", dir / "b.json"}, ""); }),
            dir / "b.json" + ":[0]: missing field \"image\"");
  write_bytes(dir / "c.json", "[{\"image\": \"x.jpg\",\n \"caption\": \"a\" ");
  EXPECT_NE(error_of([&] { read_caption_pairs(c, {"train", dir / "c.json"}, ""); }).find(dir / "c.json"),
            std::string::npos);
  write_bytes(dir / "n.json", "{\"identifier\":\"dev-1-0-0\",\"sentence\":\"s\",\"label\":\"True\"}\n"
                              "{\"identifier\":\"dev-1-1-0\",\"sentence\":\"s\",\"label\":\"yes\"}\n");
  EXPECT_EQ(error_of([&] { read_nlvr2(c, {"dev", dir / "n.json"}, dir.path); }),
            dir / "n.json" + ":2: label must be the string \"True\" or \"False\", got \"yes\"");
  EXPECT_THROW(parse_split_file("=x.json"), UsageError);
  int i, n;
  EXPECT_THROW(parse_shard("2/2", i, n), UsageError);
  parse_shard("1/3", i, n);
  EXPECT_EQ(i, 1);
  EXPECT_EQ(n, 3);
}

TEST(PrepReaders, RepeatedIdsNameFileBothPositionsAndId) {
  TempDir dir("dupids");
  Collection c;
  write_bytes(dir / "q.json", R"({"questions":[{"image_id":1,"question":"a?","question_id":1000},
    {"image_id":2,"question":"b?","question_id":1000}]})");
  write_bytes(dir / "a.json", R"({"annotations":[{"question_id":1000,"answers":[{"answer":"x"}]},
    {"question_id":1001,"answers":[{"answer":"y"}]}]})");
  EXPECT_EQ(error_of([&] { read_vqa_official(c, "val", dir / "q.json", dir / "a.json", "", "{image_id}.jpg"); }),
            dir / "q.json" + ": questions[1].question_id 1000 repeats questions[0]");
  write_bytes(dir / "q1.json", R"({"questions":[{"image_id":1,"question":"a?","question_id":1000}]})");
  write_bytes(dir / "a2.json", R"({"annotations":[{"question_id":1000,"answers":[{"answer":"x"}]},
    {"question_id":1000,"answers":[{"answer":"y"}]}]})");
  EXPECT_EQ(error_of([&] { read_vqa_official(c, "val", dir / "q1.json", dir / "a2.json", "", "{image_id}.jpg"); }),
            dir / "a2.json" + ": annotations[1].question_id 1000 repeats annotations[0]");
  write_bytes(dir / "vg.json", R"([{"question_id":7,"question":"q","answer":"x","image":"1.jpg","dataset":"vg"},
    {"question_id":8,"question":"q","answer":"x","image":"1.jpg","dataset":"vg"},
    {"question_id":7,"question":"r","answer":"y","image":"2.jpg","dataset":"vg"}])");
  EXPECT_EQ(error_of([&] { read_vqa_eve(c, {"train", dir / "vg.json"}, "", ""); }),
            dir / "vg.json" + ": [2].question_id 7 repeats [0]");
  write_bytes(dir / "n.json", "{\"identifier\":\"dev-1-0-0\",\"sentence\":\"s\",\"label\":\"True\"}\n"
                              "{\"identifier\":\"dev-1-1-0\",\"sentence\":\"s\",\"label\":\"True\"}\n"
                              "{\"identifier\":\"dev-1-0-0\",\"sentence\":\"s\",\"label\":\"False\"}\n");
  EXPECT_EQ(error_of([&] { read_nlvr2(c, {"dev", dir / "n.json"}, dir.path); }),
            dir / "n.json" + ":3: identifier \"dev-1-0-0\" repeats line 1");
  write_bytes(dir / "n_eve.json", R"([{"identifier":"x","images":["a.jpg","b.jpg"],"sentence":"s","label":"True"},
    {"identifier":"x","images":["c.jpg","d.jpg"],"sentence":"s","label":"False"}])");
  EXPECT_EQ(error_of([&] { read_nlvr2(c, {"dev", dir / "n_eve.json"}, ""); }),
            dir / "n_eve.json" + ": [1].identifier \"x\" repeats [0]");
  // Karpathy files: an image with all its captions is listed once; an image_id is one image's.
  write_bytes(dir / "test.json", R"([{"image":"a.jpg","caption":["x"]},{"image":"b.jpg","caption":["y"]},
    {"image":"a.jpg","caption":["z"]}])");
  EXPECT_EQ(error_of([&] { read_retrieval(c, {"test", dir / "test.json"}, ""); }),
            dir / "test.json" + ": [2].image \"a.jpg\" repeats [0]");
  write_bytes(dir / "mixed.json", R"([{"image":"a.jpg","caption":"x"},{"image":"a.jpg","caption":["y"]}])");
  EXPECT_EQ(error_of([&] { read_retrieval(c, {"train", dir / "mixed.json"}, ""); }),
            dir / "mixed.json" + ": [1].image \"a.jpg\" repeats [0]");
  write_bytes(dir / "ids.json", R"([{"image":"a.jpg","caption":"x","image_id":"coco_1"},
    {"image":"a.jpg","caption":"y","image_id":"coco_1"},{"image":"b.jpg","caption":"z","image_id":"coco_1"}])");
  EXPECT_EQ(error_of([&] { read_retrieval(c, {"train", dir / "ids.json"}, ""); }),
            dir / "ids.json" + ": [2].image_id \"coco_1\" repeats [0] (one image_id, one image; that entry's is \"a.jpg\")");
  write_bytes(dir / "ids2.json", R"([{"image":"a.jpg","caption":"x","image_id":1},
    {"image":"a.jpg","caption":"y","image_id":2}])");
  EXPECT_EQ(error_of([&] { read_retrieval(c, {"train", dir / "ids2.json"}, ""); }),
            dir / "ids2.json" + ": [1].image_id 2 differs from [0].image_id 1 of the same image");
  // A training file repeats its images, one entry per caption: one record per image.
  Collection t;
  write_bytes(dir / "train.json", R"([{"image":"a.jpg","caption":"x","image_id":1},
    {"image":"b.jpg","caption":"y","image_id":2},{"image":"a.jpg","caption":"z","image_id":1}])");
  read_retrieval(t, {"train", dir / "train.json"}, "");
  ASSERT_EQ(t.examples.size(), 2u);
  EXPECT_EQ(t.examples[0].record["texts"], ordered_json::array({"x", "z"}));
}

TEST(PrepReaders, VqaUnmatchedQuestionsAndAnnotationsAreCounted) {
  TempDir dir("unmatched");
  write_bytes(dir / "q.json", R"({"questions":[{"image_id":1,"question":"a?","question_id":1000},
    {"image_id":1,"question":"b?","question_id":1001},{"image_id":2,"question":"c?","question_id":1002}]})");
  write_bytes(dir / "a.json", R"({"annotations":[{"question_id":1003,"answers":[{"answer":"z"}]},
    {"question_id":1001,"answers":[{"answer":"y"}]},{"question_id":1004,"answers":[{"answer":"w"}]}]})");
  Collection c;
  read_vqa_official(c, "val", dir / "q.json", dir / "a.json", "", "{image_id}.jpg");
  ASSERT_EQ(c.examples.size(), 1u);
  EXPECT_EQ(c.examples[0].record["question_id"], 1001);
  EXPECT_EQ(c.examples[0].record["answers"], ordered_json::array({"y"}));
  ASSERT_EQ(c.sources.size(), 1u);
  EXPECT_EQ(c.sources[0]["questions_without_annotation"], 2);
  EXPECT_EQ(c.sources[0]["annotations_without_question"], 2);
  // Without an annotation file nothing is unmatched and every question is a record.
  Collection t;
  read_vqa_official(t, "test", dir / "q.json", "", "", "{image_id}.jpg");
  EXPECT_EQ(t.examples.size(), 3u);
  EXPECT_FALSE(t.sources[0].contains("questions_without_annotation"));
  EXPECT_FALSE(t.sources[0].contains("annotations_without_question"));
}

TEST(PrepReaders, VqaOfficialEveAndVisualGenome) {
  TempDir dir("vqa");
  write_bytes(dir / "q.json", R"({"info":{},"task_type":"Open-Ended","data_type":"mscoco","data_subtype":"val2014","license":{},
    "questions":[{"image_id":42,"question":"what?","question_id":42000}]})");
  write_bytes(dir / "a.json", R"({"annotations":[{"question_id":42000,"image_id":42,"question_type":"what",
    "answer_type":"other","multiple_choice_answer":"cat","answers":[{"answer":"cat","answer_confidence":"yes","answer_id":1}]}]})");
  write_bytes(dir / "eve.json", R"([{"question_id":7,"question":"q","answer":"dog","image":"vg/1.jpg","dataset":"vg"},
    {"question_id":8,"question":"r","answer":["a","b"],"image":"val2014/COCO_val2014_000000000042.jpg","dataset":"vqa"}])");
  Collection c;
  read_vqa_official(c, "val", dir / "q.json", dir / "a.json", "/coco", "COCO_{data_subtype}_{image_id:012}.jpg");
  read_vqa_eve(c, {"train", dir / "eve.json"}, "/coco", "/vg");
  ASSERT_EQ(c.examples.size(), 3u);
  EXPECT_EQ(c.images[0].path, "/coco/COCO_val2014_000000000042.jpg");
  EXPECT_EQ(c.examples[0].record.dump(),
            R"({"question_id":42000,"image":"COCO_val2014_000000000042","question":"what?","answers":["cat"],)"
            R"("answer_type":"other","question_type":"what","multiple_choice_answer":"cat","image_id":42})");
  EXPECT_EQ(c.images[1].path, "/vg/vg/1.jpg");
  EXPECT_EQ(c.examples[1].record["answers"], ordered_json::array({"dog"}));
  EXPECT_EQ(c.examples[1].record["dataset"], "vg");
  EXPECT_EQ(c.examples[2].record["answers"].size(), 2u);
}

TEST(PrepReaders, Nlvr2FindsImagesFromIdentifiers) {
  TempDir dir("nlvr");
  fs::create_directories(dir / "img/dev");
  write_bytes(dir / "img/dev/dev-3-1-img0.png", "x");
  write_bytes(dir / "img/dev/dev-3-1-img1.jpg", "x");
  write_bytes(dir / "dev.json", R"({"identifier":"dev-3-1-0","sentence":"s","label":"False","writer":"w"})" "\n");
  Collection c;
  read_nlvr2(c, {"dev", dir / "dev.json"}, dir / "img");
  ASSERT_EQ(c.examples.size(), 1u);
  EXPECT_EQ(c.images[0].path, dir / "img/dev/dev-3-1-img0.png");
  EXPECT_EQ(c.images[1].path, dir / "img/dev/dev-3-1-img1.jpg");
  EXPECT_EQ(c.examples[0].record["identifier"], "dev-3-1-0");
  EXPECT_EQ(c.examples[0].record["writer"], "w");
}

TEST(PrepReaders, WebdatasetSamples) {
  TempDir dir("wds");
  {
    io::TarWriter t(dir / "00000.tar");
    t.add("000000000.jpg", jpeg(20, 20, 1));
    t.add("000000000.json", R"({"url":"http://x","caption":"from json","key":"000000000"})");
    t.add("000000000.txt", "from txt\n");
    t.add("000000001.jpg", jpeg(20, 20, 2));
    t.add("000000001.json", R"({"caption":"only json"})");
    t.add("000000002.txt", "no image");
    t.finish();
  }
  Collection c;
  read_webdataset(c, {"train", dir / "00000.tar"});
  ASSERT_EQ(c.examples.size(), 2u);
  EXPECT_EQ(c.examples[0].record.dump(), R"({"image":"000000000","text":"from txt","key":"000000000","url":"http://x"})");
  EXPECT_EQ(c.examples[1].record["text"], "only json");
  EXPECT_EQ(c.sources[0]["samples_without_image"], 1);
  ASSERT_EQ(c.skipped_samples.size(), 1u);
  EXPECT_EQ(c.skipped_samples[0].reason, "no-image");
  EXPECT_EQ(c.skipped_samples[0].name, dir / "00000.tar" + ":000000002.txt");
  PrepOptions o;
  o.out = dir / "out";
  o.size = 0;
  o.max_bad = 0.5;
  auto r = run_prep(c, o);
  EXPECT_EQ(r.images_stored, 2u);
  io::ImageStore store(o.out);
  EXPECT_EQ(store.read("000000001"), jpeg(20, 20, 2)) << "unchanged JPEGs are stored as they are";
}

TEST(PrepPipeline, BrokenImagesAreSkippedCountedAndReported) {
  TempDir dir("robust");
  make_pairs(dir, 2);
  std::string good = jpeg(64, 48, 9);
  std::string damaged = good;
  damaged[good.size() / 2] = 0;
  damaged[good.size() / 2 + 1] = 0x5a;
  std::string huge = good;
  for (size_t i = 2; i + 8 < huge.size(); ++i)
    if (static_cast<uint8_t>(huge[i]) == 0xFF && static_cast<uint8_t>(huge[i + 1]) == 0xC0) {
      huge[i + 5] = huge[i + 7] = static_cast<char>(0xFF);
      break;
    }
  write_bytes(dir / "img/empty.jpg", "");
  write_bytes(dir / "img/trunc.jpg", good.substr(0, good.size() / 3));
  write_bytes(dir / "img/text.jpg", "not an image at all");
  write_bytes(dir / "img/damaged.jpg", damaged);
  write_bytes(dir / "img/huge.jpg", huge);
  ASSERT_TRUE(pil("make wide.png " + (dir / "img/wide.png")));
  std::string ann = R"([{"image":"img/0.jpg","caption":"ok"},{"image":"img/missing.jpg","caption":"m"},)"
                    R"({"image":"img/empty.jpg","caption":"e"},{"image":"img/trunc.jpg","caption":"t"},)"
                    R"({"image":"img/text.jpg","caption":"x"},{"image":"img/damaged.jpg","caption":"d"},)"
                    R"({"image":"img/huge.jpg","caption":["h1","h2"]},{"image":"img/1.jpg","caption":"ok"},)"
                    R"({"image":"img/wide.png","caption":"w"}])";
  write_bytes(dir / "pairs.json", ann);
  Collection c = pairs_collection(dir);
  PrepOptions o;
  o.out = dir / "out";
  o.size = 24;
  o.max_bad = 0.9;
  auto r = run_prep(c, o);
  EXPECT_EQ(r.images_stored, 2u);
  EXPECT_EQ(r.images_skipped, 7u);
  EXPECT_EQ(r.records_skipped, 8u);
  auto m = io::read_json(dir / "out/manifest.json");
  EXPECT_EQ(m["skipped_by_reason"].dump(),
            R"({"damaged":1,"empty":1,"missing":1,"not_an_image":1,"too_large":1,"truncated":1,"unsupported":1})");
  bool found = false;
  for (const auto& s : m["skipped"])
    if (s["image"] == "img/huge.jpg") {
      found = true;
      EXPECT_EQ(s["records_total"], 2);
      EXPECT_EQ(s["records"][0], dir / "pairs.json" + ": [6]");
    }
  EXPECT_TRUE(found);
  // Stored images have the shorter side at 24.
  io::ImageStore store(o.out);
  image::Image img = image::decode(store.read("img_0"));
  EXPECT_EQ(img.height, 24);
  EXPECT_EQ(img.width, 32);

  // Past --max-bad: exit-3 error, after the manifest and records are written.
  eve::io::remove_tree(dir / "out");
  o.max_bad = 0.001;
  EXPECT_THROW(run_prep(c, o), TooManyBadInputs);
  EXPECT_TRUE(fs::exists(dir / "out/manifest.json"));
  EXPECT_TRUE(fs::exists(dir / "out/train.jsonl"));
}

TEST(PrepPipeline, OutputIndependentOfThreadsAndResumesAfterInterrupt) {
  TempDir dir("resume");
  make_pairs(dir, 23);
  PrepOptions o;
  o.size = 20;
  o.batch_images = 5;
  o.shard_bytes = 8000;  // several image shards
  Collection c = pairs_collection(dir);
  o.out = dir / "one";
  o.threads = 1;
  run_prep(c, o);
  o.out = dir / "three";
  o.threads = 3;
  run_prep(c, o);
  auto one = read_tree(dir / "one");
  EXPECT_GT(one.count("images-00001.tar"), 0u);
  EXPECT_TRUE(one == read_tree(dir / "three"));

  // Interrupted after two batches, then rerun: same bytes, finished batches reused.
  o.out = dir / "resumed";
  o.on_batch_done = [](size_t b, size_t) {
    if (b == 1) signals::request_stop(SIGINT);
  };
  EXPECT_THROW(run_prep(c, o), Interrupted);
  signals::reset();
  EXPECT_FALSE(fs::exists(dir / "resumed/manifest.json"));
  o.on_batch_done = nullptr;
  auto r = run_prep(c, o);
  EXPECT_EQ(r.images_reused, 10u);
  EXPECT_TRUE(one == read_tree(dir / "resumed"));
  EXPECT_FALSE(fs::exists(dir / "resumed/.prep-work"));

  // A finished dir is recognised: the rerun does nothing and reports the same counts.
  auto before = fs::last_write_time(dir / "resumed/images.idx");
  r = run_prep(c, o);
  EXPECT_EQ(r.images_stored, 23u);
  EXPECT_EQ(fs::last_write_time(dir / "resumed/images.idx"), before);
  // Changed options redo the work.
  o.quality = 80;
  r = run_prep(c, o);
  EXPECT_FALSE(read_bytes(dir / "resumed/images.idx") == one["images.idx"]);
}

TEST(PrepPipeline, ShardsAreDisjointAndCoverEverything) {
  TempDir dir("shard");
  make_pairs(dir, 9);
  Collection c = pairs_collection(dir);
  PrepOptions o;
  o.size = 0;
  size_t records = 0, images = 0;
  std::set<std::string> keys;
  for (int i = 0; i < 3; ++i) {
    o.shard_index = i;
    o.shard_count = 3;
    o.out = dir / ("part" + std::to_string(i));
    auto r = run_prep(c, o);
    records += r.records_written;
    images += r.images_stored;
    for (const auto& k : io::ImageStore(o.out).keys()) keys.insert(k);
  }
  EXPECT_EQ(records, 18u);
  EXPECT_EQ(images, 9u);
  EXPECT_EQ(keys.size(), 9u);
}
