#include "eve/model/moe.h"

#include <ATen/record_function.h>

#include <cmath>
#include <cstdlib>
#include <limits>
#include <vector>
#include <mutex>

#include "eve/core/error.h"
#include "eve/model/runtime.h"

namespace eve::model {


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

torch::Tensor moe_capacity(const torch::Tensor& tokens, int64_t experts, double factor,
                           int64_t min_capacity) {
  // The host formula's operations in the same order on float64, so both round alike.
  return (tokens.to(torch::kDouble) / static_cast<double>(experts) * factor * 2.0)
      .ceil()
      .clamp_min(static_cast<double>(min_capacity))
      .to(torch::kLong);
}

namespace {

// [S, n] bool, row s true at ids[s]. Not F::one_hot: it checks the range of its input with a
// read of the device on every device but CUDA.
torch::Tensor one_hot_mask(const torch::Tensor& ids, int64_t n) {
  return ids.unsqueeze(1) == torch::arange(n, ids.options());
}

}  // namespace

Routing route(const torch::Tensor& logits, int64_t capacity, bool noise) {
  RoutingOptions opt;
  opt.capacity = capacity;
  opt.noise = noise;
  return route(logits, opt);
}

Routing route(const torch::Tensor& logits_in, const RoutingOptions& opt,
              const torch::Tensor& active) {
  Routing r;
  torch::Tensor logits = logits_in.to(torch::kFloat);
  const int64_t S = logits.size(0), E = logits.size(1);
  r.gates = torch::softmax(logits, 1);
  r.top1 = r.gates.argmax(1);
  torch::Tensor first = one_hot_mask(r.top1, E);
  torch::Tensor second = logits.detach();
  if (opt.noise) {
    torch::Tensor u;
    if (active.defined() && second.device().is_cpu()) {
      // On the CPU the routed rows are known on the host for free: draw numbers for them
      // alone, in row order, as routing only the real tokens does, so the random stream (and
      // every later draw of the step) is the same with padding in the batch as without it.
      // The rows are read through data_ptr, not an op that would read a device.
      torch::Tensor a = active.to(torch::kBool).contiguous();
      const bool* p = a.data_ptr<bool>();
      std::vector<int64_t> rows;
      for (int64_t i = 0; i < S; ++i)
        if (p[i]) rows.push_back(i);
      torch::Tensor drawn = torch::rand({static_cast<int64_t>(rows.size()), E}, second.options());
      u = torch::full_like(second, 0.5).index_copy_(0, torch::tensor(rows, torch::kLong), drawn);
    } else {
      // Elsewhere every row draws (padding included), so nothing is read back: each routed
      // row's noise has the same distribution, from other numbers of the stream.
      u = torch::rand_like(second);
    }
    second = second - torch::log(-torch::log(u.clamp(1e-20, 1.0 - 1e-7)));
  }
  second = second.masked_fill(first, -std::numeric_limits<float>::infinity());
  r.top2 = second.argmax(1);
  torch::Tensor mask1 = first.to(torch::kLong);
  torch::Tensor mask2 = one_hot_mask(r.top2, E).to(torch::kLong);

  torch::Tensor me, ce;
  if (active.defined()) {
    // Inactive rows claim nothing: zeroed before the running counts, so the slots of the
    // active rows are what routing them alone would give; the aux loss averages over them.
    r.active = active;
    torch::Tensor a = active.to(torch::kLong).unsqueeze(1);
    mask1 = mask1 * a;
    mask2 = mask2 * a;
    torch::Tensor n = a.sum().clamp_min(1).to(torch::kFloat);
    me = (r.gates * a).sum(0) / n;
    ce = mask1.to(torch::kFloat).sum(0) / n;
  } else {
    me = r.gates.mean(0);
    ce = mask1.to(torch::kFloat).mean(0);
  }
  r.aux = (me * ce).sum() * static_cast<double>(E);

  // Slot of each claim: running count inside its expert, top-1 claims first.
  torch::Tensor loc1 = torch::cumsum(mask1, 0) - 1;
  torch::Tensor loc2 = torch::cumsum(mask2, 0) - 1 + mask1.sum(0, /*keepdim=*/true);
  r.slot1 = (loc1 * mask1).sum(1);
  r.slot2 = (loc2 * mask2).sum(1);
  r.capacity = opt.capacity;
  r.limit = opt.capacity_limit;
  if (r.limit.defined()) {
    r.keep1 = r.slot1 < r.limit;
    r.keep2 = r.slot2 < r.limit;
  } else if (r.capacity >= 0) {
    r.keep1 = r.slot1 < r.capacity;
    r.keep2 = r.slot2 < r.capacity;
  } else {
    r.keep1 = torch::ones_like(r.top1, torch::kBool);
    r.keep2 = r.keep1;
  }
  if (active.defined()) {
    r.keep1 = r.keep1 & active;
    r.keep2 = r.keep2 & active;
  }
  // An expert takes at most one claim of each row (top-2 differs from top-1), so S slots
  // always suffice.
  r.slots = r.capacity >= 0 ? std::min(r.capacity, S) : S;
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

namespace {

// Claims per expert among the rows where `where` is true, on the device (bincount would read
// its input's maximum to the host).
torch::Tensor count_claims(const torch::Tensor& experts, const torch::Tensor& where, int64_t E) {
  return torch::zeros({E}, experts.options()).scatter_add_(0, experts, where.to(torch::kLong));
}

MoeLoad load_of(const Routing& r, int64_t E) {
  torch::NoGradGuard ng;
  MoeLoad load;
  torch::Tensor all = r.active.defined() ? r.active : torch::ones_like(r.top1, torch::kBool);
  load.top1 = count_claims(r.top1, all, E);
  load.claims = load.top1 + count_claims(r.top2, all, E);
  load.kept = count_claims(r.top1, r.keep1, E) + count_claims(r.top2, r.keep2, E);
  const auto on_device = r.top1.options();
  load.tokens = r.active.defined() ? load.top1.sum() : torch::scalar_tensor(r.top1.size(0), on_device);
  load.capacity = r.limit.defined() ? r.limit.to(torch::kLong) : torch::scalar_tensor(r.capacity, on_device);
  return load;
}

}  // namespace

MoeResult MoEImpl::forward(const torch::Tensor& x, const torch::Tensor& modality,
                           const RoutingOptions& opt, const torch::Tensor& active) {
  const int64_t E = num_experts();
  if (x.size(0) == 0) {  // nothing to route
    MoeResult empty;
    empty.y = torch::zeros_like(x);
    empty.aux = torch::zeros({}, x.options().dtype(torch::kFloat));
    auto zeros = torch::zeros({E}, torch::dtype(torch::kLong).device(x.device()));
    empty.load = {zeros, zeros, zeros, torch::scalar_tensor(0, zeros.options()),
                  torch::scalar_tensor(opt.capacity, zeros.options())};
    return empty;
  }
  torch::Tensor xt = x;
  if (type_route) xt = x + torch::stack({vision_embed, text_embed}).index_select(0, modality);
  Routing r;
  {
    // The router runs in float32 also under bf16 autocast (which would cast the linear down).
    model::NoAutocast full_precision;
    torch::Tensor logits = torch::linear(xt.to(torch::kFloat), wg->weight.to(torch::kFloat));
    r = route(logits, opt, active);
  }
  MoeResult out;
  out.y = opt.dispatch == Dispatch::sparse ? dispatch_sparse(xt, r, opt.layout)
                                           : dispatch_dense(xt, r);
  out.aux = r.aux;
  if (opt.want_load) out.load = load_of(r, E);
  return out;
}

namespace {

// EVE_MOE_LAYOUT=grouped|capacity replaces by_device (for benchmarks: the op census of the
// layout a GPU runs, measured on a CPU). Read once; an unknown name is an error.
ExpertLayout layout_from_env() {
  static const ExpertLayout layout = [] {
    const char* v = std::getenv("EVE_MOE_LAYOUT");
    const std::string name = v ? v : "";
    if (name.empty() || name == "by_device") return ExpertLayout::by_device;
    if (name == "grouped") return ExpertLayout::grouped;
    if (name == "capacity") return ExpertLayout::capacity;
    throw Error("EVE_MOE_LAYOUT=" + name + ": unknown expert layout", {}, {},
                "use grouped, capacity or by_device");
  }();
  return layout;
}

}  // namespace

torch::Tensor MoEImpl::dispatch_sparse(const torch::Tensor& xt, const Routing& r,
                                       ExpertLayout layout) {
  if (layout == ExpertLayout::by_device) layout = layout_from_env();
  if (layout == ExpertLayout::by_device)
    layout = xt.device().is_cpu() ? ExpertLayout::grouped : ExpertLayout::capacity;
  return layout == ExpertLayout::grouped ? dispatch_grouped(xt, r) : dispatch_capacity(xt, r);
}

torch::Tensor MoEImpl::dispatch_grouped(const torch::Tensor& xt, const Routing& r) {
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

namespace {

// The experts' weights, one tensor per expert, handed to ExpertProducts beside their stacks:
// backward stacks them again rather than have the forward stacks kept alive.
struct ExpertWeights {
  std::vector<torch::Tensor> w1, w2;
  std::string act;
};

// y = b2 + act(b1 + xs W1^T) W2^T for all experts at once, over [E, C, D] slots, with the
// weights stacked to [E, F, D] / [E, D, F]. Written by hand for its backward pass alone: two
// baddbmm would each keep their stacked weights for backward, a copy of every expert's
// weights per MoE call (0.6 GB for eve-base's 32 experts in float32, on each of a step's
// passes through each layer). This keeps only xs and the pre-activation h, and stacks the
// weights again, one at a time, while it runs backward. The activation's derivative comes
// from autograd on the recomputed activation, so any activation works.
struct ExpertProducts : public torch::autograd::Function<ExpertProducts> {
  static torch::Tensor forward(torch::autograd::AutogradContext* ctx, const torch::Tensor& xs,
                               const torch::Tensor& w1, const torch::Tensor& b1, const torch::Tensor& w2,
                               const torch::Tensor& b2, const ExpertWeights& weights) {
    // Under autocast these run as the two baddbmm did (in the autocast type).
    torch::Tensor h = torch::baddbmm(b1.unsqueeze(1), xs, w1.transpose(1, 2));  // [E, C, F]
    torch::Tensor y = torch::baddbmm(b2.unsqueeze(1), activation(h, weights.act), w2.transpose(1, 2));
    ctx->save_for_backward({xs, h});
    ctx->saved_data["w1"] = c10::List<torch::Tensor>(weights.w1);
    ctx->saved_data["w2"] = c10::List<torch::Tensor>(weights.w2);
    ctx->saved_data["act"] = weights.act;
    ctx->saved_data["param_type"] = static_cast<int64_t>(w1.scalar_type());
    return y;
  }

  static torch::autograd::variable_list backward(torch::autograd::AutogradContext* ctx,
                                                 torch::autograd::variable_list grads) {
    const auto saved = ctx->get_saved_variables();
    const torch::Tensor& xs = saved[0];
    const torch::Tensor& h = saved[1];
    const auto type = h.scalar_type();  // the products' type (bf16 under autocast)
    const auto param_type = static_cast<c10::ScalarType>(ctx->saved_data["param_type"].toInt());
    const torch::Tensor dy = grads[0].to(type);
    torch::Tensor a, dh;
    {
      torch::Tensor w2 = torch::stack(ctx->saved_data["w2"].toTensorList().vec()).to(type);  // [E, D, F]
      torch::Tensor da = torch::bmm(dy, w2);                                                 // [E, C, F]
      torch::AutoGradMode grad_on(true);
      torch::Tensor hv = h.detach().requires_grad_();
      torch::Tensor av = activation(hv, ctx->saved_data["act"].toStringRef());
      dh = torch::autograd::grad({av}, {hv}, {da})[0];
      a = av.detach();
    }
    torch::Tensor dw2 = torch::bmm(dy.transpose(1, 2), a);  // [E, D, F]
    torch::Tensor db2 = dy.sum(1);
    torch::Tensor dw1 = torch::bmm(dh.transpose(1, 2), xs.to(type));  // [E, F, D]
    torch::Tensor db1 = dh.sum(1);
    torch::Tensor w1 = torch::stack(ctx->saved_data["w1"].toTensorList().vec()).to(type);
    torch::Tensor dxs = torch::bmm(dh, w1);  // [E, C, D]
    return {dxs.to(xs.scalar_type()), dw1.to(param_type), db1.to(param_type), dw2.to(param_type),
            db2.to(param_type), torch::Tensor()};
  }
};

}  // namespace

torch::Tensor MoEImpl::dispatch_capacity(const torch::Tensor& xt, const Routing& r) {
  const int64_t S = xt.size(0), D = xt.size(1), E = num_experts(), C = r.slots;
  torch::Tensor tok = torch::arange(S, r.top1.options());
  // Row of each claim in the [E * C] layout. A dropped claim gets a spare row of its own past
  // the end, so no two claims write one place and the scatter is deterministic.
  torch::Tensor row1 = torch::where(r.keep1, r.top1 * C + r.slot1, tok + E * C);
  torch::Tensor row2 = torch::where(r.keep2, r.top2 * C + r.slot2, tok + (E * C + S));
  // The token in each slot. An empty slot holds token 0: computed, never read back, and its
  // gradient is zero.
  torch::Tensor fill = torch::zeros({E * C + 2 * S}, tok.options())
                           .scatter_(0, torch::cat({row1, row2}), torch::cat({tok, tok}))
                           .narrow(0, 0, E * C);
  torch::Tensor xs = xt.index_select(0, fill).view({E, C, D});
  // The registered per-expert weights stacked for one batched product (one op each way;
  // nothing keeps the stacks once the products have run, see ExpertProducts).
  ExpertWeights weights;
  std::vector<torch::Tensor> b1, b2;
  for (auto& ex : experts) {
    weights.w1.push_back(ex->fc1->weight);
    b1.push_back(ex->fc1->bias);
    weights.w2.push_back(ex->fc2->weight);
    b2.push_back(ex->fc2->bias);
  }
  weights.act = experts[0]->act;
  torch::Tensor y = ExpertProducts::apply(xs, torch::stack(weights.w1), torch::stack(b1),
                                          torch::stack(weights.w2), torch::stack(b2), weights)
                        .view({E * C, D});
  // Combine by gathering each row's two slots; a dropped claim reads slot 0 with weight 0.
  torch::Tensor at1 = row1 * r.keep1, at2 = row2 * r.keep2;
  return y.index_select(0, at1) * r.w1.to(y.scalar_type()).unsqueeze(1) +
         y.index_select(0, at2) * r.w2.to(y.scalar_type()).unsqueeze(1);
}

torch::Tensor MoEImpl::dispatch_dense(const torch::Tensor& xt, const Routing& r) {
  const int64_t E = num_experts();
  int64_t C = r.slots;
  if (r.capacity < 0) {
    // Unlimited (inference only): just enough slots for the fullest expert, read from the
    // device; S slots would make the [S, E, C] dispatch tensor quadratic in the tokens.
    C = 1 + std::max(r.slot1.max().item<int64_t>(), r.slot2.max().item<int64_t>());
  }
  auto opts = xt.options();
  torch::Tensor oh1 = one_hot_mask(r.top1, E).to(opts.dtype()) * r.keep1.unsqueeze(1);
  torch::Tensor oh2 = one_hot_mask(r.top2, E).to(opts.dtype()) * r.keep2.unsqueeze(1);
  torch::Tensor s1 = one_hot_mask(r.slot1 * r.keep1, C).to(opts.dtype());
  torch::Tensor s2 = one_hot_mask(r.slot2 * r.keep2, C).to(opts.dtype());
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

// ---------------------------------------------------------------- op counter

namespace {

std::mutex counter_mutex;
std::map<std::string, int64_t>* counter_state = nullptr;  // the live counter's, under the mutex

bool reads_host(const std::string& name) {
  static const char* const names[] = {"aten::item",   "aten::_local_scalar_dense",
                                      "aten::is_nonzero", "aten::equal",
                                      "aten::nonzero", "aten::masked_select",
                                      "aten::bincount"};
  for (const char* n : names)
    if (name == n) return true;
  return name.rfind("aten::unique", 0) == 0 || name.rfind("aten::_unique", 0) == 0;
}

// A copy whose source lies off the CPU and whose target device is the CPU.
bool copies_to_cpu(const at::RecordFunction& fn, const std::string& name) {
  if (name != "aten::to" && name != "aten::_to_copy" && name != "aten::copy_") return false;
  auto inputs = fn.inputs();
  if (inputs.empty()) return false;
  if (name == "aten::copy_") {  // copy_(self = destination, src)
    return inputs.size() >= 2 && inputs[0].isTensor() && inputs[1].isTensor() &&
           inputs[0].toTensor().device().is_cpu() && !inputs[1].toTensor().device().is_cpu();
  }
  if (!inputs[0].isTensor() || inputs[0].toTensor().device().is_cpu()) return false;
  for (const auto& v : inputs)
    if (v.isDevice() && v.toDevice().is_cpu()) return true;
  return false;
}

std::unique_ptr<at::ObserverContext> count_op(const at::RecordFunction& fn) {
  std::string name = fn.name();
  std::lock_guard<std::mutex> lock(counter_mutex);
  if (!counter_state) return nullptr;
  ++(*counter_state)[name];
  if (copies_to_cpu(fn, name)) ++(*counter_state)["copy to cpu"];
  return nullptr;
}

}  // namespace

OpCounter::OpCounter() {
  {
    std::lock_guard<std::mutex> lock(counter_mutex);
    if (counter_state) throw Error("one OpCounter at a time");
    counter_state = new std::map<std::string, int64_t>();
  }
  // Global, not thread-local: backward may run on the autograd engine's device threads.
  handle_ = at::addGlobalCallback(at::RecordFunctionCallback(count_op).needsInputs(true));
}

OpCounter::~OpCounter() {
  at::removeCallback(handle_);
  std::lock_guard<std::mutex> lock(counter_mutex);
  delete counter_state;
  counter_state = nullptr;
}

std::map<std::string, int64_t> OpCounter::counts() const {
  std::lock_guard<std::mutex> lock(counter_mutex);
  std::map<std::string, int64_t> out = *counter_state;
  out.erase("copy to cpu");
  return out;
}

std::map<std::string, int64_t> OpCounter::host_reads() const {
  std::lock_guard<std::mutex> lock(counter_mutex);
  std::map<std::string, int64_t> out;
  for (const auto& [name, n] : *counter_state)
    if (name == "copy to cpu" || reads_host(name)) out[name] = n;
  return out;
}

int64_t OpCounter::total() const {
  int64_t n = 0;
  for (const auto& [name, k] : counts()) n += k;
  return n;
}

}  // namespace eve::model
