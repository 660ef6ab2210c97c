#include "eve/model/eve_model.h"

#include <cmath>
#include <limits>

#include "eve/core/error.h"
#include "eve/model/attention_cpu.h"
#include "eve/model/checkpointing.h"
#include "eve/model/runtime.h"

namespace eve::model {

namespace F = torch::nn::functional;
using torch::Tensor;

Mode parse_mode(const std::string& name) {
  if (name == "vision") return Mode::vision;
  if (name == "text") return Mode::text;
  if (name == "vl") return Mode::vl;
  throw Error("unknown mode \"" + name + "\"", {}, {}, "use vision, text or vl");
}

const char* mode_name(Mode mode) {
  switch (mode) {
    case Mode::vision: return "vision";
    case Mode::text: return "text";
    default: return "vl";
  }
}

torch::nn::LayerNorm layer_norm(int64_t width, double eps) {
  return torch::nn::LayerNorm(torch::nn::LayerNormOptions({width}).eps(eps));
}

void trunc_normal_(Tensor t, double std) {
  torch::NoGradGuard ng;
  // Inverse-CDF sampling of N(0, std) restricted to [-std, std].
  const double lo = 0.5 * (1.0 + std::erf(-1.0 / std::sqrt(2.0)));
  const double hi = 0.5 * (1.0 + std::erf(1.0 / std::sqrt(2.0)));
  t.uniform_(2 * lo - 1, 2 * hi - 1);
  t.erfinv_();
  t.mul_(std * std::sqrt(2.0));
  t.clamp_(-std, std);
}

namespace {

Tensor drop_path(const Tensor& x, double rate, bool training) {
  if (!training || rate <= 0) return x;
  const double keep = 1.0 - rate;
  std::vector<int64_t> shape(x.dim(), 1);
  shape[0] = x.size(0);
  Tensor mask = torch::empty(shape, x.options()).bernoulli_(keep).div_(keep);
  return x * mask;
}

void check(bool ok, const std::string& what) {
  if (!ok) throw Error(what);
}

std::string shape_str(const Tensor& t) {
  std::string s = "[";
  for (int64_t i = 0; i < t.dim(); ++i) s += (i ? "," : "") + std::to_string(t.size(i));
  return s + "]";
}

}  // namespace

// ---------------------------------------------------------------- attention

AttentionImpl::AttentionImpl(int64_t width, int64_t heads_, double dropout_)
    : heads(heads_), dropout(dropout_) {
  qkv = register_module("qkv",
                        torch::nn::Linear(torch::nn::LinearOptions(width, 3 * width).bias(false)));
  q_bias = register_parameter("q_bias", torch::zeros({width}));
  v_bias = register_parameter("v_bias", torch::zeros({width}));
  proj = register_module("proj", torch::nn::Linear(width, width));
}

Tensor AttentionImpl::forward(const Tensor& x, const Tensor& key_pad) {
  const int64_t B = x.size(0), L = x.size(1), D = x.size(2), hd = D / heads;
  Tensor bias = torch::cat({q_bias, torch::zeros_like(v_bias), v_bias});
  Tensor packed = torch::linear(x, qkv->weight, bias).view({B, L, 3, heads, hd});
  const double p = is_training() ? dropout : 0.0;
#if TORCH_VERSION_MAJOR < 2
  // Before libtorch 2 there is no fused attention; on the CPU eve has its own (attention_cpu.h).
  if (attention_cpu_applies(packed, p))
    return proj(attention_cpu(packed, key_pad, 1.0 / std::sqrt(static_cast<double>(hd))));
#endif
  // One unbind, not three selects: its backward stacks the three gradients once, where each
  // select's would fill a zero tensor the size of all three and the engine would add them.
  std::vector<Tensor> parts = packed.permute({2, 0, 3, 1, 4}).unbind(0);
  Tensor q = parts[0], k = parts[1], v = parts[2];
  Tensor o;
#if TORCH_VERSION_MAJOR >= 2
  c10::optional<Tensor> mask;
  if (key_pad.defined()) mask = key_pad.logical_not().view({B, 1, 1, L});
  // Under bf16 autocast q, k, v are bf16; the fused kernels accumulate scores and softmax in
  // float32.
  o = at::scaled_dot_product_attention(q, k, v, mask, p);
#else
  q = q * (1.0 / std::sqrt(static_cast<double>(hd)));
  Tensor probs;
  {
    // Scores and softmax in float32 also under bf16 autocast (matmul would run in bf16).
    model::NoAutocast full_precision;
    Tensor scores = torch::matmul(q.to(torch::kFloat), k.to(torch::kFloat).transpose(-2, -1));
    if (key_pad.defined())
      scores = scores.masked_fill(key_pad.view({B, 1, 1, L}),
                                  -std::numeric_limits<float>::infinity());
    probs = torch::softmax(scores, -1).to(v.scalar_type());
  }
  if (p > 0) probs = F::dropout(probs, F::DropoutFuncOptions().p(p).training(true));
  o = torch::matmul(probs, v);
#endif
  return proj(o.transpose(1, 2).reshape({B, L, D}));
}

// ---------------------------------------------------------------- block

BlockImpl::BlockImpl(int64_t width, int64_t heads, int64_t inner, FfnKind kind_,
                     const ModelConfig& c, double drop_path_)
    : kind(kind_), drop_path(drop_path_), layer_norm_eps(c.layer_norm_eps) {
  const double eps = c.layer_norm_eps;
  attn = register_module("attn", Attention(width, heads, c.attention_dropout));
  norm1 = register_module("norm1", layer_norm(width, eps));
  switch (kind) {
    case FfnKind::modality:
      norm2_imag = register_module("norm2_imag", layer_norm(width, eps));
      mlp_imag = register_module("mlp_imag", FeedForward(width, inner, c.hidden_act));
      norm2_text = register_module("norm2_text", layer_norm(width, eps));
      mlp_text = register_module("mlp_text", FeedForward(width, inner, c.hidden_act));
      break;
    case FfnKind::moe: {
      norm2_vl = register_module("norm2_vl", layer_norm(width, eps));
      auto holder = register_module("mlp_moe", std::make_shared<torch::nn::Module>());
      moe = holder->register_module(
          "moe", MoE(width, inner, c.moe_param.num_experts, c.moe_param.type_route, c.hidden_act));
      break;
    }
    case FfnKind::single:
      norm2 = register_module("norm2", layer_norm(width, eps));
      mlp = register_module("mlp", FeedForward(width, inner, c.hidden_act));
      break;
  }
  gamma_1 = register_parameter("gamma_1", torch::full({width}, c.layer_scale_init));
  gamma_2 = register_parameter("gamma_2", torch::full({width}, c.layer_scale_init));
}

Tensor BlockImpl::forward(const Tensor& h, const TokenLayout& layout, Tensor* aux,
                          MoeLoad* load) {
  const bool train = is_training();
  Tensor x = h + ::eve::model::drop_path(gamma_1 * attn(norm1(h), layout.key_pad), drop_path, train);
  Tensor y;
  if (kind == FfnKind::modality) {
    const int64_t L = x.size(1), s = layout.split;
    if (s >= L) {
      y = mlp_imag(norm2_imag(x));
    } else if (s <= 0) {
      y = mlp_text(norm2_text(x));
    } else {
      // One split, whose backward is one concatenation; two narrows would each fill a zero
      // gradient the size of x and add them.
      std::vector<Tensor> parts = x.split_with_sizes({s, L - s}, 1);
      y = torch::cat({mlp_imag(norm2_imag(parts[0])), mlp_text(norm2_text(parts[1]))}, 1);
    }
  } else if (kind == FfnKind::moe) {
    Tensor n = norm2_vl(x);
    Tensor flat = n.reshape({-1, n.size(2)});
    Tensor mod = layout.modality.reshape({-1});
    MoeResult r = moe(flat, mod, layout.routing, layout.route_mask);
    y = r.y.view_as(n);
    if (aux) *aux = r.aux;
    if (load) *load = r.load;
  } else {
    y = mlp(norm2(x));
  }
  return x + ::eve::model::drop_path(gamma_2 * y, drop_path, train);
}

// ---------------------------------------------------------------- backbone

namespace {

// An encoder block under checkpoint(): backward keeps only its input h. The MoE aux loss is a
// second output, so that its gradient reaches the router through the recomputation; the load
// statistics are those of the forward run (the recomputation routes the same way).
Tensor checkpointed_block(const Block& block, const Tensor& h, const TokenLayout& layout, Tensor* aux,
                          MoeLoad* load) {
  auto seen = std::make_shared<MoeLoad>();
  const bool train = block->is_training();
  std::shared_ptr<BlockImpl> b = block.ptr();
  CheckpointFn fn = [b, layout, seen, train](const std::vector<Tensor>& in) {
    // Train/eval switched between forward and backward would recompute something else.
    check(b->is_training() == train, "a checkpointed layer changed between training and "
                                         "evaluation before its backward pass");
    Tensor a;
    Tensor y = b->forward(in[0], layout, &a, seen.get());
    return a.defined() ? std::vector<Tensor>{y, a} : std::vector<Tensor>{y};
  };
  std::vector<Tensor> out = checkpoint(std::move(fn), {h}, block->parameters());
  if (out.size() > 1) {
    *aux = out[1];
    *load = *seen;
  }
  return out[0];
}

}  // namespace

Tensor interpolate_positions(const Tensor& table, int64_t grid) {
  const int64_t rows = table.size(0), W = table.size(1);
  const auto g0 = static_cast<int64_t>(std::llround(std::sqrt(static_cast<double>(rows - 1))));
  if (g0 * g0 + 1 != rows)
    throw Error("position table has " + std::to_string(rows) +
                " rows, not a square patch grid plus one CLS row");
  if (g0 == grid) return table;
  Tensor patches = table.narrow(0, 1, rows - 1).reshape({1, g0, g0, W}).permute({0, 3, 1, 2});
  Tensor resized = F::interpolate(patches.to(torch::kFloat),
                                  F::InterpolateFuncOptions()
                                      .size(std::vector<int64_t>{grid, grid})
                                      .mode(torch::kBicubic)
                                      .align_corners(false))
                       .to(table.scalar_type());
  return torch::cat({table.narrow(0, 0, 1), resized.permute({0, 2, 3, 1}).reshape({grid * grid, W})});
}

Tensor patchify(const Tensor& images, int64_t patch) {
  const int64_t B = images.size(0), C = images.size(1), g = images.size(2) / patch;
  return images.reshape({B, C, g, patch, g, patch})
      .permute({0, 2, 4, 3, 5, 1})
      .reshape({B, g * g, patch * patch * C});
}

BackboneImpl::BackboneImpl(const ModelConfig& c) : config(c) {
  const int64_t D = c.vision_width;
  patch_embed = register_module(
      "patch_embed",
      torch::nn::Conv2d(torch::nn::Conv2dOptions(3, D, c.patch_size).stride(c.patch_size)));
  class_embedding_vision = register_parameter("class_embedding_vision", torch::zeros({D}));
  type_embed_vision = register_parameter("type_embed_vision", torch::zeros({D}));
  type_embed_text = register_parameter("type_embed_text", torch::zeros({D}));
  pos_embed_vision = register_parameter("pos_embed_vision", torch::zeros({c.num_patches() + 1, D}));
  if (c.vision_mask_token) mask_embed_vision = register_parameter("mask_embed_vision", torch::zeros({D}));
  word_embedding = register_module("word_embedding", torch::nn::Embedding(c.vocab_size, D));
  pos_embed_text = register_parameter("pos_embed_text", torch::zeros({c.text_pos_rows, D}));
  layer_norm_text = register_module("layer_norm_text", layer_norm(D, c.layer_norm_eps));
  pre_layrnorm = register_module("pre_layrnorm", layer_norm(D, c.layer_norm_eps));
  auto encoder = register_module("encoder", std::make_shared<torch::nn::Module>());
  auto list = encoder->register_module("layers", torch::nn::ModuleList());
  const int L = c.num_hidden_layers;
  for (int l = 0; l < L; ++l) {
    double dp = L > 1 ? c.drop_path_rate * l / (L - 1) : 0.0;
    layers.push_back(Block(D, c.num_attention_heads, c.intermediate_size,
                           c.is_moe_layer(l) ? FfnKind::moe : FfnKind::modality, c, dp));
    list->push_back(layers.back());
  }
  norm = register_module("norm", layer_norm(D, c.layer_norm_eps));
  checkpoint_layers = c.gradient_checkpointing;
}

Tensor BackboneImpl::vision_positions(int64_t grid) {
  return interpolate_positions(pos_embed_vision, grid);
}

EncoderOutput BackboneImpl::forward(Mode mode, const EncoderInput& in, Dispatch dispatch) {
  const ModelConfig& c = config;
  const int64_t D = c.vision_width;
  std::vector<Tensor> parts, types, pads;
  EncoderOutput out;
  if (mode != Mode::text) {
    const Tensor& img = in.image;
    check(img.defined(), std::string("mode ") + mode_name(mode) + " needs an image");
    check(img.dim() == 4 && img.size(1) == 3 && img.size(2) == img.size(3) &&
              img.size(2) % c.patch_size == 0,
          "image batch must be [B,3,R,R] with R a multiple of " + std::to_string(c.patch_size) +
              ", found " + shape_str(img));
    Tensor x = patch_embed(img).flatten(2).transpose(1, 2);  // [B,N,D]
    const int64_t B = x.size(0), g = img.size(2) / c.patch_size, N = g * g;
    if (in.image_mask.defined()) {
      check(mask_embed_vision.defined(),
            "image_mask needs backbone.mask_embed_vision (config vision_mask_token: true)");
      check(in.image_mask.dim() == 2 && in.image_mask.size(0) == B && in.image_mask.size(1) == N,
            "image_mask must be [B,N] = [" + std::to_string(B) + "," + std::to_string(N) +
                "], found " + shape_str(in.image_mask));
      x = torch::where(in.image_mask.to(torch::kBool).unsqueeze(-1), mask_embed_vision.to(x.dtype()), x);
    }
    Tensor pos = vision_positions(g);
    x = x + pos.narrow(0, 1, N);
    if (in.ids_keep.defined()) {
      check(in.ids_keep.dim() == 2 && in.ids_keep.size(0) == B,
            "ids_keep must be [B,K], found " + shape_str(in.ids_keep));
      x = x.gather(1, in.ids_keep.unsqueeze(-1).expand({-1, -1, D}));
    }
    Tensor cls = (class_embedding_vision + pos[0]).view({1, 1, D}).expand({B, 1, D});
    x = torch::cat({cls, x}, 1) + type_embed_vision;
    out.num_vision = x.size(1);
    out.grid = g;
    parts.push_back(x);
    types.push_back(torch::zeros({B, x.size(1)}, torch::dtype(torch::kLong).device(x.device())));
    pads.push_back(torch::zeros({B, x.size(1)}, torch::dtype(torch::kBool).device(x.device())));
  }
  if (mode != Mode::vision) {
    const Tensor& ids = in.text_ids;
    check(ids.defined(), std::string("mode ") + mode_name(mode) + " needs text ids");
    check(ids.dim() == 2 && ids.size(1) >= 1 && ids.size(1) <= c.text_pos_rows,
          "text ids must be [B,T] with 1 <= T <= " + std::to_string(c.text_pos_rows) +
              ", found " + shape_str(ids));
    if (!parts.empty())
      check(ids.size(0) == parts[0].size(0), "image and text batches differ in size");
    const int64_t B = ids.size(0), T = ids.size(1);
    Tensor t = layer_norm_text(word_embedding(ids));
    if (c.text_dropout > 0)
      t = F::dropout(t, F::DropoutFuncOptions().p(c.text_dropout).training(is_training()));
    t = t + pos_embed_text.narrow(0, 0, T) + type_embed_text;
    parts.push_back(t);
    types.push_back(torch::ones({B, T}, torch::dtype(torch::kLong).device(t.device())));
    if (in.text_mask.defined()) {
      check(in.text_mask.sizes() == ids.sizes(),
            "text_mask must match text ids " + shape_str(ids) + ", found " + shape_str(in.text_mask));
      pads.push_back(in.text_mask.to(t.device()) == 0);
    } else {
      pads.push_back(torch::zeros({B, T}, torch::dtype(torch::kBool).device(t.device())));
    }
  }
  Tensor h = pre_layrnorm(parts.size() == 1 ? parts[0] : torch::cat(parts, 1));
  out.modality = types.size() == 1 ? types[0] : torch::cat(types, 1);
  out.pad = pads.size() == 1 ? pads[0] : torch::cat(pads, 1);
  const int64_t B = h.size(0), L = h.size(1);

  TokenLayout layout;
  layout.mode = mode;
  layout.modality = out.modality;
  // A given text mask is always the key padding mask: asking whether it pads anything would
  // read the device.
  const bool masked = mode != Mode::vision && in.text_mask.defined();
  if (masked) layout.key_pad = out.pad;
  if (mode == Mode::vision) layout.split = L;
  else if (mode == Mode::text) layout.split = 0;
  else layout.split = c.official() ? std::max<int64_t>(0, L - c.max_text_len) : out.num_vision;
  if (c.official() && mode == Mode::vl) {
    layout.modality = (torch::arange(L, out.modality.options()) >= c.num_patches() + 1)
                          .to(torch::kLong)
                          .unsqueeze(0)
                          .expand({B, L});
  }
  if (!c.official() && masked) layout.route_mask = out.pad.reshape({-1}).logical_not();
  const bool train = is_training();
  layout.routing.dispatch = dispatch;
  layout.routing.layout = expert_layout;
  layout.routing.want_load = want_load;
  layout.routing.noise = train ? c.moe_noise : c.inference_noise();
  if (train || c.official()) {
    const int64_t E = c.moe_param.num_experts;
    // The capacity of all B * L rows bounds the one of the real tokens (the formula grows
    // with the count): a size known on the host for the static expert layout.
    layout.routing.capacity = moe_capacity(B * L, E, c.moe_capacity_factor, c.moe_min_capacity);
    if (layout.route_mask.defined())
      layout.routing.capacity_limit = moe_capacity(layout.route_mask.sum(), E,
                                                   c.moe_capacity_factor, c.moe_min_capacity);
  } else {
    layout.routing.capacity = -1;
  }

  // Checkpointing saves memory only where a backward pass will follow.
  const bool recompute = checkpoint_layers && train && torch::GradMode::is_enabled();
  std::vector<Tensor> auxes;
  for (size_t l = 0; l < layers.size(); ++l) {
    Tensor aux;
    MoeLoad load;
    h = recompute ? checkpointed_block(layers[l], h, layout, &aux, &load)
                  : layers[l]->forward(h, layout, &aux, &load);
    if (aux.defined()) {
      auxes.push_back(aux);
      out.load.push_back({static_cast<int>(l), load});
    }
  }
  out.pre_norm = h;
  out.hidden = norm(h);
  out.aux = auxes.empty() ? torch::zeros({}, h.options())
                          : torch::stack(auxes).mean();
  out.pooled = out.hidden.select(1, mode == Mode::vl ? out.num_vision : 0);
  return out;
}

// ---------------------------------------------------------------- MIM decoder

MimDecoderImpl::MimDecoderImpl(const ModelConfig& c) {
  const int64_t D = c.vision_width, W = c.mim_decoder.width, P = c.patch_size;
  embed = register_module("embed", torch::nn::Linear(D, W));
  mask_token = register_parameter("mask_token", torch::zeros({W}));
  pos_embed = register_parameter("pos_embed", torch::zeros({c.num_patches() + 1, W}));
  auto list = register_module("layers", torch::nn::ModuleList());
  for (int l = 0; l < c.mim_decoder.depth; ++l) {
    layers.push_back(Block(W, c.mim_decoder.heads, c.mim_decoder.intermediate_size,
                           FfnKind::single, c, 0.0));
    list->push_back(layers.back());
  }
  norm = register_module("norm", layer_norm(W, c.layer_norm_eps));
  pred = register_module("pred", torch::nn::Linear(W, P * P * 3));
}

Tensor MimDecoderImpl::forward(const Tensor& vision, const Tensor& ids_keep, int64_t grid) {
  Tensor y = embed(vision);  // [B,1+K,W]
  const int64_t B = y.size(0), W = y.size(2), N = grid * grid;
  Tensor seq;
  if (ids_keep.defined()) {
    Tensor full = mask_token.view({1, 1, W}).expand({B, N, W});
    // scatter needs one dtype: under bf16 autocast y is bf16 (from a Linear), the mask token float32.
    full = full.scatter(1, ids_keep.unsqueeze(-1).expand({-1, -1, W}),
                        y.narrow(1, 1, y.size(1) - 1).to(full.scalar_type()));
    seq = torch::cat({y.narrow(1, 0, 1), full}, 1);
  } else {
    check(y.size(1) == N + 1, "MIM decoder: expected " + std::to_string(N + 1) + " vision tokens");
    seq = y;
  }
  seq = seq + interpolate_positions(pos_embed, grid);
  TokenLayout layout;
  for (auto& b : layers) seq = b->forward(seq, layout, nullptr, nullptr);
  return pred(norm(seq)).narrow(1, 1, N);
}

// ---------------------------------------------------------------- the model

EveModelImpl::EveModelImpl(ModelConfig c, bool initialise) : config_(std::move(c)) {
  if (model::deterministic_routing_requested()) config_.deterministic_routing = true;
  config_.validate();
  dispatch_ = parse_dispatch(config_.moe_dispatch);
  const ModelConfig& cf = config_;
  const int64_t D = cf.vision_width;
  backbone = register_module("backbone", Backbone(cf));
  if (cf.has_head("itc")) {
    itc_vision_proj_head = register_module(
        "itc_vision_proj_head", torch::nn::Linear(torch::nn::LinearOptions(D, D).bias(false)));
    itc_text_proj_head = register_module(
        "itc_text_proj_head", torch::nn::Linear(torch::nn::LinearOptions(D, D).bias(false)));
    itc_temp = register_parameter("itc_temp", torch::full({}, cf.itc_temp_init));
  }
  if (cf.has_head("itm")) itm_head = register_module("itm_head", torch::nn::Linear(D, 2));
  if (cf.has_head("vqa") || cf.has_head("nlvr2")) {
    const bool vqa = cf.has_head("vqa");
    const int64_t in = vqa ? D : 2 * D, out = vqa ? cf.num_answers : 2;
    output = register_module(
        "output", torch::nn::Sequential(
                      torch::nn::Linear(in, 2 * D),
                      torch::nn::LayerNorm(torch::nn::LayerNormOptions({2 * D}).eps(1e-5)),
                      torch::nn::GELU(), torch::nn::Linear(2 * D, out)));
  }
  if (cf.has_head("nlvr2_biattn")) {
    auto mha = [&] {
      return torch::nn::MultiheadAttention(
          torch::nn::MultiheadAttentionOptions(D, cf.num_attention_heads).dropout(0.1));
    };
    attn1 = register_module("attn1", mha());
    attn2 = register_module("attn2", mha());
    auto fc = register_module("fc", torch::nn::ModuleList());
    bi_fc = torch::nn::Linear(2 * D, D);
    fc->push_back(bi_fc);
    auto pool = register_module("attn_pool", std::make_shared<torch::nn::Module>());
    auto pool_fc = pool->register_module("fc", torch::nn::ModuleList());
    bi_pool = torch::nn::Linear(D, 1);
    pool_fc->push_back(bi_pool);
    nlvr2_output = register_module("nlvr2_output", torch::nn::Linear(2 * D, 2));
  }
  if (cf.has_head("mlm")) {
    auto head = register_module("mlm_head", std::make_shared<torch::nn::Module>());
    auto transform = head->register_module("transform", std::make_shared<torch::nn::Module>());
    mlm_dense = transform->register_module("dense", torch::nn::Linear(D, D));
    mlm_norm = transform->register_module("LayerNorm", layer_norm(D, 1e-12));
    mlm_decoder = head->register_module("decoder", torch::nn::Linear(D, cf.vocab_size));
  }
  if (cf.has_head("mim")) mim_decoder = register_module("mim_decoder", MimDecoder(cf));
  if (initialise) reset_parameters();
}

void EveModelImpl::reset_parameters() {
  torch::NoGradGuard ng;
  const double s = 0.02;
  // Everything except the bi-attention head (PyTorch default init) and the VQA/NLVR2
  // classifier (normal 0.02) is truncated normal 0.02.
  std::vector<std::shared_ptr<torch::nn::Module>> trunc_roots;
  trunc_roots.push_back(backbone.ptr());
  if (itc_vision_proj_head) {
    trunc_roots.push_back(itc_vision_proj_head.ptr());
    trunc_roots.push_back(itc_text_proj_head.ptr());
    itc_temp.fill_(config_.itc_temp_init);
  }
  if (itm_head) trunc_roots.push_back(itm_head.ptr());
  if (mlm_dense) {
    trunc_roots.push_back(mlm_dense.ptr());
    trunc_roots.push_back(mlm_decoder.ptr());
    mlm_norm->reset_parameters();
  }
  if (mim_decoder) trunc_roots.push_back(mim_decoder.ptr());
  for (auto& root : trunc_roots) {
    for (auto& m : root->modules()) {
      if (auto* lin = m->as<torch::nn::Linear>()) {
        trunc_normal_(lin->weight, s);
        if (lin->bias.defined()) lin->bias.zero_();
      } else if (auto* ln = m->as<torch::nn::LayerNorm>()) {
        ln->reset_parameters();
      }
    }
  }
  auto& b = *backbone;
  trunc_normal_(b.patch_embed->weight, s);
  b.patch_embed->bias.zero_();
  for (Tensor* t : {&b.class_embedding_vision, &b.type_embed_vision, &b.type_embed_text,
                    &b.pos_embed_vision, &b.pos_embed_text})
    trunc_normal_(*t, s);
  if (b.mask_embed_vision.defined()) trunc_normal_(b.mask_embed_vision, s);
  b.word_embedding->weight.normal_(0.0, s);
  auto reset_block = [&](Block& blk) {
    blk->gamma_1.fill_(config_.layer_scale_init);
    blk->gamma_2.fill_(config_.layer_scale_init);
    // Drawn again only when it differs, so that configs at the default consume the random
    // stream as before and a seed still gives the same model.
    if (config_.qk_init_std != s) {
      Tensor w = blk->attn->qkv->weight;
      trunc_normal_(w.narrow(0, 0, 2 * w.size(1)), config_.qk_init_std);
    }
    blk->attn->q_bias.zero_();
    blk->attn->v_bias.zero_();
    if (blk->moe && blk->moe->type_route) {
      trunc_normal_(blk->moe->vision_embed, s);
      trunc_normal_(blk->moe->text_embed, s);
    }
  };
  for (auto& blk : b.layers) reset_block(blk);
  if (mim_decoder) {
    for (auto& blk : mim_decoder->layers) reset_block(blk);
    trunc_normal_(mim_decoder->mask_token, s);
    trunc_normal_(mim_decoder->pos_embed, s);
  }
  if (output) {
    for (auto& m : output->modules()) {
      if (auto* lin = m->as<torch::nn::Linear>()) {
        lin->weight.normal_(0.0, s);
        lin->bias.zero_();
      }
    }
  }
}

void EveModelImpl::set_gradient_checkpointing(bool on) { backbone->checkpoint_layers = on; }

bool EveModelImpl::gradient_checkpointing() const { return backbone->checkpoint_layers; }

EncoderOutput EveModelImpl::encode(Mode mode, const EncoderInput& in) {
  return backbone->forward(mode, in, dispatch_);
}

namespace {
void need(const torch::nn::Module* m, const char* head) {
  if (!m)
    throw Error(std::string("the model has no ") + head + " head", {}, {},
                std::string("add \"") + head + "\" to the config's heads");
}
}  // namespace

Tensor EveModelImpl::itc_image(const Tensor& cls) {
  need(itc_vision_proj_head.get(), "itc");
  return F::normalize(itc_vision_proj_head(cls), F::NormalizeFuncOptions().dim(-1));
}

Tensor EveModelImpl::itc_text(const Tensor& cls) {
  need(itc_text_proj_head.get(), "itc");
  return F::normalize(itc_text_proj_head(cls), F::NormalizeFuncOptions().dim(-1));
}

Tensor EveModelImpl::eval_cls(const EncoderOutput& out) const {
  return config_.official() ? out.pre_norm.select(1, 0) : out.pooled;
}

Tensor EveModelImpl::itc_temperature() {
  need(itc_vision_proj_head.get(), "itc");
  return itc_temp;
}

void EveModelImpl::clamp_itc_temperature() {
  torch::NoGradGuard ng;
  if (itc_temp.defined()) itc_temp.clamp_(0.001, 0.5);
}

Tensor EveModelImpl::itm_logits(const Tensor& pooled) {
  need(itm_head.get(), "itm");
  return itm_head(pooled);
}

// The VQA/NLVR2 head (Linear, LayerNorm, GELU, Linear) with its LayerNorm on float32 input:
// under bf16 autocast the Linear before it yields bf16, and libtorch 1.13's CPU layer_norm
// refuses an input whose dtype differs from its float32 weight (CUDA autocast runs layer_norm
// in float32 by itself).
namespace {
Tensor run_output_head(torch::nn::Sequential& head, Tensor x) {
  for (auto& m : *head) {
    if (m.ptr()->as<torch::nn::LayerNorm>()) x = x.to(torch::kFloat32);
    x = m.forward<Tensor>(x);
  }
  return x;
}
}  // namespace

Tensor EveModelImpl::vqa_logits(const Tensor& pooled) {
  check(output && config_.has_head("vqa"), "the model has no vqa head");
  return run_output_head(output, pooled);
}

Tensor EveModelImpl::nlvr2_logits(const Tensor& p0, const Tensor& p1) {
  check(output && config_.has_head("nlvr2"), "the model has no nlvr2 head");
  return run_output_head(output, torch::cat({p0, p1}, -1));
}

Tensor EveModelImpl::nlvr2_biattn_logits(const EncoderOutput& o0, const EncoderOutput& o1) {
  need(nlvr2_output.get(), "nlvr2_biattn");
  const bool train = is_training();
  auto cross = [&](torch::nn::MultiheadAttention& mha, const Tensor& q, const Tensor& kv,
                   const Tensor& kv_pad) {
    // Float32 under bf16 autocast too, like the encoder's attention scores; besides,
    // libtorch 1.13's MultiheadAttention masks padded keys with a masked_fill that has no
    // bf16 kernel on the CPU, so a bf16 pass of this head failed there.
    model::NoAutocast full_precision;
    Tensor qt = q.transpose(0, 1).to(torch::kFloat), kvt = kv.transpose(0, 1).to(torch::kFloat);
    auto r = mha->forward(qt, kvt, kvt, kv_pad, /*need_weights=*/false);
    return std::get<0>(r).transpose(0, 1);
  };
  auto fuse = [&](const Tensor& crossed, const Tensor& own) {
    Tensor y = torch::relu(bi_fc(torch::cat({crossed, own}, -1)));
    return F::dropout(y, F::DropoutFuncOptions().p(0.1).training(train));
  };
  auto pool = [&](const Tensor& x, const Tensor& pad) {
    Tensor score = torch::relu(bi_pool(x)).squeeze(-1).masked_fill(pad, -1e4);
    Tensor w = F::dropout(torch::softmax(score, -1), F::DropoutFuncOptions().p(0.1).training(train));
    return (w.unsqueeze(-1) * x).sum(1);
  };
  Tensor left = fuse(cross(attn1, o0.hidden, o1.hidden, o1.pad), o0.hidden);
  Tensor right = fuse(cross(attn2, o1.hidden, o0.hidden, o0.pad), o1.hidden);
  return nlvr2_output(torch::cat({pool(left, o0.pad), pool(right, o1.pad)}, -1));
}

Tensor EveModelImpl::mlm_logits(const Tensor& hidden) {
  need(mlm_dense.get(), "mlm");
  // LayerNorm input in float32 (bf16 under autocast; see run_output_head).
  return mlm_decoder(mlm_norm(torch::gelu(mlm_dense(hidden)).to(torch::kFloat32)));
}

Tensor EveModelImpl::mim_predict(const EncoderOutput& out, const Tensor& ids_keep) {
  need(mim_decoder.get(), "mim");
  check(out.num_vision > 0, "MIM needs an encoder output with vision tokens");
  return mim_decoder(out.hidden.narrow(1, 0, out.num_vision), ids_keep, out.grid);
}

}  // namespace eve::model
