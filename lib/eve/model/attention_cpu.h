// Self-attention on the CPU as one autograd node, its samples split over the intra-op threads
// so that each thread runs whole small matrix products on its own.
//
// Why: libtorch's CPU bmm multiplies a batch of small matrices one after another and splits
// each product across all threads. At eve-tiny's sizes (97 tokens, 32 dims per head) that
// costs more in thread hand-offs than the arithmetic: one layer's scores, softmax and weighted
// sum took 4.9-5.0 ms forward+backward on 2 threads, 2.7 ms on 1. Working from the qkv
// projection's output as it lies ([B, L, 3, H, hd]) also saves the copies that the general
// path makes when it unbinds q, k and v and lays out their gradient again.
#pragma once

#include <torch/torch.h>

namespace eve::model {

// Whether libtorch runs its operators on the OpenMP runtime eve's parallel regions use: only
// then does an operator (or the BLAS below it) called inside such a region know that it is
// inside one and stay on its thread. (A libtorch that bundles its own libgomp would open a
// second team of threads inside every worker.) False when eve is built without OpenMP.
bool torch_shares_openmp();

// Whether attention_cpu computes this case: float32 CPU tensors and no dropout on the
// attention weights. Everything else takes the general path.
bool attention_cpu_applies(const torch::Tensor& qkv, double dropout);

// softmax(q k^T * scale, masked) v for qkv = [B, L, 3, H, hd] (q, k, v along dim 2) and
// key_pad = [B, L] bool, true where the key is padding (undefined: no padding). Returns
// [B, L, H * hd], heads side by side as the output projection expects. Differentiable in qkv.
torch::Tensor attention_cpu(const torch::Tensor& qkv, const torch::Tensor& key_pad, double scale);

}  // namespace eve::model
