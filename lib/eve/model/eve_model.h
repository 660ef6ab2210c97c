// The EVE model: one shared-attention Transformer over [image patches ; text tokens] with
// modality FFNs in the lower layers and a modality-aware MoE in the top layers, plus the
// task heads (docs/architecture.md, "The model" and its subsections).
//
// Usage:
//   EveModel m(config);                         // initialised (see "Initialisation")
//   EncoderInput in; in.image = images;         // [B,3,R,R] float, normalised to [-1,1]
//   in.text_ids = ids; in.text_mask = mask;     // [B,T] int64, [B,T] (1 = token, 0 = pad)
//   EncoderOutput o = m->encode(Mode::vl, in);  // hidden [B,L,D], pooled [B,D], aux, load
//   torch::Tensor logits = m->vqa_logits(o.pooled);
//
// Tokens are ordered vision first ([CLS_v, patches..., text...]); every token carries an
// explicit modality id (0 vision, 1 text) that the modality FFNs and the MoE tags use, so any
// resolution, any number of kept patches and any text length work in vl mode. With
// `compat: "official"` the released positional split is used instead (MoE: the first N+1
// positions are vision; modality FFNs: the last max_text_len positions are text), together
// with Gumbel noise (unless deterministic_routing) and capacity limits at inference, pads
// taking part in routing, and retrieval embeddings from the CLS before the final LayerNorm
// (eval_cls).
//
// named_parameters() of EveModel are exactly the official state-dict keys
// ("backbone.encoder.layers.3.attn.qkv.weight", "itm_head.weight", ...), which is what the
// bundle reader and writer rely on.
#pragma once

#include <torch/torch.h>

#include <string>
#include <vector>

#include "eve/model/config.h"
#include "eve/model/moe.h"

namespace eve::model {

enum class Mode { vision, text, vl };
Mode parse_mode(const std::string& name);
const char* mode_name(Mode mode);

struct EncoderInput {
  torch::Tensor image;       // [B,3,R,R] float (vision, vl); R any multiple of patch_size
  torch::Tensor image_mask;  // optional [B,N] bool: patches replaced by mask_embed_vision
  torch::Tensor ids_keep;    // optional [B,K] int64: keep only these patches (MAE style;
                             // position embeddings are added before the drop)
  torch::Tensor text_ids;    // [B,T] int64 (text, vl); the first token is the CLS
  torch::Tensor text_mask;   // optional [B,T]: nonzero = real token; default all real
};

// Load of one MoE layer in one forward pass.
struct LayerLoad {
  int layer = 0;
  MoeLoad load;
};

struct EncoderOutput {
  torch::Tensor hidden;     // [B,L,D] after the final LayerNorm
  torch::Tensor pre_norm;   // [B,L,D] the same before it (what hidden normalises)
  torch::Tensor pad;        // [B,L] bool: true = padded text position
  torch::Tensor modality;   // [B,L] int64: 0 vision, 1 text
  int64_t num_vision = 0;   // vision tokens at the front (CLS + patches), 0 in text mode
  int64_t grid = 0;         // patches per image side (0 in text mode)
  torch::Tensor pooled;     // [B,D]: vision/text CLS (index 0), vl: first text token
  torch::Tensor aux;        // [] GShard loss averaged over MoE layers (unweighted; 0 if none)
  std::vector<LayerLoad> load;
};

// LayerNorm with an explicit eps, named weight/bias.
torch::nn::LayerNorm layer_norm(int64_t width, double eps);

// Shared multi-head self-attention: qkv without bias + q_bias/v_bias, fp32 scores, key
// padding mask (true = padded key gets -inf), proj with bias.
class AttentionImpl : public torch::nn::Module {
 public:
  AttentionImpl(int64_t width, int64_t heads, double dropout);
  torch::Tensor forward(const torch::Tensor& x, const torch::Tensor& key_pad);
  torch::nn::Linear qkv{nullptr}, proj{nullptr};
  torch::Tensor q_bias, v_bias;
  int64_t heads;
  double dropout;
};
TORCH_MODULE(Attention);

// What a block needs to know about the token sequence.
struct TokenLayout {
  Mode mode = Mode::vl;
  int64_t split = 0;        // modality FFN layers: rows [0, split) vision, [split, L) text
  torch::Tensor modality;   // [B,L] int64 for the MoE tags
  torch::Tensor key_pad;    // [B,L] bool or undefined
  torch::Tensor route_mask; // [B*L] bool: rows of the flattened batch that the MoE routes
                            // (non-pad tokens); undefined = all
  RoutingOptions routing;
};

enum class FfnKind { modality, moe, single };

// Pre-norm block with layer-scale and drop-path:
//   h += drop_path(gamma_1 * attn(norm1(h)));  h += drop_path(gamma_2 * ffn(h))
// ffn = modality FFNs (norm2_imag/mlp_imag, norm2_text/mlp_text), the MoE (norm2_vl, mlp_moe)
// or one FFN (norm2, mlp; the MIM decoder).
class BlockImpl : public torch::nn::Module {
 public:
  BlockImpl(int64_t width, int64_t heads, int64_t inner, FfnKind kind, const ModelConfig& c,
            double drop_path);
  // Returns the new hidden states; `aux`/`load` are set by MoE blocks.
  torch::Tensor forward(const torch::Tensor& h, const TokenLayout& layout, torch::Tensor* aux,
                        MoeLoad* load);
  FfnKind kind;
  double drop_path, layer_norm_eps;
  Attention attn{nullptr};
  torch::nn::LayerNorm norm1{nullptr}, norm2_imag{nullptr}, norm2_text{nullptr},
      norm2_vl{nullptr}, norm2{nullptr};
  FeedForward mlp_imag{nullptr}, mlp_text{nullptr}, mlp{nullptr};
  MoE moe{nullptr};  // registered as mlp_moe.moe
  torch::Tensor gamma_1, gamma_2;
};
TORCH_MODULE(Block);

// Embeddings + encoder + final norm (state-dict prefix "backbone.").
class BackboneImpl : public torch::nn::Module {
 public:
  explicit BackboneImpl(const ModelConfig& c);
  EncoderOutput forward(Mode mode, const EncoderInput& in, Dispatch dispatch);
  // Position table for a grid of g x g patches: the stored one, or its bicubic resize
  // (align_corners false, CLS row kept).
  torch::Tensor vision_positions(int64_t grid);

