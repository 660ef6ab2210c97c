// Splits [0, n) into contiguous chunks and runs them on a pool (or inline without one).
// Each index is handled exactly once and callers write results by index, so the outcome
// never depends on the thread count.
#pragma once

#include <algorithm>
#include <cstddef>
#include <functional>

#include "eve/core/threads.h"

namespace eve::eval {

inline void for_chunks(ThreadPool* pool, size_t n,
                       const std::function<void(size_t begin, size_t end)>& fn) {
  if (n == 0) return;
  if (pool == nullptr || pool->size() <= 1 || n < 1024) {
    fn(0, n);
    return;
  }
  const size_t chunks = std::min(n, static_cast<size_t>(pool->size()) * 8);
  const size_t step = (n + chunks - 1) / chunks;
  parallel_for(*pool, (n + step - 1) / step, [&](size_t c) {
    fn(c * step, std::min(n, (c + 1) * step));
  });
}

}  // namespace eve::eval
