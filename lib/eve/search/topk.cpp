#include "eve/search/topk.h"

#include <torch/torch.h>

#include <algorithm>
#include <cstring>

#include "eve/core/error.h"
#include "eve/core/signals.h"
#include "eve/core/threads.h"

namespace eve::search {

void MemoryRows::read(int64_t begin, int64_t n, float* out) const {
  std::memcpy(out, data_ + begin * cols_, static_cast<size_t>(n * cols_) * sizeof(float));
}

namespace {

// Keeps the best k hits of one query in a heap whose top is the worst kept hit.
struct Heap {
  std::vector<Hit> h;
  size_t k;
  void offer(const Hit& x) {
    auto worse_first = [](const Hit& a, const Hit& b) { return better(a, b); };
    if (h.size() < k) {
      h.push_back(x);
      std::push_heap(h.begin(), h.end(), worse_first);
    } else if (better(x, h.front())) {
      std::pop_heap(h.begin(), h.end(), worse_first);
      h.back() = x;
      std::push_heap(h.begin(), h.end(), worse_first);
    }
  }
  // Fast path for a run of scores: only values that can enter are compared in full.
  void offer_row(const float* s, int64_t n, int64_t base) {
    int64_t j = 0;
    for (; j < n && h.size() < k; ++j) offer({base + j, s[j]});
    float worst = h.empty() ? 0.f : h.front().score;
    for (; j < n; ++j) {
      if (s[j] >= worst) {  // equal scores may still win on index
        offer({base + j, s[j]});
        worst = h.front().score;
      }
    }
  }
};

}  // namespace

float exact_dot(const float* a, const float* b, int64_t n) {
  double s = 0;
  for (int64_t i = 0; i < n; ++i) s += static_cast<double>(a[i]) * b[i];
  return static_cast<float>(s);
}

void topk_search(const RowSource& queries, const RowSource& gallery, const TopkOptions& opts,
                 const std::function<void(int64_t, std::vector<std::vector<Hit>>&)>& on_block) {
  const int64_t d = queries.cols();
  if (gallery.cols() != d)
    throw Error("queries have " + std::to_string(d) + " columns but the gallery has " +
                std::to_string(gallery.cols()));
  if (opts.k < 1) throw UsageError("-k must be at least 1");
  const int64_t nq = queries.rows(), ng = gallery.rows();
  const size_t k = static_cast<size_t>(std::min<int64_t>(opts.k, ng));
  const size_t candidates = static_cast<size_t>(std::min<int64_t>(int64_t{opts.k} + kRescoreMargin, ng));
  ThreadPool pool(opts.threads);
  torch::NoGradGuard no_grad;

  // Padding rows stay zero; their scores are never looked at.
  auto qt = torch::zeros({kQueryTile, d}, torch::kFloat32);
  auto gt = torch::zeros({kGalleryTile, d}, torch::kFloat32);
  for (int64_t q0 = 0; q0 < nq; q0 += kQueryTile) {
    signals::throw_if_stopped();
    const int64_t nb = std::min(kQueryTile, nq - q0);
    if (nb < kQueryTile) qt.zero_();
    queries.read(q0, nb, qt.data_ptr<float>());
    std::vector<Heap> heaps(nb, Heap{{}, candidates});
    for (auto& hp : heaps) hp.h.reserve(k);
    for (int64_t g0 = 0; g0 < ng; g0 += kGalleryTile) {
      const int64_t nc = std::min(kGalleryTile, ng - g0);
      if (nc < kGalleryTile) gt.zero_();
      gallery.read(g0, nc, gt.data_ptr<float>());
      auto scores = torch::mm(qt, gt.t()).contiguous();
      const float* s = scores.data_ptr<float>();
      // Rows are independent: split them over the pool in fixed stripes.
      const int64_t stripes = std::min<int64_t>(nb, pool.size() * 4);
      parallel_for(pool, static_cast<size_t>(stripes), [&](size_t t) {
        for (int64_t i = static_cast<int64_t>(t); i < nb; i += stripes)
          heaps[i].offer_row(s + i * kGalleryTile, nc, g0);
      });
    }
    // Exact rescoring of the candidates.
    std::vector<std::vector<Hit>> hits(nb);
    std::vector<float> row(static_cast<size_t>(d));
    const float* qd = qt.data_ptr<float>();
    for (int64_t i = 0; i < nb; ++i) {
      hits[i] = std::move(heaps[i].h);
      for (auto& h : hits[i]) {
        gallery.read(h.index, 1, row.data());
        h.score = exact_dot(qd + i * d, row.data(), d);
      }
      std::sort(hits[i].begin(), hits[i].end(), better);
      hits[i].resize(k);
    }
    on_block(q0, hits);
  }
}

}  // namespace eve::search
