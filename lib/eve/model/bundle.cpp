#include "eve/model/bundle.h"

#include <fmt/format.h>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <filesystem>
#include <set>

#include "eve/core/error.h"
#include "eve/core/log.h"
#include "eve/io/file.h"
#include "eve/io/safetensors.h"
#include "eve/model/runtime.h"
#include "eve/text/tokenizer_info.h"
#include "eve/model/summary.h"

namespace eve::model {

namespace fs = std::filesystem;
using torch::Tensor;

namespace {

// Buffers of the official state dict that carry no information (arange position ids).
const std::set<std::string> kIgnoredBuffers{"backbone.position_ids_vision",
                                            "backbone.position_ids_text"};

std::string shape_str(const std::vector<int64_t>& s) {
  return "[" + fmt::format("{}", fmt::join(s, ",")) + "]";
}

std::vector<int64_t> sizes(const Tensor& t) { return t.sizes().vec(); }

bool is_position_table(const std::string& name) {
  return name == "backbone.pos_embed_vision" || name == "mim_decoder.pos_embed";
}

bool square_plus_one(int64_t rows) {
  for (int64_t g = 1; g * g + 1 <= rows; ++g)
    if (g * g + 1 == rows) return true;
  return false;
}

Tensor to_tensor(const io::TensorView& v, const std::string& file) {
  std::vector<int64_t> shape = v.shape;
  int64_t n = 1;
  for (int64_t d : shape) n *= d;
  Tensor t = torch::empty(shape, torch::kFloat);
  switch (v.dtype) {
    case io::DType::f32:
      std::memcpy(t.data_ptr<float>(), v.data, v.nbytes);
      break;
    case io::DType::f16:
    case io::DType::bf16:
      io::convert_to_f32(v.dtype, v.data, static_cast<size_t>(n), t.data_ptr<float>());
      break;
    default:
      throw Error(std::string("tensor has dtype ") + io::dtype_name(v.dtype) +
                      ", expected a float type (F32, F16, BF16)",
                  file, v.name);
  }
  return t;
}

std::string join_limited(const std::vector<std::string>& items, size_t limit) {
  std::string s;
  for (size_t i = 0; i < items.size() && i < limit; ++i) s += (i ? "; " : "") + items[i];
  if (items.size() > limit) s += fmt::format("; and {} more", items.size() - limit);
  return s;
}

}  // namespace

LoadReport load_weights(EveModelImpl& model, const std::string& path, const LoadOptions& opt) {
  io::SafetensorsReader reader(path);
  LoadReport report;
  std::vector<std::string> missing, mismatched;
  std::set<std::string> used;
  torch::NoGradGuard ng;
  for (auto& item : model.named_parameters(/*recurse=*/true)) {
    const std::string& name = item.key();
    Tensor& p = item.value();
    const io::TensorView* v = reader.find(name);
    if (v && std::any_of(opt.fresh_prefixes.begin(), opt.fresh_prefixes.end(),
                         [&](const std::string& pre) { return name.rfind(pre, 0) == 0; })) {
      used.insert(name);
      report.initialised.push_back(name + " " + shape_str(sizes(p)) + " (not loaded: trained for other labels)");
      continue;
    }
    if (!v) {
      missing.push_back(name + " " + shape_str(sizes(p)));
      continue;
    }
    used.insert(name);
    Tensor t = to_tensor(*v, path);
    if (t.sizes() != p.sizes()) {
      if (is_position_table(name) && t.dim() == 2 && p.dim() == 2 && t.size(1) == p.size(1) &&
          square_plus_one(t.size(0)) && square_plus_one(p.size(0))) {
        auto grid = static_cast<int64_t>(std::llround(std::sqrt(double(p.size(0) - 1))));
        report.resized.push_back(name + " " + shape_str(sizes(t)) + " -> " + shape_str(sizes(p)));
        t = interpolate_positions(t, grid);
      } else if (opt.allow_partial && name.rfind("backbone.", 0) != 0) {
        report.initialised.push_back(name + " " + shape_str(sizes(p)) + " (file has " +
                                     shape_str(v->shape) + ")");
        continue;
      } else {
        mismatched.push_back(name + " expected " + shape_str(sizes(p)) + " found " +
                             shape_str(v->shape));
        continue;
      }
    }
    p.copy_(t.to(p.device(), p.scalar_type()));
  }
  std::vector<std::string> unexpected;
  for (const auto& v : reader.tensors())
    if (!used.count(v.name) && !kIgnoredBuffers.count(v.name))
      unexpected.push_back(v.name + " " + shape_str(v.shape));
  std::vector<std::string> problems;
  for (auto& m : mismatched) problems.push_back("shape of " + m);
  if (!opt.allow_partial) {
    for (auto& m : missing) problems.push_back("missing " + m);
    for (auto& u : unexpected) problems.push_back("unexpected " + u);
  }
  if (!problems.empty())
    throw Error(fmt::format("{} tensor(s) do not fit the model: {}", problems.size(),
                            join_limited(problems, 40)),
                path, {},
                opt.allow_partial ? "the backbone must match the config"
                                  : "check the config, or load a backbone with allow-partial");
  for (auto& m : missing) report.initialised.push_back(m);
  std::sort(unexpected.begin(), unexpected.end());
  report.ignored = unexpected;
  return report;
}

void save_weights(EveModelImpl& model, const std::string& path,
                  const std::map<std::string, std::string>& metadata) {
  std::vector<Tensor> keep;
  std::vector<io::TensorView> views;
  for (auto& item : model.named_parameters(true)) {
    Tensor t = item.value().detach().to(torch::kCPU, torch::kFloat).contiguous();
    keep.push_back(t);
    io::TensorView v;
    v.name = item.key();
    v.dtype = io::DType::f32;
    v.shape = sizes(t);
    v.data = t.data_ptr<float>();
    v.nbytes = static_cast<size_t>(t.numel()) * sizeof(float);
    views.push_back(std::move(v));
  }
  std::map<std::string, std::string> meta = metadata;
  meta.emplace("format", "pt");
  io::write_safetensors(path, views, meta);
}

void check_tokenizer(const ModelConfig& c, const std::string& tokenizer) {
  const text::TokenizerInfo t = text::read_sentencepiece_info(tokenizer);
  if (t.vocab_size > c.vocab_size)
    throw Error("the tokenizer has " + std::to_string(t.vocab_size) + " pieces but the word embedding only " +
                    std::to_string(c.vocab_size) + " rows",
                tokenizer, {}, "this tokenizer was not trained with this model; use the model's own");
  if (t.vocab_size < c.vocab_size)
    log::info("{}: the word embedding has {} rows for the tokenizer's {} pieces; rows {} and up are "
              "never used (padding rows, as released checkpoints have)",
              tokenizer, c.vocab_size, t.vocab_size, t.vocab_size);
  const std::pair<const char*, std::pair<int, int>> ids[] = {
      {"pad_token_id", {c.pad_token_id, t.pad_id}}, {"cls_token_id", {c.cls_token_id, t.cls_id}},
      {"sep_token_id", {c.sep_token_id, t.sep_id}}, {"mask_token_id", {c.mask_token_id, t.mask_id}},
      {"unk_token_id", {c.unk_token_id, t.unk_id}}};
  for (const auto& [key, v] : ids)
    if (v.first != -1 && v.first != v.second)
      throw Error(std::string("config.json's ") + key + " is " + std::to_string(v.first) +
                      " but the tokenizer's piece for it is id " + std::to_string(v.second),
                  tokenizer, {},
                  "set the config's special ids from the tokenizer (eve-convert-checkpoint --tokenizer "
                  "does it)");
}

Bundle load_bundle(const std::string& dir, const LoadOptions& opt) {
  const std::string cfg_path = dir + "/config.json";
  if (!io::file_exists(cfg_path))
    throw Error("not a model bundle: no config.json", dir, {},
                "a bundle is a directory written by eve-pretrain, eve-finetune or "
                "scripts/eve-convert-checkpoint");
  Bundle b;
  b.dir = dir;
  b.config = parse_config(io::read_file(cfg_path), cfg_path);
  LoadOptions load = opt;
  // VQA and NLVR2 name their heads alike (`output`, as the official code does): a bundle
  // fine-tuned for one task gives the other a fresh head, never one that fits by shape.
  const bool file_vqa = b.config.has_head("vqa"), file_nlvr2 = b.config.has_head("nlvr2");
  if (opt.replace_heads) {
    const bool want_vqa = std::count(opt.heads.begin(), opt.heads.end(), "vqa") > 0;
    const bool want_nlvr2 = std::count(opt.heads.begin(), opt.heads.end(), "nlvr2") > 0;
    if ((want_vqa && !file_vqa && file_nlvr2) || (want_nlvr2 && !file_nlvr2 && file_vqa))
      load.fresh_prefixes.push_back("output.");
  }
  if (opt.image_res > 0) b.config.image_res = opt.image_res;
  if (opt.replace_heads) b.config.heads = opt.heads;
  if (opt.num_answers > 0) b.config.num_answers = opt.num_answers;
  if (model::deterministic_routing_requested()) b.config.deterministic_routing = true;
  b.config.validate(cfg_path);
  // Fresh initialisation only matters for what a partial load leaves untouched.
  b.model = EveModel(b.config, opt.allow_partial);
  b.report = load_weights(*b.model, dir + "/model.safetensors", load);
  if (io::file_exists(dir + "/tokenizer.model")) {
    b.tokenizer = dir + "/tokenizer.model";
    check_tokenizer(b.config, b.tokenizer);
  }
  if (io::file_exists(dir + "/answers.json")) b.answers = dir + "/answers.json";
  return b;
}

void save_bundle(EveModelImpl& model, const std::string& dir, const SaveOptions& opt) {
  std::error_code ec;
  fs::create_directories(dir, ec);
  if (ec) throw Error("cannot create the bundle directory: " + ec.message(), dir);
  io::write_file_atomic(dir + "/config.json", config_to_json(model.config()));
  save_weights(model, dir + "/model.safetensors");
  auto copy_in = [&](const std::string& src, const char* name) {
    if (src.empty()) return;
    const std::string dst = dir + "/" + name;
    std::error_code e1;
    if (fs::exists(dst, e1) && fs::equivalent(src, dst, e1)) return;
    io::write_file_atomic(dst, io::read_file(src));
  };
  copy_in(opt.tokenizer, "tokenizer.model");
  copy_in(opt.answers, "answers.json");
}

// ---------------------------------------------------------------- summary

BundleSummary summarize_bundle(const std::string& dir) {
  BundleSummary s;
  s.dir = dir;
  const std::string cfg_path = dir + "/config.json";
  if (!io::file_exists(cfg_path)) throw Error("not a model bundle: no config.json", dir);
  s.config = parse_config(io::read_file(cfg_path), cfg_path);
  io::SafetensorsReader reader(dir + "/model.safetensors");
  std::set<std::string> dtypes;
  for (const auto& v : reader.tensors()) {
    if (kIgnoredBuffers.count(v.name)) continue;
    int64_t n = 1;
    for (int64_t d : v.shape) n *= d;
    ++s.tensors;
    s.total_params += n;
    if (v.name.find(".experts.experts.") != std::string::npos) s.expert_params += n;
    if (v.name.rfind("backbone.", 0) == 0) s.backbone_params += n;
    dtypes.insert(io::dtype_name(v.dtype));
  }
  const int64_t E = s.config.moe_param.num_experts;
  s.active_params = s.total_params - s.expert_params +
                    (E > 0 ? s.expert_params * std::min<int64_t>(2, E) / E : 0);
  for (const auto& d : dtypes) s.dtypes += (s.dtypes.empty() ? "" : ",") + d;
  s.tokenizer = io::file_exists(dir + "/tokenizer.model");
  s.answers = io::file_exists(dir + "/answers.json");
  return s;
}

std::string format_summary(const BundleSummary& s) {
  const ModelConfig& c = s.config;
  auto millions = [](int64_t n) { return fmt::format("{:.1f} M", n / 1e6); };
  std::string moe_layers = c.moeffn_layers.empty() ? "none" : fmt::format("{}", fmt::join(c.moeffn_layers, ","));
  std::string heads = c.heads.empty() ? "none" : fmt::format("{}", fmt::join(c.heads, ","));
  std::string out;
  out += fmt::format("bundle       {}\n", s.dir);
  out += fmt::format("parameters   {} total, {} active per token ({} in experts, {} backbone)\n",
                     millions(s.total_params), millions(s.active_params),
                     millions(s.expert_params), millions(s.backbone_params));
  out += fmt::format("tensors      {} ({})\n", s.tensors, s.dtypes);
  out += fmt::format("layers       {} (width {}, {} heads, FFN {}, {})\n", c.num_hidden_layers,
                     c.vision_width, c.num_attention_heads, c.intermediate_size, c.hidden_act);
  out += fmt::format("moe          layers {}; {} experts, top-{}, modality routing {}\n",
                     moe_layers, c.moe_param.num_experts, c.moe_param.topk,
                     c.moe_param.type_route ? "on" : "off");
  out += fmt::format("image        {} px, patch {} ({} patches)\n", c.image_res, c.patch_size,
                     c.num_patches());
  out += fmt::format("text         {} tokens max, vocabulary {}\n", c.max_text_len, c.vocab_size);
  out += fmt::format("heads        {}\n", heads);
  out += fmt::format("compat       {}, {} dispatch, {} at inference{}\n", c.compat, c.moe_dispatch,
                     inference_routing_key(c),
                     c.official() ? "; retrieval embeddings before the final LayerNorm" : "");
  out += fmt::format("tokenizer    {}\n", s.tokenizer ? "tokenizer.model" : "absent");
  out += fmt::format("answers      {}\n", s.answers ? "answers.json" : "absent");
  return out;
}

}  // namespace eve::model
