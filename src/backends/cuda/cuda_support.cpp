#ifdef UNICORN_HAVE_CUDA

#include "backends/cuda/cuda_support.h"

#include <fmt/format.h>

#include <algorithm>
#include <cstring>
#include <map>
#include <string>

#include "core/error.h"

namespace unicorn::cuda {

void check(cudaError_t e, const char* what, const char* file, int line) {
  if (e == cudaSuccess) return;
  cudaGetLastError();  // clear a non-sticky error so the next call starts clean
  fail("CUDA error {} ({}): {} at {}:{}", int(e), cudaGetErrorString(e), what, file, line);
}

std::pair<uint8_t*, std::shared_ptr<const void>> WeightArena::alloc(int64_t bytes, const std::string& what) {
  std::lock_guard<std::mutex> lock(mutex_);
  std::shared_ptr<Chunk> chunk;
  for (size_t i = 0; i < chunks_.size();) {
    auto c = chunks_[i].lock();
    if (!c) {
      chunks_.erase(chunks_.begin() + int64_t(i));
      continue;
    }
    if (c->size - c->used >= bytes) {
      chunk = std::move(c);
      break;
    }
    ++i;
  }
  if (!chunk) {
    const int64_t size = std::max(kChunkBytes, bytes);
    void* p = nullptr;
    const cudaError_t e = cudaMalloc(&p, size_t(size));
    if (e != cudaSuccess) {
      cudaGetLastError();
      size_t free_b = 0, total_b = 0;
      cudaMemGetInfo(&free_b, &total_b);
      fail("cuda:{}: out of GPU memory for {} ({:.1f} MiB; {:.2f} of {:.2f} GiB free)", device_, what,
           double(bytes) / (1 << 20), double(free_b) / (1 << 30), double(total_b) / (1 << 30));
    }
    const int device = device_;
    chunk = std::shared_ptr<Chunk>(new Chunk{static_cast<uint8_t*>(p), size, 0}, [device](Chunk* c) {
      set_device_quietly(device);
      cudaFree(c->base);
      delete c;
    });
    if (size == kChunkBytes) chunks_.push_back(chunk);
  }
  uint8_t* p = chunk->base + chunk->used;
  chunk->used += (bytes + 255) / 256 * 256;
  return {p, std::shared_ptr<const void>(chunk, p)};
}

namespace {

// The device current on this thread as last set here (-1: unknown).
thread_local int t_current_device = -1;

}  // namespace

void use_device(int device) {
  if (t_current_device == device) return;
  UNICORN_CUDA_CHECK(cudaSetDevice(device));
  t_current_device = device;
}

void set_device_quietly(int device) {
  if (t_current_device != device && cudaSetDevice(device) == cudaSuccess) t_current_device = device;
}

void forget_current_device() { t_current_device = -1; }

StepGraphs::~StepGraphs() {
  if (stream_) cudaStreamSynchronize(stream_);
  for (auto& [key, exec] : execs_) cudaGraphExecDestroy(exec);
  if (arena_) cudaFree(arena_);
  cudaGetLastError();
}

bool StepGraphs::begin(int64_t key, cudaStream_t stream) {
  if (recording_) fail("cuda: internal: a graph recording started inside another");
  if (std::find(given_up_.begin(), given_up_.end(), key) != given_up_.end()) return false;
  stream_ = stream;
  key_ = key;
  spoiled_ = give_up_ = false;
  used_ = 0;
  // Relaxed: cudaMalloc stays allowed (the arena's overflow) and other threads are unaffected.
  UNICORN_CUDA_CHECK(cudaStreamBeginCapture(stream, cudaStreamCaptureModeRelaxed));
  recording_ = true;
  return true;
}

void* StepGraphs::alloc(int64_t bytes) {
  const int64_t at = used_;
  used_ += (std::max<int64_t>(bytes, 1) + 255) / 256 * 256;
  if (used_ <= arena_bytes_) return arena_ + at;
  // Too small: real memory for the rest of this recording (which will not run), freed at end().
  spoil(true);
  void* p = nullptr;
  UNICORN_CUDA_CHECK(cudaMalloc(&p, size_t(std::max<int64_t>(bytes, 1))));
  overflow_.push_back(p);
  return p;
}

bool StepGraphs::end(bool run) {
  if (!recording_) fail("cuda: internal: a graph recording ended that never started");
  recording_ = false;
  cudaGraph_t graph = nullptr;
  const cudaError_t e = cudaStreamEndCapture(stream_, &graph);
  for (void* p : overflow_) cudaFree(p);  // only recorded work used them, and it never runs
  overflow_.clear();
  if (e != cudaSuccess || !graph || spoiled_ || !run) {
    if (graph) cudaGraphDestroy(graph);
    cudaGetLastError();
    if (e != cudaSuccess || give_up_) given_up_.push_back(key_);
    if (used_ > arena_bytes_ && !give_up_) {
      // Grow the arena for the next recording, once the graphs using the old one are done.
      UNICORN_CUDA_CHECK(cudaStreamSynchronize(stream_));
      if (arena_) UNICORN_CUDA_CHECK(cudaFree(arena_));
      arena_ = nullptr;
      arena_bytes_ = 0;
      const int64_t bytes = used_ + used_ / 4;
      void* p = nullptr;
      if (cudaMalloc(&p, size_t(bytes)) == cudaSuccess) {
        arena_ = static_cast<uint8_t*>(p);
        arena_bytes_ = bytes;
      } else {
        cudaGetLastError();
        given_up_.push_back(key_);  // no room: this key runs without graphs
      }
    }
    return false;
  }
  auto it = std::find_if(execs_.begin(), execs_.end(), [&](const auto& p) { return p.first == key_; });
  if (it == execs_.end()) it = execs_.insert(execs_.end(), {key_, nullptr});
  if (it->second) {
    cudaGraphExecUpdateResultInfo info{};
    if (cudaGraphExecUpdate(it->second, graph, &info) != cudaSuccess) {
      cudaGetLastError();  // another topology (a different copy pattern): instantiate anew
      cudaGraphExecDestroy(it->second);
      it->second = nullptr;
    }
  }
  cudaError_t ok = cudaSuccess;
  if (!it->second) {
    ok = cudaGraphInstantiate(&it->second, graph, 0);
    if (ok != cudaSuccess) it->second = nullptr;
  }
  cudaGraphDestroy(graph);
  UNICORN_CUDA_CHECK(ok);
  UNICORN_CUDA_CHECK(cudaGraphLaunch(it->second, stream_));
  ++launches_;
  return true;
}

size_t OpProfile::start(const char* name, cudaStream_t stream) {
  Record r{name, nullptr, nullptr};
  UNICORN_CUDA_CHECK(cudaEventCreate(&r.start));
  UNICORN_CUDA_CHECK(cudaEventCreate(&r.stop));
  UNICORN_CUDA_CHECK(cudaEventRecord(r.start, stream));
  if (records_.empty()) first_ = std::chrono::steady_clock::now();
  records_.push_back(r);
  return records_.size() - 1;
}

void OpProfile::stop(size_t index, cudaStream_t stream) {
  UNICORN_CUDA_CHECK(cudaEventRecord(records_[index].stop, stream));
}

void OpProfile::report(cudaStream_t stream) {
  if (records_.empty()) return;
  cudaStreamSynchronize(stream);
  const double host_ms =
      std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - first_).count();
  std::map<std::string, std::pair<int64_t, double>> by_name;
  double total = 0;
  for (const Record& r : records_) {
    float ms = 0;
    cudaEventElapsedTime(&ms, r.start, r.stop);
    by_name[r.name].first += 1;
    by_name[r.name].second += ms;
    if (!std::strchr(r.name, ':')) total += ms;  // "op: part" lies inside its op
    cudaEventDestroy(r.start);
    cudaEventDestroy(r.stop);
  }
  std::vector<std::pair<std::string, std::pair<int64_t, double>>> rows(by_name.begin(), by_name.end());
  std::sort(rows.begin(), rows.end(), [](const auto& a, const auto& b) { return a.second.second > b.second.second; });
  fmt::print(stderr, "cuda profile: {} ops, {:.1f} ms of GPU time in ops, {:.1f} ms of host time from the first op\n",
             records_.size(), total, host_ms);
  for (const auto& [name, v] : rows)
    fmt::print(stderr, "  {:<16} {:>8} calls {:>10.2f} ms {:>5.1f}%\n", name, v.first, v.second, 100.0 * v.second / total);
  records_.clear();
}

}  // namespace unicorn::cuda

#endif  // UNICORN_HAVE_CUDA
