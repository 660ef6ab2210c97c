#include "eve/model/config.h"

#include <algorithm>
#include <cmath>
#include <functional>
#include <map>
#include <set>

#include "eve/core/error.h"
#include "eve/core/paths.h"
#include "eve/io/file.h"
#include "eve/io/jsonl.h"

namespace eve::model {

namespace {

using io::json;
using io::ordered_json;

const std::vector<std::string> kHeadNames{"itc", "itm", "vqa", "nlvr2", "nlvr2_biattn", "mlm",
                                          "mim"};

std::string type_name(const json& v) { return v.type_name(); }

// Reads typed values out of one JSON object, reporting the key path on any mismatch.
class Reader {
 public:
  Reader(const json& obj, std::string file, std::string prefix)
      : obj_(obj), file_(std::move(file)), prefix_(std::move(prefix)) {}

  void get(const char* key, int& out) {
    if (const json* v = find(key)) {
      if (!v->is_number_integer()) fail(key, "an integer", *v);
      out = v->get<int>();
    }
  }
  void get(const char* key, double& out) {
    if (const json* v = find(key)) {
      if (!v->is_number()) fail(key, "a number", *v);
      out = v->get<double>();
    }
  }
  void get(const char* key, bool& out) {
    if (const json* v = find(key)) {
      if (!v->is_boolean()) fail(key, "true or false", *v);
      out = v->get<bool>();
    }
  }
  void get(const char* key, std::string& out) {
    if (const json* v = find(key)) {
      if (!v->is_string()) fail(key, "a string", *v);
      out = v->get<std::string>();
    }
  }
  void get(const char* key, std::vector<int>& out) {
    if (const json* v = find(key)) {
      if (!v->is_array()) fail(key, "a list of integers", *v);
      out.clear();
      for (const auto& e : *v) {
        if (!e.is_number_integer()) fail(key, "a list of integers", *v);
        out.push_back(e.get<int>());
      }
    }
  }
  void get(const char* key, std::vector<std::string>& out) {
    if (const json* v = find(key)) {
      if (!v->is_array()) fail(key, "a list of strings", *v);
      out.clear();
      for (const auto& e : *v) {
        if (!e.is_string()) fail(key, "a list of strings", *v);
        out.push_back(e.get<std::string>());
      }
    }
  }
  // A nested object read by `fn`.
  void object(const char* key, const std::function<void(Reader&)>& fn) {
    if (const json* v = find(key)) {
      if (!v->is_object()) fail(key, "an object", *v);
      Reader sub(*v, file_, path(key) + ".");
      fn(sub);
      sub.finish();
    }
  }
  // Throws for the first key that no get() asked for.
  void finish() const {
    for (auto it = obj_.begin(); it != obj_.end(); ++it)
      if (!seen_.count(it.key()))
        throw Error("unknown key \"" + prefix_ + it.key() + "\"", file_, {},
                    "see lib/eve/model/config.h for the accepted keys");
  }

 private:
  const json* find(const char* key) {
    seen_.insert(key);
    auto it = obj_.find(key);
    return it == obj_.end() ? nullptr : &*it;
  }
  std::string path(const char* key) const { return prefix_ + key; }
  [[noreturn]] void fail(const char* key, const char* expected, const json& v) const {
    throw Error("key \"" + path(key) + "\" must be " + expected + ", found " + type_name(v) +
                    " " + v.dump(),
                file_);
  }

