#include "eve/model/attention_cpu.h"

#include <ATen/Parallel.h>
#ifdef _OPENMP
#include <omp.h>
#endif

#include <algorithm>
#include <exception>
#include <limits>

#include "eve/model/runtime.h"

namespace eve::model {

using torch::Tensor;
using torch::autograd::AutogradContext;
using torch::autograd::variable_list;

bool torch_shares_openmp() {
#ifndef _OPENMP
  return false;  // built without OpenMP
#else
  static const bool same = [] {
    bool inside = true;
#pragma omp parallel num_threads(2)
    {
#pragma omp master
      inside = at::in_parallel_region() || omp_get_num_threads() < 2;
    }
    return inside;
  }();
  return same;
#endif
}

namespace {

struct Shape {
  int64_t B, L, H, hd;
};

Shape shape_of(const Tensor& qkv) {
  return {qkv.size(0), qkv.size(1), qkv.size(3), qkv.size(4)};
}

// Runs body(first, count) on disjoint runs of samples, one run per intra-op thread. Each
// thread runs whole small matrix products, single-threaded, where libtorch would split every
// one of them across all threads. Grad mode and autocast are per thread: both are switched off
// in every worker. Everything the workers write is allocated before, on the calling thread
// (glibc serves a worker's large allocations from fresh mappings).
template <class Body>
void for_each_run(int64_t samples, const Body& body) {
  const int threads = static_cast<int>(std::min<int64_t>(at::get_num_threads(), samples));
  if (threads < 2 || !torch_shares_openmp()) {
    torch::NoGradGuard no_grad;
    model::NoAutocast full_precision;
    body(int64_t{0}, samples);
    return;
  }
#ifdef _OPENMP
  std::exception_ptr failure;  // an exception must not leave the parallel region
#pragma omp parallel num_threads(threads)
  {
    const int64_t t = omp_get_thread_num(), n = omp_get_num_threads();
    const int64_t first = samples * t / n, last = samples * (t + 1) / n;
    try {
      torch::NoGradGuard no_grad;
      model::NoAutocast full_precision;
      if (last > first) body(first, last - first);
    } catch (...) {
#pragma omp critical(eve_attention_failure)
      if (!failure) failure = std::current_exception();
    }
  }
  if (failure) std::rethrow_exception(failure);
#endif
}

// q, k or v (which = 0, 1, 2) of samples [first, first + n) copied into `to` = [n * H, L, hd],
// one matrix per (sample, head).
void split_heads(const Tensor& qkv, int64_t which, int64_t first, int64_t n, const Tensor& to) {
  const Shape s = shape_of(qkv);
  to.view({n, s.H, s.L, s.hd}).copy_(qkv.narrow(0, first, n).select(2, which).permute({0, 2, 1, 3}));
}

// The inverse: [n * H, L, hd] into `to` = [n, L, H, hd] (a view of the result).
void merge_heads(const Tensor& heads, const Tensor& to) {
  const int64_t n = to.size(0), L = to.size(1), H = to.size(2), hd = to.size(3);
  to.copy_(heads.view({n, H, L, hd}).permute({0, 2, 1, 3}));
}

// Rows [first * H, (first + n) * H) of a [B * H, ...] buffer.
Tensor rows(const Tensor& t, int64_t first, int64_t n, int64_t H) {
  return t.narrow(0, first * H, n * H);
}

// The key padding travels as a plain argument: autograd records every Tensor argument as an
// input, and an undefined one (no padding) is refused.
struct KeyPad {
  Tensor mask;
};

struct CpuAttention : public torch::autograd::Function<CpuAttention> {
  static Tensor forward(AutogradContext* ctx, const Tensor& qkv, const KeyPad& pad, double scale) {
    const Shape s = shape_of(qkv);
    const int64_t BH = s.B * s.H;
    Tensor heads = torch::empty({4, BH, s.L, s.hd}, qkv.options());  // q * scale, k, v, output
    Tensor probs = torch::empty({BH, s.L, s.L}, qkv.options());
    Tensor out = torch::empty({s.B, s.L, s.H, s.hd}, qkv.options());
    for_each_run(s.B, [&](int64_t first, int64_t n) {
      Tensor q = rows(heads[0], first, n, s.H), k = rows(heads[1], first, n, s.H),
             v = rows(heads[2], first, n, s.H), o = rows(heads[3], first, n, s.H);
      Tensor p = rows(probs, first, n, s.H);
      split_heads(qkv, 0, first, n, q);
      q.mul_(scale);
      split_heads(qkv, 1, first, n, k);
      split_heads(qkv, 2, first, n, v);
      at::bmm_out(p, q, k.transpose(1, 2));
      if (pad.mask.defined())
        p.view({n, s.H, s.L, s.L})
            .masked_fill_(pad.mask.narrow(0, first, n).view({n, 1, 1, s.L}),
                          -std::numeric_limits<float>::infinity());
      p.sub_(p.amax(-1, /*keepdim=*/true)).exp_();
      p.div_(p.sum(-1, /*keepdim=*/true));
      at::bmm_out(o, p, v);
      merge_heads(o, out.narrow(0, first, n));
    });
    ctx->save_for_backward({heads, probs});
    ctx->saved_data["scale"] = scale;
    return out.view({s.B, s.L, s.H * s.hd});
  }

