#include <gtest/gtest.h>

#include <algorithm>
#include <cctype>
#include <filesystem>
#include <map>
#include <set>

#include "eve/data/synth.h"
#include "eve/data/synth_world.h"
#include "eve/image/codec.h"
#include "eve/io/jsonl.h"
#include "common/image_test_util.h"

using namespace eve;
using namespace eve::data;
using namespace eve::testutil;
namespace fs = std::filesystem;

namespace {

SynthOptions small_world(const std::string& out, uint64_t seed, int threads) {
  SynthOptions o;
  o.out = out;
  o.seed = seed;
  o.count = 30;
  o.size = 32;
  o.nlvr_sets = 6;
  o.threads = threads;
  return o;
}

std::vector<io::json> read_records(const std::string& path) {
  io::JsonlReader in(path);
  std::vector<io::json> out;
  for (io::json r; in.next(r);) out.push_back(r);
  return out;
}

}  // namespace

TEST(SynthWorld, SameSeedGivesIdenticalBytesWhateverTheThreads) {
  TempDir dir("synth");
  write_synth_world(small_world(dir / "a", 7, 1));
  write_synth_world(small_world(dir / "b", 7, 3));
  write_synth_world(small_world(dir / "c", 8, 2));
  auto a = read_tree(dir / "a"), b = read_tree(dir / "b"), c = read_tree(dir / "c");
  EXPECT_EQ(a.size(), b.size());
  EXPECT_TRUE(a == b);
  EXPECT_FALSE(a == c) << "another seed must give another world";
  for (const char* f : {"pairs_train.json", "retrieval_train.json", "retrieval_val.json", "retrieval_test.json",
                        "vqa/questions_train.json", "vqa/annotations_val.json", "vqa/answer_list.json",
                        "vqa/colors_train.json", "vqa/colors_val.json", "vqa/vg_qa.json", "vqa/vg_qa_val.json",
                        "nlvr2/train.json", "nlvr2/dev.json", "nlvr2/test1.json", "corpus.txt", "synth.json"})
    EXPECT_EQ(a.count(f), 1u) << f;
  EXPECT_EQ(a.count("images/COCO_synth_000000000030.jpg"), 1u);
  EXPECT_EQ(a.count("nlvr2/images/train/train-0-3-img1.jpg"), 1u);
}

TEST(SynthWorld, WritesOfficialFormats) {
  TempDir dir("synthfmt");
  auto r = write_synth_world(small_world(dir.path, 1, 2));
  EXPECT_EQ(r.images, 30);
  EXPECT_EQ(r.captions, 150);
  // Images decode at the requested size.
  image::Image img = image::decode(read_bytes(dir / "images/COCO_synth_000000000001.jpg"));
  EXPECT_EQ(img.width, 32);
  EXPECT_EQ(img.height, 32);
  // VQA v2: question ids image_id*1000+k, ten answers, the five header keys.
  auto q = io::read_json(dir / "vqa/questions_train.json");
  auto a = io::read_json(dir / "vqa/annotations_train.json");
  for (const char* key : {"info", "task_type", "data_type", "data_subtype", "license"}) EXPECT_TRUE(q.contains(key)) << key;
  ASSERT_EQ(q["questions"].size(), a["annotations"].size());
  std::set<std::string> types;
  for (size_t i = 0; i < q["questions"].size(); ++i) {
    const auto& qq = q["questions"][i];
    const auto& aa = a["annotations"][i];
    EXPECT_EQ(qq["question_id"], aa["question_id"]);
    EXPECT_EQ(qq["question_id"].get<int64_t>() / 1000, qq["image_id"].get<int64_t>());
    ASSERT_EQ(aa["answers"].size(), 10u);
    EXPECT_EQ(aa["answers"][9]["answer_id"], 10);
    types.insert(aa["answer_type"].get<std::string>());
  }
  EXPECT_EQ(types, (std::set<std::string>{"yes/no", "number", "other"}));
  // Karpathy: train one caption per line with image_id, test one entry per image.
  auto test = io::read_json(dir / "retrieval_test.json");
  ASSERT_EQ(test.size(), 3u);
  EXPECT_EQ(test[0]["caption"].size(), 5u);
  // NLVR2: identifiers split-set-pair-sentence, each (set, sentence) group has 4 pairs.
  io::JsonlReader nlvr(dir / "nlvr2/train.json");
  io::json rec;
  std::map<std::string, int> groups;
  int lines = 0, true_by_sentence[2] = {0, 0};
  while (nlvr.next(rec)) {
    std::string id = rec["identifier"];
    ASSERT_EQ(std::count(id.begin(), id.end(), '-'), 3) << id;
    std::string group = id.substr(0, id.find('-', id.find('-') + 1)) + "-" + id.substr(id.rfind('-') + 1);
    groups[group]++;
    EXPECT_TRUE(rec["label"] == "True" || rec["label"] == "False");
    true_by_sentence[id.back() - '0'] += rec["label"] == "True";
    ++lines;
  }
  EXPECT_EQ(lines, 4 * 8);
  for (const auto& [g, n] : groups) EXPECT_EQ(n, 4) << g;
  // Both sentences of a set are true for about half of its pairs.
  for (int t : true_by_sentence) {
    EXPECT_GE(t, 5);
    EXPECT_LE(t, 11);
  }
}

