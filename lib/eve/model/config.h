// ModelConfig: the architecture of an EVE model as read from a bundle's config.json.
// Torch-free: program mains and torch-free code may include it.
//
// config.json accepts the official vlmo-style keys (configs/config_vlmo{B,L}_base64k.json
// of the EVE release) and eve's own keys. Every key is optional; a missing key takes the
// default shown below (the EVE-Base values). A key not listed here is an error naming it.
//
//   official key            default        meaning
//   vision_width            768            hidden width D (shared by both modalities)
//   patch_size              16             square patch side in pixels
//   hidden_act              "quick_gelu"   FFN activation: quick_gelu | gelu
//   num_attention_heads     12             heads; D must divide evenly
//   attention_dropout       0.0            dropout on attention probabilities (training)
//   intermediate_size       3072           FFN inner width F (modality FFNs and experts)
//   num_hidden_layers       12             encoder depth
//   gradient_checkpointing  false          in training, each encoder layer keeps only its
//                                          input and recomputes its activations in backward
//                                          (same gradients, less memory, one more encoder
//                                          forward; model/checkpointing.h). The trainers'
//                                          --grad-checkpoint turns it on for one run
//   drop_path_rate          0.1            stochastic depth, linear 0 -> rate over depth
//   vocab_size              64000          rows of the word embedding
//   vision_vocab_size       8192           accepted, unused (BEiT tokenizer leftover)
//   relative_position_embed false          must be false (no relative position bias)
//   ffn_type                "moe"          must be "moe"
//   vlffn_layers            = moeffn_layers  accepted; must equal moeffn_layers when given
//   moeffn_layers           [10, 11]       0-based layers with the modality-aware MoE
//   moe_param               {"num_experts": 32, "topk": 2, "type_route": true}
//   moe_lossweight          0.001          weight of the GShard aux loss in training losses
//
//   eve key                 default        meaning
//   image_res               224            image side in pixels (multiple of patch_size)
//   max_text_len            40             text length fed to the model (<= text_pos_rows)
//   text_pos_rows           196            rows of the text position table
//   pad_token_id ... mask_token_id          tokenizer special ids (pad 0, unk 1, cls 2,
//                                          sep 3, mask 4 as eve-tokenize train writes them);
//                                          -1 = the tokenizer has none
//   compat                  "eve"          "eve" | "official": official reproduces the
//                                          released behaviour (Gumbel noise and capacity
//                                          limits at inference, pads routed, positional
//                                          modality split with text = last max_text_len,
//                                          retrieval embeddings from the CLS before the
//                                          final LayerNorm, see EveModelImpl::eval_cls)
//   moe_dispatch            "sparse"       "sparse" (grouped GEMMs) | "dense" (GShard oracle)
//   moe_capacity_factor     1.0            capacity C = max(moe_min_capacity,
//   moe_min_capacity        4                ceil(factor * topk * S / E)) in training
//   moe_noise               true           Gumbel noise on the 2nd expert in training
//                                          (and, with compat official, at inference)
//   deterministic_routing   false          compat official: no Gumbel noise at inference,
//                                          every other released behaviour kept, so that
//                                          evaluation is reproducible bit for bit (the
//                                          --deterministic-routing flag sets it); compat
//                                          eve always routes deterministically at inference
//   layer_scale_init        0.1            initial value of gamma_1 / gamma_2
//   qk_init_std             0.02           std of the query and key rows of every qkv weight at
//                                          initialisation (the rest of the model: 0.02). Larger
//                                          values leave the flat start of attention learning
//                                          sooner, which small models on short budgets need
//   layer_norm_eps          1e-6           eps of the backbone LayerNorms
//   text_dropout            0.1            dropout after the text embedding LayerNorm
//   vision_mask_token       false          create backbone.mask_embed_vision (BEiT masking)
//   heads                   []             any of itc, itm, vqa, nlvr2, nlvr2_biattn, mlm, mim
//   num_answers             3128           VQA classifier outputs
//   itc_temp_init           0.07           initial ITC temperature
//   mim_decoder             {"width": 512, "depth": 2, "heads": 8, "intermediate_size": 2048}
//   mim_norm_target         true           MIM targets normalised per patch (used by training)
#pragma once

