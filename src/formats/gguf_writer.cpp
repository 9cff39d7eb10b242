#include "formats/gguf_writer.h"

#include <cerrno>
#include <cstdio>
#include <cstring>
#include <algorithm>
#include <fstream>

#include "core/error.h"

namespace unicorn {

namespace {

template <class T>
void put(std::string& out, T v) {
  char b[sizeof(T)];
  std::memcpy(b, &v, sizeof(T));  // little-endian host, as GGUF
  out.append(b, sizeof(T));
}

void put_string(std::string& out, std::string_view s) {
  put<uint64_t>(out, s.size());
  out.append(s);
}


}  // namespace

// --- arrays --------------------------------------------------------------------------------

#define UNICORN_GGUF_ARRAY_OF(T, TAG)                      \
  GgufWriter::Array GgufWriter::Array::of(std::span<const T> v) { \
    Array a;                                                \
    a.elem = GgufType::TAG;                                 \
    a.count = v.size();                                     \
    for (const T& x : v) put<T>(a.payload, x);              \
    return a;                                               \
  }
UNICORN_GGUF_ARRAY_OF(uint8_t, U8)
UNICORN_GGUF_ARRAY_OF(int8_t, I8)
UNICORN_GGUF_ARRAY_OF(uint16_t, U16)
UNICORN_GGUF_ARRAY_OF(int16_t, I16)
UNICORN_GGUF_ARRAY_OF(uint32_t, U32)
UNICORN_GGUF_ARRAY_OF(int32_t, I32)
UNICORN_GGUF_ARRAY_OF(uint64_t, U64)
UNICORN_GGUF_ARRAY_OF(int64_t, I64)
UNICORN_GGUF_ARRAY_OF(float, F32)
UNICORN_GGUF_ARRAY_OF(double, F64)
#undef UNICORN_GGUF_ARRAY_OF

GgufWriter::Array GgufWriter::Array::of_bools(const std::vector<bool>& v) {
  Array a;
  a.elem = GgufType::BOOL;
  a.count = v.size();
  for (bool x : v) a.payload.push_back(char(x ? 1 : 0));
  return a;
}

GgufWriter::Array GgufWriter::Array::of(std::span<const std::string> v) {
  Array a;
  a.elem = GgufType::STRING;
  a.count = v.size();
  for (const std::string& s : v) put_string(a.payload, s);
  return a;
}

GgufWriter::Array GgufWriter::Array::of(std::span<const std::string_view> v) {
  Array a;
  a.elem = GgufType::STRING;
  a.count = v.size();
  for (std::string_view s : v) put_string(a.payload, s);
  return a;
}

GgufWriter::Array GgufWriter::Array::of(std::span<const Array> v) {
  Array a;
  a.elem = GgufType::ARRAY;
  a.count = v.size();
  for (const Array& x : v) {
    put<uint32_t>(a.payload, uint32_t(x.elem));
    put<uint64_t>(a.payload, x.count);
    a.payload += x.payload;
  }
  return a;
}

// A value read by GgufParser, encoded again (an array's elements carry no type tag).
void GgufWriter::encode_array_body(std::string& out, const GgufValue& v) {
  put<uint32_t>(out, uint32_t(v.elem_type()));
  put<uint64_t>(out, v.size());
  if (v.elem_type() == GgufType::STRING) {
    for (std::string_view s : v.strings()) put_string(out, s);
  } else if (v.elem_type() == GgufType::ARRAY) {
    for (const GgufValue& item : v.arrays()) encode_array_body(out, item);
  } else if (v.size() > 0) {
    // Scalar elements: the bytes as read (exact, NaN payloads included).
    out.append(reinterpret_cast<const char*>(v.raw_), size_t(v.size() * gguf_scalar_size(v.elem_type())));
  }
}

// --- metadata ------------------------------------------------------------------------------

void GgufWriter::set_raw(const std::string& key, GgufType type, std::string payload) {
  if (key.empty()) fail("GGUF metadata keys must not be empty");
  if (key == "general.alignment") {
    // However it is set, the data offsets must follow it (readers require a power-of-two u32).
    uint32_t a = 0;
    if (type != GgufType::U32 || payload.size() != 4 || (std::memcpy(&a, payload.data(), 4), a == 0) || (a & (a - 1)))
      fail("general.alignment must be a u32 power of two");
    alignment_ = a;
  }
  for (auto& [k, v] : kv_) {
    if (k == key) {
      v = {type, std::move(payload)};
      return;
    }
  }
  kv_.push_back({key, {type, std::move(payload)}});
}

#define UNICORN_GGUF_SET(NAME, T, TAG)                              \
  void GgufWriter::NAME(const std::string& key, T v) {              \
    std::string p;                                                  \
    put<T>(p, v);                                                   \
    set_raw(key, GgufType::TAG, std::move(p));                      \
  }
UNICORN_GGUF_SET(set_u8, uint8_t, U8)
UNICORN_GGUF_SET(set_i8, int8_t, I8)
UNICORN_GGUF_SET(set_u16, uint16_t, U16)
UNICORN_GGUF_SET(set_i16, int16_t, I16)
UNICORN_GGUF_SET(set_u32, uint32_t, U32)
UNICORN_GGUF_SET(set_i32, int32_t, I32)
UNICORN_GGUF_SET(set_u64, uint64_t, U64)
UNICORN_GGUF_SET(set_i64, int64_t, I64)
UNICORN_GGUF_SET(set_f32, float, F32)
UNICORN_GGUF_SET(set_f64, double, F64)
#undef UNICORN_GGUF_SET

void GgufWriter::set_bool(const std::string& key, bool v) { set_raw(key, GgufType::BOOL, std::string(1, char(v ? 1 : 0))); }

void GgufWriter::set_string(const std::string& key, std::string_view v) {
  std::string p;
  put_string(p, v);
  set_raw(key, GgufType::STRING, std::move(p));
}

void GgufWriter::set_array(const std::string& key, const Array& v) {
  std::string p;
  put<uint32_t>(p, uint32_t(v.elem));
  put<uint64_t>(p, v.count);
  p += v.payload;
  set_raw(key, GgufType::ARRAY, std::move(p));
}

void GgufWriter::set(const std::string& key, const GgufValue& v) {
  std::string p;
  if (v.type() == GgufType::STRING) {
    put_string(p, *v.as_string());
  } else if (v.type() == GgufType::ARRAY) {
    encode_array_body(p, v);
  } else {
    char b[8];
    std::memcpy(b, &v.bits_, 8);  // little-endian: the scalar's bytes come first
    p.append(b, gguf_scalar_size(v.type()));
  }
  set_raw(key, v.type(), std::move(p));
}

void GgufWriter::set_alignment(uint32_t alignment) {
  if (alignment == 0 || (alignment & (alignment - 1)) != 0)
    fail("GGUF alignment must be a power of two, got {}", alignment);
  set_u32("general.alignment", alignment);
}

// --- tensors -------------------------------------------------------------------------------

void GgufWriter::check_new(const std::string& name, DType dtype, const Shape& shape) const {
  if (name.empty()) fail("GGUF tensor names must not be empty");
  if (!ggml_type_of(dtype)) fail("tensor '{}': dtype {} cannot be stored in GGUF", name, dtype_name(dtype));
  if (shape.empty() || shape.size() > 4)
    fail("tensor '{}': GGUF holds 1 to 4 dimensions, got shape {}", name, shape_str(shape));
  for (int64_t d : shape)
    if (d <= 0) fail("tensor '{}': GGUF dimensions must be positive, got shape {}", name, shape_str(shape));
  const int64_t block = dtype_info(dtype).block_elems;
  if (shape.back() % block != 0)
    fail("tensor '{}': rows of {} values are not a whole number of {} blocks ({} values)", name, shape.back(),
         dtype_name(dtype), block);
  for (const Entry& e : entries_)
    if (e.name == name) fail("tensor '{}' added twice to a GGUF file", name);
}

void GgufWriter::add(const std::string& name, const Tensor& tensor) {
  check_new(name, tensor.dtype(), tensor.shape());
  entries_.push_back({name, tensor.dtype(), *ggml_type_of(tensor.dtype()), tensor.shape(), tensor, nullptr,
                      uint64_t(tensor.nbytes())});
}

void GgufWriter::add_generated(const std::string& name, DType dtype, Shape shape, Fill fill) {
  check_new(name, dtype, shape);
  const uint64_t bytes = uint64_t(dtype_bytes(dtype, shape_numel(shape)));
  entries_.push_back({name, dtype, *ggml_type_of(dtype), std::move(shape), Tensor(), std::move(fill), bytes});
}

std::vector<uint64_t> GgufWriter::offsets() const {
  std::vector<uint64_t> out;
  uint64_t at = 0;
  for (const Entry& e : entries_) {
    out.push_back(at);
    at += e.bytes + (alignment_ - e.bytes % alignment_) % alignment_;
  }
  return out;
}

std::string GgufWriter::header() const {
  std::string out = "GGUF";
  put<uint32_t>(out, 3);
  put<uint64_t>(out, entries_.size());
  put<uint64_t>(out, kv_.size());
  for (const auto& [key, value] : kv_) {
    put_string(out, key);
    put<uint32_t>(out, uint32_t(value.first));
    out += value.second;
  }
  const std::vector<uint64_t> offs = offsets();
  for (size_t i = 0; i < entries_.size(); ++i) {
    const Entry& e = entries_[i];
    put_string(out, e.name);
    put<uint32_t>(out, uint32_t(e.shape.size()));
    for (auto d = e.shape.rbegin(); d != e.shape.rend(); ++d) put<uint64_t>(out, uint64_t(*d));  // ne: innermost first
    put<uint32_t>(out, e.ggml_type);
    put<uint64_t>(out, offs[i]);
  }
  out.append((alignment_ - out.size() % alignment_) % alignment_, '\0');
  return out;
}

// Calls sink(bytes, n) for the header and each tensor's data and padding, in file order.
template <class Sink>
void GgufWriter::emit(Sink&& sink) const {
  const std::string h = header();
  sink(h.data(), h.size());
  std::vector<char> buffer;
  static const char kZeros[64] = {};
  for (const Entry& e : entries_) {
    const char* bytes = static_cast<const char*>(e.data.raw());
    if (e.fill) {
      buffer.assign(size_t(e.bytes), 0);
      e.fill(buffer.data());
      bytes = buffer.data();
    }
    sink(bytes, size_t(e.bytes));
    for (uint64_t pad = (alignment_ - e.bytes % alignment_) % alignment_; pad > 0;) {
      const size_t n = size_t(std::min<uint64_t>(pad, sizeof(kZeros)));
      sink(kZeros, n);
      pad -= n;
    }
  }
}

std::string GgufWriter::serialize() const {
  std::string out;
  emit([&](const char* p, size_t n) { out.append(p, n); });
  return out;
}

void GgufWriter::write(const std::string& path) const {
  const std::string tmp = path + ".tmp";
  {
    std::ofstream out(tmp, std::ios::binary | std::ios::trunc);
    if (!out) fail("{}: cannot create: {}", tmp, std::strerror(errno));
    emit([&](const char* p, size_t n) { out.write(p, std::streamsize(n)); });
    out.flush();
    if (!out) fail("{}: write error: {}", tmp, std::strerror(errno));
  }
  if (std::rename(tmp.c_str(), path.c_str()) != 0) {
    const int e = errno;
    std::remove(tmp.c_str());
    fail("{}: cannot rename from {}: {}", path, tmp, std::strerror(e));
  }
}

}  // namespace unicorn
