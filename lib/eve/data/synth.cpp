#include "eve/data/synth.h"

#include <fmt/format.h>

#include <algorithm>
#include <cerrno>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <map>
#include <nlohmann/json.hpp>

#include "eve/core/error.h"
#include "eve/core/log.h"
#include "eve/core/threads.h"
#include "eve/core/version.h"
#include "eve/data/prep.h"
#include "eve/data/synth_world.h"
#include "eve/image/codec.h"
#include "eve/io/file.h"

namespace eve::data {
namespace {

using ojson = nlohmann::ordered_json;
namespace fs = std::filesystem;

// Independent random streams, so that changing one part never changes another.
enum Stream : uint64_t {
  kScene = 1, kCaption = 2, kQuestion = 3, kNoise = 4, kNlvr = 5, kNlvrNoise = 6, kColorQuestion = 7, kVgQuestion = 8,
  kNlvrCaption = 9
};

std::string image_name(int image_id) { return fmt::format("COCO_synth_{:012d}.jpg", image_id); }

struct Split {
  std::string name;
  int first, count;  // image indices [first, first + count)
};

void write_json(const std::string& path, const ojson& j) { io::write_file_atomic(path, j.dump() + "\n"); }

// The colour questions of one image as EVE/ALBEF VQA JSON entries; `key` numbers the image
// among all the world's images (question ids key * 1000 + 100 + colour).
void add_color_questions(ojson& out, const synth::Scene& scene, uint64_t seed, int64_t key, const std::string& image) {
  Rng rng(seed, kColorQuestion, static_cast<uint64_t>(key));
  int colour = 0;
  for (const auto& q : synth::color_questions(scene, rng))
    out.push_back({{"question_id", key * 1000 + 100 + colour++}, {"question", q.question}, {"answer", q.answers},
                   {"image", image}, {"dataset", "vqa"}});
}

// One question in the VQA v2 question and annotation files.
void add_question(ojson& questions, ojson& annotations, int image_id, int64_t qid, const synth::Question& q) {
  questions.push_back({{"image_id", image_id}, {"question", q.question}, {"question_id", qid}});
  ojson answers = ojson::array();
  for (size_t a = 0; a < q.answers.size(); ++a)
    answers.push_back({{"answer", q.answers[a]}, {"answer_confidence", q.confidences[a]},
                       {"answer_id", static_cast<int>(a) + 1}});
  annotations.push_back({{"question_type", q.question_type},
                         {"multiple_choice_answer", q.multiple_choice_answer},
                         {"answers", answers},
                         {"image_id", image_id},
                         {"answer_type", q.answer_type},
                         {"question_id", qid}});
}

ojson vqa_header(const std::string& split) {
  ojson h;
  h["info"] = {{"description", "eve synthetic shapes world"}, {"version", "1.0"}, {"year", 2026},
               {"contributor", "eve-prep synth"}, {"date_created", "synthetic"}};
  h["license"] = {{"name", "CC0 1.0"}, {"url", "https://creativecommons.org/publicdomain/zero/1.0/"}};
  h["data_type"] = "mscoco";
  h["data_subtype"] = "synth";
  h["split"] = split;
  return h;
}

void write_vqa_files(const std::string& prefix, const std::string& split, const ojson& questions,
                     const ojson& annotations) {
  ojson qf = vqa_header(split), af = vqa_header(split);
  qf["task_type"] = "Open-Ended";
  qf["questions"] = questions;
  af["annotations"] = annotations;
  write_json(prefix + "questions_" + split + ".json", qf);
  write_json(prefix + "annotations_" + split + ".json", af);
}

// Thousands of small images: written to a temp name and renamed into place (readers never
// see a partial file), without the per-file fsync of io::AtomicWriter.
void write_small_file(const std::string& path, const std::string& bytes) {
  const std::string tmp = path + ".tmp";
  FILE* f = std::fopen(tmp.c_str(), "wb");
  if (!f) throw Error(std::string("cannot create: ") + std::strerror(errno), tmp);
  const bool ok = std::fwrite(bytes.data(), 1, bytes.size(), f) == bytes.size();
  if (std::fclose(f) != 0 || !ok) {
    std::remove(tmp.c_str());
    throw Error("write failed", tmp);
  }
  if (std::rename(tmp.c_str(), path.c_str()) != 0) throw Error(std::string("cannot rename: ") + std::strerror(errno), path);
}

void render_to(const synth::Scene& scene, const SynthOptions& o, Rng rng, const std::string& path) {
  image::EncodeOptions enc;
  enc.quality = o.quality;
  write_small_file(path, image::encode_jpeg(synth::render(scene, o.size, rng), enc));
}

// Collects labels.jsonl: one record per image with the id a dataset dir prepared from the
// world's root gives it (eve-prep's own key rule, through a Collection, so the two never
// disagree), its path, its split and the scene's attributes.
class LabelWriter {
 public:
  void add(const std::string& image, const std::string& split, const synth::Scene& scene) {
    const synth::SceneLabels l = synth::scene_labels(scene);
    const std::string& key = keys_.images[keys_.image(image, image)].key;
    ojson rec = {{"id", key}, {"image", image}, {"split", split}, {"background", l.background},
                 {"colors", l.colors}, {"shapes", l.shapes}, {"count", l.count}};
    text_ += rec.dump() + "\n";
    ++records_;
  }
  int records() const { return records_; }
  const std::string& text() const { return text_; }

