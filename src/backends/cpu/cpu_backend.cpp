#include "backends/cpu/cpu_backend.h"

#include <sys/mman.h>

#include <algorithm>
#include <cmath>
#include <cstdlib>
#include <cstring>
#include <limits>
#include <vector>

#include "backends/cpu/quant_acts.h"
#include "backends/cpu/simd_kernels.h"
#include "core/quant/interleaved.h"
#include "core/quant/quant.h"
#include "core/quant/nf4.h"
#include "core/rows.h"
#include "ops/checks.h"
#include "ops/reference_backend.h"

namespace unicorn {

namespace {

// Small vectors (norm weights, biases) as f32.
std::vector<float> as_f32(const Tensor& t) { return t.to_f32(); }

// Converts `count` values of a plain-float row starting at element `offset` to f32.
void row_to_f32(const Tensor& w, int64_t offset, int64_t count, float* out) {
  switch (w.dtype()) {
    case DType::F32:
      std::memcpy(out, w.data<const float>() + offset, size_t(count) * 4);
      return;
    case DType::BF16:
      cpu::bf16_to_f32_row(w.data<const uint16_t>() + offset, out, size_t(count));
      return;
    case DType::F16:
      cpu::f16_to_f32_row(w.data<const uint16_t>() + offset, out, size_t(count));
      return;
    default:
      if (w.dtype() == DType::NF4) {  // blocks over the flattened tensor, scales beside
        nf4::dequantize(w.data<const uint8_t>(), nf4::state_of(w), offset, count, out);
        return;
      }
      if (is_interleaved(w.dtype())) {  // rows are not contiguous: whole rows only
        UNICORN_CHECK(count == w.dim(1) && offset % count == 0);
        dequantize_row(w, offset / count, out);
        return;
      }
      if (!is_block_format(w.dtype()) || !can_dequantize_from(w.dtype()))
        fail("cpu: weights of dtype {} are not supported here", dtype_name(w.dtype()));
      // Block formats: offset and count are whole blocks (rows of a matrix).
      dequantize_values(w.dtype(), static_cast<const char*>(w.raw()) + dtype_bytes(w.dtype(), offset), out, count);
  }
}

// Memory for a weight the backend makes, in 2 MB pages where the OS allows (Linux THP in
// "madvise" mode): a decode step streams every weight once, and with 4 KB pages each 4 KB
// also costs a TLB miss, a nested page walk under a hypervisor. Measured on the 2-core
// development VM: 2-thread streaming reads of 560 MB went from 9.5 to 13 GB/s.
// Matrices under 2 MB (k / v projections) take ordinary memory: a huge page for each would
// waste most of it.
Tensor huge_page_tensor(DType dtype, Shape shape) {
  constexpr size_t kHuge = size_t(2) << 20;
  const size_t bytes = size_t(dtype_bytes(dtype, shape_numel(shape)));
  if (bytes < kHuge) return Tensor::zeros(dtype, std::move(shape));
  const size_t rounded = (bytes + kHuge - 1) / kHuge * kHuge;
  void* p = std::aligned_alloc(kHuge, rounded);
  if (!p) fail("out of memory allocating {} bytes for a weight of shape {}", bytes, shape_str(shape));
#ifdef MADV_HUGEPAGE
  madvise(p, rounded, MADV_HUGEPAGE);  // a hint: without it the memory is as good, only slower to stream
#endif
  return Tensor::view(dtype, std::move(shape), p, std::shared_ptr<const void>(p, [](const void* q) {
                        std::free(const_cast<void*>(q));
                      }));
}

}  // namespace

CpuBackend::CpuBackend(int threads) : pool_(threads) {}

Tensor CpuBackend::prepare_weight(const Tensor& host) {
  // Q4_0 / Q8_0 / Q4_K / Q6_K matrices of at least one 16-row group: interleaved once for the integer
  // kernels (a copy; the same bytes per row).
  const DType t = host.dtype();
  if (host.rank() == 2 && (t == DType::Q4_0 || t == DType::Q8_0 || t == DType::Q4_K || t == DType::Q6_K) &&
      host.dim(0) >= kInterleaveRows) {
    Tensor out = huge_page_tensor(interleaved_of(t), host.shape());
    interleave_rows_into(host, out);
    return out;
  }
  return host;
}

void CpuBackend::embed(const Tensor& table, std::span<const int32_t> ids, float scale, Tensor& out) {
  ops::check_embed(table, ids, out);
  const int64_t d = table.dim(1);
  pool_.parallel_for(int64_t(ids.size()), 8, [&](int64_t b, int64_t e) {
    for (int64_t i = b; i < e; ++i) {
      float* o = out.data<float>() + i * d;
      row_to_f32(table, int64_t(ids[size_t(i)]) * d, d, o);
      cpu::scale_f32(o, scale, o, size_t(d));
    }
  });
}

void CpuBackend::linear(const Tensor& x, const Tensor& w, const Tensor* bias, Tensor& y) {
  ops::check_linear(x, w, bias, y);
  const int64_t n = x.dim(0), k = x.dim(1), m = w.dim(0);
  float* yp = y.data<float>();
  auto add_bias = [&] {
    if (!bias) return;
    const std::vector<float> b = as_f32(*bias);
    pool_.parallel_for(n, 16, [&](int64_t r0, int64_t r1) {
      for (int64_t r = r0; r < r1; ++r) cpu::add_f32(yp + r * m, b.data(), yp + r * m, size_t(m));
    });
  };
  if (is_block_format(w.dtype())) {
    // NF4 (bitsandbytes levels, not integers) goes through dequantized rows and f32 products.
    if (w.dtype() != DType::NF4 && (cpu::quant_kernel_supported(w.dtype()) || is_interleaved(w.dtype()))) {
      cpu::quant_linear(pool_, x, w, y, quant_kernels_);
    } else {
      linear_dequantized(x, w, y);
    }
    add_bias();
    return;
  }
  const float* xp = x.data<const float>();
  auto tile = [&](int64_t i0, int64_t ni, int64_t j0, int64_t nj) {
    float* yt = yp + i0 * m + j0;
    const float* xt = xp + i0 * k;
    switch (w.dtype()) {
      case DType::BF16:
        cpu::dot_tile_bf16(xt, size_t(k), size_t(ni), w.data<const uint16_t>() + j0 * k, size_t(k), size_t(nj),
                           size_t(k), yt, size_t(m));
        break;
      case DType::F16:
        cpu::dot_tile_f16(xt, size_t(k), size_t(ni), w.data<const uint16_t>() + j0 * k, size_t(k), size_t(nj),
                          size_t(k), yt, size_t(m));
        break;
      case DType::F32:
        cpu::dot_tile_f32(xt, size_t(k), size_t(ni), w.data<const float>() + j0 * k, size_t(k), size_t(nj), size_t(k),
                          yt, size_t(m));
        break;
      default:
        fail("cpu linear: weights of dtype {} are not supported", dtype_name(w.dtype()));
    }
  };
  // Threads split the output features; each walks all input rows over its block of weight
  // rows, so a weight block is read from memory once and reused from cache for every row.
  constexpr int64_t kRowsPerBlock = 64;
  const int64_t blocks = (m + kRowsPerBlock - 1) / kRowsPerBlock;
  pool_.parallel_for(blocks, 1, [&](int64_t b0, int64_t b1) {
    for (int64_t b = b0; b < b1; ++b) {
      const int64_t j_begin = b * kRowsPerBlock, j_end = std::min(m, j_begin + kRowsPerBlock);
      for (int64_t i = 0; i < n; i += 4) {
        const int64_t ni = std::min<int64_t>(4, n - i);
        for (int64_t j = j_begin; j < j_end; j += 4) tile(i, ni, j, std::min<int64_t>(4, j_end - j));
      }
    }
  });
  add_bias();
}

bool CpuBackend::quant_fusable(std::initializer_list<const Tensor*> weights) const {
  const DType t = (*weights.begin())->dtype();
  if (t == DType::NF4 || !is_block_format(t) || !cpu::quant_linear_supported(t)) return false;
  for (const Tensor* w : weights)
    if (w->dtype() != t) return false;
  return true;
}

void CpuBackend::linear3(const Tensor& x, const Tensor& w0, const Tensor& w1, const Tensor& w2, Tensor& y0,
                         Tensor& y1, Tensor& y2) {
  if (!quant_fusable({&w0, &w1, &w2})) return Backend::linear3(x, w0, w1, w2, y0, y1, y2);
  ops::check_linear(x, w0, nullptr, y0);
  ops::check_linear(x, w1, nullptr, y1);
  ops::check_linear(x, w2, nullptr, y2);
  const cpu::QuantProduct products[] = {{&w0, &y0}, {&w1, &y1}, {&w2, &y2}};
  cpu::quant_linear(pool_, x, products, quant_kernels_);
}

void CpuBackend::gate_up(const Tensor& x, const Tensor& w_gate, const Tensor& w_up, Tensor& out) {
  if (!quant_fusable({&w_gate, &w_up})) return Backend::gate_up(x, w_gate, w_up, out);
  Tensor up = empty(DType::F32, out.shape());
  ops::check_linear(x, w_gate, nullptr, out);
  ops::check_linear(x, w_up, nullptr, up);
  const cpu::QuantProduct products[] = {{&w_gate, &out}, {&w_up, &up}};
  cpu::quant_linear(pool_, x, products, quant_kernels_);
  gelu_tanh_mul(out, up, out);
}

void CpuBackend::linear_dequantized(const Tensor& x, const Tensor& w, Tensor& y) {
  if (!row_dtype_supported(w.dtype()))
    fail("cpu linear: weights of dtype {} are not supported", dtype_name(w.dtype()));
  const int64_t n = x.dim(0), k = x.dim(1), m = w.dim(0);
  // Enough rows per task that short rows (a 32-wide LM head) still make a long range.
  const int64_t kRowsPerTask = std::max<int64_t>(16, 4096 / std::max<int64_t>(k, 1));
  pool_.parallel_tasks((m + kRowsPerTask - 1) / kRowsPerTask, [&](int64_t task) {
    const int64_t j0 = task * kRowsPerTask, nj = std::min(kRowsPerTask, m - j0);
    std::vector<float> rows(size_t(nj * k));
    if (w.dtype() == DType::NF4) {  // flattened blocks: the task's rows are one range
      nf4::dequantize(w.data<const uint8_t>(), nf4::state_of(w), j0 * k, nj * k, rows.data());
    } else {
      for (int64_t j = 0; j < nj; ++j) dequantize_row(w, j0 + j, rows.data() + j * k);
    }
    for (int64_t i = 0; i < n; i += 4)
      for (int64_t j = 0; j < nj; j += 4)
        cpu::dot_tile_f32(x.data<const float>() + i * k, size_t(k), size_t(std::min<int64_t>(4, n - i)),
                          rows.data() + j * k, size_t(k), size_t(std::min<int64_t>(4, nj - j)), size_t(k),
                          y.data<float>() + i * m + j0 + j, size_t(m));
  });
}

void CpuBackend::rms_norm(const Tensor& x, const Tensor& w, float eps, Tensor& y) {
  ops::check_norm("rms_norm", x, w, y);
  const int64_t n = x.dim(0), d = x.dim(1);
  // Converted per call (a decode step makes ~100 of these; a buffer per thread, no allocation).
  // (The lambda below runs on the workers too: it must see this thread's buffer through a
  // pointer, not by naming the thread_local.)
  thread_local std::vector<float> buffer;
  buffer.resize(size_t(d));
  float* const w1 = buffer.data();
  row_to_f32(w, 0, d, w1);
  for (int64_t j = 0; j < d; ++j) w1[j] += 1.0f;  // ref: Gemma3RMSNorm multiplies by (1 + weight) in f32
  pool_.parallel_for(n, 32, [&](int64_t r0, int64_t r1) {
    for (int64_t r = r0; r < r1; ++r) {
      const float* xr = x.data<const float>() + r * d;
      const float ms = cpu::sum_squares_f32(xr, size_t(d)) / float(d);
      const float inv = 1.0f / std::sqrt(ms + eps);
      cpu::scale_mul_f32(xr, inv, w1, y.data<float>() + r * d, size_t(d));
    }
  });
}

void CpuBackend::layer_norm(const Tensor& x, const Tensor& w, const Tensor& b, float eps, Tensor& y) {
  ops::check_norm("layer_norm", x, w, y);
  if (b.numel() != x.dim(1)) fail("layer_norm: bias {} does not match width {}", shape_str(b.shape()), x.dim(1));
  const int64_t n = x.dim(0), d = x.dim(1);
  const std::vector<float> wf = as_f32(w), bf = as_f32(b);
  pool_.parallel_for(n, 16, [&](int64_t r0, int64_t r1) {
    for (int64_t r = r0; r < r1; ++r) {
      const float* xr = x.data<const float>() + r * d;
      float* yr = y.data<float>() + r * d;
      float mean = 0;
      for (int64_t j = 0; j < d; ++j) mean += xr[j];
      mean /= float(d);
      float var = 0;
      for (int64_t j = 0; j < d; ++j) var += (xr[j] - mean) * (xr[j] - mean);
      const float inv = 1.0f / std::sqrt(var / float(d) + eps);
      for (int64_t j = 0; j < d; ++j) yr[j] = (xr[j] - mean) * inv * wf[size_t(j)] + bf[size_t(j)];
    }
  });
}

namespace {

// cos and sin of position x inv_freq for each row and frequency. Every layer of a step rotates
// the same positions with one of two parameter sets (sliding / global), q then k: the tables
// are computed once per set and step, not 2 x 26 times (at decode, the sines and cosines were
// most of the time between the matrix products).
struct RopeTable {
  int64_t head_dim = 0;
  double theta = 0, factor = 0;
  std::vector<int32_t> positions;
  std::vector<float> cs, sn;  // [n, head_dim / 2]

