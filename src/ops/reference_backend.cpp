#include "ops/reference_backend.h"

#include <cmath>
#include <cstring>
#include <limits>
#include <vector>

#include "core/rows.h"
#include "ops/checks.h"

namespace unicorn {

namespace ops {

float gelu_tanh_scalar(float x) {
  // ref: torch gelu(approximate="tanh"): 0.5 x (1 + tanh(sqrt(2/pi) (x + 0.044715 x^3)))
  const float k = 0.7978845608028654f;
  return 0.5f * x * (1.0f + std::tanh(k * (x + 0.044715f * x * x * x)));
}

float rope_inv_freq(int64_t i, int64_t head_dim, double theta, double factor) {
  // ref: modeling_rope_utils _compute_default_rope_parameters: float32 arange / dim, then
  // base ** that in float32; linear scaling divides inv_freq by the factor.
  const float exponent = float(2 * i) / float(head_dim);
  const float inv = 1.0f / std::pow(float(theta), exponent);
  return float(inv / float(factor));
}

}  // namespace ops

void ReferenceBackend::embed(const Tensor& table, std::span<const int32_t> ids, float scale, Tensor& out) {
  ops::check_embed(table, ids, out);
  const int64_t d = table.dim(1);
  for (size_t i = 0; i < ids.size(); ++i) {
    float* o = out.data<float>() + int64_t(i) * d;
    dequantize_row(table, ids[i], o);
    for (int64_t j = 0; j < d; ++j) o[j] *= scale;
  }
}

void ReferenceBackend::linear(const Tensor& x, const Tensor& w, const Tensor* bias, Tensor& y) {
  ops::check_linear(x, w, bias, y);
  const int64_t n = x.dim(0), k = x.dim(1), m = w.dim(0);
  std::vector<float> row(static_cast<size_t>(k)), b;
  if (bias) b = bias->to_f32();
  for (int64_t o = 0; o < m; ++o) {
    dequantize_row(w, o, row.data());
    for (int64_t i = 0; i < n; ++i) {
      const float* xi = x.data<float>() + i * k;
      double acc = 0;
      for (int64_t j = 0; j < k; ++j) acc += double(xi[j]) * row[size_t(j)];
      y.data<float>()[i * m + o] = float(acc + (bias ? b[size_t(o)] : 0.0));
    }
  }
}

void ReferenceBackend::rms_norm(const Tensor& x, const Tensor& w, float eps, Tensor& y) {
  ops::check_norm("rms_norm", x, w, y);
  const int64_t n = x.dim(0), d = x.dim(1);
  const std::vector<float> wf = w.to_f32();
  for (int64_t i = 0; i < n; ++i) {
    const float* xi = x.data<float>() + i * d;
    double ss = 0;
    for (int64_t j = 0; j < d; ++j) ss += double(xi[j]) * xi[j];
    const double inv = 1.0 / std::sqrt(ss / double(d) + eps);
    float* yi = y.data<float>() + i * d;
    for (int64_t j = 0; j < d; ++j) yi[j] = float(xi[j] * inv * (1.0 + wf[size_t(j)]));
  }
}

void ReferenceBackend::layer_norm(const Tensor& x, const Tensor& w, const Tensor& b, float eps, Tensor& y) {
  ops::check_norm("layer_norm", x, w, y);
  if (b.numel() != x.dim(1)) fail("layer_norm: bias {} does not match width {}", shape_str(b.shape()), x.dim(1));
  const int64_t n = x.dim(0), d = x.dim(1);
  const std::vector<float> wf = w.to_f32(), bf = b.to_f32();
  for (int64_t i = 0; i < n; ++i) {
    const float* xi = x.data<float>() + i * d;
    double mean = 0, var = 0;
    for (int64_t j = 0; j < d; ++j) mean += xi[j];
    mean /= double(d);
    for (int64_t j = 0; j < d; ++j) var += (xi[j] - mean) * (xi[j] - mean);
    var /= double(d);
    const double inv = 1.0 / std::sqrt(var + eps);
    float* yi = y.data<float>() + i * d;
    for (int64_t j = 0; j < d; ++j) yi[j] = float((xi[j] - mean) * inv * wf[size_t(j)] + bf[size_t(j)]);
  }
}

void ReferenceBackend::rope(Tensor& x, std::span<const int32_t> positions, int64_t head_dim, double theta,
                            double factor) {
  ops::check_rope(x, positions, head_dim);
  const int64_t n = x.dim(0), heads = x.dim(1) / head_dim, half = head_dim / 2;
  for (int64_t i = 0; i < n; ++i) {
    for (int64_t h = 0; h < heads; ++h) {
      float* v = x.data<float>() + i * x.dim(1) + h * head_dim;
      for (int64_t p = 0; p < half; ++p) {
        const float angle = float(positions[size_t(i)]) * ops::rope_inv_freq(p, head_dim, theta, factor);
        const float c = std::cos(angle), s = std::sin(angle);
        const float a = v[p], b = v[p + half];
        v[p] = a * c - b * s;
        v[p + half] = b * c + a * s;
      }
    }
  }
}

void ReferenceBackend::gelu_tanh_mul(const Tensor& gate, const Tensor& up, Tensor& out) {
  ops::check_same_shape("gelu_tanh_mul", gate, up);
  ops::check_same_shape("gelu_tanh_mul", gate, out);
  for (int64_t i = 0; i < gate.numel(); ++i)
    out.data<float>()[i] = ops::gelu_tanh_scalar(gate.data<float>()[i]) * up.data<float>()[i];
}

void ReferenceBackend::gelu_tanh(Tensor& x) {
  ops::check_f32_matrix("gelu_tanh", "x", x);
  for (int64_t i = 0; i < x.numel(); ++i) x.data<float>()[i] = ops::gelu_tanh_scalar(x.data<float>()[i]);
}

void ReferenceBackend::add(const Tensor& a, const Tensor& b, Tensor& out) {
  ops::check_same_shape("add", a, b);
  ops::check_same_shape("add", a, out);
  for (int64_t i = 0; i < a.numel(); ++i) out.data<float>()[i] = a.data<float>()[i] + b.data<float>()[i];
}

void ReferenceBackend::attention(const Tensor& q, const Tensor& k, const Tensor& v, const AttentionMask& mask,
                                 const AttentionShape& s, Tensor& out) {
  ops::check_attention(q, k, v, mask, s, out);
  const int64_t nq = q.dim(0), nk = k.dim(0), hd = s.head_dim, group = s.n_heads / s.n_kv_heads;
  std::vector<double> scores(static_cast<size_t>(nk));
  for (int64_t i = 0; i < nq; ++i) {
    for (int64_t h = 0; h < s.n_heads; ++h) {
      const float* qi = q.data<float>() + i * q.dim(1) + h * hd;
      const int64_t kvh = h / group;
      double mx = -std::numeric_limits<double>::infinity();
      for (int64_t j = 0; j < nk; ++j) {
        if (!ops::attention_visible(mask, size_t(i), size_t(j))) {
          scores[size_t(j)] = -std::numeric_limits<double>::infinity();
          continue;
        }
        const float* kj = k.data<float>() + j * k.dim(1) + kvh * hd;
        double dot = 0;
        for (int64_t t = 0; t < hd; ++t) dot += double(qi[t]) * kj[t];
        scores[size_t(j)] = dot * s.scale;
        mx = std::max(mx, scores[size_t(j)]);
      }
      float* oi = out.data<float>() + i * out.dim(1) + h * hd;
      if (mx == -std::numeric_limits<double>::infinity()) {  // nothing visible: zeros
        std::memset(oi, 0, size_t(hd) * 4);
        continue;
      }
      double sum = 0;
      for (int64_t j = 0; j < nk; ++j) {
        scores[size_t(j)] = std::isinf(scores[size_t(j)]) ? 0.0 : std::exp(scores[size_t(j)] - mx);
        sum += scores[size_t(j)];
      }
      for (int64_t t = 0; t < hd; ++t) {
        double acc = 0;
        for (int64_t j = 0; j < nk; ++j) {
          if (scores[size_t(j)] != 0.0) acc += scores[size_t(j)] * v.data<float>()[j * v.dim(1) + kvh * hd + t];
        }
        oi[t] = float(acc / sum);
      }
    }
  }
}

void ReferenceBackend::scatter_rows(const Tensor& src, std::span<const int32_t> rows, Tensor& dst) {
  ops::check_rows("scatter_rows", src, rows, dst);
  const int64_t bytes = dtype_bytes(src.dtype(), src.dim(1));
  for (size_t i = 0; i < rows.size(); ++i)
    std::memcpy(static_cast<char*>(dst.raw()) + rows[i] * bytes, static_cast<const char*>(src.raw()) + int64_t(i) * bytes,
                size_t(bytes));
}

void ReferenceBackend::gather_rows(const Tensor& src, std::span<const int32_t> rows, Tensor& dst) {
  ops::check_rows("gather_rows", dst, rows, src);
  const int64_t bytes = dtype_bytes(src.dtype(), src.dim(1));
  for (size_t i = 0; i < rows.size(); ++i)
    std::memcpy(static_cast<char*>(dst.raw()) + int64_t(i) * bytes, static_cast<const char*>(src.raw()) + rows[i] * bytes,
                size_t(bytes));
}

void ReferenceBackend::patchify(const Tensor& image, int64_t patch, Tensor& out) {
  ops::check_patchify(image, patch, out);
  const int64_t size = image.dim(1), side = size / patch, width = 3 * patch * patch;
  const float* img = image.data<float>();
  for (int64_t py = 0; py < side; ++py)
    for (int64_t px = 0; px < side; ++px) {
      float* o = out.data<float>() + (py * side + px) * width;
      for (int64_t c = 0; c < 3; ++c)
        for (int64_t y = 0; y < patch; ++y)
          for (int64_t x = 0; x < patch; ++x)
            *o++ = img[(c * size + py * patch + y) * size + px * patch + x];
    }
}

void ReferenceBackend::avg_pool_grid(const Tensor& x, int64_t side, int64_t kernel, Tensor& out) {
  ops::check_avg_pool(x, side, kernel, out);
  const int64_t c = x.dim(1), t = side / kernel;
  for (int64_t ty = 0; ty < t; ++ty)
    for (int64_t tx = 0; tx < t; ++tx)
      for (int64_t ch = 0; ch < c; ++ch) {
        double acc = 0;
        for (int64_t y = 0; y < kernel; ++y)
          for (int64_t xx = 0; xx < kernel; ++xx)
            acc += x.data<float>()[((ty * kernel + y) * side + tx * kernel + xx) * c + ch];
        out.data<float>()[(ty * t + tx) * c + ch] = float(acc / double(kernel * kernel));
      }
}

}  // namespace unicorn