 private:
  Collection keys_;
  std::string text_;
  int records_ = 0;
};

}  // namespace

SynthReport write_synth_world(const SynthOptions& o) {
  if (o.out.empty()) throw UsageError("synth needs --out DIR");
  if (o.count < 3) throw UsageError("--count must be at least 3 (train, val and test need an image each)");
  if (o.size < 16 || o.size > 4096) throw UsageError("--size must be in 16..4096, got " + std::to_string(o.size));
  if (o.questions_per_image < 1 || o.questions_per_image > 8)
    throw UsageError("--questions must be in 1..8");
  const int nlvr_sets = o.nlvr_sets >= 0 ? o.nlvr_sets : std::max(3, o.count / 8);
  for (const char* sub : {"images", "vqa", "nlvr2/images/train", "nlvr2/images/dev", "nlvr2/images/test1"}) {
    std::error_code ec;
    fs::create_directories(fs::path(o.out) / sub, ec);
    if (ec) throw Error("cannot create directory: " + ec.message(), (fs::path(o.out) / sub).string());
  }
  const std::string dir = o.out + "/";
  ThreadPool pool(o.threads);
  SynthReport report;

  // The image pool with captions and questions.
  const int n_val = std::max(1, o.count / 10), n_test = std::max(1, o.count / 10);
  const std::vector<Split> splits = {{"train", 0, o.count - n_val - n_test},
                                     {"val", o.count - n_val - n_test, n_val},
                                     {"test", o.count - n_test, n_test}};
  std::vector<synth::Scene> scenes(static_cast<size_t>(o.count));
  std::vector<std::vector<std::string>> caps(scenes.size());
  std::vector<std::vector<synth::Question>> qs(scenes.size());
  parallel_for(pool, scenes.size(), [&](size_t i) {
    Rng scene_rng(o.seed, kScene, i), cap_rng(o.seed, kCaption, i), q_rng(o.seed, kQuestion, i);
    scenes[i] = synth::random_scene(scene_rng);
    caps[i] = synth::captions(scenes[i], cap_rng, 5);
    qs[i] = synth::questions(scenes[i], q_rng, o.questions_per_image);
    render_to(scenes[i], o, Rng(o.seed, kNoise, i), dir + "images/" + image_name(static_cast<int>(i) + 1));
  });
  report.images = o.count;

  std::string corpus;
  LabelWriter labels;
  std::map<std::string, int> answer_counts;
  std::map<std::string, ojson> colors = {{"train", ojson::array()}, {"val", ojson::array()}};
  for (const auto& sp : splits) {
    ojson pairs = ojson::array(), retrieval = ojson::array(), questions = ojson::array(), annotations = ojson::array();
    for (int i = sp.first; i < sp.first + sp.count; ++i) {
      const int image_id = i + 1;
      const std::string rel = "images/" + image_name(image_id);
      const auto& c = caps[static_cast<size_t>(i)];
      labels.add(rel, sp.name, scenes[static_cast<size_t>(i)]);
      report.captions += static_cast<int>(c.size());
      if (sp.name == "train") {
        pairs.push_back({{"image", rel}, {"caption", c}});
        for (const auto& t : c) retrieval.push_back({{"image", rel}, {"caption", t}, {"image_id", image_id}});
        for (const auto& t : c) corpus += t + "\n";
      } else {
        retrieval.push_back({{"image", rel}, {"caption", c}});
      }
      // The colour questions of an image: ids after its own questions' (image id * 1000 + k).
      if (sp.name != "test") add_color_questions(colors[sp.name], scenes[static_cast<size_t>(i)], o.seed, image_id, rel);
      int k = 0;
      for (const auto& q : qs[static_cast<size_t>(i)]) {
        add_question(questions, annotations, image_id, int64_t{image_id} * 1000 + k++, q);
        if (sp.name == "train") {
          corpus += q.question + "\n";
          for (const auto& a : q.answers) answer_counts[a]++;
        }
        report.questions++;
      }
    }
    if (sp.name == "train") write_json(dir + "pairs_train.json", pairs);
    write_json(dir + "retrieval_" + sp.name + ".json", retrieval);
    write_vqa_files(dir + "vqa/", sp.name, questions, annotations);
  }
  std::vector<std::pair<std::string, int>> answers(answer_counts.begin(), answer_counts.end());
  std::stable_sort(answers.begin(), answers.end(), [](const auto& a, const auto& b) { return a.second > b.second; });
  ojson answer_list = ojson::array();
  for (const auto& a : answers) answer_list.push_back(a.first);
  write_json(dir + "vqa/answer_list.json", answer_list);

  // NLVR2: each set is two sentences, each judged against four image pairs. The image pairs
  // are drawn so that the first sentence is true for two pairs and false for two.
  const int n_dev = std::max(1, nlvr_sets / 10), n_test1 = std::max(1, nlvr_sets / 10);
  const int n_train = std::max(1, nlvr_sets - n_dev - n_test1);
  struct PairJob {
    std::string split, stem;
    synth::Scene left, right;
    int set;
  };
  std::vector<PairJob> jobs;
  std::map<std::string, std::string> nlvr_lines;
  for (int set = 0; set < n_train + n_dev + n_test1; ++set) {
    const std::string split = set < n_train ? "train" : set < n_train + n_dev ? "dev" : "test1";
    Rng rng(o.seed, kNlvr, static_cast<uint64_t>(set));
    synth::Statement st[2] = {synth::random_statement(rng), synth::random_statement(rng)};
    while (st[1].text == st[0].text) st[1] = synth::random_statement(rng);
    // Wanted labels per pair: bit 0 for the first sentence, bit 1 for the second; every
    // combination once, so both sentences are true for two pairs and false for two.
    std::vector<int> targets = {0, 1, 2, 3};
    rng.shuffle(targets);
    for (int pair = 0; pair < 4; ++pair) {
      PairJob job{split, fmt::format("{}-{}-{}", split, set, pair), {}, {}, set};
      const int want = targets[static_cast<size_t>(pair)];
      bool have_first = false;  // fallback: a pair that at least gets the first label right
      synth::Scene first_left, first_right;
      bool found = false;
      for (int attempt = 0; attempt < 300 && !found; ++attempt) {
        job.left = synth::random_scene(rng);
        job.right = synth::random_scene(rng);
        for (int k = 0; k < 2; ++k) {
          const int mode = rng.below(4);  // what statement k talks about goes in: 0 none, 1 left, 2 right, 3 both
          for (int second = 0; second < 2; ++second) {
            if (mode & 1) st[k].inject(job.left, second == 1, rng);
            if (mode & 2) st[k].inject(job.right, second == 1, rng);
          }
        }
        const bool l0 = st[0].holds(job.left, job.right), l1 = st[1].holds(job.left, job.right);
        if (l0 == ((want & 1) != 0)) {
          found = l1 == ((want & 2) != 0);
          if (!have_first) {
            have_first = true;
            first_left = job.left;
            first_right = job.right;
          }
        }
      }
      if (!found && have_first) {
        job.left = first_left;
        job.right = first_right;
      }
      for (int s = 0; s < 2; ++s) {
        const std::string identifier = fmt::format("{}-{}-{}-{}", split, set, pair, s);
        ojson line = {{"identifier", identifier},
                      {"sentence", st[s].text},
                      {"left_url", "synth://" + job.stem + "-img0.jpg"},
                      {"right_url", "synth://" + job.stem + "-img1.jpg"},
                      {"label", st[s].holds(job.left, job.right) ? "True" : "False"},
                      {"writer", "synth"},
                      {"synset", "shapes"},
                      {"query", "synth"},
                      {"validation", ojson::object()},
                      {"extra_validations", ojson::object()}};
        nlvr_lines[split] += line.dump() + "\n";
        report.statements++;
      }
      if (split == "train" && pair == 0) corpus += st[0].text + "\n" + st[1].text + "\n";
      jobs.push_back(std::move(job));
    }
  }
  // Questions about the NLVR2 images, keyed by image among all the world's images:
  // - colour questions about the training images: many more distinct images to learn finding
  //   colours from than the pool's training split alone;
  // - Visual Genome-style QA, the pool's question forms in EVE's VG QA form. Those about the
  //   training images are extra VQA training data (EVE trains VQA on VQA v2 plus VG QA); those
  //   about the dev images are a validation set, 16x the pool's with the demo's --nlvr-sets
  //   2000. Not in the corpus: the pool's questions already hold every form.
  std::map<std::string, ojson> vg = {{"train", ojson::array()}, {"dev", ojson::array()}};
  for (size_t j = 0; j < jobs.size(); ++j) {
    if (jobs[j].split == "test1") continue;
    const int64_t key = o.count + 1 + 2 * static_cast<int64_t>(j);
    const std::string base = "nlvr2/images/" + jobs[j].split + "/" + jobs[j].stem;
    for (int side = 0; side < 2; ++side) {
      const synth::Scene& scene = side == 0 ? jobs[j].left : jobs[j].right;
      const std::string image = base + "-img" + std::to_string(side) + ".jpg";
      if (jobs[j].split == "train") add_color_questions(colors["train"], scene, o.seed, key + side, image);
      Rng rng(o.seed, kVgQuestion, static_cast<uint64_t>(key + side));
      int k = 0;
      for (const auto& q : synth::questions(scene, rng, o.questions_per_image))
        vg[jobs[j].split].push_back({{"question_id", (key + side) * 1000 + k++}, {"question", q.question},
                                     {"answer", q.answers}, {"image", image}, {"dataset", "vg"}});
    }
  }
  // Captions of the NLVR2 training images, five each as the pool's, for pre-training on more
  // than the pool's images (their own stream: every other file stays as it was).
  ojson nlvr_pairs = ojson::array();
  for (size_t j = 0; j < jobs.size(); ++j) {
    if (jobs[j].split != "train") continue;
    for (int side = 0; side < 2; ++side) {
      Rng rng(o.seed, kNlvrCaption, 2 * j + static_cast<uint64_t>(side));
      nlvr_pairs.push_back({{"image", "nlvr2/images/train/" + jobs[j].stem + "-img" + std::to_string(side) + ".jpg"},
                            {"caption", synth::captions(side == 0 ? jobs[j].left : jobs[j].right, rng, 5)}});
    }
  }
  write_json(dir + "pairs_nlvr2_train.json", nlvr_pairs);
  write_json(dir + "vqa/vg_qa.json", vg["train"]);
  write_json(dir + "vqa/vg_qa_val.json", vg["dev"]);
  report.vg_questions = static_cast<int>(vg["train"].size() + vg["dev"].size());
  for (const auto& [split, list] : colors) {
    write_json(dir + "vqa/colors_" + split + ".json", list);
    report.color_questions += static_cast<int>(list.size());
  }

  parallel_for(pool, jobs.size(), [&](size_t j) {
    const auto& job = jobs[j];
    const std::string base = dir + "nlvr2/images/" + job.split + "/" + job.stem;
    render_to(job.left, o, Rng(o.seed, kNlvrNoise, j * 2), base + "-img0.jpg");
    render_to(job.right, o, Rng(o.seed, kNlvrNoise, j * 2 + 1), base + "-img1.jpg");
  });
  report.nlvr_images = static_cast<int>(jobs.size()) * 2;
  for (const auto& job : jobs)
    for (int side = 0; side < 2; ++side)
      labels.add("nlvr2/images/" + job.split + "/" + job.stem + "-img" + std::to_string(side) + ".jpg",
                 "nlvr2_" + job.split, side == 0 ? job.left : job.right);
  io::write_file_atomic(dir + "labels.jsonl", labels.text());
  report.labels = labels.records();
  for (const char* split : {"train", "dev", "test1"})
    io::write_file_atomic(dir + "nlvr2/" + split + ".json", nlvr_lines[split]);
  io::write_file_atomic(dir + "corpus.txt", corpus);

  ojson meta;
  meta["generator"] = "eve-prep synth";
  meta["seed"] = o.seed;
  meta["count"] = o.count;
  meta["size"] = o.size;
  meta["quality"] = o.quality;
  meta["questions_per_image"] = o.questions_per_image;
  meta["nlvr_sets"] = n_train + n_dev + n_test1;
  meta["splits"] = ojson::object();
  for (const auto& sp : splits) meta["splits"][sp.name] = sp.count;
  meta["counts"] = {{"images", report.images}, {"nlvr_images", report.nlvr_images}, {"captions", report.captions},
                    {"questions", report.questions}, {"color_questions", report.color_questions},
                    {"vg_questions", report.vg_questions}, {"statements", report.statements},
                    {"labels", report.labels}};
  write_json(dir + "synth.json", meta);
  return report;
}

}  // namespace eve::data
