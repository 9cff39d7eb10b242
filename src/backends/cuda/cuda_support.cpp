#ifdef UNICORN_HAVE_CUDA

#include "backends/cuda/cuda_support.h"

#include <fmt/format.h>

#include <algorithm>
#include <cstdlib>
#include <cstring>
#include <map>
#include <string>
#include <string_view>
#include <tuple>

#include "backends/cuda/cuda_blas.h"
#include "core/error.h"
#include "ops/checks.h"

namespace unicorn::cuda {

void check(cudaError_t e, const char* what, const char* file, int line) {
  if (e == cudaSuccess) return;
  cudaGetLastError();  // clear a non-sticky error so the next call starts clean
  fail("CUDA error {} ({}): {} at {}:{}", int(e), cudaGetErrorString(e), what, file, line);
}

void* stream_alloc(const Context& ctx, int64_t bytes) {
  void* p = nullptr;
  const cudaError_t e = cudaMallocAsync(&p, size_t(std::max<int64_t>(bytes, 1)), ctx.stream);
  if (e != cudaSuccess) {
    cudaGetLastError();
    size_t free_b = 0, total_b = 0;
    cudaMemGetInfo(&free_b, &total_b);
    fail("cuda:{}: out of GPU memory allocating {:.1f} MiB ({:.1f} of {:.1f} GiB free): {}", ctx.device,
         double(bytes) / (1 << 20), double(free_b) / (1 << 30), double(total_b) / (1 << 30), cudaGetErrorString(e));
  }
  return p;
}

std::vector<TraceSetter>& trace_setters() {
  static std::vector<TraceSetter> all;
  return all;
}

namespace {
TraceSlots g_host_trace;
std::string g_trace_path;
}  // namespace

bool trace_on() { return g_host_trace.buf != nullptr; }

void trace_start() {
  const char* path = std::getenv("UNICORN_CUDA_TRACE");
  if (!path || !*path || g_host_trace.buf) return;
#ifndef UNICORN_CUDA_TRACE_BUILD
  fmt::print(stderr, "UNICORN_CUDA_TRACE: this build has no trace marks (configure with -DUNICORN_CUDA_TRACE=ON)\n");
#else
  g_trace_path = path;
  // Events of each kind (16 bytes each; UNICORN_CUDA_TRACE_EVENTS to change): a 27B decode step
  // makes ~33K block marks of each kind and ~530K warp marks.
  g_host_trace.cap = 1u << 22;
  if (const char* events = std::getenv("UNICORN_CUDA_TRACE_EVENTS")) {
    char* end = nullptr;
    const long v = std::strtol(events, &end, 10);
    if (end == events || *end || v < 1024 || v > (1L << 26))
      fail("UNICORN_CUDA_TRACE_EVENTS='{}': expected a count of events of each kind, 1024 to {}", events, 1L << 26);
    g_host_trace.cap = unsigned(v);
  }
  UNICORN_CUDA_CHECK(cudaMalloc(&g_host_trace.buf, size_t(g_host_trace.cap) * kTraceKinds * 2 * 8));
  UNICORN_CUDA_CHECK(cudaMalloc(&g_host_trace.n, kTraceKinds * 4));
  UNICORN_CUDA_CHECK(cudaMemset(g_host_trace.n, 0, kTraceKinds * 4));
  for (TraceSetter f : trace_setters()) f(g_host_trace);
  UNICORN_CUDA_CHECK(cudaDeviceSynchronize());
#endif
}

void trace_dump() {
  if (!g_host_trace.buf) return;
  cudaDeviceSynchronize();
  unsigned n[kTraceKinds] = {};
  cudaMemcpy(n, g_host_trace.n, sizeof n, cudaMemcpyDeviceToHost);
  FILE* f = std::fopen(g_trace_path.c_str(), "w");
  if (!f) {
    fmt::print(stderr, "UNICORN_CUDA_TRACE: cannot write {}\n", g_trace_path);
    return;
  }
  bool cut = false;
  std::vector<unsigned long long> b;
  for (int k = 0; k < kTraceKinds; ++k) {  // only the events recorded come over
    cut |= n[k] > g_host_trace.cap;
    b.resize(size_t(std::min(n[k], g_host_trace.cap)) * 2);
    cudaMemcpy(b.data(), g_host_trace.buf + size_t(k) * g_host_trace.cap * 2, b.size() * 8, cudaMemcpyDeviceToHost);
    for (size_t i = 0; i < b.size(); i += 2)
      std::fprintf(f, "%d %llu %llu %llu\n", k, b[i], b[i + 1] & 0xffffffffull, b[i + 1] >> 32);
  }
  std::fclose(f);
  if (cut)
    fmt::print(stderr, "UNICORN_CUDA_TRACE: only the first {} events of each kind kept\n", g_host_trace.cap);
}

namespace {

// An environment switch: "" when unset, else its value, which must be `a` or `b` (else an
// Error saying what `name` expects).
std::string env_switch(const char* name, std::string_view a, std::string_view b, const char* expected) {
  const char* v = std::getenv(name);
  if (!v) return "";
  if (v != a && v != b) fail("{}='{}': expected {}", name, v, expected);
  return v;
}

}  // namespace

Switches Switches::from_environment(int cc_major) {
  Switches s;
  const bool f16_mma = linear_int8_mma_supported(cc_major);  // sm_80 on: int8 and f16 mma
  s.exact_f32 = env_switch("UNICORN_CUDA_GEMM", "bf16", "f32", "bf16 (tensor cores, the default) or f32") == "f32";
  s.kv_f16 = !s.exact_f32 && env_switch("UNICORN_CUDA_KV", "f16", "f32", "f16 (the default) or f32") != "f32";
  s.mma = !s.exact_f32 && f16_mma &&
          env_switch("UNICORN_CUDA_MMA", "0", "1", "1 (int8 tensor cores, the default where the GPU has them) or 0") != "0";
  const char* profile = std::getenv("UNICORN_CUDA_PROFILE");
  s.profile = profile && *profile && std::string(profile) != "0";
  s.graphs = !s.profile &&
             env_switch("UNICORN_CUDA_GRAPHS", "0", "1", "1 (decode steps as CUDA graphs, the default) or 0") != "0";
  s.graphs_ahead = env_switch("UNICORN_CUDA_GRAPH_AHEAD", "0", "1",
                              "1 (a decode step's first graph recorded a step ahead, the default) or 0") != "0";
  s.stream = !s.exact_f32 &&
             env_switch("UNICORN_CUDA_STREAM", "0", "1", "1 (streamed one-row products, the default) or 0") != "0";
  s.fuse_kv = env_switch("UNICORN_CUDA_FUSE_KV", "0", "1", "1 (q/k norms, K/V writes and attention fused, the default) or 0") != "0";
  s.stream_warps =
      env_switch("UNICORN_CUDA_STREAM_WARPS", "16", "8", "16 (warps a block, the default) or 8") == "8" ? 8 : 16;
  s.flash = !s.exact_f32 && f16_mma &&
            env_switch("UNICORN_CUDA_FLASH", "0", "1", "1 (flash attention, the default where the GPU has f16 mma) or 0") != "0";
  s.wgmma = s.flash && cc_major == 9 && flash_wgmma_built() &&
            env_switch("UNICORN_CUDA_WGMMA", "0", "1", "1 (Hopper's wgmma for the vision tower's attention, the default) or 0") != "0";
  s.dependent_launches =
      cc_major >= 9 &&
      env_switch("UNICORN_CUDA_PDL", "0", "1", "1 (dependent launches, the default from Hopper on) or 0") != "0";
  s.blas_lt = env_switch("UNICORN_CUDA_LT", "0", "1", "1 (epilogues fused by cuBLASLt, the default) or 0") != "0";
  return s;
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

int64_t free_memory() {
  size_t free_b = 0, total_b = 0;
  UNICORN_CUDA_CHECK(cudaMemGetInfo(&free_b, &total_b));
  return int64_t(free_b);
}

struct PinnedPool::State {
  static constexpr size_t kKeep = 4;  // free blocks kept for reuse
  std::mutex mutex;
  std::vector<std::pair<void*, int64_t>> free;  // (block, bytes)
  ~State() {
    for (auto& [p, n] : free) cudaFreeHost(p);
    cudaGetLastError();
  }
};

bool is_pinned(const void* p) {
  cudaPointerAttributes attr{};
  if (cudaPointerGetAttributes(&attr, p) != cudaSuccess) {
    cudaGetLastError();
    return false;
  }
  return attr.type == cudaMemoryTypeHost;
}

PinnedPool::PinnedPool() : state_(std::make_shared<State>()) {}

std::pair<void*, std::shared_ptr<const void>> PinnedPool::get(int64_t bytes) {
  bytes = std::max<int64_t>(bytes, 64);
  void* block = nullptr;
  int64_t size = 0;
  {
    std::lock_guard<std::mutex> lock(state_->mutex);
    auto& f = state_->free;
    for (size_t i = 0; i < f.size(); ++i) {
      if (f[i].second >= bytes && f[i].second <= 2 * bytes) {
        std::tie(block, size) = f[i];
        f.erase(f.begin() + int64_t(i));
        break;
      }
    }
  }
  if (!block) {
    UNICORN_CUDA_CHECK(cudaMallocHost(&block, size_t(bytes)));
    size = bytes;
  }
  std::shared_ptr<State> state = state_;
  std::shared_ptr<const void> owner(block, [state, size](const void* p) {
    std::lock_guard<std::mutex> lock(state->mutex);
    if (state->free.size() >= State::kKeep) {
      cudaFreeHost(const_cast<void*>(state->free.front().first));
      state->free.erase(state->free.begin());
    }
    state->free.emplace_back(const_cast<void*>(p), size);
  });
  return {block, std::move(owner)};
}

StepGraphs::~StepGraphs() {
  if (stream_) cudaStreamSynchronize(stream_);
  for (Exec& e : execs_)
    if (e.exec) cudaGraphExecDestroy(e.exec);
  for (void* p : retired_) cudaFree(p);
  for (Arena& a : arenas_)
    if (a.base) cudaFree(a.base);
  cudaGetLastError();
}

bool StepGraphs::begin(int64_t key, bool new_step, cudaStream_t stream) {
  if (recording_) fail("cuda: internal: a graph recording started inside another");
  if (std::find(given_up_.begin(), given_up_.end(), key) != given_up_.end()) return false;
  if (new_step) {
    // The last step's recordings are done with (the caller waited for its results).
    if (!retired_.empty()) {
      UNICORN_CUDA_CHECK(cudaStreamSynchronize(stream));
      for (void* p : retired_) UNICORN_CUDA_CHECK(cudaFree(p));
      retired_.clear();
    }
    parity_ = 0;
  } else {
    parity_ ^= 1;
  }
  used_ = 0;
  stream_ = stream;
  key_ = key;
  spoiled_ = give_up_ = false;
  // Relaxed: cudaMalloc stays allowed (the arena's overflow) and other threads are unaffected.
  UNICORN_CUDA_CHECK(cudaStreamBeginCapture(stream, cudaStreamCaptureModeRelaxed));
  recording_ = true;
  ++recordings_;
  began_ = std::chrono::steady_clock::now();
  return true;
}

void* StepGraphs::alloc(int64_t bytes) {
  bytes = (std::max<int64_t>(bytes, 1) + 255) / 256 * 256;
  Arena& a = arenas_[parity_];
  if (used_ + bytes <= a.bytes) {
    used_ += bytes;
    return a.base + used_ - bytes;
  }
  // Too small: plain memory for the rest of this recording (which will not run; freed at end),
  // and a larger arena for the next one.
  spoil(true);
  used_ += bytes;
  a.want = std::max(a.want, used_);
  void* p = nullptr;
  UNICORN_CUDA_CHECK(cudaMalloc(&p, size_t(bytes)));
  overflow_.push_back(p);
  return p;
}

void StepGraphs::grow() {
  // The old arena may still hold the output of an earlier group that a later one reads, or
  // work queued on it: it is freed at the next step, not now.
  Arena& a = arenas_[parity_];
  if (a.base) retired_.push_back(a.base);
  for (Exec& e : execs_) e.kept = 0;  // a kept recording may use the old arena
  a.base = nullptr;
  a.bytes = 0;
  size_t free_b = 0, total_b = 0;
  UNICORN_CUDA_CHECK(cudaMemGetInfo(&free_b, &total_b));
  const int64_t bytes = std::max<int64_t>(a.want + a.want / 4, int64_t(4) << 20);
  void* p = nullptr;
  if (bytes > int64_t(free_b) / 4 || cudaMalloc(&p, size_t(bytes)) != cudaSuccess) {
    cudaGetLastError();
    given_up_.push_back(key_);  // no room: this key runs without graphs
    return;
  }
  a.base = static_cast<uint8_t*>(p);
  a.bytes = bytes;
}

int64_t StepGraphs::finish(Finish how, int64_t inputs) {
  if (!recording_) fail("cuda: internal: a graph recording ended that never started");
  recording_ = false;
  const auto t0 = std::chrono::steady_clock::now();
  record_ms_ += std::chrono::duration<double, std::milli>(t0 - began_).count();
  struct Timer {
    double& ms;
    std::chrono::steady_clock::time_point t0;
    ~Timer() { ms += std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0).count(); }
  } timer{finish_ms_, t0};
  cudaGraph_t graph = nullptr;
  const cudaError_t e = cudaStreamEndCapture(stream_, &graph);
  for (void* p : overflow_) cudaFree(p);  // only recorded work used them, and it never runs
  const bool overflowed = !overflow_.empty();
  overflow_.clear();
  auto it = std::find_if(execs_.begin(), execs_.end(), [&](const Exec& x) { return x.key == key_; });
  if (it == execs_.end()) it = execs_.insert(execs_.end(), Exec{key_, nullptr, 0});
  it->kept = 0;  // a kept recording of this key is no longer its latest
  if (e != cudaSuccess || !graph || spoiled_ || how == Finish::drop) {
    if (graph) cudaGraphDestroy(graph);
    cudaGetLastError();
    if (e != cudaSuccess || give_up_) given_up_.push_back(key_);
    else if (overflowed) grow();
    return 0;
  }
  copies_ += copy_nodes(graph);
  if (it->exec) {
    cudaGraphExecUpdateResultInfo info{};
    if (cudaGraphExecUpdate(it->exec, graph, &info) != cudaSuccess) {
      cudaGetLastError();  // another topology (a different copy pattern): instantiate anew
      last_failure_ = int(info.result);
      if (info.errorNode) {
        cudaGraphNodeType type{};
        if (cudaGraphNodeGetType(info.errorNode, &type) == cudaSuccess) last_failure_node_ = int(type);
      }
      cudaGraphExecDestroy(it->exec);
      it->exec = nullptr;
    } else {
      ++updates_;
    }
  }
  cudaError_t ok = cudaSuccess;
  if (!it->exec) {
    ok = cudaGraphInstantiate(&it->exec, graph, 0);
    if (ok != cudaSuccess) it->exec = nullptr;
    ++instantiations_;
  }
  cudaGraphDestroy(graph);
  UNICORN_CUDA_CHECK(ok);
  if (how == Finish::keep) {
    it->kept_inputs = inputs;
    return it->kept = ++tickets_;
  }
  UNICORN_CUDA_CHECK(cudaGraphLaunch(it->exec, stream_));
  ++launches_;
  return ++tickets_;
}

int64_t StepGraphs::copy_nodes(cudaGraph_t graph) {
  size_t count = 0;
  if (cudaGraphGetNodes(graph, nullptr, &count) != cudaSuccess) return cudaGetLastError(), 0;
  std::vector<cudaGraphNode_t> nodes(count);
  if (count == 0 || cudaGraphGetNodes(graph, nodes.data(), &count) != cudaSuccess) return cudaGetLastError(), 0;
  int64_t copies = 0;
  for (cudaGraphNode_t n : nodes) {
    cudaGraphNodeType type{};
    copies += cudaGraphNodeGetType(n, &type) == cudaSuccess && type == cudaGraphNodeTypeMemcpy;
  }
  return copies;
}

bool StepGraphs::launch(int64_t key, int64_t ticket, int64_t inputs, cudaStream_t stream) {
  if (recording_) fail("cuda: internal: a kept graph launched inside a recording");
  auto it = std::find_if(execs_.begin(), execs_.end(), [&](const Exec& x) { return x.key == key; });
  if (ticket <= 0 || it == execs_.end() || !it->exec || it->kept != ticket || it->kept_inputs != inputs) return false;
  it->kept = 0;
  UNICORN_CUDA_CHECK(cudaGraphLaunch(it->exec, stream));
  ++launches_;
  ++kept_launches_;
  return true;
}

std::string StepGraphs::summary() const {
  return fmt::format("cuda graphs: {} recordings, {} launched ({} of them recorded a step ahead; {} updated in place, "
                     "{} instantiated; last update failure: result {}, node type {}; {} copies recorded); host {:.3f} ms "
                     "a recording, {:.3f} ms a finish (update / instantiate + launch); arena {:.1f} MiB",
                     recordings_, launches_, kept_launches_, updates_, instantiations_, last_failure_, last_failure_node_,
                     copies_,
                     recordings_ ? record_ms_ / double(recordings_) : 0.0,
                     recordings_ ? finish_ms_ / double(recordings_) : 0.0,
                     double(arenas_[0].bytes + arenas_[1].bytes) / (1 << 20));
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

std::array<std::shared_ptr<void>, 2> kv_as(AttentionArgs& a, bool to_f16, const Scratch& scratch, cudaStream_t stream) {
  if (a.kv_f16 == to_f16) return {};
  const int64_t count = a.n_k * a.kv_heads * a.head_dim;
  std::array<std::shared_ptr<void>, 2> copies;
  const void** from[2] = {&a.k, &a.v};
  for (int i = 0; i < 2; ++i) {
    copies[size_t(i)] = scratch(count * (to_f16 ? 2 : 4));
    if (to_f16)
      f32_to_f16_device(static_cast<const float*>(*from[i]), copies[size_t(i)].get(), count, stream);
    else
      f16_to_f32(*from[i], static_cast<float*>(copies[size_t(i)].get()), count, stream);
    *from[i] = copies[size_t(i)].get();
  }
  a.kv_f16 = to_f16;
  return copies;
}

void attention_by_products(Blas& blas, const AttentionArgs& args, const Scratch& scratch, cudaStream_t stream) {
  // The scores of a slice of query rows: up to 512 MiB (the vision tower's 16 x 4096 x 4096
  // in two slices) where the GPU has room, down to 64 MiB when free memory is short (27B at
  // nf4 with 8192 tokens on a 16 GB card: a 512-token chunk's scores against 8192 keys
  // alone are 512 MiB). Smaller slices cost launches: the vision tower 73 -> 97 ms at 64 MiB.
  const int64_t kScoresBytes = std::clamp<int64_t>(free_memory() / 16, int64_t(64) << 20, int64_t(512) << 20);
  const int64_t H = args.heads, KVH = args.kv_heads, hd = args.head_dim, group = H / KVH, nk = args.n_k;
  const int64_t qw = H * hd, kw = KVH * hd;
  // A half-precision cache goes to the f32 products as f32 copies of the rows in use.
  AttentionArgs a = args;
  const auto copies = kv_as(a, false, scratch, stream);
  const float* K = static_cast<const float*>(a.k);
  const float* V = static_cast<const float*>(a.v);
  int64_t slice = a.n_q;
  while (slice > 1 && H * slice * nk * 4 > kScoresBytes) slice = (slice + 1) / 2;
  const auto scores = scratch(H * slice * nk * 4);
  float* S = static_cast<float*>(scores.get());
  for (int64_t q0 = 0; q0 < a.n_q; q0 += slice) {
    const int64_t rows = std::min(slice, a.n_q - q0);
    for (int64_t g = 0; g < group; ++g) {
      // Column-major S_h^T [nk, rows] = K_h [nk, hd] Q_h^T [hd, rows], h = b * group + g.
      blas.gemm_f32_batched(true, false, nk, rows, hd, a.scale, {K, kw, hd}, {a.q + q0 * qw + g * hd, qw, group * hd},
                            S + g * rows * nk, nk, group * rows * nk, KVH);
    }
    masked_softmax(a, S, q0, rows, stream);
    for (int64_t g = 0; g < group; ++g) {
      // Column-major O_h^T [hd, rows] = V_h^T [hd, nk] P_h^T [nk, rows].
      blas.gemm_f32_batched(false, false, hd, rows, nk, 1.0f, {V, kw, hd}, {S + g * rows * nk, nk, group * rows * nk},
                            a.out + q0 * qw + g * hd, qw, group * hd, KVH);
    }
  }
}

AttentionArgs attention_args(const Tensor& q, const Tensor& k, int64_t n_k, const Tensor& v, const AttentionMask& mask,
                             const AttentionShape& shape, Tensor& out) {
  AttentionArgs a;
  if (q.dtype() == DType::BF16)
    a.q_bf16 = q.raw();
  else
    a.q = q.data<const float>();
  a.k = k.raw();
  a.v = v.raw();
  a.kv_f16 = k.dtype() == DType::F16;
  a.kv_bf16 = k.dtype() == DType::BF16;
  if (out.dtype() == DType::BF16)
    a.out_bf16 = out.raw();
  else
    a.out = out.data<float>();
  a.n_q = q.dim(0);
  a.n_k = n_k;
  a.heads = shape.n_heads;
  a.kv_heads = shape.n_kv_heads;
  a.head_dim = shape.head_dim;
  a.window = mask.window;
  a.causal = mask.causal;
  // The mask's key span, where it has one: the split kernels walk only it (a sliding window's
  // 1024 of a ring of 1536 slots: 27B tg32 at 4096 tokens +3%, 32 sequences at 2048 +15%).
  const bool span = mask.key_count > 0 && mask.key_count <= n_k && mask.key_first >= 0 && mask.key_first < n_k;
  a.k_first = span ? mask.key_first : 0;
  a.k_count = span ? mask.key_count : n_k;
  // Not causal: every query sees every key unless a slot is empty (checked only then: decode
  // steps are causal and their masks long).
  a.every_key = !mask.causal && std::ranges::all_of(mask.k_pos, [](int32_t p) { return p >= 0; });
  a.scale = shape.scale;
  return a;
}

BatchedJobs::BatchedJobs(std::span<AttentionJob> jobs, const AttentionShape& shape)
    : jobs_(jobs), shape_(shape), at_(jobs.size()) {
  const DType kv = jobs[0].k_cache->dtype();
  kv_f16_ = kv == DType::F16;
  for (size_t i = 0; i < jobs.size(); ++i) {
    AttentionJob& j = jobs[i];
    ops::check_rows("scatter_rows", j.k_new, j.slots, *j.k_cache, true);
    ops::check_rows("scatter_rows", j.v_new, j.slots, *j.v_cache, true);
    if (j.k_cache->dtype() != kv || j.v_cache->dtype() != kv || j.used > j.k_cache->dim(0))
      fail("cuda attention: a batch's caches differ in type, or {} rows used of {}", j.used, j.k_cache->dim(0));
    ops::check_attention(j.q, j.k_cache->rows(0, j.used), j.v_cache->rows(0, j.used), j.mask, shape, j.out, true);
    const std::span<const int32_t> parts[5] = {j.slots, j.mask.q_pos, j.mask.q_group, j.mask.k_pos, j.mask.k_group};
    for (int p = 0; p < 5; ++p) {
      at_[i][size_t(p)] = ints_.size();
      ints_.insert(ints_.end(), parts[p].begin(), parts[p].end());
    }
    max_nq_ = std::max(max_nq_, j.q.dim(0));
  }
}

void BatchedJobs::arguments(const int32_t* d, std::vector<RowScatter>& writes, std::vector<AttentionArgs>& args) const {
  writes.clear();
  args.resize(jobs_.size());
  for (size_t i = 0; i < jobs_.size(); ++i) {
    AttentionJob& j = jobs_[i];
    writes.push_back({j.k_new.data<const float>(), d + at_[i][0], j.k_cache->raw(), j.k_new.dim(0)});
    writes.push_back({j.v_new.data<const float>(), d + at_[i][0], j.v_cache->raw(), j.v_new.dim(0)});
    AttentionArgs& a = args[i];
    a = attention_args(j.q, *j.k_cache, j.used, *j.v_cache, j.mask, shape_, j.out);
    a.q_pos = d + at_[i][1];
    a.q_group = d + at_[i][2];
    a.k_pos = d + at_[i][3];
    a.k_group = d + at_[i][4];
  }
}

}  // namespace unicorn::cuda

#endif  // UNICORN_HAVE_CUDA