TEST(SynthWorld, AnswersFollowTheScene) {
  for (uint64_t i = 0; i < 200; ++i) {
    Rng rng(5, 1, i);
    synth::Scene s = synth::random_scene(rng);
    ASSERT_GE(s.objects.size(), 1u);
    ASSERT_LE(s.objects.size(), 4u);
    auto caps = synth::captions(s, rng, 5);
    ASSERT_EQ(caps.size(), 5u);
    EXPECT_EQ(std::set<std::string>(caps.begin(), caps.end()).size(), 5u);
    for (const auto& q : synth::questions(s, rng, 4)) {
      ASSERT_EQ(q.answers.size(), 10u);
      if (q.question == "how many shapes are there?") EXPECT_EQ(q.truth, std::to_string(s.objects.size()));
      if (q.question_type == "is the" && q.question.rfind("is the background ", 0) == 0) {
        bool is = q.question == std::string("is the background ") + synth::pattern_name(s.pattern) + "?";
        EXPECT_EQ(q.truth, is ? "yes" : "no");
      }
      // The majority answer is what most annotators said.
      int agree = static_cast<int>(std::count(q.answers.begin(), q.answers.end(), q.multiple_choice_answer));
      for (const auto& a : q.answers) EXPECT_LE(std::count(q.answers.begin(), q.answers.end(), a), agree);
    }
  }
}

