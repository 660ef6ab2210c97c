#include "eve/search/topk.h"

#if defined(__SSE2__)
#include <emmintrin.h>
#endif

#include <ATen/Parallel.h>
#include <torch/torch.h>
#ifdef _OPENMP
#include <omp.h>
#endif

#include <algorithm>
#include <atomic>
#include <cstring>
#include <exception>

#include "eve/core/error.h"
#include "eve/core/signals.h"
#include "eve/core/threads.h"
#include "eve/model/attention_cpu.h"

namespace eve::search {

void MemoryRows::read(int64_t begin, int64_t n, float* out) const {
  std::memcpy(out, data_ + begin * cols_, static_cast<size_t>(n * cols_) * sizeof(float));
}

namespace {

// The best m hits of one query seen so far, as a heap whose top is the worst kept hit.
// The storage belongs to the caller (one slab per thread, m hits per query).
struct Heap {
  Hit* h;
  size_t size;
  size_t m;
  struct WorseFirst {
    bool operator()(const Hit& a, const Hit& b) const { return better(a, b); }
  };
  void offer(const Hit& x) {
    if (size < m) {
      h[size++] = x;
      std::push_heap(h, h + size, WorseFirst{});
    } else if (better(x, h[0])) {
      std::pop_heap(h, h + size, WorseFirst{});
      h[size - 1] = x;
      std::push_heap(h, h + size, WorseFirst{});
    }
  }
};

// Bit u of the result is set when s[u] >= worst, for u < 16: four compares and a mask on
// any x86-64 CPU (SSE2 is part of the architecture), a plain loop elsewhere.
#if defined(__SSE2__)
inline unsigned at_least(const float* s, float worst) {
  const __m128 w = _mm_set1_ps(worst);
  const unsigned m0 = static_cast<unsigned>(_mm_movemask_ps(_mm_cmpge_ps(_mm_loadu_ps(s), w)));
  const unsigned m1 = static_cast<unsigned>(_mm_movemask_ps(_mm_cmpge_ps(_mm_loadu_ps(s + 4), w)));
  const unsigned m2 = static_cast<unsigned>(_mm_movemask_ps(_mm_cmpge_ps(_mm_loadu_ps(s + 8), w)));
  const unsigned m3 = static_cast<unsigned>(_mm_movemask_ps(_mm_cmpge_ps(_mm_loadu_ps(s + 12), w)));
  return m0 | m1 << 4 | m2 << 8 | m3 << 12;
}
#else
inline unsigned at_least(const float* s, float worst) {
  unsigned m = 0;
  for (unsigned u = 0; u < 16; ++u) m |= static_cast<unsigned>(s[u] >= worst) << u;
  return m;
}
#endif

// A run of scores of gallery rows base, base + 1, ...: once the heap is full, a score below
// the worst kept one (bar, kept beside the heap so that a run nothing enters reads no heap
// memory) cannot enter, so runs of 16 are tested against it at once and only the scores
// that pass are offered (equal scores may still win on the lower index, so they are
// offered too). Each offer can only raise the bar, so it is read again before every offer.
void scan_row(Heap& hp, float& bar, const float* s, int64_t n, int64_t base) {
  int64_t j = 0;
  if (hp.size < hp.m) {
    for (; j < n && hp.size < hp.m; ++j) hp.offer({base + j, s[j]});
    if (hp.size < hp.m) return;
    bar = hp.h[0].score;
  }
  float worst = bar;
  constexpr int64_t kRun = 16;
  for (; j + kRun <= n; j += kRun) {
    for (unsigned bits = at_least(s + j, worst); bits != 0; bits &= bits - 1) {
      const int64_t u = j + __builtin_ctz(bits);
      if (s[u] >= worst) {
        hp.offer({base + u, s[u]});
        worst = hp.h[0].score;
      }
    }
  }
  for (; j < n; ++j) {
    if (s[j] >= worst) {
      hp.offer({base + j, s[j]});
      worst = hp.h[0].score;
    }
  }
  bar = worst;
}

// What one thread keeps while a query block is searched: its own heaps, a score tile and
// room for a gallery tile that is not float32 in memory.
struct Worker {
  std::vector<Hit> slab;     // kQueryTile * m hits
  std::vector<size_t> size;  // hits kept per query
  std::vector<float> bar;    // per query, the worst kept score once its heap is full
  std::vector<float> scores; // kQueryTile * kGalleryTile
  std::vector<float> tile;   // kGalleryTile * d, when the gallery must be converted
  std::vector<float> row;    // one gallery row, for the exact rescoring
  float max_norm = 0;        // the largest norm of the gallery rows it multiplied
  int64_t crowded = 0;       // queries whose margin was too small (phase 2)
};

// Rows [begin, begin + n) of src as float32: in place when the source allows, else
// converted into buf.
const float* rows_of(const RowSource& src, int64_t begin, int64_t n, std::vector<float>& buf) {
  if (const float* p = src.view(begin, n)) return p;
  buf.resize(static_cast<size_t>(n * src.cols()));
  src.read(begin, n, buf.data());
  return buf.data();
}

}  // namespace

// Eight running sums, lane u taking elements u, u + 8, ..., then added pairwise: a fixed
// order whatever the CPU, which the compiler turns into vector code. Each product of two
// floats is exact in double, so only the additions round.
float exact_dot(const float* a, const float* b, int64_t n) {
  double lane[8] = {0, 0, 0, 0, 0, 0, 0, 0};
  int64_t i = 0;
  for (; i + 8 <= n; i += 8)
    for (int u = 0; u < 8; ++u) lane[u] += static_cast<double>(a[i + u]) * b[i + u];
  for (int u = 0; i < n; ++i, ++u) lane[u] += static_cast<double>(a[i]) * b[i];
  return static_cast<float>(((lane[0] + lane[1]) + (lane[2] + lane[3])) +
                            ((lane[4] + lane[5]) + (lane[6] + lane[7])));
}

TopkStats topk_search(const RowSource& queries, const RowSource& gallery, const TopkOptions& opts,
                      const std::function<void(int64_t, std::vector<std::vector<Hit>>&)>& on_block) {
  const int64_t d = queries.cols();
  if (gallery.cols() != d)
    throw Error("queries have " + std::to_string(d) + " columns but the gallery has " +
                std::to_string(gallery.cols()));
  if (opts.k < 1) throw UsageError("-k must be at least 1");
  const int64_t nq = queries.rows(), ng = gallery.rows();
  const size_t k = static_cast<size_t>(std::min<int64_t>(opts.k, ng));
  const size_t m = static_cast<size_t>(std::min<int64_t>(int64_t{opts.k} + kRescoreMargin, ng));
  const int64_t tiles = (ng + kGalleryTile - 1) / kGalleryTile;
  // One team of threads does everything: each runs whole tile products on its own thread
  // (BLAS and libtorch stay single-threaded inside the region) and filters the tile it just
  // made. Without a shared OpenMP runtime one thread does it all, BLAS threading as usual.
  const int team = model::torch_shares_openmp()
                       ? static_cast<int>(std::min<int64_t>(resolve_threads(opts.threads), std::max<int64_t>(tiles, 1)))
                       : 1;
  std::vector<Worker> workers(static_cast<size_t>(team));
  for (auto& w : workers) {
    w.slab.resize(static_cast<size_t>(kQueryTile) * m);
    w.size.resize(static_cast<size_t>(kQueryTile));
    w.bar.resize(static_cast<size_t>(kQueryTile));
    w.scores.resize(static_cast<size_t>(kQueryTile * kGalleryTile));
  }
  std::vector<float> qbuf;

  for (int64_t q0 = 0; q0 < nq; q0 += kQueryTile) {
    signals::throw_if_stopped();
    const int64_t nb = std::min(kQueryTile, nq - q0);
    const float* qd = rows_of(queries, q0, nb, qbuf);
    std::vector<std::vector<Hit>> hits(static_cast<size_t>(nb));
    std::atomic<int64_t> next_tile{0};
    std::exception_ptr failure;

    // Phase 1 (tiles claimed in turn): scores of the block against one gallery tile, each
    // query's run of scores offered to that thread's heap while the tile is in cache.
    // Phase 2 (queries split evenly): each query's best m over all threads' heaps is its
    // global best m by float32 score (the order is total), scored again exactly.
    auto fail = [&] {
#ifdef _OPENMP
#pragma omp critical(eve_topk_failure)
#endif
      if (!failure) failure = std::current_exception();
    };
    auto phase1 = [&](int t) {
      torch::NoGradGuard no_grad;
      Worker& w = workers[static_cast<size_t>(t)];
      auto qt = torch::from_blob(const_cast<float*>(qd), {nb, d}, torch::kFloat32);
      for (int64_t tile; (tile = next_tile.fetch_add(1)) < tiles;) {
        const int64_t g0 = tile * kGalleryTile, nc = std::min(kGalleryTile, ng - g0);
        const float* gd = rows_of(gallery, g0, nc, w.tile);
        if (q0 == 0)
          for (int64_t r = 0; r < nc; ++r)
            w.max_norm = std::max(w.max_norm, std::sqrt(exact_dot(gd + r * d, gd + r * d, d)));
        auto gt = torch::from_blob(const_cast<float*>(gd), {nc, d}, torch::kFloat32);
        auto st = torch::from_blob(w.scores.data(), {nb, nc}, torch::kFloat32);
        torch::mm_out(st, qt, gt.t());
        const float* s = w.scores.data();
        for (int64_t i = 0; i < nb; ++i) {
          Heap hp{w.slab.data() + static_cast<size_t>(i) * m, w.size[static_cast<size_t>(i)], m};
          scan_row(hp, w.bar[static_cast<size_t>(i)], s + i * nc, nc, g0);
          w.size[static_cast<size_t>(i)] = hp.size;
        }
      }
    };
    // Only the candidates that float32 rounding cannot separate from the k-th are scored
    // again. A float32 dot product of length d, summed in any order, is within
    // gamma_d * |q| * |g| of the exact one (gamma_d = d u / (1 - d u), u = 2^-24), and the
    // written score within 2^-23 * |q| * |g| of that, so a candidate whose float32 score is
    // below the k-th one's by more than twice the sum of both cannot enter the top k.
    auto phase2 = [&](int t, int n_threads) {
      Worker& w = workers[static_cast<size_t>(t)];
      const int64_t first = nb * t / n_threads, last = nb * (t + 1) / n_threads;
      float gallery_norm = 0;
      for (const auto& o : workers) gallery_norm = std::max(gallery_norm, o.max_norm);
      const double du = static_cast<double>(d) * 0x1p-24, gamma = du / (1 - du);
      for (int64_t i = first; i < last; ++i) {
        auto& hi = hits[static_cast<size_t>(i)];
        if (k == 0) continue;
        for (const auto& o : workers) {
          const Hit* h = o.slab.data() + static_cast<size_t>(i) * m;
          hi.insert(hi.end(), h, h + o.size[static_cast<size_t>(i)]);
        }
        if (hi.size() > m) {
          std::nth_element(hi.begin(), hi.begin() + static_cast<int64_t>(m), hi.end(), better);
          hi.resize(m);
        }
        std::sort(hi.begin(), hi.end(), better);
        const float* qi = qd + i * d;
        const double slack = 2 * (gamma + 0x1p-23) * 1.001 *
                             std::sqrt(static_cast<double>(exact_dot(qi, qi, d))) * gallery_norm;
        const double bar = static_cast<double>(hi[k - 1].score) - slack;
        size_t n = k;
        while (n < hi.size() && hi[n].score >= bar) ++n;
        // Rows beyond the m kept could have entered too: the margin was too small here.
        if (n == hi.size() && static_cast<size_t>(ng) > m) w.crowded++;
        hi.resize(n);
        for (auto& h : hi) h.score = exact_dot(qi, rows_of(gallery, h.index, 1, w.row), d);
        std::sort(hi.begin(), hi.end(), better);
        hi.resize(k);
      }
    };
    for (auto& w : workers) std::fill(w.size.begin(), w.size.end(), size_t{0});
    if (team == 1) {
      phase1(0);
      phase2(0, 1);
    } else {
#ifdef _OPENMP
#pragma omp parallel num_threads(team)
      {
        const int t = omp_get_thread_num(), n_threads = omp_get_num_threads();
        try {
          phase1(t);
        } catch (...) {
          fail();
        }
#pragma omp barrier
        if (!failure) {
          try {
            phase2(t, n_threads);
          } catch (...) {
            fail();
          }
        }
      }
#endif
    }
    if (failure) std::rethrow_exception(failure);
    on_block(q0, hits);
  }
  TopkStats stats;
  for (const auto& w : workers) stats.crowded += w.crowded;
  return stats;
}

}  // namespace eve::search
