// The modality-aware mixture of experts of EVE's top layers (docs/architecture.md,
// "Mixture of experts").
//
// Parameter names follow the official state dict below the layer's `mlp_moe.moe`:
//   gate.wg.weight [E, D] (bias-free router), vision_embed [D], text_embed [D] (modality
//   tags, only with type_route), experts.experts.K.fc{1,2}.{weight,bias}.
//
// Routing (shared by both dispatches, so they drop exactly the same claims): tokens get
// their modality tag added, the router's softmax picks top-1 = argmax and top-2 = argmax
// over the other experts (of logits + Gumbel noise when `noise`); expert slots are taken in
// token order, every top-1 claim of an expert before its top-2 claims, and claims at slot
// >= capacity are dropped; the two kept gate values are renormalised to sum to 1. The GShard
// aux loss E * sum_e mean_s(gates[s,e]) * frac_s(top1 == e) is counted before dropping.
#pragma once

#include <torch/torch.h>

#include <string>
#include <vector>

namespace eve::model {

enum class Dispatch { sparse, dense };
Dispatch parse_dispatch(const std::string& name);

// Linear(D->F) -> activation -> Linear(F->D), biases on: a modality FFN or one expert.
class FeedForwardImpl : public torch::nn::Module {
 public:
  FeedForwardImpl(int64_t width, int64_t inner, std::string act);
  torch::Tensor forward(const torch::Tensor& x);
  torch::nn::Linear fc1{nullptr}, fc2{nullptr};
  std::string act;
};
TORCH_MODULE(FeedForward);

// quick_gelu (x * sigmoid(1.702 x)) or exact gelu.
torch::Tensor activation(const torch::Tensor& x, const std::string& act);

struct RoutingOptions {
  int64_t capacity = -1;  // claims each expert can take; < 0 = unlimited
  bool noise = false;     // Gumbel noise on the second choice
  Dispatch dispatch = Dispatch::sparse;
};

// Capacity of each expert for S routed tokens: max(min_capacity, ceil(factor * 2 * S / E)).
int64_t moe_capacity(int64_t tokens, int64_t experts, double factor, int64_t min_capacity);

// The routing decision for S tokens.
struct Routing {
  torch::Tensor gates;         // [S, E] float32 softmax of the router logits
  torch::Tensor top1, top2;    // [S] int64 expert ids
  torch::Tensor slot1, slot2;  // [S] int64 slot position inside the chosen expert
  torch::Tensor keep1, keep2;  // [S] bool: the claim fits the capacity
  torch::Tensor w1, w2;        // [S] float32 combine weights (0 where dropped)
  torch::Tensor aux;           // [] GShard load-balancing loss
  int64_t capacity = -1;       // the capacity applied (-1 = unlimited)
};
Routing route(const torch::Tensor& logits, int64_t capacity, bool noise);

// Per-expert load of one MoE call, for logging.
struct MoeLoad {
  torch::Tensor top1;     // [E] int64 tokens whose first choice is e (before dropping)
  torch::Tensor claims;   // [E] int64 claims (top-1 and top-2) routed to e (before dropping)
  torch::Tensor kept;     // [E] int64 claims e actually processed
  int64_t tokens = 0;     // tokens routed
  int64_t capacity = -1;  // capacity applied (-1 = unlimited)
};

struct MoeResult {
  torch::Tensor y;    // [S, D]
  torch::Tensor aux;  // []
  MoeLoad load;
};

class MoEImpl : public torch::nn::Module {
 public:
  MoEImpl(int64_t width, int64_t inner, int64_t experts, bool type_route, std::string act);
  // x: [S, D] normalised tokens; modality: [S] int64 (0 vision, 1 text).
  MoeResult forward(const torch::Tensor& x, const torch::Tensor& modality,
                    const RoutingOptions& opt);
  // The two dispatch implementations, given the tagged input and a routing.
  torch::Tensor dispatch_sparse(const torch::Tensor& xt, const Routing& r);
  torch::Tensor dispatch_dense(const torch::Tensor& xt, const Routing& r);

  int64_t num_experts() const { return static_cast<int64_t>(experts.size()); }

  torch::nn::Linear wg{nullptr};           // gate.wg
  torch::Tensor vision_embed, text_embed;  // undefined without type_route
  std::vector<FeedForward> experts;        // registered as experts.experts.K
  bool type_route;
};
TORCH_MODULE(MoE);

}  // namespace eve::model