  ModelConfig config;
  torch::nn::Conv2d patch_embed{nullptr};
  torch::Tensor class_embedding_vision, type_embed_vision, type_embed_text, pos_embed_vision,
      pos_embed_text, mask_embed_vision;
  torch::nn::Embedding word_embedding{nullptr};
  torch::nn::LayerNorm layer_norm_text{nullptr}, pre_layrnorm{nullptr}, norm{nullptr};
  std::vector<Block> layers;  // registered as encoder.layers.N
  ExpertLayout expert_layout = ExpertLayout::by_device;  // see EveModelImpl::set_expert_layout
  bool want_load = true;                                 // see EveModelImpl::set_want_load
  // In training with gradients on, run each layer under checkpoint() (model/checkpointing.h):
  // config gradient_checkpointing, or EveModelImpl::set_gradient_checkpointing.
  bool checkpoint_layers = false;
};
TORCH_MODULE(Backbone);

// Resizes a [(g0*g0)+1, W] position table to [(g*g)+1, W] (bicubic, CLS row kept).
torch::Tensor interpolate_positions(const torch::Tensor& table, int64_t grid);

// Images [B,3,R,R] -> patches [B,N,P*P*3], pixel order (row, column, channel) in a patch.
torch::Tensor patchify(const torch::Tensor& images, int64_t patch);

// Light Transformer decoder that predicts the pixels of every patch from the encoder's
// vision tokens (CLS + kept patches); missing patches start from a learned mask token.
class MimDecoderImpl : public torch::nn::Module {
 public:
  MimDecoderImpl(const ModelConfig& c);
  // vision: [B,1+K,D] encoder outputs; ids_keep: [B,K] (undefined = all patches given);
  // grid: patches per image side. Returns [B,grid*grid,P*P*3].
  torch::Tensor forward(const torch::Tensor& vision, const torch::Tensor& ids_keep,
                        int64_t grid);
  torch::nn::Linear embed{nullptr}, pred{nullptr};
  torch::Tensor mask_token, pos_embed;
  std::vector<Block> layers;
  torch::nn::LayerNorm norm{nullptr};
};
TORCH_MODULE(MimDecoder);

class EveModelImpl : public torch::nn::Module {
 public:
  // initialise = false leaves parameters at zero/one (cheap; for models whose weights are
  // loaded right away).
  explicit EveModelImpl(ModelConfig config, bool initialise = true);

