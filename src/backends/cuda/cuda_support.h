// Host-side pieces the CUDA backend's files share: error checks, the current device, the
// pinned upload ring, the weight arena and the per-op profile. Plain C++ (g++), only in CUDA builds.
#pragma once

#include <cuda_runtime.h>

#include <array>
#include <chrono>
#include <cstdint>
#include <cstring>
#include <functional>
#include <memory>
#include <mutex>
#include <span>
#include <string>
#include <utility>
#include <vector>

#include "backends/cuda/cuda_kernels.h"
#include "ops/backend.h"

namespace unicorn::cuda {

// Makes `device` current on this thread (cudaSetDevice only when it changes); throws Error.
void use_device(int device);
// The same for destructors and deleters: no exceptions.
void set_device_quietly(int device);
// Whether host memory at p is page-locked (cudaMallocHost, cudaHostRegister).
bool is_pinned(const void* p);
// The current GPU's free memory now (cudaMemGetInfo): it sizes prefill scratch.
int64_t free_memory();
// After a cudaSetDevice made elsewhere: the next use_device calls it again.
void forget_current_device();

// The stream and device of one backend, kept alive by every tensor allocated on it.
struct Context {
  int device = 0;
  cudaStream_t stream = nullptr;
  ~Context() {
    if (!stream) return;  // the constructor failed before making one
    set_device_quietly(device);
    cudaStreamSynchronize(stream);
    cudaStreamDestroy(stream);
    cudaGetLastError();  // nothing here may surface as a later call's error
  }
};

// Stream-ordered device memory on ctx's stream (the pool keeps freed blocks for reuse); an
// Error naming the size and the free memory when the GPU has no room.
void* stream_alloc(const Context& ctx, int64_t bytes);

class DeviceGuard {
 public:
  explicit DeviceGuard(int device) { use_device(device); }
};

// The backend's choice of kernels and memory: each on by default where the GPU has what it
// needs; an environment switch turns it off (a value other than the two named is an Error).
struct Switches {
  // UNICORN_CUDA_GEMM=f32 (default bf16): every product in f32, as exact as the CPU, slower.
  // Otherwise products of many rows (prefill, the vision tower) on tensor cores through cuBLAS
  // (bf16 inputs, f32 sums; attention's in TF32) and decode over Q4_0 / Q8_0 with int8 x.
  bool exact_f32 = false;
  // The KV cache in f16 (half the memory and the bytes attention reads; llama.cpp's default)
  // unless UNICORN_CUDA_KV=f32 or exact_f32.
  bool kv_f16 = true;
  // Decode batches over Q4_0 / Q8_0 / Q6_K on the int8 tensor cores (sm_80 on), unless
  // UNICORN_CUDA_MMA=0 asks for the dp4a kernel (for comparison).
  bool mma = false;
  // UNICORN_CUDA_PROFILE=1: every op timed (OpProfile); turns graphs off.
  bool profile = false;
  // Decode steps as CUDA graphs unless UNICORN_CUDA_GRAPHS=0 or profiling.
  bool graphs = true;
  // The next decode step's first group recorded while this step's LM head runs (a step ahead),
  // unless UNICORN_CUDA_GRAPH_AHEAD=0: then when that step comes, while the GPU waits.
  bool graphs_ahead = true;
  // One row of x against Q4_0 / Q8_0 / Q6_K streamed (cuda_matvec.cu) unless UNICORN_CUDA_STREAM=0:
  // then blocks of 8-16 rows with k split over their threads (cuda_linear.cu).
  bool stream = false;
  // Their blocks: one of 16 warps a multiprocessor, or two of 8 with UNICORN_CUDA_STREAM_WARPS=8.
  int stream_warps = 16;
  // qk_norm_rope_attention of one sequence fused unless UNICORN_CUDA_FUSE_KV=0 (then norms, K/V
  // writes and attention each a kernel of their own): one query's norms, RoPE and K/V writes
  // inside the split attention kernel; more queries' K/V writes in the q/k norm kernel.
  bool fuse_kv = true;
  // Attention of many queries (prefill chunks, the vision tower) as flash attention on the f16
  // tensor cores (sm_80 on; head dim a multiple of 8, <= 128) unless UNICORN_CUDA_FLASH=0: then
  // TF32 products with the scores in memory.
  bool flash = false;
  // Its unmasked form (the vision tower) on Hopper's wgmma (a build for sm_90a, a compute 9.x
  // GPU) unless UNICORN_CUDA_WGMMA=0: then on mma.sync as elsewhere.
  bool wgmma = false;
  // Decode kernels launched as programmatic dependents (cuda_kernels.h; sm_90 on) unless
  // UNICORN_CUDA_PDL=0.
  bool dependent_launches = false;
  // Products with a bias, GELU or sum after them through cuBLASLt with those in its epilogue,
  // unless UNICORN_CUDA_LT=0: then cublasGemmEx and a pass over the result.
  bool blas_lt = true;
  static Switches from_environment(int cc_major);
};

// Device memory for weights. They live as long as the model, so they come from chunks of
// kChunkBytes (plain cudaMalloc, outside the stream-ordered pool), first fit, so small weights
// fill the ends of chunks a large one did not fit: one cudaMalloc per weight rounds each up to
// 2 MiB pages. A chunk is freed when its last weight is; a weight larger than a chunk has its own.
class WeightArena {
 public:
  static constexpr int64_t kChunkBytes = int64_t(256) << 20;
  explicit WeightArena(int device) : device_(device) {}
  // `bytes` of device memory (256-byte aligned) and the owner keeping them; Error naming
  // `what` when the GPU is out of memory.
  std::pair<uint8_t*, std::shared_ptr<const void>> alloc(int64_t bytes, const std::string& what);

