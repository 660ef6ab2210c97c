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
//
// Nothing on the training path reads the device: expert counts stay tensors, dropped claims
// keep their place with weight 0 instead of being filtered out, rows that must not be routed
// (padding) are masked rather than selected, and the capacity may itself be a tensor. On a
// GPU every read of a value to the host would wait for all queued work.
#pragma once

#include <torch/torch.h>

#include <map>
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

// How the sparse dispatch runs the experts.
//   grouped:  claims sorted by expert, one matrix product per expert over exactly its claims;
//             the group sizes are read on the host.
//   capacity: a fixed [E, C, D] layout (C slots per expert, empty slots computed and
//             ignored), one batched product for all experts; reads nothing from the device.
//   by_device: grouped on the CPU (where reading sizes costs nothing and no empty slot is
//             computed; measured by tests/bench/bench_moe.sh), capacity on any other device.
enum class ExpertLayout { by_device, grouped, capacity };

struct RoutingOptions {
  int64_t capacity = -1;  // claims each expert can take; < 0 = unlimited. With
                          // capacity_limit set: an upper bound of it, known on the host
  torch::Tensor capacity_limit;  // optional [] int64 on the tokens' device: the capacity when
                                 // it depends on data (the number of real tokens)
  bool noise = false;     // Gumbel noise on the second choice
  Dispatch dispatch = Dispatch::sparse;
  ExpertLayout layout = ExpertLayout::by_device;
  // Fill MoeResult::load: a few small device ops, no read of the device. Steps that do not
  // log turn it off.
  bool want_load = true;
};

// Capacity of each expert for S routed tokens: max(min_capacity, ceil(factor * 2 * S / E)).
int64_t moe_capacity(int64_t tokens, int64_t experts, double factor, int64_t min_capacity);
// The same for a token count held in a [] integer tensor, computed on its device in float64
// with the same operations, so it equals the host formula.
torch::Tensor moe_capacity(const torch::Tensor& tokens, int64_t experts, double factor,
                           int64_t min_capacity);

// The routing decision for S rows.
struct Routing {
  torch::Tensor gates;         // [S, E] float32 softmax of the router logits
  torch::Tensor top1, top2;    // [S] int64 expert ids
  torch::Tensor slot1, slot2;  // [S] int64 slot position inside the chosen expert (0 for
                               // inactive rows)
  torch::Tensor keep1, keep2;  // [S] bool: the row is active and the claim fits the capacity
  torch::Tensor w1, w2;        // [S] float32 combine weights (0 where dropped)
  torch::Tensor aux;           // [] GShard load-balancing loss over the active rows
  torch::Tensor active;        // [S] bool rows that claim experts; undefined = all
  torch::Tensor limit;         // [] int64 data-dependent capacity, or undefined
  int64_t capacity = -1;       // the capacity applied, or its upper bound when `limit` is set
                               // (-1 = unlimited)
  int64_t slots = 0;           // slots per expert that hold every kept claim:
                               // min(capacity, S), or S when unlimited
};
Routing route(const torch::Tensor& logits, int64_t capacity, bool noise);
// Routes every row of `logits`; only the rows where `active` is true (undefined: all) make
// claims, take slots and count in the aux loss, so the slots of the active rows are those
// that routing them alone would give. opt.capacity_limit, when set, is the capacity.
Routing route(const torch::Tensor& logits, const RoutingOptions& opt,
              const torch::Tensor& active = {});

// Per-expert load of one MoE call, for logging: tensors on the tokens' device (undefined
// when not asked for, see want_load), read by whoever prints them, with the step's other
// values in one transfer.
struct MoeLoad {
  torch::Tensor top1;      // [E] int64 tokens whose first choice is e (before dropping)
  torch::Tensor claims;    // [E] int64 claims (top-1 and top-2) routed to e (before dropping)
  torch::Tensor kept;      // [E] int64 claims e actually processed
  torch::Tensor tokens;    // [] int64 tokens routed
  torch::Tensor capacity;  // [] int64 capacity applied (-1 = unlimited)
};

struct MoeResult {
  torch::Tensor y;    // [S, D]
  torch::Tensor aux;  // []
  MoeLoad load;
};

class MoEImpl : public torch::nn::Module {
 public:
  MoEImpl(int64_t width, int64_t inner, int64_t experts, bool type_route, std::string act);
  // x: [S, D] normalised tokens; modality: [S] int64 (0 vision, 1 text); active: optional
  // [S] bool, the rows to route (the others, padding, get y = 0 and count nowhere).
  MoeResult forward(const torch::Tensor& x, const torch::Tensor& modality,
                    const RoutingOptions& opt, const torch::Tensor& active = {});
  // The dispatch implementations, given the tagged input and a routing. dispatch_sparse
  // picks grouped or capacity by `layout`.
  torch::Tensor dispatch_sparse(const torch::Tensor& xt, const Routing& r,
                                ExpertLayout layout = ExpertLayout::by_device);
  torch::Tensor dispatch_grouped(const torch::Tensor& xt, const Routing& r);
  torch::Tensor dispatch_capacity(const torch::Tensor& xt, const Routing& r);
  torch::Tensor dispatch_dense(const torch::Tensor& xt, const Routing& r);

  int64_t num_experts() const { return static_cast<int64_t>(experts.size()); }

  torch::nn::Linear wg{nullptr};           // gate.wg
  torch::Tensor vision_embed, text_embed;  // undefined without type_route
  std::vector<FeedForward> experts;        // registered as experts.experts.K
  bool type_route;
};
TORCH_MODULE(MoE);

// Counts the operators run while it lives (every thread), to show which of them read device
// values to the host: a read waits for all queued device work. Host reads are item and
// _local_scalar_dense, is_nonzero, equal, the ops whose output size depends on the data
// (nonzero, masked_select, bincount, unique*), and copies from a device to the CPU. One
// counter at a time; for tests and benchmarks.
class OpCounter {
 public:
  OpCounter();
  ~OpCounter();
  OpCounter(const OpCounter&) = delete;
  OpCounter& operator=(const OpCounter&) = delete;
  std::map<std::string, int64_t> counts() const;      // operator name -> calls
  std::map<std::string, int64_t> host_reads() const;  // the subset above ("copy to cpu"
                                                      // for the copies)
  int64_t total() const;

 private:
  uint64_t handle_;
};

}  // namespace eve::model