  static variable_list backward(AutogradContext* ctx, variable_list grads) {
    const auto saved = ctx->get_saved_variables();
    const Tensor& heads = saved[0];
    const Tensor& probs = saved[1];
    const double scale = ctx->saved_data["scale"].toDouble();
    const int64_t BH = heads.size(1), L = heads.size(2), hd = heads.size(3);
    const Tensor grad = grads[0];
    const int64_t B = grad.size(0), H = BH / B;
    const Tensor g = grad.reshape({B, L, H, hd});
    Tensor dheads = torch::empty({4, BH, L, hd}, heads.options());  // dq, dk, dv, d output
    Tensor ds_all = torch::empty_like(probs);
    Tensor dqkv = torch::empty({B, L, 3, H, hd}, heads.options());
    for_each_run(B, [&](int64_t first, int64_t n) {
      const Tensor q = rows(heads[0], first, n, H), k = rows(heads[1], first, n, H),
                   v = rows(heads[2], first, n, H), o = rows(heads[3], first, n, H);
      const Tensor p = rows(probs, first, n, H);
      Tensor dq = rows(dheads[0], first, n, H), dk = rows(dheads[1], first, n, H),
             dv = rows(dheads[2], first, n, H), dout = rows(dheads[3], first, n, H);
      Tensor ds = rows(ds_all, first, n, H);
      dout.view({n, H, L, hd}).copy_(g.narrow(0, first, n).permute({0, 2, 1, 3}));
      at::bmm_out(dv, p.transpose(1, 2), dout);
      // d scores = p * (d p - rowsum(d p * p)), and rowsum(d p * p) = rowsum(d out * out).
      at::bmm_out(ds, dout, v.transpose(1, 2));
      ds.sub_((dout * o).sum(-1, /*keepdim=*/true)).mul_(p);
      at::bmm_out(dk, ds.transpose(1, 2), q);  // q carries the scale already
      ds.mul_(scale);
      at::bmm_out(dq, ds, k);
      Tensor d = dqkv.narrow(0, first, n);
      merge_heads(dq, d.select(2, 0));
      merge_heads(dk, d.select(2, 1));
      merge_heads(dv, d.select(2, 2));
    });
    return {dqkv, Tensor(), Tensor()};
  }
};

}  // namespace

bool attention_cpu_applies(const Tensor& qkv, double dropout) {
  return qkv.device().is_cpu() && qkv.scalar_type() == torch::kFloat && dropout <= 0.0;
}

Tensor attention_cpu(const Tensor& qkv, const Tensor& key_pad, double scale) {
  return CpuAttention::apply(qkv, KeyPad{key_pad}, scale);
}

}  // namespace eve::model
