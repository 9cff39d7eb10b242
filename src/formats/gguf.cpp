#include "formats/gguf.h"

#include <algorithm>
#include <cstring>

#include "core/error.h"
#include "formats/mapped_file.h"

namespace unicorn {

namespace {

constexpr uint64_t kDefaultAlignment = 32;  // ref: ggml gguf.cpp GGUF_DEFAULT_ALIGNMENT
constexpr int kMaxDims = 4;                 // ref: GGML_MAX_DIMS
// Arrays of arrays are legal but nothing real nests deeply; the limit keeps a hostile file
// from exhausting the stack through recursion.
constexpr int kMaxArrayDepth = 8;
// Smallest encodings, used to refuse counts that cannot fit in the bytes that remain:
// a key/value pair (key length, a 1-byte key, the type, a 1-byte value) and a tensor info
// (name length, a 1-byte name, n_dims, one dimension, type, offset).
constexpr uint64_t kMinKvBytes = 8 + 1 + 4 + 1;
constexpr uint64_t kMinTensorInfoBytes = 8 + 1 + 4 + 8 + 4 + 8;

bool valid_type(uint32_t t) { return t <= uint32_t(GgufType::F64); }

template <class T>
T load_le(const uint8_t* p) {
  T v;
  std::memcpy(&v, p, sizeof(T));  // GGUF is little-endian, as are the hosts we build for
  return v;
}

}  // namespace

std::string_view gguf_type_name(GgufType t) {
  switch (t) {
    case GgufType::U8: return "u8";
    case GgufType::I8: return "i8";
    case GgufType::U16: return "u16";
    case GgufType::I16: return "i16";
    case GgufType::U32: return "u32";
    case GgufType::I32: return "i32";
    case GgufType::F32: return "f32";
    case GgufType::BOOL: return "bool";
    case GgufType::STRING: return "string";
    case GgufType::ARRAY: return "array";
    case GgufType::U64: return "u64";
    case GgufType::I64: return "i64";
    case GgufType::F64: return "f64";
  }
  return "?";
}

size_t gguf_scalar_size(GgufType t) {
  switch (t) {
    case GgufType::U8: case GgufType::I8: case GgufType::BOOL: return 1;
    case GgufType::U16: case GgufType::I16: return 2;
    case GgufType::U32: case GgufType::I32: case GgufType::F32: return 4;
    case GgufType::U64: case GgufType::I64: case GgufType::F64: return 8;
    case GgufType::STRING: case GgufType::ARRAY: return 0;
  }
  return 0;
}

// --- GgufValue -----------------------------------------------------------------------------

namespace {

// A scalar of type t from its little-endian bytes, as int64 (integers and bool) or double.
int64_t int_of(GgufType t, uint64_t bits) {
  switch (t) {
    case GgufType::U8: return int64_t(uint8_t(bits));
    case GgufType::I8: return int64_t(int8_t(uint8_t(bits)));
    case GgufType::U16: return int64_t(uint16_t(bits));
    case GgufType::I16: return int64_t(int16_t(uint16_t(bits)));
    case GgufType::U32: return int64_t(uint32_t(bits));
    case GgufType::I32: return int64_t(int32_t(uint32_t(bits)));
    case GgufType::BOOL: return int64_t(bits != 0);
    default: return int64_t(bits);  // U64 (reinterpreted), I64
  }
}

double float_of(GgufType t, uint64_t bits) {
  if (t == GgufType::F32) {
    const uint32_t b = uint32_t(bits);
    float f;
    std::memcpy(&f, &b, 4);
    return f;
  }
  double d;
  std::memcpy(&d, &bits, 8);
  return d;
}

uint64_t bits_at(const uint8_t* raw, GgufType t, uint64_t i) {
  const size_t n = gguf_scalar_size(t);
  uint64_t bits = 0;
  std::memcpy(&bits, raw + i * n, n);  // little-endian host: the low bytes
  return bits;
}

bool is_integer_type(GgufType t) {
  switch (t) {
    case GgufType::U8: case GgufType::I8: case GgufType::U16: case GgufType::I16:
    case GgufType::U32: case GgufType::I32: case GgufType::U64: case GgufType::I64: return true;
    default: return false;
  }
}

std::string quoted(std::string_view s, size_t max_chars = 60) {
  std::string out = "\"";
  for (size_t i = 0; i < s.size() && i < max_chars; ++i) {
    const unsigned char c = static_cast<unsigned char>(s[i]);
    if (c == '"' || c == '\\') {
      out += '\\';
      out += char(c);
    } else if (c < 0x20) {
      out += fmt::format("\\x{:02x}", c);
    } else {
      out += char(c);
    }
  }
  if (s.size() > max_chars) out += "...";
  return out + "\"";
}

std::string scalar_text(GgufType t, uint64_t bits) {
  if (t == GgufType::BOOL) return bits ? "true" : "false";
  if (t == GgufType::F32 || t == GgufType::F64) return fmt::format("{}", float_of(t, bits));
  if (t == GgufType::U64) return fmt::format("{}", bits);
  return fmt::format("{}", int_of(t, bits));
}

}  // namespace

bool GgufValue::is_integer() const { return is_integer_type(type_); }

std::optional<int64_t> GgufValue::as_int() const {
  if (!is_integer_type(type_)) return std::nullopt;
  if (type_ == GgufType::U64 && bits_ > uint64_t(INT64_MAX)) return std::nullopt;
  return int_of(type_, bits_);
}

std::optional<double> GgufValue::as_float() const {
  if (!is_float()) return std::nullopt;
  return float_of(type_, bits_);
}

std::optional<bool> GgufValue::as_bool() const {
  if (type_ != GgufType::BOOL) return std::nullopt;
  return bits_ != 0;
}

std::optional<std::string_view> GgufValue::as_string() const {
  if (type_ != GgufType::STRING) return std::nullopt;
  return str_;
}

int64_t GgufValue::int_at(uint64_t i) const {
  UNICORN_CHECK(type_ == GgufType::ARRAY && is_integer_type(elem_type_) && i < count_);
  return int_of(elem_type_, bits_at(raw_, elem_type_, i));
}

double GgufValue::float_at(uint64_t i) const {
  UNICORN_CHECK(type_ == GgufType::ARRAY && (elem_type_ == GgufType::F32 || elem_type_ == GgufType::F64) && i < count_);
  return float_of(elem_type_, bits_at(raw_, elem_type_, i));
}

bool GgufValue::bool_at(uint64_t i) const {
  UNICORN_CHECK(type_ == GgufType::ARRAY && elem_type_ == GgufType::BOOL && i < count_);
  return raw_[i] != 0;
}

std::string GgufValue::to_string(size_t max_items) const {
  if (type_ == GgufType::STRING) return quoted(str_);
  if (type_ != GgufType::ARRAY) return scalar_text(type_, bits_);
  std::string out = "[";
  const uint64_t shown = std::min<uint64_t>(count_, max_items);
  for (uint64_t i = 0; i < shown; ++i) {
    if (i) out += ", ";
    if (elem_type_ == GgufType::STRING) {
      out += quoted(strings_[i], 24);
    } else if (elem_type_ == GgufType::ARRAY) {
      out += items_[i].to_string(max_items);
    } else {
      out += scalar_text(elem_type_, bits_at(raw_, elem_type_, i));
    }
  }
  if (count_ > shown) out += fmt::format(", ... ({} {} values)", count_, gguf_type_name(elem_type_));
  return out + "]";
}

// --- parsing -------------------------------------------------------------------------------

// Reads the header, metadata and tensor infos through a bounds-checked cursor.
class GgufParser {
 public:
  explicit GgufParser(GgufFile& f) : f_(f) {}

