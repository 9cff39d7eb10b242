// Writes GGUF version 3 files (see gguf.h), as llama.cpp lays them out: header, metadata in
// the order set, tensor infos in the order added, then each tensor's data at the next
// multiple of the alignment (32 unless set_alignment changes it). Tensors may be given as
// data or as a dtype, shape and a function that fills their bytes when the file is written,
// so a large file is streamed one tensor at a time.
#pragma once

#include <cstdint>
#include <functional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "core/tensor.h"
#include "formats/gguf.h"

namespace unicorn {

class GgufWriter {
 public:
  using Fill = std::function<void(void* bytes)>;

  // An array value, built with the of() functions; arrays of arrays nest.
  class Array {
   public:
    static Array of(std::span<const uint8_t> v);
    static Array of(std::span<const int8_t> v);
    static Array of(std::span<const uint16_t> v);
    static Array of(std::span<const int16_t> v);
    static Array of(std::span<const uint32_t> v);
    static Array of(std::span<const int32_t> v);
    static Array of(std::span<const uint64_t> v);
    static Array of(std::span<const int64_t> v);
    static Array of(std::span<const float> v);
    static Array of(std::span<const double> v);
    static Array of_bools(const std::vector<bool>& v);
    static Array of(std::span<const std::string> v);
    static Array of(std::span<const std::string_view> v);
    static Array of(std::span<const Array> v);

   private:
    friend class GgufWriter;
    GgufType elem = GgufType::U8;
    uint64_t count = 0;
    std::string payload;  // the encoded elements
  };

  // Metadata, in the order set; setting a key again replaces its value in place.
  void set_u8(const std::string& key, uint8_t v);
  void set_i8(const std::string& key, int8_t v);
  void set_u16(const std::string& key, uint16_t v);
  void set_i16(const std::string& key, int16_t v);
  void set_u32(const std::string& key, uint32_t v);
  void set_i32(const std::string& key, int32_t v);
  void set_u64(const std::string& key, uint64_t v);
  void set_i64(const std::string& key, int64_t v);
  void set_f32(const std::string& key, float v);
  void set_f64(const std::string& key, double v);
  void set_bool(const std::string& key, bool v);
  void set_string(const std::string& key, std::string_view v);
  void set_array(const std::string& key, const Array& v);
  // A value read from another GGUF file (for copying metadata across).
  void set(const std::string& key, const GgufValue& v);
  // Sets general.alignment (a power of two); data offsets follow it.
  void set_alignment(uint32_t alignment);

  // Tensors of our dtypes that GGUF can hold (plain float and integer types and the ggml
  // block formats of dtype.h); `shape` in PyTorch order (written reversed, as ggml's ne).
  void add(const std::string& name, const Tensor& tensor);
  void add_generated(const std::string& name, DType dtype, Shape shape, Fill fill);

  void write(const std::string& path) const;
  std::string serialize() const;

 private:
  struct Entry {
    std::string name;
    DType dtype;
    uint32_t ggml_type;
    Shape shape;
    Tensor data;  // or
    Fill fill;
    uint64_t bytes;
  };
  void set_raw(const std::string& key, GgufType type, std::string payload);
  static void encode_array_body(std::string& out, const GgufValue& v);
  void check_new(const std::string& name, DType dtype, const Shape& shape) const;
  std::vector<uint64_t> offsets() const;  // of each tensor in the data section
  std::string header() const;             // everything before the data section, padded
  template <class Sink>
  void emit(Sink&& sink) const;

  std::vector<std::pair<std::string, std::pair<GgufType, std::string>>> kv_;  // key -> (type, payload)
  std::vector<Entry> entries_;
  uint64_t alignment_ = 32;
};

}  // namespace unicorn
