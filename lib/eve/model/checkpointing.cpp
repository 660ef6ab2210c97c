#include "eve/model/checkpointing.h"

#include <ATen/CPUGeneratorImpl.h>
#include <ATen/autocast_mode.h>
#include <ATen/Context.h>

#include <mutex>
#include <optional>

#include "eve/model/runtime.h"

namespace eve::model {

namespace {

using torch::Tensor;
using torch::autograd::AutogradContext;
using torch::autograd::variable_list;

// The default generator of `device` (the CPU one, or that CUDA device's). Going through the
// global context reaches the CUDA generator without CUDA headers, so CPU builds compile this.
at::Generator default_generator(const c10::Device& device) {
  if (device.is_cpu()) return at::detail::getDefaultCPUGenerator();
  return at::globalContext().defaultGenerator(device);
}

Tensor generator_state(const c10::Device& device) {
  at::Generator gen = default_generator(device);
  std::lock_guard<std::mutex> lock(gen.mutex());
  return gen.get_state();
}

void set_generator_state(const c10::Device& device, const Tensor& state) {
  at::Generator gen = default_generator(device);
  std::lock_guard<std::mutex> lock(gen.mutex());
  gen.set_state(state);
}

// What the node keeps besides its saved tensors. A capsule carries it in the context, which
// holds no other C++ objects.
struct CheckpointState : torch::CustomClassHolder {
  CheckpointFn fn;
  size_t num_inputs = 0;
  Tensor cpu_rng;
  std::optional<c10::Device> cuda_device;  // the inputs' CUDA device, if any
  Tensor cuda_rng;
  model::AutocastState autocast;
};

// Sets the generators to the states forward started from, and back to where they were at the
// end, so that the recomputation repeats forward's draws and leaves later draws unchanged.
class ReplayRandom {
 public:
  explicit ReplayRandom(const CheckpointState& s) : cuda_device_(s.cuda_device) {
    now_cpu_ = generator_state(c10::Device(c10::kCPU));
    set_generator_state(c10::Device(c10::kCPU), s.cpu_rng);
    if (cuda_device_) {
      now_cuda_ = generator_state(*cuda_device_);
      set_generator_state(*cuda_device_, s.cuda_rng);
    }
  }
  ~ReplayRandom() {
    set_generator_state(c10::Device(c10::kCPU), now_cpu_);
    if (cuda_device_) set_generator_state(*cuda_device_, now_cuda_);
  }
  ReplayRandom(const ReplayRandom&) = delete;
  ReplayRandom& operator=(const ReplayRandom&) = delete;

 private:
  std::optional<c10::Device> cuda_device_;
  Tensor now_cpu_, now_cuda_;
};

// Autocast keeps the bf16 copy of a float32 weight it casts and hands it to later uses in its
// scope. A copy made by the forward run carries no gradient history, and one made by the
// recomputation a history that its backward frees: either, found by another use, would cut
// or break that use's gradient. So the checkpointed computation casts for itself (a weight is
// used once per layer run, and casting it is cheap beside the product it feeds).
class NoCastCache {
 public:
  NoCastCache() : was_(at::autocast::is_autocast_cache_enabled()) {
    at::autocast::set_autocast_cache_enabled(false);
  }
  ~NoCastCache() { at::autocast::set_autocast_cache_enabled(was_); }
  NoCastCache(const NoCastCache&) = delete;
  NoCastCache& operator=(const NoCastCache&) = delete;

 private:
  bool was_;
};

struct CheckpointFunction : public torch::autograd::Function<CheckpointFunction> {
  static variable_list forward(AutogradContext* ctx, at::TensorList inputs, at::TensorList params,
                               const c10::intrusive_ptr<CheckpointState>& state) {
    state->num_inputs = inputs.size();
    state->cpu_rng = generator_state(c10::Device(c10::kCPU));
    for (const Tensor& t : inputs) {
      if (t.defined() && t.is_cuda()) {
        state->cuda_device = t.device();
        state->cuda_rng = generator_state(t.device());
        break;
      }
    }
    state->autocast = model::autocast_state();
    std::vector<Tensor> keep = inputs.vec();
    keep.insert(keep.end(), params.begin(), params.end());
    ctx->save_for_backward(keep);
    ctx->saved_data["state"] = c10::IValue::make_capsule(state);
    // An output nobody differentiated arrives undefined, and its recomputation is left out of
    // the backward pass instead of being fed zeros.
    ctx->set_materialize_grads(false);
    NoCastCache no_cache;
    return state->fn(inputs.vec());
  }

  static variable_list backward(AutogradContext* ctx, variable_list grads) {
    auto state = c10::static_intrusive_pointer_cast<CheckpointState>(ctx->saved_data["state"].toCapsule());
    const variable_list saved = ctx->get_saved_variables();
    const size_t ni = state->num_inputs, total = saved.size();
    // Fresh leaves over the saved inputs, so that differentiating the recomputation stops
    // at them instead of running on into the graph before this node.
    std::vector<Tensor> inputs(ni);
    for (size_t i = 0; i < ni; ++i) {
      inputs[i] = saved[i].detach();
      if (ctx->needs_input_grad(i)) inputs[i].requires_grad_(true);
    }
    std::vector<Tensor> outputs;
    {
      ReplayRandom replay(*state);
      model::AutocastAs autocast(state->autocast);
      NoCastCache no_cache;
      torch::AutoGradMode grad_on(true);
      outputs = state->fn(inputs);
    }
    std::vector<Tensor> outs, gouts;
    for (size_t i = 0; i < outputs.size() && i < grads.size(); ++i) {
      if (grads[i].defined() && outputs[i].requires_grad()) {
        outs.push_back(outputs[i]);
        gouts.push_back(grads[i]);
      }
    }
    // The parameters' gradients go straight into their .grad, each as soon as it is computed,
    // as in the plain run: returned from here they would all be held at once (a MoE layer's
    // experts: hundreds of MB) before autograd added them up.
    variable_list result(total + 1);  // parameters and the state argument: none returned
    if (outs.empty()) return result;
    torch::autograd::backward(outs, gouts, /*retain_graph=*/false, /*create_graph=*/false);
    for (size_t i = 0; i < ni; ++i)
      if (inputs[i].requires_grad()) result[i] = inputs[i].grad();
    return result;
  }
};

}  // namespace

std::vector<Tensor> checkpoint(CheckpointFn fn, const std::vector<Tensor>& inputs,
                               const std::vector<Tensor>& params) {
  if (!torch::GradMode::is_enabled()) return fn(inputs);
  auto state = c10::make_intrusive<CheckpointState>();
  state->fn = std::move(fn);
  return CheckpointFunction::apply(at::TensorList(inputs), at::TensorList(params), state);
}

}  // namespace eve::model