TEST(SynthWorld, ColourQuestionsAskEveryColourAndFollowTheScene) {
  int agree = 0, total = 0, yes = 0;
  for (uint64_t i = 0; i < 200; ++i) {
    Rng rng(5, 2, i);
    synth::Scene s = synth::random_scene(rng);
    auto qs = synth::color_questions(s, rng);
    ASSERT_EQ(qs.size(), static_cast<size_t>(synth::kColors));
    for (int c = 0; c < synth::kColors; ++c) {
      const auto& q = qs[static_cast<size_t>(c)];
      const auto color = static_cast<synth::Color>(c);
      const std::string name = synth::color_name(color);
      EXPECT_EQ(q.question, (name[0] == 'o' ? "is there an " : "is there a ") + name + " shape?");
      const bool present = std::any_of(s.objects.begin(), s.objects.end(),
                                       [&](const synth::Object& o) { return o.color == color; });
      EXPECT_EQ(q.truth, present ? "yes" : "no") << q.question;
      EXPECT_EQ(q.answer_type, "yes/no");
      ASSERT_EQ(q.answers.size(), 10u);
      agree += q.multiple_choice_answer == q.truth;
      yes += present;
      ++total;
    }
  }
  // Annotators err now and then; the majority is almost always right, and both answers occur.
  EXPECT_GE(agree, total * 97 / 100);
  EXPECT_GT(yes, total / 5);
  EXPECT_LT(yes, total * 4 / 5);

  // In the written world: one question per colour about every pool image of train and val,
  // and about both images of every NLVR2 training pair, in the EVE/ALBEF VQA form.
  TempDir dir("synthcolors");
  auto r = write_synth_world(small_world(dir.path, 1, 2));
  auto train = io::read_json(dir / "vqa/colors_train.json"), val = io::read_json(dir / "vqa/colors_val.json");
  const size_t nlvr_train_images = 2 * 4 * 4;  // 6 sets: 4 for training, of 4 pairs
  EXPECT_EQ(train.size(), (24 + nlvr_train_images) * synth::kColors);
  EXPECT_EQ(val.size(), 3u * synth::kColors);
  EXPECT_EQ(r.color_questions, static_cast<int>(train.size() + val.size()));
  std::set<int64_t> ids;
  std::set<std::string> images;
  for (const auto* list : {&train, &val})
    for (const auto& q : *list) {
      EXPECT_TRUE(ids.insert(q["question_id"].get<int64_t>()).second) << q.dump();
      EXPECT_EQ(q["answer"].size(), 10u);
      EXPECT_EQ(q["dataset"], "vqa");
      const std::string image = q["image"];
      EXPECT_TRUE(fs::exists(dir / image)) << image;
      images.insert(image);
    }
  EXPECT_EQ(images.count("images/COCO_synth_000000000024.jpg"), 1u);   // the last training image
  EXPECT_EQ(images.count("images/COCO_synth_000000000027.jpg"), 1u);   // the last val image
  EXPECT_EQ(images.count("images/COCO_synth_000000000028.jpg"), 0u);   // test images are not asked about
  EXPECT_EQ(images.count("nlvr2/images/train/train-3-3-img1.jpg"), 1u);
  EXPECT_EQ(images.size(), 24 + 3 + nlvr_train_images);
}

TEST(SynthWorld, VgQaAsksThePoolsFormsAboutTheNlvr2TrainAndDevImages) {
  TempDir dir("synthvg");
  auto r = write_synth_world(small_world(dir.path, 1, 2));
  auto train = io::read_json(dir / "vqa/vg_qa.json"), val = io::read_json(dir / "vqa/vg_qa_val.json");
  EXPECT_EQ(r.vg_questions, static_cast<int>(train.size() + val.size()));
  // The pool's and the colour questions' ids, to check that no VG id repeats one.
  std::set<int64_t> ids;
  for (const char* split : {"train", "val", "test"})
    for (const auto& q : io::read_json(dir / (std::string("vqa/questions_") + split + ".json"))["questions"])
      ids.insert(q["question_id"].get<int64_t>());
  for (const char* f : {"vqa/colors_train.json", "vqa/colors_val.json"})
    for (const auto& q : io::read_json(dir / f)) ids.insert(q["question_id"].get<int64_t>());
  // 6 sets: 4 for training, 1 dev, 1 test1, of 4 pairs each.
  for (const auto& [list, split, images] : {std::make_tuple(&train, std::string("train"), size_t{2 * 4 * 4}),
                                            std::make_tuple(&val, std::string("dev"), size_t{2 * 4})}) {
    std::map<std::string, int> per_image;
    int how_many = 0;
    for (const auto& q : *list) {
      EXPECT_TRUE(ids.insert(q["question_id"].get<int64_t>()).second) << q.dump();
      EXPECT_EQ(q["dataset"], "vg");
      EXPECT_EQ(q["answer"].size(), 10u);
      const std::string image = q["image"];
      EXPECT_EQ(image.rfind("nlvr2/images/" + split + "/", 0), 0u) << image;
      EXPECT_TRUE(fs::exists(dir / image)) << image;
      per_image[image]++;
      how_many += q["question"].get<std::string>().rfind("how many ", 0) == 0;
    }
    EXPECT_EQ(per_image.size(), images) << split;
    for (const auto& [image, n] : per_image) EXPECT_EQ(n, 4) << image;  // --questions 4
    // The pool's question makers: one number question per image among yes/no and other ones.
    EXPECT_EQ(how_many, static_cast<int>(images)) << split;
  }
}

