// A small fixed thread pool, an order-preserving parallel map and chunked parallel loops, so
// results never depend on the thread count.
#pragma once

#include <condition_variable>
#include <cstddef>
#include <functional>
#include <future>
#include <mutex>
#include <queue>
#include <thread>
#include <vector>

namespace eve {

// 0 (or negative) means every core the machine has.
int resolve_threads(int requested);

class ThreadPool {
 public:
  explicit ThreadPool(int threads);
  ~ThreadPool();
  ThreadPool(const ThreadPool&) = delete;
  ThreadPool& operator=(const ThreadPool&) = delete;

  int size() const { return static_cast<int>(workers_.size()); }

  template <typename F>
  auto submit(F&& f) -> std::future<decltype(f())> {
    using R = decltype(f());
    auto task = std::make_shared<std::packaged_task<R()>>(std::forward<F>(f));
    std::future<R> fut = task->get_future();
    {
      std::lock_guard<std::mutex> lock(mutex_);
      queue_.emplace([task] { (*task)(); });
    }
    cv_.notify_one();
    return fut;
  }

 private:
  void loop();
  std::vector<std::thread> workers_;
  std::queue<std::function<void()>> queue_;
  std::mutex mutex_;
  std::condition_variable cv_;
  bool stopping_ = false;
};

// Calls fn(i) for i in [0, n) on the pool; rethrows the first exception (by index) after
// all calls finished.
void parallel_for(ThreadPool& pool, size_t n, const std::function<void(size_t)>& fn);

// Splits [0, n) into contiguous ranges and calls fn(begin, end) for each, on the pool (about
// eight ranges per thread, so uneven ranges even out) or inline without one, with one thread,
// or below 1024 indexes, where handing out work costs more than it saves. Each index is in
// exactly one range and callers write results by index, so the outcome never depends on the
// thread count. Exceptions are rethrown as parallel_for does.
void for_chunks(ThreadPool* pool, size_t n, const std::function<void(size_t begin, size_t end)>& fn);

}  // namespace eve