  void parse() {
    header();
    for (uint64_t i = 0; i < n_kv_; ++i) key_value(i);
    alignment();
    for (uint64_t i = 0; i < n_tensors_; ++i) tensor_info(i);
    data_section();
  }

 private:
  const std::string& name() const { return f_.name_; }
  uint64_t remaining() const { return f_.size_ - pos_; }

  // Fails unless n more bytes exist; `what` says what was being read.
  void need(uint64_t n, const std::string& what) const {
    if (n > remaining())
      fail("{}: truncated GGUF file: {} needs {} bytes at offset {} but only {} remain", name(), what, n, pos_,
           remaining());
  }
  template <class T>
  T read(const std::string& what) {
    need(sizeof(T), what);
    const T v = load_le<T>(f_.base_ + pos_);
    pos_ += sizeof(T);
    return v;
  }
  std::string_view read_string(const std::string& what) {
    const uint64_t n = read<uint64_t>(what + " (string length)");
    if (n > remaining())
      fail("{}: {} has length {} but only {} bytes remain in the file: truncated or corrupt", name(), what, n,
           remaining());
    std::string_view s(reinterpret_cast<const char*>(f_.base_ + pos_), size_t(n));
    pos_ += n;
    return s;
  }

  // read_string for element i of a string array, formatting a message only on failure
  // (token lists hold hundreds of thousands of strings).
  std::string_view read_element_string(const std::string& where, uint64_t i) {
    if (remaining() < 8 || load_le<uint64_t>(f_.base_ + pos_) > remaining() - 8)
      return read_string(fmt::format("{} [{}]", where, i));  // fails with the message
    const uint64_t n = load_le<uint64_t>(f_.base_ + pos_);
    std::string_view s(reinterpret_cast<const char*>(f_.base_ + pos_ + 8), size_t(n));
    pos_ += 8 + n;
    return s;
  }

