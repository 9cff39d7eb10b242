#include "formats/safetensors.h"

#include <algorithm>
#include <filesystem>
#include <nlohmann/json.hpp>
#include <cerrno>
#include <cstring>
#include <fstream>
#include <set>

#include "core/error.h"

namespace unicorn {

namespace {

using json = nlohmann::json;

// Largest header we accept: real checkpoints have headers of a few hundred KB.
constexpr uint64_t kMaxHeaderBytes = 100ull << 20;

uint64_t read_u64_le(const uint8_t* p) {
  uint64_t v = 0;
  for (int i = 7; i >= 0; --i) v = (v << 8) | p[i];
  return v;
}

// n * m, or fails if it overflows 63 bits.
uint64_t checked_mul(uint64_t a, uint64_t b, const std::string& where) {
  if (a != 0 && b > (uint64_t(INT64_MAX) / a)) fail("{}: shape is too large (size overflows)", where);
  return a * b;
}

}  // namespace

std::shared_ptr<SafetensorsFile> SafetensorsFile::open(const std::string& path) {
  auto mapped = MappedFile::open(path);
  const uint8_t* data = mapped->data();
  const size_t size = mapped->size();
  return open_buffer(data, size, path, std::move(mapped));
}

std::shared_ptr<SafetensorsFile> SafetensorsFile::open_buffer(const void* bytes, size_t size, std::string name,
                                                              std::shared_ptr<const void> keepalive) {
  auto st = std::shared_ptr<SafetensorsFile>(new SafetensorsFile());
  st->name_ = std::move(name);
  st->owner_ = std::move(keepalive);
  const std::string& path = st->name_;
  const uint8_t* base = static_cast<const uint8_t*>(bytes);
  if (size < 8) fail("{}: not a safetensors file: {} bytes, too short for the 8-byte header length", path, size);
  const uint64_t header_len = read_u64_le(base);
  if (header_len > kMaxHeaderBytes)
    fail("{}: safetensors header length {} is absurd (limit {} bytes)", path, header_len, kMaxHeaderBytes);
  if (8 + header_len > size)
    fail("{}: safetensors header length {} extends beyond the file ({} bytes): truncated or not safetensors",
         path, header_len, size);
  const uint64_t data_size = size - 8 - header_len;
  st->data_ = base + 8 + header_len;

  // Parse, refusing duplicate top-level names (JSON parsers keep the last one silently).
  std::set<std::string> seen;
  std::string duplicate;
  json header;
  try {
    header = json::parse(
        reinterpret_cast<const char*>(base + 8), reinterpret_cast<const char*>(base + 8 + header_len),
        [&](int depth, json::parse_event_t event, json& parsed) {
          if (depth == 1 && event == json::parse_event_t::key) {
            const std::string key = parsed.get<std::string>();
            if (!seen.insert(key).second && duplicate.empty()) duplicate = key;
          }
          return true;
        });
  } catch (const json::exception& e) {
    fail("{}: safetensors header is not valid JSON: {}", path, e.what());
  }
  if (!duplicate.empty()) fail("{}: tensor '{}' appears twice in the safetensors header", path, duplicate);
  if (!header.is_object()) fail("{}: safetensors header must be a JSON object", path);

  for (auto it = header.begin(); it != header.end(); ++it) {
    const std::string& name = it.key();
    const json& v = it.value();
    if (name == "__metadata__") {
      if (!v.is_object()) fail("{}: __metadata__ must be an object of strings", path);
      for (auto m = v.begin(); m != v.end(); ++m) {
        if (!m.value().is_string()) fail("{}: __metadata__ value '{}' must be a string", path, m.key());
        st->metadata_[m.key()] = m.value().get<std::string>();
      }
      continue;
    }
    const std::string where = fmt::format("{}: tensor '{}'", path, name);
    if (!v.is_object()) fail("{}: entry must be an object with dtype, shape, data_offsets", where);
    if (!v.contains("dtype") || !v["dtype"].is_string()) fail("{}: missing or non-string 'dtype'", where);
    if (!v.contains("shape") || !v["shape"].is_array()) fail("{}: missing or non-array 'shape'", where);
    if (!v.contains("data_offsets") || !v["data_offsets"].is_array() || v["data_offsets"].size() != 2)
      fail("{}: 'data_offsets' must be an array of two integers", where);
    SafetensorsEntry e;
    e.name = name;
    e.dtype = dtype_from_safetensors(v["dtype"].get<std::string>(), where);
    uint64_t numel = 1;
    for (const json& d : v["shape"]) {
      if (!d.is_number_unsigned()) fail("{}: shape entries must be non-negative integers", where);
      const uint64_t dim = d.get<uint64_t>();
      if (dim > uint64_t(INT64_MAX)) fail("{}: dimension {} is too large", where, dim);
      numel = checked_mul(numel, dim, where);
      e.shape.push_back(int64_t(dim));
    }
    for (const json& o : v["data_offsets"]) {
      if (!o.is_number_unsigned()) fail("{}: data_offsets must be non-negative integers", where);
    }
    e.begin = v["data_offsets"][0].get<uint64_t>();
    e.end = v["data_offsets"][1].get<uint64_t>();
    if (e.begin > e.end) fail("{}: data_offsets [{}, {}] are reversed", where, e.begin, e.end);
    if (e.end > data_size)
      fail("{}: data_offsets [{}, {}] lie outside the data section ({} bytes): truncated file?", where,
           e.begin, e.end, data_size);
    const uint64_t expected = checked_mul(numel, uint64_t(dtype_info(e.dtype).block_bytes), where);
    if (e.end - e.begin != expected)
      fail("{}: shape {} of {} needs {} bytes but data_offsets [{}, {}] hold {}", where, shape_str(e.shape),
           dtype_name(e.dtype), expected, e.begin, e.end, e.end - e.begin);
    st->entries_.push_back(std::move(e));
  }

  // No two tensors may share bytes.
  std::vector<const SafetensorsEntry*> by_offset;
  for (const auto& e : st->entries_) by_offset.push_back(&e);
  std::sort(by_offset.begin(), by_offset.end(), [](auto* a, auto* b) { return a->begin < b->begin; });
  for (size_t i = 1; i < by_offset.size(); ++i) {
    const auto* prev = by_offset[i - 1];
    const auto* cur = by_offset[i];
    if (cur->begin < prev->end && cur->begin != cur->end && prev->begin != prev->end)
      fail("{}: tensors '{}' [{}, {}] and '{}' [{}, {}] overlap", path, prev->name, prev->begin, prev->end,
           cur->name, cur->begin, cur->end);
  }
  for (size_t i = 0; i < st->entries_.size(); ++i) st->index_[st->entries_[i].name] = i;
  return st;
}

const SafetensorsEntry* SafetensorsFile::find(const std::string& name) const {
  auto it = index_.find(name);
  return it == index_.end() ? nullptr : &entries_[it->second];
}

Tensor SafetensorsFile::tensor(const std::string& name) const {
  const SafetensorsEntry* e = find(name);
  if (!e) fail("{}: no tensor named '{}'", path(), name);
  return tensor(*e);
}

Tensor SafetensorsFile::tensor(const SafetensorsEntry& e) const {
  const uint8_t* p = data_ + e.begin;
  // The format does not align tensors (files holding odd-sized uint8 tensors before bf16
  // ones exist): a misaligned tensor is copied, as reading it in place would be undefined.
  const auto element = uint64_t(dtype_info(e.dtype).block_bytes);
  if (element > 1 && (element & (element - 1)) == 0 && reinterpret_cast<uintptr_t>(p) % element != 0) {
    Tensor copy = Tensor::zeros(e.dtype, e.shape);
    std::memcpy(copy.raw(), p, size_t(copy.nbytes()));
    return copy;
  }
  return Tensor::view(e.dtype, e.shape, p, owner_);
}

SafetensorsSet SafetensorsSet::open(const std::string& path) {
  namespace fs = std::filesystem;
  SafetensorsSet set;
  auto add_file = [&](const std::string& file) {
    set.files_.push_back(SafetensorsFile::open(file));
    return set.files_.back().get();
  };
  std::error_code ec;
  if (fs::is_regular_file(path, ec)) {
    const SafetensorsFile* f = add_file(path);
    for (const auto& e : f->entries()) set.tensors_[e.name] = {f, &e};
    set.origin_ = path;
    return set;
  }
  if (!fs::is_directory(path, ec)) fail("{}: no such file or folder", path);
  const std::string index_path = (fs::path(path) / "model.safetensors.index.json").string();
  const std::string single_path = (fs::path(path) / "model.safetensors").string();
  if (file_exists(index_path)) {
    set.origin_ = index_path;
    json index;
    try {
      index = json::parse(read_file(index_path));
    } catch (const json::exception& e) {
      fail("{}: not valid JSON: {}", index_path, e.what());
    }
    if (!index.is_object() || !index.contains("weight_map") || !index["weight_map"].is_object())
      fail("{}: expected an object with a 'weight_map' object", index_path);
    std::map<std::string, const SafetensorsFile*> shards;
    for (auto it = index["weight_map"].begin(); it != index["weight_map"].end(); ++it) {
      if (!it.value().is_string()) fail("{}: weight_map['{}'] must be a file name", index_path, it.key());
      const std::string shard = it.value().get<std::string>();
      if (shard.find('/') != std::string::npos || shard == ".." || shard.empty())
        fail("{}: weight_map['{}'] names '{}', which is not a file in the same folder", index_path, it.key(), shard);
      if (!shards.count(shard)) {
        const std::string shard_path = (fs::path(path) / shard).string();
        if (!file_exists(shard_path))
          fail("{}: shard '{}' (holding '{}') is missing from the folder", index_path, shard, it.key());
        shards[shard] = add_file(shard_path);
      }
      const SafetensorsFile* f = shards[shard];
      const SafetensorsEntry* e = f->find(it.key());
      if (!e) fail("{}: tensor '{}' is listed in shard '{}' but that file does not hold it", index_path, it.key(), shard);
      set.tensors_[it.key()] = {f, e};
    }
    return set;
  }
  if (file_exists(single_path)) {
    const SafetensorsFile* f = add_file(single_path);
    for (const auto& e : f->entries()) set.tensors_[e.name] = {f, &e};
    set.origin_ = single_path;
    return set;
  }
  fail("{}: no model.safetensors or model.safetensors.index.json in this folder", path);
}

const SafetensorsSet::Located* SafetensorsSet::find(const std::string& name) const {
  auto it = tensors_.find(name);
  return it == tensors_.end() ? nullptr : &it->second;
}

Tensor SafetensorsSet::tensor(const std::string& name) const {
  const Located* l = find(name);
  if (!l) fail("{}: no tensor named '{}'", origin_, name);
  return l->file->tensor(*l->entry);
}

std::vector<std::string> SafetensorsSet::names() const {
  std::vector<std::string> out;
  for (const auto& [k, v] : tensors_) out.push_back(k);
  return out;
}

std::string SafetensorsSet::description() const { return origin_; }

void SafetensorsWriter::check_new(const std::string& name, DType dtype) const {
  if (is_block_format(dtype))
    fail("cannot write tensor '{}' of block format {} to safetensors", name, dtype_name(dtype));
  for (const Entry& e : entries_) {
    if (e.name == name) fail("tensor '{}' added twice to a safetensors file", name);
  }
}

void SafetensorsWriter::add(const std::string& name, const Tensor& tensor) {
  check_new(name, tensor.dtype());
  entries_.push_back({name, tensor.dtype(), tensor.shape(), tensor, nullptr});
}

void SafetensorsWriter::add_generated(const std::string& name, DType dtype, Shape shape, Fill fill) {
  check_new(name, dtype);
  entries_.push_back({name, dtype, std::move(shape), Tensor(), std::move(fill)});
}

// As the safetensors library writes: wider elements first (stable within a width), so every
// tensor starts aligned to its element size.
std::vector<const SafetensorsWriter::Entry*> SafetensorsWriter::ordered() const {
  std::vector<const Entry*> out;
  for (const Entry& e : entries_) out.push_back(&e);
  std::stable_sort(out.begin(), out.end(), [](const Entry* a, const Entry* b) {
    return dtype_info(a->dtype).block_bytes > dtype_info(b->dtype).block_bytes;
  });
  return out;
}

std::string SafetensorsWriter::header() const {
  json header = json::object();
  if (!metadata_.empty()) header["__metadata__"] = metadata_;
  uint64_t offset = 0;
  for (const Entry* ep : ordered()) {
    const Entry& e = *ep;
    const uint64_t bytes = uint64_t(e.bytes());
    header[e.name] = {{"dtype", std::string(dtype_to_safetensors(e.dtype))},
                      {"shape", e.shape},
                      {"data_offsets", {offset, offset + bytes}}};
    offset += bytes;
  }
  std::string h = header.dump();
  while (h.size() % 8 != 0) h.push_back(' ');  // keep the data section 8-byte aligned
  std::string out;
  const uint64_t n = h.size();
  for (int i = 0; i < 8; ++i) out.push_back(char((n >> (8 * i)) & 0xff));
  return out + h;
}

std::string SafetensorsWriter::serialize() const {
  std::string out = header();
  for (const Entry* ep : ordered()) {
    const Entry& e = *ep;
    const size_t at = out.size();
    out.resize(at + size_t(e.bytes()));
    if (e.fill) {
      e.fill(out.data() + at);
    } else if (e.bytes() > 0) {
      std::memcpy(out.data() + at, e.data.raw(), size_t(e.bytes()));
    }
  }
  return out;
}

void SafetensorsWriter::write(const std::string& path) const {
  const std::string tmp = path + ".tmp";
  {
    std::ofstream out(tmp, std::ios::binary | std::ios::trunc);
    if (!out) fail("{}: cannot create: {}", tmp, std::strerror(errno));
    const std::string h = header();
    out.write(h.data(), std::streamsize(h.size()));
    std::vector<char> buffer;
    for (const Entry* ep : ordered()) {
      const Entry& e = *ep;
      const char* bytes = static_cast<const char*>(e.data.raw());
      if (e.fill) {
        buffer.assign(size_t(e.bytes()), 0);
        e.fill(buffer.data());
        bytes = buffer.data();
      }
      out.write(bytes, std::streamsize(e.bytes()));
    }
    out.flush();
    if (!out) fail("{}: write error: {}", tmp, std::strerror(errno));
  }
  if (std::rename(tmp.c_str(), path.c_str()) != 0) fail("{}: cannot rename from {}: {}", path, tmp, std::strerror(errno));
}

}  // namespace unicorn
