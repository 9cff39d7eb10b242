// Safetensors files (https://github.com/huggingface/safetensors): an 8-byte little-endian
// header length, a JSON header {name: {dtype, shape, data_offsets}}, then the data. Reading
// maps the file and hands out zero-copy views; every structural problem is an Error naming
// the file and the tensor.
#pragma once

#include <functional>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "core/tensor.h"
#include "formats/mapped_file.h"

namespace unicorn {

struct SafetensorsEntry {
  std::string name;
  DType dtype;
  Shape shape;
  uint64_t begin;  // byte offsets relative to the start of the data section
  uint64_t end;
};

class SafetensorsFile {
 public:
  // Maps and validates the whole header (see the file comment).
  static std::shared_ptr<SafetensorsFile> open(const std::string& path);
  // Parses bytes already in memory; `name` stands for the path in messages. `keepalive`
  // keeps `data` valid as long as the file or its tensors live (null: the caller does).
  static std::shared_ptr<SafetensorsFile> open_buffer(const void* data, size_t size, std::string name,
                                                      std::shared_ptr<const void> keepalive = nullptr);

  const std::string& path() const { return name_; }
  const std::vector<SafetensorsEntry>& entries() const { return entries_; }
  const std::map<std::string, std::string>& metadata() const { return metadata_; }
  const SafetensorsEntry* find(const std::string& name) const;
  bool contains(const std::string& name) const { return find(name) != nullptr; }
  // A view of the tensor's bytes; throws Error if the name is absent.
  Tensor tensor(const std::string& name) const;
  Tensor tensor(const SafetensorsEntry& entry) const;

 private:
  std::string name_;
  std::shared_ptr<const void> owner_;  // keeps the bytes alive (a MappedFile or a buffer)
  const uint8_t* data_ = nullptr;      // start of the data section
  std::vector<SafetensorsEntry> entries_;
  std::map<std::string, size_t> index_;
  std::map<std::string, std::string> metadata_;
};

// The weights of a model folder: `model.safetensors`, or the shards listed by
// `model.safetensors.index.json`, or a single given .safetensors file.
class SafetensorsSet {
 public:
  static SafetensorsSet open(const std::string& path);

  struct Located {
    const SafetensorsFile* file;
    const SafetensorsEntry* entry;
  };
  const Located* find(const std::string& name) const;
  Tensor tensor(const std::string& name) const;
  std::vector<std::string> names() const;
  const std::vector<std::shared_ptr<SafetensorsFile>>& files() const { return files_; }
  std::string description() const;  // the path(s), for messages

 private:
  std::vector<std::shared_ptr<SafetensorsFile>> files_;
  std::map<std::string, Located> tensors_;
  std::string origin_;
};

// Writes tensors (plain element types) to a safetensors file, in the order added. Tensors
// may be given as data, or as a shape and a function that fills their bytes when the file is
// written (so a multi-gigabyte file is streamed, one tensor in memory at a time).
// Tensors are written wider elements first (stable otherwise), as the safetensors library
// does, so each starts aligned to its element size.
class SafetensorsWriter {
 public:
  using Fill = std::function<void(void* bytes)>;
  void add(const std::string& name, const Tensor& tensor);
  void add_generated(const std::string& name, DType dtype, Shape shape, Fill fill);
  void set_metadata(const std::string& key, const std::string& value) { metadata_[key] = value; }
  void write(const std::string& path) const;
  std::string serialize() const;

 private:
  struct Entry {
    std::string name;
    DType dtype;
    Shape shape;
    Tensor data;  // or
    Fill fill;
    int64_t bytes() const { return dtype_bytes(dtype, shape_numel(shape)); }
  };
  std::string header() const;
  std::vector<const Entry*> ordered() const;
  void check_new(const std::string& name, DType dtype) const;
  std::vector<Entry> entries_;
  std::map<std::string, std::string> metadata_;
};

}  // namespace unicorn