  void header() {
    if (f_.size_ < 4 || std::memcmp(f_.base_, "GGUF", 4) != 0) {
      std::string found;
      for (uint64_t i = 0; i < std::min<uint64_t>(f_.size_, 4); ++i)
        found += fmt::format("{}{:02x}", i ? " " : "", f_.base_[i]);
      fail("{}: not a GGUF file: bad magic (expected 'GGUF' = 47 47 55 46, found {})", name(),
           found.empty() ? "an empty file" : found);
    }
    pos_ = 4;
    const uint32_t v = read<uint32_t>("the version");
    if (v == 1)
      fail("{}: GGUF version 1 is not supported (it had 32-bit counts and lengths); convert the model again "
           "with a current llama.cpp", name());
    if (v != 2 && v != 3) {
      const uint32_t swapped = __builtin_bswap32(v);
      if (swapped == 2 || swapped == 3) fail("{}: big-endian GGUF files are not supported", name());
      fail("{}: unsupported GGUF version {} (expected 2 or 3)", name(), v);
    }
    f_.version_ = v;
    n_tensors_ = read<uint64_t>("the tensor count");
    n_kv_ = read<uint64_t>("the metadata count");
    if (n_kv_ > remaining() / kMinKvBytes)
      fail("{}: metadata count {} is absurd: {} key/value pairs cannot fit in the {} bytes that follow", name(),
           n_kv_, n_kv_, remaining());
    if (n_tensors_ > remaining() / kMinTensorInfoBytes)
      fail("{}: tensor count {} is absurd: {} tensor infos cannot fit in the {} bytes that follow", name(),
           n_tensors_, n_tensors_, remaining());
  }

  void key_value(uint64_t index) {
    const std::string_view key = read_string(fmt::format("metadata key {}", index));
    if (key.empty()) fail("{}: metadata key {} is empty", name(), index);
    const std::string where = fmt::format("the value of key '{}'", key);
    if (f_.kv_index_.count(key)) fail("{}: metadata key '{}' appears twice", name(), key);
    const uint32_t type = read<uint32_t>(where + " (type)");
    GgufValue v = value(type, where, 0);
    f_.kv_index_.emplace(std::string(key), f_.kv_.size());
    f_.kv_.emplace_back(std::string(key), std::move(v));
  }

  GgufValue value(uint32_t type, const std::string& where, int depth) {
    if (!valid_type(type)) fail("{}: {} has unknown type {} (expected 0 to 12)", name(), where, type);
    GgufValue v;
    v.type_ = GgufType(type);
    if (v.type_ == GgufType::STRING) {
      v.str_ = read_string(where);
      return v;
    }
    if (v.type_ == GgufType::ARRAY) return array(where, depth);
    const size_t n = gguf_scalar_size(v.type_);
    need(n, where);
    std::memcpy(&v.bits_, f_.base_ + pos_, n);
    pos_ += n;
    if (v.type_ == GgufType::BOOL && v.bits_ > 1) fail("{}: {} is a bool of value {} (expected 0 or 1)", name(), where, v.bits_);
    return v;
  }

