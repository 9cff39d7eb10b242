// GGUF files (ggml's format: https://github.com/ggml-org/ggml/blob/master/docs/gguf.md) as
// llama.cpp writes them: magic "GGUF", version (3, or 2 which has the same layout; version 1
// had 32-bit counts and is refused), tensor count, metadata count, the metadata key/value
// pairs, the tensor infos, padding to general.alignment (default 32), then the tensor data.
// Everything is little-endian. Opening maps the file and validates all of it (every read
// bounds-checked, counts that cannot fit, types, dimensions, offsets, overlaps, duplicates),
// so a malformed file fails at open with an Error naming the file and the key or tensor.
// Tensors are zero-copy views of the mapping with PyTorch-order shapes.
#pragma once

#include <cstdint>
#include <map>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "core/tensor.h"
#include "formats/ggml_types.h"

namespace unicorn {

enum class GgufType : uint32_t {
  U8 = 0, I8 = 1, U16 = 2, I16 = 3, U32 = 4, I32 = 5, F32 = 6, BOOL = 7,
  STRING = 8, ARRAY = 9, U64 = 10, I64 = 11, F64 = 12,
};
std::string_view gguf_type_name(GgufType t);  // "u32", "string", "array", ...
// Bytes of one scalar value (0 for STRING and ARRAY, whose size varies).
size_t gguf_scalar_size(GgufType t);

// A metadata value: a scalar, a string, or an array of one element type (arrays may nest).
// Strings and array contents are views into the file's bytes, valid while the GgufFile lives.
class GgufValue {
 public:
  GgufType type() const { return type_; }
  bool is_integer() const;  // U8 .. I64 (not BOOL)
  bool is_float() const { return type_ == GgufType::F32 || type_ == GgufType::F64; }

  // Scalars; nullopt when the value is not of a matching type (any integer type for
  // as_int, which also refuses a U64 above INT64_MAX; F32 or F64 for as_float).
  std::optional<int64_t> as_int() const;
  std::optional<double> as_float() const;
  std::optional<bool> as_bool() const;
  std::optional<std::string_view> as_string() const;

  // Arrays (UNICORN_CHECK'd: call only on an ARRAY of the right element type).
  GgufType elem_type() const { return elem_type_; }
  uint64_t size() const { return count_; }
  int64_t int_at(uint64_t i) const;       // integer element types (a U64 is reinterpreted)
  double float_at(uint64_t i) const;      // F32 or F64 elements
  bool bool_at(uint64_t i) const;
  std::span<const std::string_view> strings() const { return strings_; }
  const std::vector<GgufValue>& arrays() const { return items_; }

  // The value as text for messages and `unicorn info`: long arrays shortened.
  std::string to_string(size_t max_items = 8) const;

 private:
  friend class GgufParser;
  friend class GgufWriter;
  friend class GgufFile;
  GgufType type_ = GgufType::U8;
  uint64_t bits_ = 0;      // a scalar's little-endian bytes, zero-extended
  std::string_view str_;   // STRING
  GgufType elem_type_ = GgufType::U8;  // ARRAY
  uint64_t count_ = 0;
  const uint8_t* raw_ = nullptr;        // scalar elements, count_ * gguf_scalar_size(elem_type_) bytes
  std::vector<std::string_view> strings_;  // STRING elements
  std::vector<GgufValue> items_;           // ARRAY elements
};

struct GgufTensorInfo {
  std::string name;
  const GgmlTypeInfo* type = nullptr;  // never null after open
  std::vector<int64_t> ne;             // ggml order: ne[0] is the innermost dimension
  Shape shape;                         // PyTorch order: ne reversed
  uint64_t offset = 0;                 // from the start of the data section
  uint64_t bytes = 0;
};

class GgufFile {
 public:
  // Maps and validates the file (see the file comment).
  static std::shared_ptr<GgufFile> open(const std::string& path);
  // Parses bytes already in memory; `name` stands for the path in messages. `keepalive`
  // keeps `data` valid as long as the file or its tensors live (null: the caller does).
  static std::shared_ptr<GgufFile> open_buffer(const void* data, size_t size, std::string name,
                                               std::shared_ptr<const void> keepalive = nullptr);

  const std::string& path() const { return name_; }
  uint32_t version() const { return version_; }
  uint64_t alignment() const { return alignment_; }
  uint64_t data_offset() const { return data_offset_; }  // where the data section starts

  // --- metadata ------------------------------------------------------------------------
  // Keys in file order.
  const std::vector<std::pair<std::string, GgufValue>>& metadata() const { return kv_; }
  const GgufValue* find(std::string_view key) const;
  bool has(std::string_view key) const { return find(key) != nullptr; }
  // The value of a key that must be present (Error naming the file and key otherwise).
  const GgufValue& get(std::string_view key) const;
  // Typed access: the key must be present and hold exactly this type; the Error names the
  // file, the key, the expected type and the type found.
  uint8_t get_u8(std::string_view key) const;
  int8_t get_i8(std::string_view key) const;
  uint16_t get_u16(std::string_view key) const;
  int16_t get_i16(std::string_view key) const;
  uint32_t get_u32(std::string_view key) const;
  int32_t get_i32(std::string_view key) const;
  uint64_t get_u64(std::string_view key) const;
  int64_t get_i64(std::string_view key) const;
  float get_f32(std::string_view key) const;
  double get_f64(std::string_view key) const;
  bool get_bool(std::string_view key) const;
  std::string_view get_string(std::string_view key) const;
  // Lenient numbers: any integer type / F32 or F64.
  int64_t get_int(std::string_view key) const;
  double get_float(std::string_view key) const;
  // The same with a default for an absent key (a present key of the wrong type is an Error).
  int64_t get_int_or(std::string_view key, int64_t fallback) const;
  double get_float_or(std::string_view key, double fallback) const;
  bool get_bool_or(std::string_view key, bool fallback) const;
  std::string get_string_or(std::string_view key, std::string_view fallback) const;
  // Arrays: the key must hold an array of `elem` elements.
  const GgufValue& get_array(std::string_view key, GgufType elem) const;
  std::span<const std::string_view> get_string_array(std::string_view key) const;
  std::vector<float> get_f32_array(std::string_view key) const;
  std::vector<int32_t> get_i32_array(std::string_view key) const;

  // --- tensors -------------------------------------------------------------------------
  const std::vector<GgufTensorInfo>& tensors() const { return tensors_; }
  const GgufTensorInfo* find_tensor(std::string_view name) const;
  // A view of a tensor's bytes with our DType and the PyTorch-order shape. Error if absent,
  // or if its ggml type has no DType here ("unsupported type IQ2_XS (id 17)").
  Tensor tensor(std::string_view name) const;
  Tensor tensor(const GgufTensorInfo& info) const;

 private:
  friend class GgufParser;
  [[noreturn]] void wrong_type(std::string_view key, const GgufValue& v, std::string_view expected) const;
  const GgufValue& typed(std::string_view key, GgufType t) const;

  std::string name_;
  std::shared_ptr<const void> owner_;  // keeps the bytes alive (a MappedFile or a buffer)
  const uint8_t* base_ = nullptr;
  uint64_t size_ = 0;
  uint32_t version_ = 0;
  uint64_t alignment_ = 32;
  uint64_t data_offset_ = 0;
  std::vector<std::pair<std::string, GgufValue>> kv_;
  std::map<std::string, size_t, std::less<>> kv_index_;
  std::vector<GgufTensorInfo> tensors_;
  std::map<std::string, size_t, std::less<>> tensor_index_;
};

}  // namespace unicorn
