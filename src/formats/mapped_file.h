// A read-only memory-mapped file. Tensors loaded from it are views that keep it mapped.
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>
#include <span>
#include <string>

namespace unicorn {

class MappedFile {
 public:
  // Maps the whole file; throws Error naming the path if it cannot be opened or mapped.
  static std::shared_ptr<MappedFile> open(const std::string& path);
  ~MappedFile();
  MappedFile(const MappedFile&) = delete;
  MappedFile& operator=(const MappedFile&) = delete;

  const std::string& path() const { return path_; }
  size_t size() const { return size_; }
  const uint8_t* data() const { return data_; }
  std::span<const uint8_t> bytes() const { return {data_, size_}; }

 private:
  MappedFile() = default;
  std::string path_;
  const uint8_t* data_ = nullptr;
  size_t size_ = 0;
};

// Reads a whole (small) file into a string; throws Error naming the path on failure.
std::string read_file(const std::string& path);
// Writes a file atomically enough for our use (write then rename); throws Error on failure.
void write_file(const std::string& path, std::string_view contents);
bool file_exists(const std::string& path);

}  // namespace unicorn