  GgufValue array(const std::string& where, int depth) {
    if (depth >= kMaxArrayDepth) fail("{}: {} nests arrays more than {} deep", name(), where, kMaxArrayDepth);
    GgufValue v;
    v.type_ = GgufType::ARRAY;
    const uint32_t elem = read<uint32_t>(where + " (array element type)");
    if (!valid_type(elem)) fail("{}: {} is an array of unknown type {} (expected 0 to 12)", name(), where, elem);
    v.elem_type_ = GgufType(elem);
    v.count_ = read<uint64_t>(where + " (array length)");
    // Each element takes at least this many bytes, so longer arrays cannot be in the file.
    const uint64_t min_elem = v.elem_type_ == GgufType::STRING  ? 8
                              : v.elem_type_ == GgufType::ARRAY ? 12
                                                                : gguf_scalar_size(v.elem_type_);
    if (v.count_ > remaining() / min_elem)
      fail("{}: {} is an array of {} {} values, which cannot fit in the {} bytes that remain", name(), where, v.count_,
           gguf_type_name(v.elem_type_), remaining());
    if (v.elem_type_ == GgufType::STRING) {
      v.strings_.reserve(size_t(v.count_));
      for (uint64_t i = 0; i < v.count_; ++i) v.strings_.push_back(read_element_string(where, i));
    } else if (v.elem_type_ == GgufType::ARRAY) {
      v.items_.reserve(size_t(v.count_));
      for (uint64_t i = 0; i < v.count_; ++i)
        v.items_.push_back(array(fmt::format("{} [{}]", where, i), depth + 1));
    } else {
      v.raw_ = f_.base_ + pos_;
      pos_ += v.count_ * min_elem;
      if (v.elem_type_ == GgufType::BOOL) {
        for (uint64_t i = 0; i < v.count_; ++i)
          if (v.raw_[i] > 1) fail("{}: {} [{}] is a bool of value {} (expected 0 or 1)", name(), where, i, v.raw_[i]);
      }
    }
    return v;
  }

  void alignment() {
    const GgufValue* a = f_.find("general.alignment");
    f_.alignment_ = kDefaultAlignment;
    if (!a) return;
    if (a->type() != GgufType::U32)
      fail("{}: key 'general.alignment' must be a u32, got {}", name(), gguf_type_name(a->type()));
    const uint64_t n = *a->as_int();
    if (n == 0 || (n & (n - 1)) != 0) fail("{}: general.alignment {} is not a power of two", name(), n);
    f_.alignment_ = n;
  }

  void tensor_info(uint64_t index) {
    GgufTensorInfo t;
    t.name = std::string(read_string(fmt::format("the name of tensor {}", index)));
    if (t.name.empty()) fail("{}: tensor {} has an empty name", name(), index);
    const std::string where = fmt::format("{}: tensor '{}'", name(), t.name);
    if (f_.tensor_index_.count(t.name)) fail("{} appears twice", where);
    const uint32_t n_dims = read<uint32_t>(fmt::format("the dimension count of tensor '{}'", t.name));
    if (n_dims < 1 || n_dims > kMaxDims) fail("{} has {} dimensions (expected 1 to {})", where, n_dims, kMaxDims);
    uint64_t numel = 1;
    for (uint32_t d = 0; d < n_dims; ++d) {
      const uint64_t ne = read<uint64_t>(fmt::format("dimension {} of tensor '{}'", d, t.name));
      if (ne == 0) fail("{} has a dimension of size 0 (ne[{}])", where, d);
      if (ne > uint64_t(INT64_MAX) / numel) fail("{}: its dimensions overflow (the element count exceeds 2^63)", where);
      numel *= ne;
      t.ne.push_back(int64_t(ne));
    }
    t.shape.assign(t.ne.rbegin(), t.ne.rend());
    const uint32_t type = read<uint32_t>(fmt::format("the type of tensor '{}'", t.name));
    t.type = ggml_type_info(type);
    if (!t.type) fail("{} has unknown ggml type id {}", where, type);
    t.offset = read<uint64_t>(fmt::format("the offset of tensor '{}'", t.name));
    if (t.ne[0] % t.type->block_elems != 0)
      fail("{}: its rows of {} values are not a whole number of {} blocks ({} values each)", where, t.ne[0],
           t.type->name, t.type->block_elems);
    const uint64_t blocks = numel / uint64_t(t.type->block_elems);
    if (blocks > uint64_t(INT64_MAX) / uint64_t(t.type->block_bytes))
      fail("{}: its size overflows ({} blocks of {} bytes)", where, blocks, t.type->block_bytes);
    t.bytes = blocks * uint64_t(t.type->block_bytes);
    f_.tensor_index_.emplace(t.name, f_.tensors_.size());
    f_.tensors_.push_back(std::move(t));
  }

