#include "eve/core/threads.h"

#include <algorithm>
#include <exception>

namespace eve {

int resolve_threads(int requested) {
  if (requested > 0) return requested;
  unsigned hw = std::thread::hardware_concurrency();
  return hw == 0 ? 1 : static_cast<int>(hw);
}

ThreadPool::ThreadPool(int threads) {
  int n = resolve_threads(threads);
  workers_.reserve(n);
  for (int i = 0; i < n; ++i) workers_.emplace_back([this] { loop(); });
}

ThreadPool::~ThreadPool() {
  {
    std::lock_guard<std::mutex> lock(mutex_);
    stopping_ = true;
  }
  cv_.notify_all();
  for (auto& w : workers_) w.join();
}

void ThreadPool::loop() {
  for (;;) {
    std::function<void()> job;
    {
      std::unique_lock<std::mutex> lock(mutex_);
      cv_.wait(lock, [this] { return stopping_ || !queue_.empty(); });
      if (queue_.empty()) return;
      job = std::move(queue_.front());
      queue_.pop();
    }
    job();
  }
}

void parallel_for(ThreadPool& pool, size_t n, const std::function<void(size_t)>& fn) {
  std::vector<std::future<void>> futs;
  futs.reserve(n);
  for (size_t i = 0; i < n; ++i) futs.push_back(pool.submit([&fn, i] { fn(i); }));
  std::exception_ptr first;
  for (auto& f : futs) {
    try {
      f.get();
    } catch (...) {
      if (!first) first = std::current_exception();
    }
  }
  if (first) std::rethrow_exception(first);
}

void for_chunks(ThreadPool* pool, size_t n, const std::function<void(size_t begin, size_t end)>& fn) {
  if (n == 0) return;
  if (pool == nullptr || pool->size() <= 1 || n < 1024) {
    fn(0, n);
    return;
  }
  const size_t chunks = std::min(n, static_cast<size_t>(pool->size()) * 8);
  const size_t step = (n + chunks - 1) / chunks;
  parallel_for(*pool, (n + step - 1) / step, [&](size_t c) { fn(c * step, std::min(n, (c + 1) * step)); });
}

}  // namespace eve
