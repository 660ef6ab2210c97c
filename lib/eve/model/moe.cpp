#include "eve/model/moe.h"

#include <cmath>
#include <limits>

#include "eve/core/error.h"
#include "eve/model/runtime.h"

namespace eve::model {

namespace F = torch::nn::functional;

Dispatch parse_dispatch(const std::string& name) {
  if (name == "sparse") return Dispatch::sparse;
  if (name == "dense") return Dispatch::dense;
  throw Error("unknown MoE dispatch \"" + name + "\"", {}, {}, "use sparse or dense");
}

torch::Tensor activation(const torch::Tensor& x, const std::string& act) {
  if (act == "quick_gelu") return x * torch::sigmoid(1.702 * x);
  return torch::gelu(x);
}

FeedForwardImpl::FeedForwardImpl(int64_t width, int64_t inner, std::string act_)
    : act(std::move(act_)) {
  fc1 = register_module("fc1", torch::nn::Linear(width, inner));
  fc2 = register_module("fc2", torch::nn::Linear(inner, width));
}

torch::Tensor FeedForwardImpl::forward(const torch::Tensor& x) {
  return fc2(activation(fc1(x), act));
}

int64_t moe_capacity(int64_t tokens, int64_t experts, double factor, int64_t min_capacity) {
  auto c = static_cast<int64_t>(
      std::ceil(static_cast<double>(tokens) / static_cast<double>(experts) * factor * 2.0));
  return std::max(c, min_capacity);
}

Routing route(const torch::Tensor& logits_in, int64_t capacity, bool noise) {
  Routing r;
  torch::Tensor logits = logits_in.to(torch::kFloat);
  const int64_t E = logits.size(1);
  r.gates = torch::softmax(logits, 1);
  r.top1 = r.gates.argmax(1);
  torch::Tensor mask1 = F::one_hot(r.top1, E);
  torch::Tensor second = logits.detach();
  if (noise) {
    torch::Tensor u = torch::rand_like(second).clamp(1e-20, 1.0 - 1e-7);
    second = second - torch::log(-torch::log(u));
  }
  second = second.masked_fill(mask1.to(torch::kBool), -std::numeric_limits<float>::infinity());
  r.top2 = second.argmax(1);
  torch::Tensor mask2 = F::one_hot(r.top2, E);

  torch::Tensor me = r.gates.mean(0);
  torch::Tensor ce = mask1.to(torch::kFloat).mean(0);
  r.aux = (me * ce).sum() * static_cast<double>(E);

  // Slot of each claim: running count inside its expert, top-1 claims first.
  torch::Tensor loc1 = torch::cumsum(mask1, 0) - 1;
  torch::Tensor loc2 = torch::cumsum(mask2, 0) - 1 + mask1.sum(0, /*keepdim=*/true);
  r.slot1 = (loc1 * mask1).sum(1);
  r.slot2 = (loc2 * mask2).sum(1);
  r.capacity = capacity;
  if (capacity >= 0) {
    r.keep1 = r.slot1 < capacity;
    r.keep2 = r.slot2 < capacity;
  } else {
    r.keep1 = torch::ones_like(r.top1, torch::kBool);
    r.keep2 = r.keep1;
  }
  torch::Tensor g1 = r.gates.gather(1, r.top1.unsqueeze(1)).squeeze(1) * r.keep1;
  torch::Tensor g2 = r.gates.gather(1, r.top2.unsqueeze(1)).squeeze(1) * r.keep2;
  torch::Tensor denom = (g1 + g2).clamp_min(std::numeric_limits<float>::epsilon());
  r.w1 = g1 / denom;
  r.w2 = g2 / denom;
  return r;
}

MoEImpl::MoEImpl(int64_t width, int64_t inner, int64_t n_experts, bool type_route_,
                 std::string act)
    : type_route(type_route_) {
  auto gate = register_module("gate", std::make_shared<torch::nn::Module>());
  wg = gate->register_module("wg", torch::nn::Linear(
                                       torch::nn::LinearOptions(width, n_experts).bias(false)));
  if (type_route) {
    vision_embed = register_parameter("vision_embed", torch::zeros({width}));
    text_embed = register_parameter("text_embed", torch::zeros({width}));
  }
  auto holder = register_module("experts", std::make_shared<torch::nn::Module>());
  auto list = holder->register_module("experts", torch::nn::ModuleList());
  for (int64_t e = 0; e < n_experts; ++e) {
    experts.push_back(FeedForward(width, inner, act));
    list->push_back(experts.back());
  }
}

MoeResult MoEImpl::forward(const torch::Tensor& x, const torch::Tensor& modality,
                           const RoutingOptions& opt) {
  const int64_t E = num_experts();
  if (x.size(0) == 0) {  // nothing to route (e.g. every token is padding)
    MoeResult empty;
    empty.y = torch::zeros_like(x);
    empty.aux = torch::zeros({}, x.options().dtype(torch::kFloat));
    auto zeros = torch::zeros({E}, torch::dtype(torch::kLong).device(x.device()));
    empty.load = {zeros, zeros, zeros, 0, opt.capacity};
    return empty;
  }
  torch::Tensor xt = x;
  if (type_route) xt = x + torch::stack({vision_embed, text_embed}).index_select(0, modality);
  Routing r;
  {
    // The router runs in float32 also under bf16 autocast (which would cast the linear down).
    nn::NoAutocast full_precision;
    torch::Tensor logits = torch::linear(xt.to(torch::kFloat), wg->weight.to(torch::kFloat));
    r = route(logits, opt.capacity, opt.noise);
  }
  MoeResult out;
  out.y = opt.dispatch == Dispatch::sparse ? dispatch_sparse(xt, r) : dispatch_dense(xt, r);
  out.aux = r.aux;
  torch::NoGradGuard ng;
  out.load.top1 = torch::bincount(r.top1, {}, E);
  out.load.claims = out.load.top1 + torch::bincount(r.top2, {}, E);
  out.load.kept = torch::bincount(r.top1.masked_select(r.keep1), {}, E) +
                  torch::bincount(r.top2.masked_select(r.keep2), {}, E);
  out.load.tokens = x.size(0);
  out.load.capacity = r.capacity;
  return out;
}

torch::Tensor MoEImpl::dispatch_sparse(const torch::Tensor& xt, const Routing& r) {
  const int64_t S = xt.size(0), E = num_experts();
  torch::Tensor idx = torch::arange(S, r.top1.options());
  torch::Tensor tok = torch::cat({idx.masked_select(r.keep1), idx.masked_select(r.keep2)});
  torch::Tensor exp = torch::cat({r.top1.masked_select(r.keep1), r.top2.masked_select(r.keep2)});
  torch::Tensor w = torch::cat({r.w1.masked_select(r.keep1), r.w2.masked_select(r.keep2)});
  if (tok.numel() == 0) return torch::zeros_like(xt);
  torch::Tensor order = std::get<1>(exp.sort(/*stable=*/true, 0, false));
  torch::Tensor tok_s = tok.index_select(0, order);
  torch::Tensor w_s = w.index_select(0, order).to(xt.scalar_type()).unsqueeze(1);
  torch::Tensor counts = torch::bincount(exp, {}, E).cpu();
  const int64_t* n = counts.data_ptr<int64_t>();
  // One split (its backward is one concatenation) rather than a slice per expert (each
  // slice's backward would materialise a gradient the size of all rows).
  std::vector<int64_t> sizes(n, n + E);
  std::vector<torch::Tensor> parts = xt.index_select(0, tok_s).split_with_sizes(sizes);
  std::vector<torch::Tensor> outs;
  for (int64_t e = 0; e < E; ++e) {
    if (n[e] == 0) continue;
    outs.push_back(experts[e]->forward(parts[e]));
  }
  torch::Tensor ys = (outs.size() == 1 ? outs[0] : torch::cat(outs)) * w_s;
  return torch::zeros_like(xt).index_add(0, tok_s, ys);
}

torch::Tensor MoEImpl::dispatch_dense(const torch::Tensor& xt, const Routing& r) {
  const int64_t E = num_experts();
  int64_t C = r.capacity;
  if (C < 0) {  // unlimited: just enough slots for the fullest expert
    C = 1 + std::max(r.slot1.max().item<int64_t>(), r.slot2.max().item<int64_t>());
  }
  auto opts = xt.options();
  torch::Tensor oh1 = F::one_hot(r.top1, E).to(opts.dtype()) * r.keep1.unsqueeze(1);
  torch::Tensor oh2 = F::one_hot(r.top2, E).to(opts.dtype()) * r.keep2.unsqueeze(1);
  torch::Tensor s1 = F::one_hot(r.slot1 * r.keep1, C).to(opts.dtype());
  torch::Tensor s2 = F::one_hot(r.slot2 * r.keep2, C).to(opts.dtype());
  // dispatch[s, e, c] = 1 when token s sits in slot c of expert e.
  torch::Tensor dispatch = oh1.unsqueeze(2) * s1.unsqueeze(1) + oh2.unsqueeze(2) * s2.unsqueeze(1);
  torch::Tensor wmap = r.w1.to(opts.dtype()).unsqueeze(1) * oh1 +
                       r.w2.to(opts.dtype()).unsqueeze(1) * oh2;
  torch::Tensor combine = dispatch * wmap.unsqueeze(2);
  torch::Tensor dispatched = torch::einsum("sec,sm->ecm", {dispatch, xt});
  std::vector<torch::Tensor> per_expert = dispatched.unbind(0);  // one backward node
  std::vector<torch::Tensor> outs;
  outs.reserve(E);
  for (int64_t e = 0; e < E; ++e) outs.push_back(experts[e]->forward(per_expert[e]));
  return torch::einsum("sec,ecm->sm", {combine, torch::stack(outs)});
}

}  // namespace eve::model
