// Activation (gradient) checkpointing: a computation whose intermediate tensors are not kept
// for backward but computed again there (docs/architecture.md, "Gradient checkpointing").
//
// libtorch's C++ API has no checkpoint utility, so this is one autograd node of eve's own. In
// forward it runs the computation with gradients off and keeps only its inputs, the state of
// torch's default random generators (the CPU one, and the CUDA one of the inputs' device) and
// the thread's autocast settings. Its backward sets those generators and settings back, runs
// the computation again with gradients on and runs backward through it with the incoming
// gradients: the parameters' gradients accumulate into their .grad, one at a time as in the
// plain run, and the inputs' are returned to autograd. Dropout,
// drop-path and routing noise therefore draw the same numbers twice, and the gradients equal
// those of the plain run to float rounding.
//
// Usage:
//   std::vector<torch::Tensor> out = checkpoint(
//       [block](const std::vector<torch::Tensor>& in) { return std::vector{block(in[0])}; },
//       {h}, block->parameters());
#pragma once

#include <torch/torch.h>

#include <functional>
#include <vector>

namespace eve::model {

// The computation checkpoint() runs, once in forward and again in backward. It must return
// floating-point tensors computed from `inputs` and the parameters it is given alongside, and
// compute the same thing both times (its draws from torch's default generators are replayed).
// It is kept until backward, so it must own (copy) whatever else it reads.
using CheckpointFn = std::function<std::vector<torch::Tensor>(const std::vector<torch::Tensor>& inputs)>;

// Runs fn(inputs) and returns its outputs, keeping for backward only `inputs`, the random
// generator states and the autocast settings. `params` are the trainable tensors fn uses
// besides its inputs (a layer's parameters): they are inputs of the node, so that it takes
// part in backward (and they get their gradients) also when no input requires a gradient. With gradients off (NoGradGuard, inference) it simply
// returns fn(inputs). Backward refuses inputs or parameters changed in place since forward.
std::vector<torch::Tensor> checkpoint(CheckpointFn fn, const std::vector<torch::Tensor>& inputs,
                                      const std::vector<torch::Tensor>& params);

}  // namespace eve::model