#include <cstdint>
#include <string>
#include <vector>

namespace eve::model {

struct MoeParam {
  int num_experts = 32;
  int topk = 2;  // only 2 is supported (the official gate always uses top-2)
  bool type_route = true;
};

struct MimDecoderConfig {
  int width = 512;
  int depth = 2;
  int heads = 8;
  int intermediate_size = 2048;
};

struct ModelConfig {
  // Official keys.
  int vision_width = 768;
  int patch_size = 16;
  std::string hidden_act = "quick_gelu";
  int num_attention_heads = 12;
  double attention_dropout = 0.0;
  int intermediate_size = 3072;
  int num_hidden_layers = 12;
  bool gradient_checkpointing = false;
  double drop_path_rate = 0.1;
  int vocab_size = 64000;
  int vision_vocab_size = 8192;
  bool relative_position_embed = false;
  std::string ffn_type = "moe";
  std::vector<int> moeffn_layers{10, 11};
  MoeParam moe_param;
  double moe_lossweight = 0.001;

  // eve keys.
  int image_res = 224;
  int max_text_len = 40;
  int text_pos_rows = 196;
  int pad_token_id = 0;
  int unk_token_id = 1;
  int cls_token_id = 2;
  int sep_token_id = 3;
  int mask_token_id = 4;
  std::string compat = "eve";
  std::string moe_dispatch = "sparse";
  double moe_capacity_factor = 1.0;
  int moe_min_capacity = 4;
  bool moe_noise = true;
  bool deterministic_routing = false;
  double layer_scale_init = 0.1;
  double qk_init_std = 0.02;
  double layer_norm_eps = 1e-6;
  double text_dropout = 0.1;
  bool vision_mask_token = false;
  std::vector<std::string> heads;
  int num_answers = 3128;
  double itc_temp_init = 0.07;
  MimDecoderConfig mim_decoder;
  bool mim_norm_target = true;

  // Derived values.
  int grid() const { return image_res / patch_size; }           // patches per side
  int num_patches() const { return grid() * grid(); }           // N
  int head_dim() const { return vision_width / num_attention_heads; }
  bool official() const { return compat == "official"; }
  // Whether inference passes draw routing noise (compat official without
  // deterministic_routing); training passes draw it whenever moe_noise is on.
  bool inference_noise() const { return official() && moe_noise && !deterministic_routing; }
  bool is_moe_layer(int layer) const;
  bool has_head(const std::string& name) const;

  // Checks ranges and combinations; throws eve::Error naming `file` and the key.
  void validate(const std::string& file = "config.json") const;
};

// How a model routes at inference, for run logs and results: "deterministic routing", or
// for compat official models that draw noise "Gumbel noise on the second expert (the
// released behaviour; --deterministic-routing turns it off)".
std::string inference_routing(const ModelConfig& config);
// The same as a results value: "deterministic" or "gumbel-noise".
const char* inference_routing_key(const ModelConfig& config);

// Parses config.json text. Unknown keys, wrong types and invalid values throw eve::Error
// naming `file` and the key.
ModelConfig parse_config(const std::string& json_text, const std::string& file = "config.json");
// Reads a config file, or a preset name resolved under share/eve/configs ("eve-tiny").
ModelConfig load_config(const std::string& path_or_preset);
// Serialises every key (pretty-printed JSON, official keys first).
std::string config_to_json(const ModelConfig& config);

// The parameters a config builds, by official state-dict name, with their shapes (no torch
// needed): exactly the names and shapes of EveModel::named_parameters().
struct ParamSpec {
  std::string name;
  std::vector<int64_t> shape;
  int64_t numel() const;
};
std::vector<ParamSpec> parameter_manifest(const ModelConfig& config);

// Parameter counts of a config: total and active per token (total minus the experts a
// token does not visit: it passes through topk of E experts in each MoE layer; both
// modality FFNs, embeddings and heads count as active; docs/architecture.md, "Mixture of
// experts", gives eve-base's figures).
struct ParamCount {
  int64_t total = 0;
  int64_t experts = 0;
  int64_t active_per_token = 0;
  int64_t backbone = 0;
  int64_t heads = 0;
};
ParamCount count_parameters(const ModelConfig& config);

}  // namespace eve::model
