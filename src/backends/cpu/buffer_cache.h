// Host memory for the CPU backend's activations, recycled: a forward pass allocates the same
// few shapes in every layer, and giving multi-megabyte blocks back to the OS after each op
// means page faults on the next (a fifth of prefill's CPU time before this cache).
#pragma once

#include <cstddef>
#include <map>
#include <memory>
#include <mutex>
#include <vector>

#include "core/tensor.h"

namespace unicorn::cpu {

class BufferCache {
 public:
  // Keeps at most `max_bytes` of free blocks.
  explicit BufferCache(size_t max_bytes = size_t(512) << 20);
  ~BufferCache();
  BufferCache(const BufferCache&) = delete;
  BufferCache& operator=(const BufferCache&) = delete;

  // A zero-filled tensor whose memory returns here when its last view is gone (the cache
  // outlives the tensors it handed out: they share ownership of its state).
  Tensor zeros(DType dtype, Shape shape);
  // Free blocks held by every cache of the process now: heap memory that is neither in use
  // nor leaked (it grows as new shapes come, up to max_bytes a cache).
  static size_t cached_bytes();

 private:
  struct State {
    std::mutex mutex;
    std::multimap<size_t, void*> free;  // by block size
    size_t free_bytes = 0, max_bytes = 0;
    ~State();
    void give_back(void* p, size_t bytes);
  };
  std::shared_ptr<State> state_;
};

}  // namespace unicorn::cpu