TEST(SynthWorld, Nlvr2TrainingImagesAreCaptionedFromTheirOwnScenes) {
  TempDir dir("synthnlvrcaps");
  write_synth_world(small_world(dir.path, 1, 2));
  std::map<std::string, io::json> labels;
  for (const auto& rec : read_records(dir / "labels.jsonl")) labels[rec["image"].get<std::string>()] = rec;
  const auto pairs = io::read_json(dir / "pairs_nlvr2_train.json");
  ASSERT_EQ(pairs.size(), size_t{2 * 4 * 4});  // 4 training sets of 4 pairs
  std::set<std::string> images;
  for (const auto& p : pairs) {
    const std::string image = p["image"];
    EXPECT_EQ(image.rfind("nlvr2/images/train/", 0), 0u) << image;
    EXPECT_TRUE(images.insert(image).second) << image;
    EXPECT_TRUE(fs::exists(dir / image)) << image;
    ASSERT_EQ(p["caption"].size(), 5u) << image;
    // Five different captions, each naming colours of this image's scene only.
    std::set<std::string> distinct;
    const io::json& rec = labels.at(image);
    int named = 0;
    for (const auto& c : p["caption"]) {
      const std::string text = c;
      distinct.insert(text);
      std::string word;
      for (const char ch : text + " ") {
        if (std::isalpha(static_cast<unsigned char>(ch))) {
          word += ch;
          continue;
        }
        for (const char* colour : {"red", "green", "blue", "yellow", "purple", "orange"}) {
          if (word != colour) continue;
          ++named;
          EXPECT_NE(std::find(rec["colors"].begin(), rec["colors"].end(), word), rec["colors"].end())
              << text << " | " << rec.dump();
        }
        word.clear();
      }
    }
    EXPECT_EQ(distinct.size(), 5u) << image;
    EXPECT_GT(named, 0) << image;
  }
}

TEST(SynthWorld, StatementsMostlyNameColoursAndEveryKindOccurs) {
  Rng rng(12);
  std::map<int, int> kinds;
  int colour = 0;
  const int n = 3000;
  for (int i = 0; i < n; ++i) {
    synth::Statement st = synth::random_statement(rng);
    kinds[static_cast<int>(st.kind)]++;
    colour += st.color_a >= 0;
  }
  EXPECT_EQ(kinds.size(), 7u);
  for (const auto& [k, c] : kinds) EXPECT_GE(c, n / 20) << "kind " << k;
  // Both images contain X, and the left has X and the right Y, are the most frequent kinds.
  EXPECT_GT(kinds[static_cast<int>(synth::Statement::Kind::both_have)], n / 5);
  EXPECT_GT(kinds[static_cast<int>(synth::Statement::Kind::left_right)], n / 5);
  // Colours are what a small model finds first; most described objects have one.
  EXPECT_GT(colour, n * 3 / 4);
}

TEST(SynthWorld, StatementsNeedBothImagesAndBothLabelsOccur) {
  Rng rng(11);
  int true_count = 0, total = 0;
  for (int i = 0; i < 300; ++i) {
    synth::Statement st = synth::random_statement(rng);
    synth::Scene l = synth::random_scene(rng), r = synth::random_scene(rng);
    if (rng.chance(0.5)) st.inject(l, false, rng);
    if (rng.chance(0.5)) st.inject(r, false, rng);
    true_count += st.holds(l, r);
    ++total;
    if (st.kind == synth::Statement::Kind::both_have) {
      // Swapping one image for an empty-of-it scene flips the answer: it needs both.
      synth::Scene empty;
      EXPECT_FALSE(st.holds(l, empty));
      EXPECT_FALSE(st.holds(empty, r));
    }
  }
  EXPECT_GT(true_count, total / 5);
  EXPECT_LT(true_count, total * 4 / 5);
}

TEST(SynthWorld, RejectsBadOptions) {
  TempDir dir("synthbad");
  SynthOptions o = small_world(dir.path, 1, 1);
  o.count = 2;
  EXPECT_THROW(write_synth_world(o), UsageError);
  o = small_world(dir.path, 1, 1);
  o.size = 4;
  EXPECT_THROW(write_synth_world(o), UsageError);
}

