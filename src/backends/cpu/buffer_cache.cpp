#include "backends/cpu/buffer_cache.h"

#include <atomic>
#include <cstdlib>
#include <cstring>

#include "core/error.h"

namespace unicorn::cpu {

namespace {
std::atomic<size_t> g_cached_bytes{0};  // free_bytes of every cache
}  // namespace

size_t BufferCache::cached_bytes() { return g_cached_bytes.load(std::memory_order_relaxed); }

BufferCache::BufferCache(size_t max_bytes) : state_(std::make_shared<State>()) { state_->max_bytes = max_bytes; }

BufferCache::~BufferCache() = default;

BufferCache::State::~State() {
  for (auto& [bytes, p] : free) std::free(p);
  g_cached_bytes -= free_bytes;
}

void BufferCache::State::give_back(void* p, size_t bytes) {
  std::lock_guard<std::mutex> lock(mutex);
  if (free_bytes + bytes > max_bytes) {
    std::free(p);
    return;
  }
  free.emplace(bytes, p);
  free_bytes += bytes;
  g_cached_bytes += bytes;
}

Tensor BufferCache::zeros(DType dtype, Shape shape) {
  for (int64_t d : shape)
    if (d < 0) fail("negative dimension in shape {}", shape_str(shape));
  const size_t bytes = size_t(dtype_bytes(dtype, shape_numel(shape)));
  const size_t block = bytes == 0 ? 64 : (bytes + 63) / 64 * 64;
  void* p = nullptr;
  {
    std::lock_guard<std::mutex> lock(state_->mutex);
    auto it = state_->free.find(block);  // same-size blocks: the shapes of a forward pass recur
    if (it != state_->free.end()) {
      p = it->second;
      state_->free.erase(it);
      state_->free_bytes -= block;
      g_cached_bytes -= block;
    }
  }
  if (!p) p = std::aligned_alloc(64, block);
  if (!p) fail("out of memory allocating {} bytes for a tensor of shape {}", bytes, shape_str(shape));
  std::memset(p, 0, block);
  std::shared_ptr<State> state = state_;
  std::shared_ptr<const void> owner(p, [state, block](const void* q) { state->give_back(const_cast<void*>(q), block); });
  return Tensor::view(dtype, std::move(shape), p, std::move(owner));
}

}  // namespace unicorn::cpu