  void data_section() {
    const uint64_t a = f_.alignment_;
    const uint64_t start = pos_ + (a - pos_ % a) % a;
    if (f_.tensors_.empty()) {
      f_.data_offset_ = std::min<uint64_t>(start, f_.size_);
      return;
    }
    if (start > f_.size_)
      fail("{}: truncated GGUF file: the data section would start at byte {} but the file has {} bytes", name(), start,
           f_.size_);
    f_.data_offset_ = start;
    const uint64_t data_size = f_.size_ - start;
    for (const GgufTensorInfo& t : f_.tensors_) {
      const std::string where = fmt::format("{}: tensor '{}'", name(), t.name);
      if (t.offset % a != 0) fail("{} has offset {}, which is not a multiple of the alignment {}", where, t.offset, a);
      if (t.offset > data_size || t.bytes > data_size - t.offset)
        fail("{} ({} {}, {} bytes at offset {}) extends past the end of the data section ({} bytes): truncated file?",
             where, t.type->name, shape_str(t.shape), t.bytes, t.offset, data_size);
    }
    std::vector<const GgufTensorInfo*> by_offset;
    for (const GgufTensorInfo& t : f_.tensors_) by_offset.push_back(&t);
    std::sort(by_offset.begin(), by_offset.end(), [](auto* x, auto* y) { return x->offset < y->offset; });
    for (size_t i = 1; i < by_offset.size(); ++i) {
      const GgufTensorInfo* p = by_offset[i - 1];
      const GgufTensorInfo* c = by_offset[i];
      if (c->offset < p->offset + p->bytes)
        fail("{}: tensors '{}' [{}, {}) and '{}' [{}, {}) overlap", name(), p->name, p->offset, p->offset + p->bytes,
             c->name, c->offset, c->offset + c->bytes);
    }
  }