// Per-image labels: read off the drawn scene, one record per image with eve-prep's key,
// the same for the same seed.
TEST(SynthLabels, DistinctColoursAndShapesInEnumOrder) {
  synth::Scene s;
  s.pattern = synth::Pattern::checkered;
  auto add = [&](synth::Shape sh, synth::Color c) {
    synth::Object o;
    o.shape = sh;
    o.color = c;
    s.objects.push_back(o);
  };
  add(synth::Shape::star, synth::Color::orange);
  add(synth::Shape::circle, synth::Color::red);
  add(synth::Shape::star, synth::Color::red);
  const synth::SceneLabels l = synth::scene_labels(s);
  EXPECT_EQ(l.background, "checkered");
  EXPECT_EQ(l.colors, (std::vector<std::string>{"red", "orange"}));
  EXPECT_EQ(l.shapes, (std::vector<std::string>{"circle", "star"}));
  EXPECT_EQ(l.count, 3);
}

TEST(SynthLabels, SameSeedSameLabelsWhateverTheThreads) {
  TempDir dir("synthlabels");
  write_synth_world(small_world(dir / "a", 3, 1));
  write_synth_world(small_world(dir / "b", 3, 3));
  write_synth_world(small_world(dir / "c", 4, 2));
  const std::string a = read_bytes(dir / "a/labels.jsonl");
  EXPECT_FALSE(a.empty());
  EXPECT_EQ(a, read_bytes(dir / "b/labels.jsonl"));
  EXPECT_NE(a, read_bytes(dir / "c/labels.jsonl"));
}

TEST(SynthLabels, OneRecordPerImageWithEvePrepsKeyAndTheScenesAttributes) {
  TempDir dir("synthlabels");
  const SynthReport r = write_synth_world(small_world(dir.path, 1, 2));
  const auto recs = read_records(dir / "labels.jsonl");
  ASSERT_EQ(recs.size(), static_cast<size_t>(r.images + r.nlvr_images));
  EXPECT_EQ(r.labels, static_cast<int>(recs.size()));
  EXPECT_EQ(recs[0]["id"], "images_COCO_synth_000000000001");
  EXPECT_EQ(recs[0]["image"], "images/COCO_synth_000000000001.jpg");
  EXPECT_EQ(recs[0]["split"], "train");
  EXPECT_EQ(recs[29]["split"], "test");
  EXPECT_EQ(recs[30]["image"], "nlvr2/images/train/train-0-0-img0.jpg");
  EXPECT_EQ(recs[30]["id"], "nlvr2_images_train_train-0-0-img0");
  EXPECT_EQ(recs[30]["split"], "nlvr2_train");
  std::set<std::string> ids, backgrounds;
  std::map<std::string, const io::json*> by_image;
  for (const auto& rec : recs) {
    EXPECT_TRUE(ids.insert(rec["id"].get<std::string>()).second) << rec.dump();
    EXPECT_TRUE(fs::exists(dir / rec["image"].get<std::string>())) << rec.dump();
    backgrounds.insert(rec["background"].get<std::string>());
    const int count = rec["count"];
    EXPECT_GE(count, 1);
    EXPECT_LE(count, 4);
    EXPECT_GE(rec["colors"].size(), 1u);
    EXPECT_LE(rec["colors"].size(), static_cast<size_t>(count));
    EXPECT_LE(rec["shapes"].size(), static_cast<size_t>(count));
    by_image[rec["image"]] = &rec;
  }
  EXPECT_EQ(backgrounds.size(), static_cast<size_t>(synth::kPatterns));
  // The colour questions are asked of the same scenes the images show: their majority
  // answer is "yes" exactly for the labelled colours, up to the annotators' rare slips.
  int agree = 0, total = 0;
  for (const auto& q : io::read_json(dir / "vqa/colors_train.json")) {
    const io::json& rec = *by_image.at(q["image"].get<std::string>());
    int yes = 0;
    for (const auto& a : q["answer"]) yes += a == "yes";
    const std::string question = q["question"];
    bool labelled = false;
    for (const auto& c : rec["colors"]) labelled = labelled || question.find(" " + c.get<std::string>() + " ") != std::string::npos;
    agree += (yes > 5) == labelled;
    ++total;
  }
  EXPECT_GT(total, 300);
  EXPECT_GE(agree, total * 95 / 100);
}