 private:
  struct Chunk {
    uint8_t* base = nullptr;
    int64_t size = 0, used = 0;
  };
  int device_;
  std::mutex mutex_;
  std::vector<std::weak_ptr<Chunk>> chunks_;
};

// Small host arrays (token ids, positions, masks, row indices) go to the GPU through a pinned
// staging ring, so their copies are queued like kernels instead of waiting for the stream as
// copies from pageable memory do. A copy that would wrap the ring first waits for the stream:
// the bytes it overwrites have been copied by then, and the device side is stream-ordered.
// While the stream is recorded into a graph, the copies go at once on a stream of the ring's
// own (settle waits for them, before the graph runs): a copy inside a recorded decode layer
// ends the kernels' programmatic overlap there (27B on an H200: the layer's q/k/v product to
// attention 9 -> 18-22 us where a step's first two layers uploaded their masks).
class UploadRing {
 public:
  static constexpr int64_t kBytes = int64_t(4) << 20;
  UploadRing() = default;
  UploadRing(const UploadRing&) = delete;
  UploadRing& operator=(const UploadRing&) = delete;
  ~UploadRing() {
    if (side_) cudaStreamSynchronize(side_), cudaStreamDestroy(side_);
    if (host_) cudaFreeHost(host_);
    if (device_) cudaFree(device_);
    cudaGetLastError();
  }
  // Device copy of `bytes` bytes at `src`, valid for work queued on `stream` after this call
  // and before the ring next wraps. nullptr for large arrays (the caller allocates).
  // Arrays equal to one of the last few used are not copied again: every layer of a step
  // uploads the same positions and masks.
  // While a stream is being recorded into a graph (recording), a put that would wrap returns
  // nullptr instead of waiting (a recording cannot wait), and the copy is not recorded but
  // goes on the ring's stream (settle).
  const void* put(const void* src, int64_t bytes, cudaStream_t stream, bool recording = false) {
    if (bytes > kBytes / 4) return nullptr;
    if (!host_) {
      UNICORN_CUDA_CHECK(cudaMallocHost(&host_, size_t(kBytes)));
      UNICORN_CUDA_CHECK(cudaMalloc(&device_, size_t(kBytes)));
      UNICORN_CUDA_CHECK(cudaStreamCreateWithFlags(&side_, cudaStreamNonBlocking));
    }
    for (size_t i = 0; i < recent_.size(); ++i) {
      const Recent r = recent_[i];
      if (r.bytes == bytes && std::memcmp(static_cast<char*>(host_) + r.at, src, size_t(bytes)) == 0) {
        // Least recently used goes first: an array every step uploads stays (a recorded
        // step's copies then repeat from step to step, and its graph updates in place).
        recent_.erase(recent_.begin() + int64_t(i));
        recent_.push_back(r);
        return static_cast<char*>(device_) + r.at;
      }
    }
    const int64_t size = (bytes + 255) / 256 * 256;
    if (at_ + size > kBytes) {
      if (recording) return nullptr;
      wrap(stream);
    }
    std::memcpy(static_cast<char*>(host_) + at_, src, size_t(bytes));
    void* dst = static_cast<char*>(device_) + at_;
    // (the bytes at `dst` were last read before the ring's last wrap, which waited for them)
    UNICORN_CUDA_CHECK(cudaMemcpyAsync(dst, static_cast<char*>(host_) + at_, size_t(bytes), cudaMemcpyHostToDevice,
                                       recording ? side_ : stream));
    side_pending_ = side_pending_ || recording;
    if (recent_.size() == kRecent) recent_.erase(recent_.begin());
    recent_.push_back({at_, bytes});
    at_ += size;
    return dst;
  }
  // Before a recording: room for `bytes` without wrapping (waits for the stream if need be).
  void make_room(int64_t bytes, cudaStream_t stream) {
    if (at_ + bytes > kBytes) wrap(stream);
  }
  // Waits for the copies put while recording (before what was recorded runs, or runs again
  // without its graph).
  void settle() {
    if (!side_pending_) return;
    UNICORN_CUDA_CHECK(cudaStreamSynchronize(side_));
    side_pending_ = false;
  }
  // Times the ring went back to its start (a kept recording's copies read what was there).
  int64_t wraps() const { return wraps_; }

