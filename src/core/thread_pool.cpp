#include "core/thread_pool.h"

#include <algorithm>
#include <chrono>

#if defined(__x86_64__) || defined(__i386__)
#include <immintrin.h>
#endif

namespace unicorn {

namespace {

inline void cpu_relax() {
#if defined(__x86_64__) || defined(__i386__)
  _mm_pause();
#endif
}

// Spins until pred() or about `spin` has passed; returns pred().
template <class Pred>
bool spin_until(Pred pred, std::chrono::microseconds spin) {
  if (spin.count() <= 0) return pred();
  const auto end = std::chrono::steady_clock::now() + spin;
  for (int i = 0;; ++i) {
    if (pred()) return true;
    cpu_relax();
    if ((i & 63) == 63 && std::chrono::steady_clock::now() >= end) return pred();
  }
}

// How long a thread spins before it sleeps. Spinning only pays when the other side shows up
// within the window; on an oversubscribed machine it mostly does not (the thread it waits
// for is not running), and spinning then only delays the sleep that lets it run. So each
// waiter halves its window after a spin that failed, and restores it after one that worked.
class SpinBudget {
 public:
  std::chrono::microseconds next() const { return std::chrono::microseconds(us_); }
  void record(bool succeeded) {
    if (succeeded) {
      us_ = kMaxUs;
    } else if (us_ > 0) {
      us_ /= 2;
    } else if (++idle_ % 64 == 0) {
      us_ = kMaxUs;  // try again now and then: the machine may have gone quiet
    }
  }

 private:
  static constexpr int kMaxUs = 50;
  int us_ = kMaxUs;
  unsigned idle_ = 0;
};
}  // namespace

int ThreadPool::hardware_threads() {
  const unsigned n = std::thread::hardware_concurrency();
  return n == 0 ? 1 : int(n);
}

ThreadPool::ThreadPool(int threads) : n_threads_(threads <= 0 ? hardware_threads() : threads) {
  for (int i = 1; i < n_threads_; ++i) workers_.emplace_back([this, i] { worker_loop(i); });
}

ThreadPool::~ThreadPool() {
  {
    std::lock_guard<std::mutex> lock(mutex_);
    stopping_ = true;
  }
  wake_.notify_all();
  for (auto& t : workers_) t.join();
}

void ThreadPool::worker_loop(int) {
  uint64_t seen = 0;
  SpinBudget spin;
  for (;;) {
    const std::function<void(int64_t)>* job;
    int64_t n_tasks;
    if (spin.next().count() > 0)
      spin.record(spin_until([&] { return generation_.load(std::memory_order_acquire) != seen; }, spin.next()));
    else
      spin.record(false);
    {
      std::unique_lock<std::mutex> lock(mutex_);
      wake_.wait(lock, [&] { return stopping_ || generation_.load() != seen; });
      if (stopping_) return;
      seen = generation_.load();
      job = job_;
      n_tasks = job_tasks_;
    }
    for (int64_t t; (t = next_task_.fetch_add(1)) < n_tasks;) {
      try {
        (*job)(t);
      } catch (...) {
        std::lock_guard<std::mutex> lock(error_mutex_);
        if (!error_) error_ = std::current_exception();
      }
    }
    if (busy_workers_.fetch_sub(1) == 1) {
      std::lock_guard<std::mutex> lock(mutex_);
      done_.notify_all();
    }
  }
}

void ThreadPool::run_job(int64_t n_tasks, const std::function<void(int64_t)>& fn) {
  if (n_tasks <= 0) return;
  if (workers_.empty() || n_tasks == 1) {
    for (int64_t t = 0; t < n_tasks; ++t) fn(t);
    return;
  }
  {
    std::lock_guard<std::mutex> lock(mutex_);
    job_ = &fn;
    job_tasks_ = n_tasks;
    next_task_.store(0);
    busy_workers_.store(int(workers_.size()));
    error_ = nullptr;
    generation_.fetch_add(1, std::memory_order_release);
  }
  wake_.notify_all();
  for (int64_t t; (t = next_task_.fetch_add(1)) < n_tasks;) {
    try {
      fn(t);
    } catch (...) {
      std::lock_guard<std::mutex> lock(error_mutex_);
      if (!error_) error_ = std::current_exception();
    }
  }
  thread_local SpinBudget spin;  // per calling thread (pools may be driven from several)
  if (spin.next().count() > 0)
    spin.record(spin_until([&] { return busy_workers_.load(std::memory_order_acquire) == 0; }, spin.next()));
  else
    spin.record(false);
  {
    std::unique_lock<std::mutex> lock(mutex_);
    done_.wait(lock, [&] { return busy_workers_.load() == 0; });
    job_ = nullptr;
  }
  if (error_) std::rethrow_exception(error_);
}

void ThreadPool::parallel_for(int64_t n, int64_t grain,
                              const std::function<void(int64_t, int64_t)>& fn) {
  if (n <= 0) return;
  grain = std::max<int64_t>(grain, 1);
  const int64_t pieces = std::clamp<int64_t>(n / grain, 1, n_threads_);
  const int64_t step = (n + pieces - 1) / pieces;
  run_job(pieces, [&](int64_t p) {
    const int64_t begin = p * step;
    const int64_t end = std::min(n, begin + step);
    if (begin < end) fn(begin, end);
  });
}

void ThreadPool::parallel_tasks(int64_t n_tasks, const std::function<void(int64_t)>& fn) {
  run_job(n_tasks, fn);
}

}  // namespace unicorn
