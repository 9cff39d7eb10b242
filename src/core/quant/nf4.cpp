#include "core/quant/nf4.h"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <immintrin.h>

#include "core/error.h"

namespace unicorn::nf4 {

const std::array<float, 16> kLevels = {
    -1.0f,
    -0.6961928009986877f,
    -0.5250730514526367f,
    -0.39491748809814453f,
    -0.28444138169288635f,
    -0.18477343022823334f,
    -0.09105003625154495f,
    0.0f,
    0.07958029955625534f,
    0.16093020141124725f,
    0.24611230194568634f,
    0.33791524171829224f,
    0.44070982933044434f,
    0.5626170039176941f,
    0.7229568362236023f,
    1.0f,
};

int64_t State::bytes() const {
  return int64_t(quant_map.size() * 4 + absmax.size() * 4 + qabsmax.size() + nested_absmax.size() * 4 +
                 nested_code.size() * 4);
}

namespace {

// torch.linspace(start, end, steps) in float32: the first half counts up from start, the
// second half down from end (ref: ATen RangeFactoriesKernel linspace).
std::vector<float> linspace_f32(float start, float end, int64_t steps) {
  std::vector<float> v(static_cast<size_t>(steps));
  if (steps == 1) {
    v[0] = start;
    return v;
  }
  const float step = (end - start) / float(steps - 1);
  const int64_t half = steps / 2;
  for (int64_t i = 0; i < steps; ++i)
    v[size_t(i)] = i < half ? start + step * float(i) : end - step * float(steps - i - 1);
  return v;
}

// ref: bitsandbytes dQuantizeNF4: the nearest level, decided by the midpoints between them.
uint8_t nearest_nf4(float x) {
  uint8_t best = 0;
  float best_d = std::fabs(x - kLevels[0]);
  for (uint8_t i = 1; i < 16; ++i) {
    const float d = std::fabs(x - kLevels[i]);
    if (d < best_d) {
      best_d = d;
      best = i;
    }
  }
  return best;
}

uint8_t nearest_in(const std::vector<float>& sorted_levels, float x) {
  auto it = std::lower_bound(sorted_levels.begin(), sorted_levels.end(), x);
  if (it == sorted_levels.end()) return uint8_t(sorted_levels.size() - 1);
  if (it == sorted_levels.begin()) return 0;
  const size_t hi = size_t(it - sorted_levels.begin());
  return (x - sorted_levels[hi - 1] <= sorted_levels[hi] - x) ? uint8_t(hi - 1) : uint8_t(hi);
}

}  // namespace

std::vector<float> dynamic_map_signed() {
  // ref: bitsandbytes create_dynamic_map(signed=True, max_exponent_bits=7, total_bits=8)
  std::vector<float> data;
  const int max_exponent_bits = 7, non_sign_bits = 7;
  for (int i = 0; i < max_exponent_bits; ++i) {
    const int64_t fraction_items = (int64_t(1) << (i + non_sign_bits - max_exponent_bits)) + 1;
    const std::vector<float> b = linspace_f32(0.1f, 1.0f, fraction_items);
    const float scale = float(std::pow(10.0, -(max_exponent_bits - 1) + i));
    for (size_t k = 0; k + 1 < b.size(); ++k) {
      const float mean = (b[k] + b[k + 1]) / 2.0f;
      data.push_back(scale * mean);
      data.push_back(-scale * mean);
    }
  }
  data.push_back(0.0f);
  data.push_back(1.0f);
  UNICORN_CHECK(data.size() == 256);
  std::sort(data.begin(), data.end());
  return data;
}

Quantized quantize(std::span<const float> values, bool nested, int64_t blocksize) {
  const int64_t n = int64_t(values.size());
  if (n % 2 != 0) fail("NF4 needs an even number of values, got {}", n);
  if (blocksize <= 0 || blocksize % 2) fail("NF4 block size must be positive and even, got {}", blocksize);
  Quantized q;
  State& s = q.state;
  s.blocksize = blocksize;
  s.quant_map.assign(kLevels.begin(), kLevels.end());
  s.nested = nested;
  const int64_t blocks = (n + blocksize - 1) / blocksize;
  std::vector<float> absmax(static_cast<size_t>(blocks));
  q.codes.assign(size_t(n / 2), 0);
  for (int64_t b = 0; b < blocks; ++b) {
    const int64_t begin = b * blocksize, end = std::min(n, begin + blocksize);
    float m = 0.0f;
    for (int64_t i = begin; i < end; ++i) m = std::max(m, std::fabs(values[size_t(i)]));
    absmax[size_t(b)] = m;
    const float inv = m > 0.0f ? 1.0f / m : 0.0f;
    for (int64_t i = begin; i < end; ++i) {
      const uint8_t c = nearest_nf4(values[size_t(i)] * inv);
      uint8_t& byte = q.codes[size_t(i / 2)];
      byte = (i % 2 == 0) ? uint8_t((byte & 0x0f) | (c << 4)) : uint8_t((byte & 0xf0) | c);
    }
  }
  if (!nested) {
    s.absmax = std::move(absmax);
    return q;
  }
  // ref: bitsandbytes quantize_4bit(compress_statistics=True): offset = mean(absmax), then
  // blockwise 8-bit quantization of absmax - offset with the signed dynamic map.
  double mean = 0;
  for (float a : absmax) mean += a;
  s.offset = float(mean / double(blocks));
  s.nested_code = dynamic_map_signed();
  const int64_t nb = (blocks + s.nested_blocksize - 1) / s.nested_blocksize;
  s.nested_absmax.assign(size_t(nb), 0.0f);
  s.qabsmax.assign(size_t(blocks), 0);
  for (int64_t g = 0; g < nb; ++g) {
    const int64_t begin = g * s.nested_blocksize, end = std::min(blocks, begin + s.nested_blocksize);
    float m = 0.0f;
    for (int64_t i = begin; i < end; ++i) m = std::max(m, std::fabs(absmax[size_t(i)] - s.offset));
    s.nested_absmax[size_t(g)] = m;
    const float inv = m > 0.0f ? 1.0f / m : 0.0f;
    for (int64_t i = begin; i < end; ++i) s.qabsmax[size_t(i)] = nearest_in(s.nested_code, (absmax[size_t(i)] - s.offset) * inv);
  }
  return q;
}

Tensor quantize_tensor(const Tensor& weights, bool nested) {
  if (weights.rank() != 2) fail("NF4 quantization expects a matrix, got {}", shape_str(weights.shape()));
  const std::vector<float> v = weights.to_f32();
  Quantized q = quantize(v, nested);
  Tensor t = Tensor::zeros(DType::U8, {int64_t(q.codes.size())});
  std::memcpy(t.raw(), q.codes.data(), q.codes.size());
  q.state.original_dtype = weights.dtype();
  auto state = std::make_shared<State>(std::move(q.state));
  return Tensor::view(DType::NF4, weights.shape(), t.raw(), nullptr).with_keepalive(t).with_aux(std::move(state));
}

const State& state_of(const Tensor& t) {
  const auto* s = dynamic_cast<const State*>(t.aux().get());
  if (t.dtype() != DType::NF4 || !s) fail("internal: tensor of dtype {} has no NF4 state", dtype_name(t.dtype()));
  return *s;
}

namespace {

// 16 levels of 16 codes (8 bytes, high nibble first) times `scale`, with AVX-512: the level
// table fits one register, so one permute looks up 16 values.
__attribute__((target("avx512f,avx512bw"))) void dequantize_block_avx512(const uint8_t* bytes, int64_t n_bytes,
                                                                           const float* levels, float scale,
                                                                           float* out) {
  const __m512 lut = _mm512_loadu_ps(levels);
  const __m512 sc = _mm512_set1_ps(scale);
  const __m128i low_mask = _mm_set1_epi8(0x0f);
  for (int64_t i = 0; i + 8 <= n_bytes; i += 8) {
    const __m128i b = _mm_loadl_epi64(reinterpret_cast<const __m128i*>(bytes + i));
    const __m128i hi = _mm_and_si128(_mm_srli_epi16(b, 4), low_mask);
    const __m128i lo = _mm_and_si128(b, low_mask);
    const __m512i idx = _mm512_cvtepu8_epi32(_mm_unpacklo_epi8(hi, lo));  // hi0, lo0, hi1, lo1, ...
    _mm512_storeu_ps(out + 2 * i, _mm512_mul_ps(_mm512_permutexvar_ps(idx, lut), sc));
  }
}

bool has_avx512bw() {
  static const bool yes = __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512bw");
  return yes;
}

}  // namespace

void dequantize(const uint8_t* codes, const State& s, int64_t start, int64_t count, float* out) {
  // Whole, even-aligned blocks of a multiple of 16 values take the vector path.
  if (has_avx512bw() && s.quant_map.size() == 16 && s.blocksize % 16 == 0) {
    const int64_t end = start + count;
    int64_t e = start;
    // Up to the first block boundary by the scalar path below.
    const int64_t first_boundary = std::min(end, (start + s.blocksize - 1) / s.blocksize * s.blocksize);
    if (first_boundary > e) {
      dequantize_scalar(codes, s, e, first_boundary - e, out);
      out += first_boundary - e;
      e = first_boundary;
    }
    for (; e + s.blocksize <= end; e += s.blocksize, out += s.blocksize)
      dequantize_block_avx512(codes + e / 2, s.blocksize / 2, s.quant_map.data(), s.block_absmax(e / s.blocksize), out);
    if (e < end) dequantize_scalar(codes, s, e, end - e, out);
    return;
  }
  dequantize_scalar(codes, s, start, count, out);
}

void dequantize_scalar(const uint8_t* codes, const State& s, int64_t start, int64_t count, float* out) {
  // Per byte, both levels at once from a 256-entry table; the block scale once per block run.
  float pairs[256][2];
  for (int b = 0; b < 256; ++b) {
    pairs[b][0] = s.quant_map[size_t(b >> 4)];
    pairs[b][1] = s.quant_map[size_t(b & 15)];
  }
  int64_t e = start;
  const int64_t end = start + count;
  while (e < end) {
    const int64_t block = e / s.blocksize;
    const int64_t stop = std::min(end, (block + 1) * s.blocksize);
    const float scale = s.block_absmax(block);
    if (e % 2) {  // a value in a low nibble first
      *out++ = pairs[codes[e / 2]][1] * scale;
      ++e;
    }
    for (; e + 1 < stop; e += 2) {
      const float* p = pairs[codes[e / 2]];
      out[0] = p[0] * scale;
      out[1] = p[1] * scale;
      out += 2;
    }
    if (e < stop) {  // a high nibble left before the block (or the range) ends
      *out++ = pairs[codes[e / 2]][0] * scale;
      ++e;
    }
  }
}

}  // namespace unicorn::nf4