 private:
  struct Recent {
    int64_t at, bytes;
  };
  // Back to the ring's start once the stream is done with what it holds.
  void wrap(cudaStream_t stream) {
    settle();
    UNICORN_CUDA_CHECK(cudaStreamSynchronize(stream));
    at_ = 0;
    recent_.clear();
    ++wraps_;
  }
  static constexpr size_t kRecent = 8;
  void* host_ = nullptr;
  void* device_ = nullptr;
  cudaStream_t side_ = nullptr;
  bool side_pending_ = false;
  int64_t at_ = 0, wraps_ = 0;
  std::vector<Recent> recent_;
};

// Pinned host memory for results copied off the GPU (to_host: logits of a decode batch are
// 33.5 MB at 32 sequences): copies into pinned memory run at the bus's speed, where pageable
// memory goes through the driver's staging and a zero-filled tensor first. Blocks come back
// to a small free list when their last owner lets go (for the next step's results).
class PinnedPool {
 public:
  PinnedPool();
  // At least `bytes` of pinned host memory (64-byte aligned), and its owner.
  std::pair<void*, std::shared_ptr<const void>> get(int64_t bytes);

 private:
  struct State;
  std::shared_ptr<State> state_;
};

// CUDA graphs for decode steps (Backend::begin_graph / end_graph): a group of layers' launches
// and copies are recorded from the stream, and a recording of the same key (sequences, group)
// updates the executable graph of the last one in place (cudaGraphExecUpdate: same kernels,
// new arguments) instead of instantiating it again; the group then costs one launch, and the
// next group is recorded while the GPU runs it. Memory the recordings allocate comes from two
// arenas taken in turn, each from its start at every recording (so every step of a shape gets
// the same addresses): a group's output, in one, stays valid while the next group, in the
// other, reads it. An op that cannot be recorded spoils the recording: end() then runs nothing
// and the caller runs the group again without a graph; a key whose recording cannot work
// (cuBLAS, a wait) is not recorded again. A recording may also be kept instead of run (keep):
// the next step's first group, recorded while this step's last kernels run, launched once that
// step comes (launch) if nothing recorded the key since.
class StepGraphs {
 public:
  StepGraphs() = default;
  StepGraphs(const StepGraphs&) = delete;
  StepGraphs& operator=(const StepGraphs&) = delete;
  ~StepGraphs();
  // Starts recording `stream` (false: this key is not recorded). new_step: the first group of
  // a step (arena 0); else the arena the last recording did not use.
  bool begin(int64_t key, bool new_step, cudaStream_t stream);
  bool recording() const { return recording_; }
  // `bytes` of the arena (256-byte aligned); when it is too small, the recording is spoiled
  // (the next one gets a larger arena) and the block is plain memory for the rest of it.
  void* alloc(int64_t bytes);
  // The recording cannot run; `retry`: a later recording of this key may work (the arena grew,
  // a table was cached), else the key is given up.
  void spoil(bool retry) {
    spoiled_ = true;
    give_up_ = give_up_ || !retry;
  }
  // Ends the recording; launches it when `run` and nothing spoiled it (returns whether it ran).
  bool end(bool run) { return finish(run ? Finish::launch : Finish::drop) != 0; }
  // Ends the recording and makes it the key's executable graph without launching it: a ticket
  // for launch (> 0), or 0 when it cannot run (spoiled). `inputs`: a count that changes whenever
  // what the recording's copies read changes (the upload ring's wraps).
  int64_t keep(int64_t inputs) { return finish(Finish::keep, inputs); }
  // Launches the recording kept under `ticket` if it is still the key's latest and `inputs` is
  // as it was at keep (once).
  bool launch(int64_t key, int64_t ticket, int64_t inputs, cudaStream_t stream);
  int64_t launches() const { return launches_; }
  int64_t kept_launches() const { return kept_launches_; }
  // Copy nodes in the recordings made into graphs so far (each ends the kernels' overlap where
  // it sits; decode steps record none: UploadRing).
  int64_t copies() const { return copies_; }
  // Counts and host time of recordings, updates and instantiations (UNICORN_CUDA_GRAPH_STATS).
  std::string summary() const;