  const json& obj_;
  std::string file_, prefix_;
  std::set<std::string> seen_;
};

[[noreturn]] void invalid(const std::string& file, const std::string& key, const std::string& why) {
  throw Error("key \"" + key + "\": " + why, file);
}

}  // namespace

bool ModelConfig::is_moe_layer(int layer) const {
  return std::find(moeffn_layers.begin(), moeffn_layers.end(), layer) != moeffn_layers.end();
}

bool ModelConfig::has_head(const std::string& name) const {
  return std::find(heads.begin(), heads.end(), name) != heads.end();
}

void ModelConfig::validate(const std::string& file) const {
  auto positive = [&](const char* key, int v) {
    if (v <= 0) invalid(file, key, "must be positive, found " + std::to_string(v));
  };
  positive("vision_width", vision_width);
  positive("patch_size", patch_size);
  positive("num_attention_heads", num_attention_heads);
  positive("intermediate_size", intermediate_size);
  positive("num_hidden_layers", num_hidden_layers);
  positive("vocab_size", vocab_size);
  positive("image_res", image_res);
  positive("max_text_len", max_text_len);
  positive("text_pos_rows", text_pos_rows);
  if (vision_width % num_attention_heads != 0)
    invalid(file, "num_attention_heads",
            "must divide vision_width " + std::to_string(vision_width) + ", found " +
                std::to_string(num_attention_heads));
  if (image_res % patch_size != 0)
    invalid(file, "image_res",
            "must be a multiple of patch_size " + std::to_string(patch_size) + ", found " +
                std::to_string(image_res));
  if (max_text_len > text_pos_rows)
    invalid(file, "max_text_len",
            "must be at most text_pos_rows " + std::to_string(text_pos_rows) + ", found " +
                std::to_string(max_text_len));
  if (hidden_act != "quick_gelu" && hidden_act != "gelu")
    invalid(file, "hidden_act", "must be quick_gelu or gelu, found \"" + hidden_act + "\"");
  if (ffn_type != "moe") invalid(file, "ffn_type", "only \"moe\" is supported, found \"" + ffn_type + "\"");
  if (relative_position_embed)
    invalid(file, "relative_position_embed", "relative position bias is not supported");
  if (drop_path_rate < 0 || drop_path_rate >= 1)
    invalid(file, "drop_path_rate", "must be in [0, 1)");
  if (attention_dropout < 0 || attention_dropout >= 1)
    invalid(file, "attention_dropout", "must be in [0, 1)");
  if (text_dropout < 0 || text_dropout >= 1) invalid(file, "text_dropout", "must be in [0, 1)");
  std::set<int> seen;
  for (int l : moeffn_layers) {
    if (l < 0 || l >= num_hidden_layers)
      invalid(file, "moeffn_layers",
              "layer " + std::to_string(l) + " is outside 0.." + std::to_string(num_hidden_layers - 1));
    if (!seen.insert(l).second)
      invalid(file, "moeffn_layers", "layer " + std::to_string(l) + " is listed twice");
  }
  if (!moeffn_layers.empty() && moe_param.num_experts < 2)
    invalid(file, "moe_param.num_experts", "must be at least 2 for top-2 routing");
  if (moe_param.topk != 2)
    invalid(file, "moe_param.topk", "only top-2 routing is implemented, found " +
                                        std::to_string(moe_param.topk));
  if (compat != "eve" && compat != "official")
    invalid(file, "compat", "must be \"eve\" or \"official\", found \"" + compat + "\"");
  if (moe_dispatch != "sparse" && moe_dispatch != "dense")
    invalid(file, "moe_dispatch", "must be \"sparse\" or \"dense\", found \"" + moe_dispatch + "\"");
  if (!(moe_capacity_factor > 0)) invalid(file, "moe_capacity_factor", "must be positive");
  if (moe_min_capacity < 1) invalid(file, "moe_min_capacity", "must be at least 1");
  if (!(layer_norm_eps > 0)) invalid(file, "layer_norm_eps", "must be positive");
  if (!(qk_init_std > 0)) invalid(file, "qk_init_std", "must be positive");
  for (const auto& [key, id] : std::map<std::string, int>{{"pad_token_id", pad_token_id},
                                                          {"cls_token_id", cls_token_id},
                                                          {"sep_token_id", sep_token_id},
                                                          {"mask_token_id", mask_token_id},
                                                          {"unk_token_id", unk_token_id}})
    if (id < -1 || id >= vocab_size)
      invalid(file, key,
              "must be -1 or below vocab_size " + std::to_string(vocab_size) + ", found " +
                  std::to_string(id));
  std::set<std::string> hs;
  for (const auto& h : heads) {
    if (std::find(kHeadNames.begin(), kHeadNames.end(), h) == kHeadNames.end())
      invalid(file, "heads",
              "unknown head \"" + h + "\" (itc, itm, vqa, nlvr2, nlvr2_biattn, mlm, mim)");
    if (!hs.insert(h).second) invalid(file, "heads", "head \"" + h + "\" is listed twice");
  }
  if (hs.count("vqa") + hs.count("nlvr2") > 1)
    invalid(file, "heads", "vqa and nlvr2 share the parameter names output.*: pick one");
  if (hs.count("nlvr2_biattn") && num_attention_heads <= 0)
    invalid(file, "heads", "nlvr2_biattn needs num_attention_heads");
  if (hs.count("vqa")) positive("num_answers", num_answers);
  if (!(itc_temp_init > 0)) invalid(file, "itc_temp_init", "must be positive");
  if (hs.count("mim")) {
    positive("mim_decoder.width", mim_decoder.width);
    positive("mim_decoder.depth", mim_decoder.depth);
    positive("mim_decoder.heads", mim_decoder.heads);
    positive("mim_decoder.intermediate_size", mim_decoder.intermediate_size);
    if (mim_decoder.width % mim_decoder.heads != 0)
      invalid(file, "mim_decoder.heads", "must divide mim_decoder.width");
  }
}

ModelConfig parse_config(const std::string& text, const std::string& file) {
  json j = io::parse_json(text, file);
  if (!j.is_object()) throw Error("a model config must be a JSON object", file);
  ModelConfig c;
  Reader r(j, file, "");
  r.get("vision_width", c.vision_width);
  r.get("patch_size", c.patch_size);
  r.get("hidden_act", c.hidden_act);
  r.get("num_attention_heads", c.num_attention_heads);
  r.get("attention_dropout", c.attention_dropout);
  r.get("intermediate_size", c.intermediate_size);
  r.get("num_hidden_layers", c.num_hidden_layers);
  r.get("gradient_checkpointing", c.gradient_checkpointing);
  r.get("drop_path_rate", c.drop_path_rate);
  r.get("vocab_size", c.vocab_size);
  r.get("vision_vocab_size", c.vision_vocab_size);
  r.get("relative_position_embed", c.relative_position_embed);
  r.get("ffn_type", c.ffn_type);
  r.get("moeffn_layers", c.moeffn_layers);
  std::vector<int> vlffn = c.moeffn_layers;
  bool has_vlffn = j.contains("vlffn_layers");
  r.get("vlffn_layers", vlffn);
  r.object("moe_param", [&](Reader& m) {
    m.get("num_experts", c.moe_param.num_experts);
    m.get("topk", c.moe_param.topk);
    m.get("type_route", c.moe_param.type_route);
  });
  r.get("moe_lossweight", c.moe_lossweight);
  r.get("image_res", c.image_res);
  r.get("max_text_len", c.max_text_len);
  r.get("text_pos_rows", c.text_pos_rows);
  r.get("pad_token_id", c.pad_token_id);
  r.get("cls_token_id", c.cls_token_id);
  r.get("sep_token_id", c.sep_token_id);
  r.get("mask_token_id", c.mask_token_id);
  r.get("unk_token_id", c.unk_token_id);
  r.get("compat", c.compat);
  r.get("moe_dispatch", c.moe_dispatch);
  r.get("moe_capacity_factor", c.moe_capacity_factor);
  r.get("moe_min_capacity", c.moe_min_capacity);
  r.get("moe_noise", c.moe_noise);
  r.get("deterministic_routing", c.deterministic_routing);
  r.get("layer_scale_init", c.layer_scale_init);
  r.get("qk_init_std", c.qk_init_std);
  r.get("layer_norm_eps", c.layer_norm_eps);
  r.get("text_dropout", c.text_dropout);
  r.get("vision_mask_token", c.vision_mask_token);
  r.get("heads", c.heads);
  r.get("num_answers", c.num_answers);
  r.get("itc_temp_init", c.itc_temp_init);
  r.object("mim_decoder", [&](Reader& m) {
    m.get("width", c.mim_decoder.width);
    m.get("depth", c.mim_decoder.depth);
    m.get("heads", c.mim_decoder.heads);
    m.get("intermediate_size", c.mim_decoder.intermediate_size);
  });
  r.get("mim_norm_target", c.mim_norm_target);
  r.finish();
  if (has_vlffn) {
    std::vector<int> a = vlffn, b = c.moeffn_layers;
    std::sort(a.begin(), a.end());
    std::sort(b.begin(), b.end());
    if (a != b) invalid(file, "vlffn_layers", "must equal moeffn_layers (eve has no VL-FFN layers)");
  }
  c.validate(file);
  return c;
}

ModelConfig load_config(const std::string& path_or_preset) {
  std::string path = resolve_share_file("configs", path_or_preset, ".json");
  return parse_config(io::read_file(path), path);
}

std::string config_to_json(const ModelConfig& c) {
  ordered_json j;
  j["vision_width"] = c.vision_width;
  j["patch_size"] = c.patch_size;
  j["hidden_act"] = c.hidden_act;
  j["num_attention_heads"] = c.num_attention_heads;
  j["attention_dropout"] = c.attention_dropout;
  j["intermediate_size"] = c.intermediate_size;
  j["num_hidden_layers"] = c.num_hidden_layers;
  j["gradient_checkpointing"] = c.gradient_checkpointing;
  j["drop_path_rate"] = c.drop_path_rate;
  j["vocab_size"] = c.vocab_size;
  j["vision_vocab_size"] = c.vision_vocab_size;
  j["relative_position_embed"] = c.relative_position_embed;
  j["ffn_type"] = c.ffn_type;
  j["vlffn_layers"] = c.moeffn_layers;
  j["moeffn_layers"] = c.moeffn_layers;
  j["moe_param"] = {{"num_experts", c.moe_param.num_experts},
                    {"topk", c.moe_param.topk},
                    {"type_route", c.moe_param.type_route}};
  j["moe_lossweight"] = c.moe_lossweight;
  j["image_res"] = c.image_res;
  j["max_text_len"] = c.max_text_len;
  j["text_pos_rows"] = c.text_pos_rows;
  j["pad_token_id"] = c.pad_token_id;
  j["cls_token_id"] = c.cls_token_id;
  j["sep_token_id"] = c.sep_token_id;
  j["mask_token_id"] = c.mask_token_id;
  j["unk_token_id"] = c.unk_token_id;
  j["compat"] = c.compat;
  j["moe_dispatch"] = c.moe_dispatch;
  j["moe_capacity_factor"] = c.moe_capacity_factor;
  j["moe_min_capacity"] = c.moe_min_capacity;
  j["moe_noise"] = c.moe_noise;
  j["deterministic_routing"] = c.deterministic_routing;
  j["layer_scale_init"] = c.layer_scale_init;
  j["qk_init_std"] = c.qk_init_std;
  j["layer_norm_eps"] = c.layer_norm_eps;
  j["text_dropout"] = c.text_dropout;
  j["vision_mask_token"] = c.vision_mask_token;
  j["heads"] = c.heads;
  j["num_answers"] = c.num_answers;
  j["itc_temp_init"] = c.itc_temp_init;
  j["mim_decoder"] = {{"width", c.mim_decoder.width},
                      {"depth", c.mim_decoder.depth},
                      {"heads", c.mim_decoder.heads},
                      {"intermediate_size", c.mim_decoder.intermediate_size}};
  j["mim_norm_target"] = c.mim_norm_target;
  return j.dump(2) + "\n";
}

int64_t ParamSpec::numel() const {
  int64_t n = 1;
  for (int64_t d : shape) n *= d;
  return n;
}

namespace {

// Appends parameters under a name prefix.
struct Manifest {
  std::vector<ParamSpec> out;
  void add(const std::string& name, std::vector<int64_t> shape) { out.push_back({name, std::move(shape)}); }
  void linear(const std::string& p, int64_t in, int64_t o, bool bias = true) {
    add(p + ".weight", {o, in});
    if (bias) add(p + ".bias", {o});
  }
  void norm(const std::string& p, int64_t w) {
    add(p + ".weight", {w});
    add(p + ".bias", {w});
  }
  void ffn(const std::string& p, int64_t d, int64_t f) {
    linear(p + ".fc1", d, f);
    linear(p + ".fc2", f, d);
  }
  // Attention, norm1, gammas: the part every block shares.
  void block_common(const std::string& p, int64_t d) {
    add(p + ".attn.qkv.weight", {3 * d, d});
    add(p + ".attn.q_bias", {d});
    add(p + ".attn.v_bias", {d});
    linear(p + ".attn.proj", d, d);
    norm(p + ".norm1", d);
    add(p + ".gamma_1", {d});
    add(p + ".gamma_2", {d});
  }
};

}  // namespace

std::vector<ParamSpec> parameter_manifest(const ModelConfig& c) {
  const int64_t D = c.vision_width, F = c.intermediate_size, N = c.num_patches();
  const int64_t P = c.patch_size, E = c.moe_param.num_experts;
  Manifest m;
  m.add("backbone.patch_embed.weight", {D, 3, P, P});
  m.add("backbone.patch_embed.bias", {D});
  m.add("backbone.class_embedding_vision", {D});
  m.add("backbone.type_embed_vision", {D});
  m.add("backbone.type_embed_text", {D});
  m.add("backbone.pos_embed_vision", {N + 1, D});
  if (c.vision_mask_token) m.add("backbone.mask_embed_vision", {D});
  m.add("backbone.word_embedding.weight", {c.vocab_size, D});
  m.add("backbone.pos_embed_text", {c.text_pos_rows, D});
  m.norm("backbone.layer_norm_text", D);
  m.norm("backbone.pre_layrnorm", D);
  for (int l = 0; l < c.num_hidden_layers; ++l) {
    const std::string p = "backbone.encoder.layers." + std::to_string(l);
    m.block_common(p, D);
    if (c.is_moe_layer(l)) {
      m.norm(p + ".norm2_vl", D);
      m.add(p + ".mlp_moe.moe.gate.wg.weight", {E, D});
      if (c.moe_param.type_route) {
        m.add(p + ".mlp_moe.moe.vision_embed", {D});
        m.add(p + ".mlp_moe.moe.text_embed", {D});
      }
      for (int64_t e = 0; e < E; ++e)
        m.ffn(p + ".mlp_moe.moe.experts.experts." + std::to_string(e), D, F);
    } else {
      m.norm(p + ".norm2_imag", D);
      m.ffn(p + ".mlp_imag", D, F);
      m.norm(p + ".norm2_text", D);
      m.ffn(p + ".mlp_text", D, F);
    }
  }
  m.norm("backbone.norm", D);
  if (c.has_head("itc")) {
    m.linear("itc_vision_proj_head", D, D, false);
    m.linear("itc_text_proj_head", D, D, false);
    m.add("itc_temp", {});
  }
  if (c.has_head("itm")) m.linear("itm_head", D, 2);
  if (c.has_head("vqa") || c.has_head("nlvr2")) {
    const bool vqa = c.has_head("vqa");
    m.linear("output.0", vqa ? D : 2 * D, 2 * D);
    m.norm("output.1", 2 * D);
    m.linear("output.3", 2 * D, vqa ? c.num_answers : 2);
  }
  if (c.has_head("nlvr2_biattn")) {
    for (const char* a : {"attn1", "attn2"}) {
      m.add(std::string(a) + ".in_proj_weight", {3 * D, D});
      m.add(std::string(a) + ".in_proj_bias", {3 * D});
      m.linear(std::string(a) + ".out_proj", D, D);
    }
    m.linear("fc.0", 2 * D, D);
    m.linear("attn_pool.fc.0", D, 1);
    m.linear("nlvr2_output", 2 * D, 2);
  }
  if (c.has_head("mlm")) {
    m.linear("mlm_head.transform.dense", D, D);
    m.norm("mlm_head.transform.LayerNorm", D);
    m.linear("mlm_head.decoder", D, c.vocab_size);
  }
  if (c.has_head("mim")) {
    const auto& md = c.mim_decoder;
    const int64_t W = md.width;
    m.linear("mim_decoder.embed", D, W);
    m.add("mim_decoder.mask_token", {W});
    m.add("mim_decoder.pos_embed", {N + 1, W});
    for (int l = 0; l < md.depth; ++l) {
      const std::string p = "mim_decoder.layers." + std::to_string(l);
      m.block_common(p, W);
      m.norm(p + ".norm2", W);
      m.ffn(p + ".mlp", W, md.intermediate_size);
    }
    m.norm("mim_decoder.norm", W);
    m.linear("mim_decoder.pred", W, P * P * 3);
  }
  return m.out;
}

ParamCount count_parameters(const ModelConfig& c) {
  ParamCount pc;
  for (const auto& p : parameter_manifest(c)) {
    const int64_t n = p.numel();
    pc.total += n;
    if (p.name.rfind("backbone.", 0) == 0) pc.backbone += n;
    else pc.heads += n;
    if (p.name.find(".experts.experts.") != std::string::npos) pc.experts += n;
  }
  const int64_t E = c.moe_param.num_experts;
  pc.active_per_token =
      pc.total - pc.experts + (E > 0 ? pc.experts * std::min<int64_t>(c.moe_param.topk, E) / E : 0);
  return pc;
}

std::string inference_routing(const ModelConfig& c) {
  return c.inference_noise() ? "Gumbel noise on the second expert (the released behaviour; "
                               "--deterministic-routing turns it off)"
                             : "deterministic routing";
}

const char* inference_routing_key(const ModelConfig& c) {
  return c.inference_noise() ? "gumbel-noise" : "deterministic";
}

}  // namespace eve::model