  GgufFile& f_;
  uint64_t pos_ = 0;
  uint64_t n_tensors_ = 0;
  uint64_t n_kv_ = 0;
};

std::shared_ptr<GgufFile> GgufFile::open(const std::string& path) {
  auto mapped = MappedFile::open(path);
  const uint8_t* data = mapped->data();
  const size_t size = mapped->size();
  return open_buffer(data, size, path, std::move(mapped));
}

std::shared_ptr<GgufFile> GgufFile::open_buffer(const void* data, size_t size, std::string name,
                                                std::shared_ptr<const void> keepalive) {
  auto f = std::shared_ptr<GgufFile>(new GgufFile());
  f->name_ = std::move(name);
  f->owner_ = std::move(keepalive);
  f->base_ = static_cast<const uint8_t*>(data);
  f->size_ = size;
  GgufParser(*f).parse();
  return f;
}

// --- metadata access -----------------------------------------------------------------------

const GgufValue* GgufFile::find(std::string_view key) const {
  auto it = kv_index_.find(key);
  return it == kv_index_.end() ? nullptr : &kv_[it->second].second;
}

const GgufValue& GgufFile::get(std::string_view key) const {
  const GgufValue* v = find(key);
  if (!v) fail("{}: missing metadata key '{}'", name_, key);
  return *v;
}

void GgufFile::wrong_type(std::string_view key, const GgufValue& v, std::string_view expected) const {
  std::string found(gguf_type_name(v.type()));
  if (v.type() == GgufType::ARRAY) found = fmt::format("an array of {}", gguf_type_name(v.elem_type()));
  fail("{}: metadata key '{}' must be {}, but it is {} ({})", name_, key, expected, found, v.to_string(4));
}

const GgufValue& GgufFile::typed(std::string_view key, GgufType t) const {
  const GgufValue& v = get(key);
  if (v.type() != t) wrong_type(key, v, gguf_type_name(t));
  return v;
}

uint8_t GgufFile::get_u8(std::string_view key) const { return uint8_t(*typed(key, GgufType::U8).as_int()); }
int8_t GgufFile::get_i8(std::string_view key) const { return int8_t(*typed(key, GgufType::I8).as_int()); }
uint16_t GgufFile::get_u16(std::string_view key) const { return uint16_t(*typed(key, GgufType::U16).as_int()); }
int16_t GgufFile::get_i16(std::string_view key) const { return int16_t(*typed(key, GgufType::I16).as_int()); }
uint32_t GgufFile::get_u32(std::string_view key) const { return uint32_t(*typed(key, GgufType::U32).as_int()); }
int32_t GgufFile::get_i32(std::string_view key) const { return int32_t(*typed(key, GgufType::I32).as_int()); }
uint64_t GgufFile::get_u64(std::string_view key) const { return typed(key, GgufType::U64).bits_; }
int64_t GgufFile::get_i64(std::string_view key) const { return *typed(key, GgufType::I64).as_int(); }
float GgufFile::get_f32(std::string_view key) const { return float(*typed(key, GgufType::F32).as_float()); }
double GgufFile::get_f64(std::string_view key) const { return *typed(key, GgufType::F64).as_float(); }
bool GgufFile::get_bool(std::string_view key) const { return *typed(key, GgufType::BOOL).as_bool(); }
std::string_view GgufFile::get_string(std::string_view key) const { return *typed(key, GgufType::STRING).as_string(); }

int64_t GgufFile::get_int(std::string_view key) const {
  const GgufValue& v = get(key);
  const auto i = v.as_int();
  if (!i) wrong_type(key, v, "an integer (u8 .. i64, below 2^63)");
  return *i;
}

double GgufFile::get_float(std::string_view key) const {
  const GgufValue& v = get(key);
  if (!v.is_float()) wrong_type(key, v, "a number (f32 or f64)");
  return *v.as_float();
}

int64_t GgufFile::get_int_or(std::string_view key, int64_t fallback) const { return has(key) ? get_int(key) : fallback; }
double GgufFile::get_float_or(std::string_view key, double fallback) const {
  return has(key) ? get_float(key) : fallback;
}
bool GgufFile::get_bool_or(std::string_view key, bool fallback) const { return has(key) ? get_bool(key) : fallback; }
std::string GgufFile::get_string_or(std::string_view key, std::string_view fallback) const {
  return std::string(has(key) ? get_string(key) : fallback);
}

const GgufValue& GgufFile::get_array(std::string_view key, GgufType elem) const {
  const GgufValue& v = get(key);
  if (v.type() != GgufType::ARRAY || v.elem_type() != elem)
    wrong_type(key, v, fmt::format("an array of {}", gguf_type_name(elem)));
  return v;
}

std::span<const std::string_view> GgufFile::get_string_array(std::string_view key) const {
  return get_array(key, GgufType::STRING).strings();
}

std::vector<float> GgufFile::get_f32_array(std::string_view key) const {
  const GgufValue& v = get_array(key, GgufType::F32);
  std::vector<float> out(size_t(v.size()));
  if (!out.empty()) std::memcpy(out.data(), v.raw_, out.size() * 4);
  return out;
}

std::vector<int32_t> GgufFile::get_i32_array(std::string_view key) const {
  const GgufValue& v = get_array(key, GgufType::I32);
  std::vector<int32_t> out(size_t(v.size()));
  if (!out.empty()) std::memcpy(out.data(), v.raw_, out.size() * 4);
  return out;
}

// --- tensors -------------------------------------------------------------------------------

const GgufTensorInfo* GgufFile::find_tensor(std::string_view name) const {
  auto it = tensor_index_.find(name);
  return it == tensor_index_.end() ? nullptr : &tensors_[it->second];
}

Tensor GgufFile::tensor(std::string_view name) const {
  const GgufTensorInfo* t = find_tensor(name);
  if (!t) fail("{}: no tensor named '{}'", name_, name);
  return tensor(*t);
}

Tensor GgufFile::tensor(const GgufTensorInfo& t) const {
  if (!t.type->dtype)
    fail("{}: tensor '{}' has unsupported type {} (ggml type id {}); supported: F32, F16, BF16, Q4_0, Q4_1, "
         "Q5_0, Q5_1, Q8_0, Q2_K, Q3_K, Q4_K, Q5_K, Q6_K, IQ4_NL (and the integer types)", name_, t.name, t.type->name, t.type->id);
  // Keep this GgufFile's bytes alive: the owner, or (for a buffer the caller owns) nothing.
  return Tensor::view(*t.type->dtype, t.shape, base_ + data_offset_ + t.offset, owner_);
}

}  // namespace unicorn