 private:
  enum class Finish { drop, launch, keep };
  // A ticket (> 0) when it launched or kept the recording (with `inputs`, for launch), else 0.
  int64_t finish(Finish how, int64_t inputs = 0);
  void grow();
  cudaStream_t stream_ = nullptr;
  int64_t key_ = 0;
  bool recording_ = false, spoiled_ = false, give_up_ = false;
  struct Exec {
    int64_t key = 0;
    cudaGraphExec_t exec = nullptr;
    int64_t kept = 0;  // the ticket of a kept recording not launched yet, else 0
    int64_t kept_inputs = 0;
  };
  std::vector<Exec> execs_;
  int64_t tickets_ = 0, kept_launches_ = 0;
  std::vector<int64_t> given_up_;
  std::vector<void*> overflow_, retired_;
  struct Arena {
    uint8_t* base = nullptr;
    int64_t bytes = 0, want = 0;
  };
  Arena arenas_[2];
  int parity_ = 0;  // the arena of this recording: groups alternate, a step starts with 0
  int64_t used_ = 0;
  int64_t launches_ = 0, recordings_ = 0, updates_ = 0, instantiations_ = 0, copies_ = 0;
  static int64_t copy_nodes(cudaGraph_t graph);
  int last_failure_ = 0, last_failure_node_ = -1;
  double record_ms_ = 0, finish_ms_ = 0;  // host time: begin to end, and inside end
  std::chrono::steady_clock::time_point began_;
};

// UNICORN_CUDA_PROFILE=1: GPU time of every op by name (CUDA events around each), printed on
// stderr when the backend goes away, next to the host time the ops spanned. Names of the form
// "op: part" time a part inside an op and are left out of the total.
class OpProfile {
 public:
  size_t start(const char* name, cudaStream_t stream);
  void stop(size_t index, cudaStream_t stream);
  void report(cudaStream_t stream);

 private:
  struct Record {
    const char* name;
    cudaEvent_t start, stop;
  };
  std::vector<Record> records_;
  std::chrono::steady_clock::time_point first_;
};

// Around each op of a backend: its device made current, and the op timed when profiling
// (profile not null).
class OpScope {
 public:
  OpScope(const Context& ctx, OpProfile* profile, const char* name) : ctx_(ctx), profile_(profile) {
    use_device(ctx.device);
    if (profile_) index_ = profile_->start(name, ctx.stream);
  }
  ~OpScope() {
    if (profile_) profile_->stop(index_, ctx_.stream);
  }
  OpScope(const OpScope&) = delete;
  OpScope& operator=(const OpScope&) = delete;

 private:
  const Context& ctx_;
  OpProfile* profile_;
  size_t index_ = 0;
};

// Scratch device memory of a backend, freed on its stream when the last owner lets go.
using Scratch = std::function<std::shared_ptr<void>(int64_t bytes)>;

// Points a's K and V at copies in f16 (to_f16) or f32 where they are in the other of those two
// types; the copies live as long as the returned owners.
std::array<std::shared_ptr<void>, 2> kv_as(AttentionArgs& a, bool to_f16, const Scratch& scratch, cudaStream_t stream);

class Blas;
// Attention of many queries (prefill, the vision tower) as matrix products on tensor cores
// (where flash attention is off): per head S = scale Q K^T, the masked softmax over S's rows,
// O = S V; q f32, K and V f32 or f16.
void attention_by_products(Blas& blas, const AttentionArgs& args, const Scratch& scratch, cudaStream_t stream);

// The kernel arguments of attention over the first n_k rows of k and v; the caller sets the
// mask arrays (device copies of mask's).
AttentionArgs attention_args(const Tensor& q, const Tensor& k, int64_t n_k, const Tensor& v, const AttentionMask& mask,
                             const AttentionShape& shape, Tensor& out);

// A decode batch's attention jobs (Backend::attention_jobs) checked and packed for two
// launches: every job's index arrays (slots, q_pos, q_group, k_pos, k_group) in ints() for
// one upload, then each job's K and V writes and attention arguments pointing into that copy.
class BatchedJobs {
 public:
  BatchedJobs(std::span<AttentionJob> jobs, const AttentionShape& shape);
  std::span<const int32_t> ints() const { return ints_; }
  int64_t max_nq() const { return max_nq_; }
  bool kv_f16() const { return kv_f16_; }
  // The jobs' RowScatters (K, then V, of each) and AttentionArgs, with ints() at `device_ints`.
  void arguments(const int32_t* device_ints, std::vector<RowScatter>& writes, std::vector<AttentionArgs>& args) const;

 private:
  std::span<AttentionJob> jobs_;
  AttentionShape shape_;
  std::vector<int32_t> ints_;
  std::vector<std::array<size_t, 5>> at_;  // where each job's arrays start in ints_
  int64_t max_nq_ = 0;
  bool kv_f16_ = false;
};

}  // namespace unicorn::cuda