  bool matches(std::span<const int32_t> p, int64_t hd, double th, double f) const {
    return hd == head_dim && th == theta && f == factor && std::equal(p.begin(), p.end(), positions.begin(), positions.end());
  }
};

const RopeTable& rope_table(std::span<const int32_t> positions, int64_t head_dim, double theta, double factor) {
  thread_local RopeTable tables[2];
  thread_local int last = 0;
  for (int i : {last, 1 - last})
    if (tables[i].matches(positions, head_dim, theta, factor)) return tables[last = i];
  RopeTable& t = tables[last = 1 - last];  // replaces the one used less recently
  const int64_t half = head_dim / 2, n = int64_t(positions.size());
  t.head_dim = head_dim;
  t.theta = theta;
  t.factor = factor;
  t.positions.assign(positions.begin(), positions.end());
  t.cs.resize(size_t(n * half));
  t.sn.resize(size_t(n * half));
  std::vector<float> inv_freq(static_cast<size_t>(half));
  for (int64_t p = 0; p < half; ++p) inv_freq[size_t(p)] = ops::rope_inv_freq(p, head_dim, theta, factor);
  for (int64_t r = 0; r < n; ++r)
    for (int64_t p = 0; p < half; ++p) {
      const float angle = float(positions[size_t(r)]) * inv_freq[size_t(p)];  // f32 product, as HF
      t.cs[size_t(r * half + p)] = std::cos(angle);
      t.sn[size_t(r * half + p)] = std::sin(angle);
    }
  return t;
}

}  // namespace

void CpuBackend::rope(Tensor& x, std::span<const int32_t> positions, int64_t head_dim, double theta, double factor) {
  ops::check_rope(x, positions, head_dim);
  const int64_t n = x.dim(0), width = x.dim(1), heads = width / head_dim, half = head_dim / 2;
  const RopeTable& table = rope_table(positions, head_dim, theta, factor);
  pool_.parallel_for(n, 4, [&](int64_t r0, int64_t r1) {
    for (int64_t r = r0; r < r1; ++r) {
      const float* cs = table.cs.data() + r * half;
      const float* sn = table.sn.data() + r * half;
      for (int64_t h = 0; h < heads; ++h) {
        float* v = x.data<float>() + r * width + h * head_dim;
        for (int64_t p = 0; p < half; ++p) {
          const float a = v[p], b = v[p + half];
          v[p] = a * cs[p] - b * sn[p];
          v[p + half] = b * cs[p] + a * sn[p];
        }
      }
    }
  });
}

void CpuBackend::gelu_tanh_mul(const Tensor& gate, const Tensor& up, Tensor& out) {
  ops::check_same_shape("gelu_tanh_mul", gate, up);
  ops::check_same_shape("gelu_tanh_mul", gate, out);
  const int64_t n = gate.numel();
  pool_.parallel_for(n, 4096, [&](int64_t b, int64_t e) {
    cpu::gelu_tanh_mul_f32(gate.data<const float>() + b, up.data<const float>() + b, out.data<float>() + b,
                           size_t(e - b));
  });
}

void CpuBackend::gelu_tanh(Tensor& x) {
  ops::check_f32_matrix("gelu_tanh", "x", x);
  pool_.parallel_for(x.numel(), 4096, [&](int64_t b, int64_t e) {
    cpu::gelu_tanh_mul_f32(x.data<const float>() + b, nullptr, x.data<float>() + b, size_t(e - b));
  });
}

void CpuBackend::add(const Tensor& a, const Tensor& b, Tensor& out) {
  ops::check_same_shape("add", a, b);
  ops::check_same_shape("add", a, out);
  pool_.parallel_for(a.numel(), 8192, [&](int64_t s, int64_t e) {
    cpu::add_f32(a.data<const float>() + s, b.data<const float>() + s, out.data<float>() + s, size_t(e - s));
  });
}

void CpuBackend::attention(const Tensor& q, const Tensor& k, const Tensor& v, const AttentionMask& mask,
                           const AttentionShape& s, Tensor& out) {
  ops::check_attention(q, k, v, mask, s, out);
  const int64_t nq = q.dim(0), nk = k.dim(0), hd = s.head_dim, group = s.n_heads / s.n_kv_heads;
  const int64_t qw = q.dim(1), kw = k.dim(1);
  // One task per (query, head); each scores the visible keys, softmaxes, and sums values.
  pool_.parallel_for(nq * s.n_heads, 1, [&](int64_t t0, int64_t t1) {
    std::vector<float> scores;
    std::vector<int32_t> visible;
    scores.reserve(size_t(nk));
    visible.reserve(size_t(nk));
    for (int64_t t = t0; t < t1; ++t) {
      const int64_t i = t / s.n_heads, h = t % s.n_heads, kvh = h / group;
      const float* qi = q.data<const float>() + i * qw + h * hd;
      float* oi = out.data<float>() + i * qw + h * hd;
      visible.clear();
      scores.clear();
      float mx = -std::numeric_limits<float>::infinity();
      for (int64_t j = 0; j < nk; ++j) {
        if (!ops::attention_visible(mask, size_t(i), size_t(j))) continue;
        const float sc = cpu::dot_f32(qi, k.data<const float>() + j * kw + kvh * hd, size_t(hd)) * s.scale;
        visible.push_back(int32_t(j));
        scores.push_back(sc);
        mx = std::max(mx, sc);
      }
      std::memset(oi, 0, size_t(hd) * 4);
      if (visible.empty()) continue;
      const float sum = cpu::exp_sub_sum_f32(scores.data(), mx, scores.size());
      const float inv = 1.0f / sum;
      for (size_t u = 0; u < visible.size(); ++u)
        cpu::axpy_f32(scores[u] * inv, v.data<const float>() + int64_t(visible[u]) * kw + kvh * hd, oi, size_t(hd));
    }
  });
}

void CpuBackend::scatter_rows(const Tensor& src, std::span<const int32_t> rows, Tensor& dst) {
  ops::check_rows("scatter_rows", src, rows, dst);
  const int64_t bytes = dtype_bytes(src.dtype(), src.dim(1));
  for (size_t i = 0; i < rows.size(); ++i)
    std::memcpy(static_cast<char*>(dst.raw()) + rows[i] * bytes,
                static_cast<const char*>(src.raw()) + int64_t(i) * bytes, size_t(bytes));
}

void CpuBackend::gather_rows(const Tensor& src, std::span<const int32_t> rows, Tensor& dst) {
  ops::check_rows("gather_rows", dst, rows, src);
  const int64_t bytes = dtype_bytes(src.dtype(), src.dim(1));
  for (size_t i = 0; i < rows.size(); ++i)
    std::memcpy(static_cast<char*>(dst.raw()) + int64_t(i) * bytes,
                static_cast<const char*>(src.raw()) + rows[i] * bytes, size_t(bytes));
}

void CpuBackend::patchify(const Tensor& image, int64_t patch, Tensor& out) {
  ReferenceBackend().patchify(image, patch, out);  // a memory shuffle: nothing to vectorize
}

void CpuBackend::avg_pool_grid(const Tensor& x, int64_t side, int64_t kernel, Tensor& out) {
  ReferenceBackend().avg_pool_grid(x, side, kernel, out);  // small: tokens x channels
}

}  // namespace unicorn