  // Runs the backbone. Modes: vision (image only), text (text only), vl (both).
  EncoderOutput encode(Mode mode, const EncoderInput& in);

  // Retrieval: l2-normalised projections of the CLS vectors; logits scale 1/temperature.
  torch::Tensor itc_image(const torch::Tensor& vision_cls);
  torch::Tensor itc_text(const torch::Tensor& text_cls);
  // The CLS vector that retrieval evaluation projects, from a vision or text pass: after the
  // final LayerNorm with compat eve (what the ITC loss sees in training); before it with
  // compat official, as the released evaluation computes its embeddings (its forward_eval
  // never applies the final LayerNorm, while its training and fusion passes do).
  torch::Tensor eval_cls(const EncoderOutput& out) const;
  torch::Tensor itc_temperature();   // itc_temp, a 0-d parameter
  void clamp_itc_temperature();      // into [0.001, 0.5], after each optimiser step
  torch::Tensor itm_logits(const torch::Tensor& vl_pooled);   // [B,2], index 1 = match
  torch::Tensor vqa_logits(const torch::Tensor& vl_pooled);   // [B,num_answers]
  // NLVR2 (pair head): pooled vl vectors of (image0, text) and (image1, text) -> [B,2].
  torch::Tensor nlvr2_logits(const torch::Tensor& pooled0, const torch::Tensor& pooled1);
  // NLVR2 bi-attention head over the two full vl outputs.
  torch::Tensor nlvr2_biattn_logits(const EncoderOutput& out0, const EncoderOutput& out1);
  torch::Tensor mlm_logits(const torch::Tensor& hidden);      // [...,D] -> [...,V]
  // MIM: pixel predictions [B,N,P*P*3] from the vision part of an encoder output.
  torch::Tensor mim_predict(const EncoderOutput& out, const torch::Tensor& ids_keep);

  // Gradient checkpointing of the encoder layers: each keeps only its input in a training
  // forward pass and computes its activations again in backward, trading one more forward
  // pass of the encoder for its activation memory; gradients are those of the plain run.
  // Starts as the config's gradient_checkpointing; setting it changes this model only, not
  // config(), so a bundle saved afterwards records the config's value (--grad-checkpoint is a
  // setting of one run).
  void set_gradient_checkpointing(bool on);
  bool gradient_checkpointing() const;

  const ModelConfig& config() const { return config_; }
  Dispatch dispatch() const { return dispatch_; }
  void set_dispatch(Dispatch d) { dispatch_ = d; }
  // How the sparse dispatch runs the experts (moe.h, ExpertLayout); by device by default.
  void set_expert_layout(ExpertLayout l) { backbone->expert_layout = l; }
  // Whether encode() fills EncoderOutput::load (on by default). Its host fields read the
  // device, so training steps that do not log should turn it off; the load's tensors are then
  // undefined.
  void set_want_load(bool on) { backbone->want_load = on; }
  // Re-initialises every parameter as docs/architecture.md, "Initialisation", describes
  // (called by the constructor).
  void reset_parameters();

  Backbone backbone{nullptr};
  torch::nn::Linear itc_vision_proj_head{nullptr}, itc_text_proj_head{nullptr}, itm_head{nullptr};
  torch::Tensor itc_temp;
  torch::nn::Sequential output{nullptr};  // vqa or nlvr2 pair head
  // nlvr2_biattn: attn1, attn2, fc.0, attn_pool.fc.0, nlvr2_output
  torch::nn::MultiheadAttention attn1{nullptr}, attn2{nullptr};
  torch::nn::Linear bi_fc{nullptr}, bi_pool{nullptr}, nlvr2_output{nullptr};
  // mlm: mlm_head.transform.dense, mlm_head.transform.LayerNorm, mlm_head.decoder
  torch::nn::Linear mlm_dense{nullptr}, mlm_decoder{nullptr};
  torch::nn::LayerNorm mlm_norm{nullptr};
  MimDecoder mim_decoder{nullptr};

 private:
  ModelConfig config_;
  Dispatch dispatch_;
};
TORCH_MODULE(EveModel);

// Truncated normal in [mean - std, mean + std] (the official wrapper truncates at one sigma).
void trunc_normal_(torch::Tensor t, double std);

}  // namespace eve::model
