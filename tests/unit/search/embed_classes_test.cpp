// Zero-shot class embeddings in eve-embed: prompts from class names and templates, and
// --group-by, which averages the normalised rows of each class and normalises again.
#include <gtest/gtest.h>
#include <torch/torch.h>

#include <fstream>

#include "eve/core/error.h"
#include "eve/io/file.h"
#include "eve/io/jsonl.h"
#include "eve/io/npy.h"
#include "eve/model/bundle.h"
#include "eve/search/embed.h"
#include "eve/search/embed_inputs.h"
#include "common/model_test_util.h"

namespace eve::search {
namespace {

using model::test::TempDir;

std::string bundle_in(const TempDir& t) {
  torch::manual_seed(5);
  model::EveModel m(model::test::retrieval_config());
  model::test::widen_weights(*m);
  model::save_bundle(*m, t / "bundle");
  return t / "bundle";
}

cli::CommonOptions quiet() {
  cli::CommonOptions c;
  c.threads = 1;
  c.quiet = true;
  c.device = "cpu";
  return c;
}

torch::Tensor matrix(const std::string& path) {
  io::NpyArray a = io::read_npy(path);
  std::vector<float> v = a.to_f32();
  return torch::from_blob(v.data(), {a.shape[0], a.shape[1]}, torch::kFloat32).clone();
}

std::string message_of(const std::function<void()>& f) {
  try {
    f();
  } catch (const Error& e) {
    return e.what();
  }
  return "no error";
}

TEST(EmbedClasses, GroupByAveragesTheNormalisedRowsOfEachValue) {
  TempDir t;
  EmbedOptions o;
  o.model = bundle_in(t);
  o.texts = t / "prompts.ids.jsonl";
  io::write_file_atomic(o.texts,
                        "{\"class\": \"red\", \"ids_list\": [[2, 5, 3], [2, 6, 9, 3]]}\n"
                        "{\"class\": \"blue\", \"ids\": [2, 7, 3]}\n"
                        "{\"class\": \"red\", \"ids\": [2, 8, 3]}\n");
  // Every text on its own row first: the rows the groups are made of.
  o.out = t / "each";
  o.batch_size = 3;
  run_embed(o, quiet());
  const torch::Tensor each = matrix(t / "each.npy").to(torch::kDouble);
  ASSERT_EQ(each.size(0), 4);

  o.out = t / "classes";
  o.group_by = "class";
  o.batch_size = 2;  // groups span batches
  EmbedReport r = run_embed(o, quiet());
  EXPECT_EQ(r.rows, 2);
  std::ifstream ids(t / "classes.ids.jsonl");
  std::string a, b;
  std::getline(ids, a);
  std::getline(ids, b);
  EXPECT_EQ(a, "\"red\"");
  EXPECT_EQ(b, "\"blue\"");
  const torch::Tensor got = matrix(t / "classes.npy").to(torch::kDouble);
  torch::Tensor red = each[0] + each[1] + each[3];
  red = red / red.norm();
  EXPECT_LE((got[0] - red).abs().max().item<double>(), 1e-6);
  EXPECT_LE((got[1] - each[2]).abs().max().item<double>(), 1e-6);
  // The mean differs from any one prompt: the average is really taken.
  EXPECT_GT((got[0] - each[0]).abs().max().item<double>(), 1e-3);

  const io::json meta = io::read_json(t / "classes.meta.json");
  EXPECT_EQ(meta["made_from"]["group_by"], "class");
  EXPECT_EQ(meta["rows"], 2);
  // A rerun finds the output made the same way; without --group-by it is another output.
  EXPECT_EQ(run_embed(o, quiet()).parts_skipped, 1);
  o.group_by.clear();
  const std::string refused = message_of([&] { run_embed(o, quiet()); });
  EXPECT_NE(refused.find("exists and was not made from these inputs"), std::string::npos) << refused;
  EXPECT_NE(refused.find("summed per group-by value"), std::string::npos) << refused;
}

TEST(EmbedClasses, GroupByErrors) {
  TempDir t;
  EmbedOptions o;
  o.model = bundle_in(t);
  o.texts = t / "p.jsonl";
  o.out = t / "x";
  o.group_by = "class";
  io::write_file_atomic(o.texts, "{\"class\": \"red\", \"ids\": [2, 3]}\n{\"ids\": [2, 3]}\n");
  EXPECT_EQ(message_of([&] { run_embed(o, quiet()); }),
            o.texts + ":2: no id field \"class\" (pick another with --group-by)");
  o.part_size = 10;
  EXPECT_EQ(message_of([&] { run_embed(o, quiet()); }), "--group-by writes one output: drop --part-size and --shard");
  o.part_size = 0;
  o.id_field = "id";
  EXPECT_EQ(message_of([&] { run_embed(o, quiet()); }), "--group-by names the rows by its field: drop --id-field");
  o.id_field.clear();
  o.texts.clear();
  o.images = {t / "p.jsonl"};
  EXPECT_EQ(message_of([&] { run_embed(o, quiet()); }), "--group-by averages texts: give --texts");
}

TEST(EmbedClasses, PromptsFromClassNamesAndTemplates) {
  TempDir t;
  io::write_file_atomic(t / "classes.txt", "red\n\n  dark blue \r\n");
  EXPECT_EQ(class_prompts(t / "classes.txt", {"a {} shape.", "{} and {}"}),
            "{\"class\":\"red\",\"texts\":[\"a red shape.\",\"red and red\"]}\n"
            "{\"class\":\"dark blue\",\"texts\":[\"a dark blue shape.\",\"dark blue and dark blue\"]}\n");
  EXPECT_EQ(message_of([&] { class_prompts(t / "classes.txt", {"a shape"}); }),
            "--template 'a shape' has no {} where the class name goes");
  EXPECT_EQ(message_of([&] { class_prompts(t / "classes.txt", {}); }),
            "--classes needs at least one --template, e.g. 'a photo of a {}.'");
  io::write_file_atomic(t / "twice.txt", "red\nblue\nred\n");
  EXPECT_EQ(message_of([&] { class_prompts(t / "twice.txt", {"{}"}); }), t / "twice.txt" + ":3: class \"red\" repeats line 1");
  io::write_file_atomic(t / "empty.txt", "\n \n");
  EXPECT_EQ(message_of([&] { class_prompts(t / "empty.txt", {"{}"}); }), t / "empty.txt" + ": no class names (one per line)");
}

}  // namespace
}  // namespace eve::search
