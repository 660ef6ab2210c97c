// eve-embed's library: embeddings equal a direct forward of the same inputs, rows are
// normalised, parts + resume, shards cover every input once, bad images are skipped and
// counted, text records with ids / ids_list and their row ids, error texts.
#include <gtest/gtest.h>
#include <torch/torch.h>

#include <cstring>
#include <filesystem>
#include <fstream>

#include "eve/core/error.h"
#include "eve/image/codec.h"
#include "eve/image/preprocess.h"
#include "eve/io/jsonl.h"
#include "eve/io/npy.h"
#include "eve/model/retrieval_encoder.h"
#include "eve/search/embed.h"
#include "common/model_test_util.h"

namespace eve::search {
namespace {

using model::test::TempDir;
namespace fs = std::filesystem;

model::ModelConfig retrieval_config() {
  model::ModelConfig c = model::test::tiny_config();
  c.heads = {"itc", "itm"};
  return c;
}

// A bundle with fresh random weights; returns its dir.
std::string make_bundle(const TempDir& t) {
  torch::manual_seed(11);
  model::EveModel m(retrieval_config());
  model::save_bundle(*m, t / "bundle");
  return t / "bundle";
}

// A JPEG of a smooth pattern that depends on `seed`.
std::string make_jpeg(int seed, int w = 40, int h = 30) {
  image::Image img(w, h);
  for (int y = 0; y < h; ++y)
    for (int x = 0; x < w; ++x) {
      uint8_t* p = img.at(x, y);
      p[0] = static_cast<uint8_t>((x * 6 + seed * 37) & 255);
      p[1] = static_cast<uint8_t>((y * 8 + seed * 91) & 255);
      p[2] = static_cast<uint8_t>(((x + y) * 3 + seed * 13) & 255);
    }
  return image::encode_jpeg(img);
}

cli::CommonOptions quiet_common(int threads = 2) {
  cli::CommonOptions c;
  c.threads = threads;
  c.quiet = true;
  c.device = "cpu";
  return c;
}

torch::Tensor read_matrix(const std::string& path) {
  io::NpyArray a = io::read_npy(path);
  EXPECT_EQ(a.shape.size(), 2u) << path;
  std::vector<float> v = a.to_f32();
  return torch::from_blob(v.data(), {a.shape[0], a.shape[1]}, torch::kFloat32).clone();
}

std::vector<std::string> read_lines(const std::string& path) {
  std::vector<std::string> out;
  std::ifstream f(path);
  for (std::string l; std::getline(f, l);) out.push_back(l);
  return out;
}

// Concatenation of parts 0..n-1 (matrix, ids).
std::pair<torch::Tensor, std::vector<std::string>> read_parts(const std::string& out, int n) {
  std::vector<torch::Tensor> mats;
  std::vector<std::string> ids;
  for (int p = 0; p < n; ++p) {
    mats.push_back(read_matrix(embed_output_path(out, p, false)));
    auto l = read_lines(embed_output_path(out, p, true));
    ids.insert(ids.end(), l.begin(), l.end());
  }
  return {torch::cat(mats), ids};
}

// The reference: decode + evaluation transform + one batched vision pass + ITC head.
torch::Tensor direct_image_embeddings(const std::string& bundle, const std::vector<std::string>& jpegs) {
  model::Bundle b = model::load_bundle(bundle);
  b.model->eval();
  torch::NoGradGuard ng;
  const int res = b.config.image_res;
  torch::Tensor px = torch::empty({static_cast<int64_t>(jpegs.size()), 3, res, res});
  for (size_t i = 0; i < jpegs.size(); ++i)
    image::eval_transform(image::decode(jpegs[i]), res, px[i].data_ptr<float>());
  model::EncoderInput in;
  in.image = px;
  return b.model->itc_image(b.model->encode(model::Mode::vision, in).pooled);
}

struct ImageSet {
  std::vector<std::string> jpegs;  // good images in order
  std::vector<std::string> ids;    // their expected ids (JSON)
  std::string list;                // list file: good images + a corrupt one + a missing one
};

ImageSet write_images(const TempDir& t, int n) {
  ImageSet s;
  fs::create_directories(t / "img");
  std::ofstream list(t / "list.txt");
  for (int i = 0; i < n; ++i) {
    std::string path = t / ("img/" + std::to_string(i) + ".jpg");
    s.jpegs.push_back(make_jpeg(i, 30 + 3 * i, 28 + i));
    io::write_file_atomic(path, s.jpegs.back());
    list << path << "\n";
    s.ids.push_back("\"" + path + "\"");
    if (i == 2) {
      io::write_file_atomic(t / "img/bad.jpg", "this is not a JPEG at all");
      list << t / "img/bad.jpg" << "\n\n";  // and a blank line, ignored
    }
    if (i == 4) list << t / "img/gone.jpg" << "\n";
  }
  s.list = t / "list.txt";
  return s;
}

TEST(Embed, ImagesEqualADirectForwardAcrossPartsAndResume) {
  TempDir t;
  const std::string bundle = make_bundle(t);
  ImageSet s = write_images(t, 7);  // 9 inputs: 7 good, 1 corrupt, 1 missing
  EmbedOptions o;
  o.model = bundle;
  o.images = {s.list};
  o.out = t / "emb.npy";
  o.batch_size = 2;
  o.part_size = 4;  // parts of 4, 4, 1 inputs
  o.max_bad = 0.5;
  EmbedReport r = run_embed(o, quiet_common());
  EXPECT_EQ(r.rows, 7);
  EXPECT_EQ(r.parts_written, 3);
  EXPECT_EQ(r.bad, 2);
  EXPECT_EQ(r.bad_by_reason["missing"], 1);
  EXPECT_EQ(r.bad_by_reason["not_an_image"], 1);
  EXPECT_FALSE(io::file_exists(t / "emb.npy"));

  auto [got, ids] = read_parts(o.out, 3);
  EXPECT_EQ(ids, s.ids);
  torch::Tensor want = direct_image_embeddings(bundle, s.jpegs);
  ASSERT_EQ(got.sizes(), want.sizes());
  EXPECT_LE((got - want).abs().max().item<double>(), 1e-5);
  EXPECT_LE((got.norm(2, 1) - 1).abs().max().item<double>(), 1e-5);
  EXPECT_EQ(got.size(1), retrieval_config().vision_width);

  // A rerun skips finished parts: part 0 keeps what it holds, the removed part 1 returns.
  io::write_file_atomic(embed_output_path(o.out, 0, true), "\"kept\"\n");
  fs::remove(embed_output_path(o.out, 1, false));
  r = run_embed(o, quiet_common(1));
  EXPECT_EQ(r.parts_written, 1);
  EXPECT_EQ(r.parts_skipped, 2);
  EXPECT_EQ(read_lines(embed_output_path(o.out, 0, true)), std::vector<std::string>{"\"kept\""});
  // (one thread instead of two: the same rows up to float rounding in the matrix products)
  EXPECT_LE((read_matrix(embed_output_path(o.out, 1, false)) - got.narrow(0, 3, 3)).abs().max().item<double>(),
            1e-6);

  // Half precision: the same rows rounded to float16.
  o.out = t / "half";
  o.half = true;
  o.part_size = 0;
  run_embed(o, quiet_common());
  EXPECT_EQ(io::read_npy(t / "half.npy").dtype, io::DType::f16);
  EXPECT_LE((read_matrix(t / "half.npy") - want).abs().max().item<double>(), 1e-3);
  EXPECT_EQ(read_lines(t / "half.ids.jsonl"), s.ids);
}

TEST(Embed, ShardsCoverEveryInputOnceAndMatchOneRun) {
  TempDir t;
  const std::string bundle = make_bundle(t);
  ImageSet s = write_images(t, 6);
  EmbedOptions o;
  o.model = bundle;
  o.images = {s.list};
  o.batch_size = 3;
  o.part_size = 2;  // 8 inputs -> 4 parts
  o.max_bad = 0.5;
  o.out = t / "all";
  run_embed(o, quiet_common());
  o.out = t / "sh";
  o.shard_count = 3;
  int64_t rows = 0;
  for (int i = 0; i < 3; ++i) {
    o.shard_index = i;
    rows += run_embed(o, quiet_common(1 + i)).rows;
  }
  EXPECT_EQ(rows, 6);
  auto [a, aids] = read_parts(t / "all", 4);
  auto [b, bids] = read_parts(t / "sh", 4);
  EXPECT_EQ(aids, bids);
  EXPECT_EQ(aids, s.ids);
  EXPECT_LE((a - b).abs().max().item<double>(), 1e-6);
  EXPECT_FALSE(io::file_exists(embed_output_path(t / "sh", 4, false)));
}

TEST(Embed, TooManyBadImagesFailAfterWriting) {
  TempDir t;
  const std::string bundle = make_bundle(t);
  ImageSet s = write_images(t, 5);
  EmbedOptions o;
  o.model = bundle;
  o.images = {s.list};
  o.out = t / "e";
  o.max_bad = 0.1;
  try {
    run_embed(o, quiet_common());
    FAIL() << "no error";
  } catch (const TooManyBadInputs& e) {
    EXPECT_EQ(std::string(e.what()), "2 of 7 images were bad (0.2857 > --max-bad 0.1)");
  }
  EXPECT_EQ(read_lines(t / "e.ids.jsonl"), s.ids);
}

TEST(Embed, TextsWithIdsAndIdsListsEqualADirectForward) {
  TempDir t;
  const std::string bundle = make_bundle(t);
  const auto c = retrieval_config();
  std::vector<int64_t> long_text{2};
  for (int i = 0; i < 20; ++i) long_text.push_back(10 + i);
  long_text.push_back(3);
  ASSERT_GT(static_cast<int>(long_text.size()), c.max_text_len);
  std::string recs =
      "{\"question_id\": 7, \"ids\": [2, 50, 60, 3]}\n"
      "{\"image\": \"cat\", \"texts\": [\"a\", \"b\"], \"ids_list\": [[2, 70, 3], [2, 71, 72, 73, 3]]}\n"
      "{\"ids\": " + io::json(long_text).dump() + "}\n";
  io::write_file_atomic(t / "texts.jsonl", recs);
  EmbedOptions o;
  o.model = bundle;
  o.texts = t / "texts.jsonl";
  o.out = t / "txt";
  o.batch_size = 3;
  EmbedReport r = run_embed(o, quiet_common());
  EXPECT_EQ(r.rows, 4);
  EXPECT_EQ(r.truncated, 1);
  EXPECT_EQ(read_lines(t / "txt.ids.jsonl"),
            (std::vector<std::string>{"7", "\"cat#0\"", "\"cat#1\"", "2"}));
  torch::Tensor got = read_matrix(t / "txt.npy");

  // Direct: each text alone, padded to max_text_len; the long one cut with [SEP] last.
  model::Bundle b = model::load_bundle(bundle);
  b.model->eval();
  torch::NoGradGuard ng;
  std::vector<int64_t> cut(long_text.begin(), long_text.begin() + c.max_text_len);
  cut.back() = 3;
  std::vector<std::vector<int64_t>> texts{{2, 50, 60, 3}, {2, 70, 3}, {2, 71, 72, 73, 3}, cut};
  for (size_t i = 0; i < texts.size(); ++i) {
    model::EncoderInput in;
    in.text_ids = torch::tensor(texts[i], torch::kLong).unsqueeze(0);
    torch::Tensor want = b.model->itc_text(b.model->encode(model::Mode::text, in).pooled)[0];
    EXPECT_LE((got[i] - want).abs().max().item<double>(), 1e-5) << i;
  }

  // --id-field picks another field.
  o.id_field = "image";
  io::write_file_atomic(t / "t2.jsonl", "{\"image\": 5, \"ids\": [2, 3]}\n");
  o.texts = t / "t2.jsonl";
  o.out = t / "t2";
  run_embed(o, quiet_common());
  EXPECT_EQ(read_lines(t / "t2.ids.jsonl"), std::vector<std::string>{"5"});
}

std::string error_of(const EmbedOptions& o) {
  try {
    run_embed(o, quiet_common());
  } catch (const Error& e) {
    return format_error(e.message(), e.file(), e.where(), e.hint());
  }
  return "no error";
}

TEST(Embed, ErrorsNameTheRecordAndTheProblem) {
  TempDir t;
  const std::string bundle = make_bundle(t);
  EmbedOptions o;
  o.model = bundle;
  o.out = t / "x";
  o.texts = t / "r.jsonl";
  io::write_file_atomic(o.texts, "{\"ids\": [2, 3]}\n{\"text\": \"no ids\"}\n");
  EXPECT_EQ(error_of(o), o.texts +
                             ":2: record has no \"ids\" or \"ids_list\" (encode the texts first: "
                             "eve-tokenize encode -m tok.model | eve-embed --texts -)");
  io::write_file_atomic(o.texts, "{\"ids\": [2, 999, 3]}\n");
  EXPECT_EQ(error_of(o), o.texts +
                             ":1: token id 999 in \"ids\" is outside the model's vocabulary of 300 "
                             "(encode with the tokenizer the model was trained with)");
  io::write_file_atomic(o.texts, "{\"ids\": []}\n");
  EXPECT_EQ(error_of(o), o.texts + ":1: \"ids\" must be a non-empty list of token ids");
  o.id_field = "key";
  io::write_file_atomic(o.texts, "{\"ids\": [2]}\n");
  EXPECT_EQ(error_of(o), o.texts + ":1: no id field \"key\" (pick another with --id-field)");

  o.texts.clear();
  o.id_field.clear();
  o.images = {t / "nothing-here"};
  EXPECT_EQ(error_of(o), t / "nothing-here" + ": no such file or directory");
  o.part_size = 0;
  o.shard_count = 2;
  EXPECT_EQ(error_of(o), "--shard needs --part-size (shards are made of whole parts)");

  // A bundle without the itc head cannot embed.
  model::ModelConfig c = model::test::tiny_config();
  model::EveModel m(c);
  model::save_bundle(*m, t / "plain");
  o.shard_count = 1;
  o.model = t / "plain";
  EXPECT_EQ(error_of(o), t / "plain/config.json" +
                             ": the model has no itc head (use a bundle trained or fine-tuned for "
                             "retrieval, with the itc head)");
}

TEST(Embed, ShardSyntax) {
  int i = 0, n = 0;
  parse_shard("2/5", i, n);
  EXPECT_EQ(i, 2);
  EXPECT_EQ(n, 5);
  EXPECT_THROW(parse_shard("5/5", i, n), UsageError);
  EXPECT_THROW(parse_shard("1-2", i, n), UsageError);
  EXPECT_THROW(parse_shard("1/2x", i, n), UsageError);
  EXPECT_EQ(embed_output_path("a/b.npy", 3, true), "a/b-00003.ids.jsonl");
  EXPECT_EQ(embed_output_path("a/b", -1, false), "a/b.npy");
}

}  // namespace
}  // namespace eve::search
