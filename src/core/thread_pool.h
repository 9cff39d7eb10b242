// A fixed pool of worker threads for data-parallel loops. The calling thread takes part, so a
// pool of N threads runs N - 1 workers. Between jobs, workers spin for a few tens of
// microseconds before sleeping: a decode step is hundreds of sub-millisecond jobs in a row,
// and waking a sleeping thread costs ~10 us each time.
#pragma once

#include <atomic>
#include <condition_variable>
#include <cstdint>
#include <functional>
#include <mutex>
#include <thread>
#include <vector>

namespace unicorn {

class ThreadPool {
 public:
  // threads <= 0: one per hardware thread.
  explicit ThreadPool(int threads = 0);
  ~ThreadPool();
  ThreadPool(const ThreadPool&) = delete;
  ThreadPool& operator=(const ThreadPool&) = delete;

  int size() const { return n_threads_; }

  // Calls fn(begin, end) over [0, n) split into contiguous pieces of at least `grain` items,
  // one piece per thread at most; returns when all are done. An exception thrown by fn is
  // rethrown here (the first one).
  void parallel_for(int64_t n, int64_t grain, const std::function<void(int64_t, int64_t)>& fn);

  // Calls fn(task) for task in [0, n_tasks), tasks handed out dynamically.
  void parallel_tasks(int64_t n_tasks, const std::function<void(int64_t)>& fn);

  static int hardware_threads();

 private:
  void worker_loop(int index);
  void run_job(int64_t n_tasks, const std::function<void(int64_t)>& fn);

  int n_threads_;
  std::vector<std::thread> workers_;
  std::mutex mutex_;
  std::condition_variable wake_;
  std::condition_variable done_;
  const std::function<void(int64_t)>* job_ = nullptr;
  int64_t job_tasks_ = 0;
  std::atomic<int64_t> next_task_{0};
  std::atomic<int> busy_workers_{0};
  std::atomic<uint64_t> generation_{0};  // bumped (under mutex_) for each job
  bool stopping_ = false;
  std::exception_ptr error_;
  std::mutex error_mutex_;
};

}  // namespace unicorn
