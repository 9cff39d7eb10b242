#include "formats/bnb.h"

#include <cstring>
#include <nlohmann/json.hpp>

#include "core/error.h"
#include "core/quant/nf4.h"

namespace unicorn::bnb {

namespace {

using json = nlohmann::json;
const char* const kStateSuffix = ".quant_state.bitsandbytes__nf4";

std::vector<float> f32_values(const SafetensorsSet& files, const std::string& name, int64_t expected, bool exact) {
  const auto* loc = files.find(name);
  if (!loc) fail("{}: missing bitsandbytes quant-state entry '{}'", files.description(), name);
  const Tensor t = loc->file->tensor(*loc->entry);
  if (t.dtype() != DType::F32) fail("{}: '{}' must be float32, got {}", loc->file->path(), name, dtype_name(t.dtype()));
  if (exact ? t.numel() != expected : t.numel() < expected)
    fail("{}: '{}' holds {} values, expected {}", loc->file->path(), name, t.numel(), expected);
  return t.to_f32();
}

DType dtype_named(const std::string& s, const std::string& where) {
  if (s == "bfloat16") return DType::BF16;
  if (s == "float16") return DType::F16;
  if (s == "float32") return DType::F32;
  fail("{}: unsupported original dtype '{}'", where, s);
}

}  // namespace

bool is_4bit(const SafetensorsSet& files, const std::string& name) {
  return files.find(name + kStateSuffix) != nullptr;
}

std::vector<std::string> entry_names(const std::string& name) {
  return {name,
          name + ".absmax",
          name + ".quant_map",
          name + ".nested_absmax",
          name + ".nested_quant_map",
          name + kStateSuffix};
}

Tensor load_4bit(const SafetensorsSet& files, const std::string& name) {
  const std::string where = files.description() + ": '" + name + "'";
  const auto* state_loc = files.find(name + kStateSuffix);
  if (!state_loc) fail("{}: no bitsandbytes quant state ('{}{}')", where, name, kStateSuffix);
  const Tensor blob = state_loc->file->tensor(*state_loc->entry);
  if (blob.dtype() != DType::U8) fail("{}: the packed quant state must be uint8", where);
  json j;
  try {
    j = json::parse(std::string(static_cast<const char*>(blob.raw()), size_t(blob.nbytes())));
  } catch (const json::exception& e) {
    fail("{}: the packed quant state is not valid JSON: {}", where, e.what());
  }
  auto need = [&](const char* key) -> const json& {
    if (!j.contains(key)) fail("{}: quant state lacks '{}'", where, key);
    return j[key];
  };
  if (need("quant_type") != "nf4")
    fail("{}: quant_type {} is not supported (only nf4)", where, need("quant_type").dump());
  if (!need("shape").is_array() || need("shape").size() != 2)
    fail("{}: quant state 'shape' must be [out, in], got {}", where, need("shape").dump());
  Shape shape;
  for (const json& d : j["shape"]) {
    if (!d.is_number_integer() || d.get<int64_t>() <= 0) fail("{}: bad dimension in shape {}", where, j["shape"].dump());
    shape.push_back(d.get<int64_t>());
  }
  const int64_t numel = shape_numel(shape);
  auto state = std::make_shared<nf4::State>();
  if (!need("blocksize").is_number_integer() || j["blocksize"].get<int64_t>() <= 0 || j["blocksize"].get<int64_t>() % 2)
    fail("{}: bad blocksize {}", where, j["blocksize"].dump());
  state->blocksize = j["blocksize"].get<int64_t>();
  state->original_dtype = dtype_named(need("dtype").is_string() ? j["dtype"].get<std::string>() : "?", where);
  const int64_t blocks = (numel + state->blocksize - 1) / state->blocksize;
  state->quant_map = f32_values(files, name + ".quant_map", 16, true);

  const auto* codes_loc = files.find(name);
  if (!codes_loc) fail("{}: missing the packed weight '{}'", files.description(), name);
  const Tensor codes = codes_loc->file->tensor(*codes_loc->entry);
  if (codes.dtype() != DType::U8 || codes.numel() != (numel + 1) / 2)
    fail("{}: packed weight is {} {}, expected uint8 with {} bytes for shape {}", where, dtype_name(codes.dtype()),
         shape_str(codes.shape()), (numel + 1) / 2, shape_str(shape));

  const auto* absmax_loc = files.find(name + ".absmax");
  if (!absmax_loc) fail("{}: missing bitsandbytes quant-state entry '{}.absmax'", files.description(), name);
  const Tensor absmax = absmax_loc->file->tensor(*absmax_loc->entry);
  state->nested = j.contains("nested_offset");
  if (state->nested) {
    if (absmax.dtype() != DType::U8 || absmax.numel() != blocks)
      fail("{}: '{}.absmax' is {} {}, expected uint8 [{}] (double quantization)", where, name,
           dtype_name(absmax.dtype()), shape_str(absmax.shape()), blocks);
    state->qabsmax.assign(absmax.data<const uint8_t>(), absmax.data<const uint8_t>() + blocks);
    if (!j["nested_offset"].is_number()) fail("{}: nested_offset must be a number", where);
    state->offset = j["nested_offset"].get<float>();
    if (j.contains("nested_blocksize")) {
      if (!j["nested_blocksize"].is_number_integer() || j["nested_blocksize"].get<int64_t>() <= 0)
        fail("{}: bad nested_blocksize {}", where, j["nested_blocksize"].dump());
      state->nested_blocksize = j["nested_blocksize"].get<int64_t>();
    }
    const int64_t nested_blocks = (blocks + state->nested_blocksize - 1) / state->nested_blocksize;
    state->nested_absmax = f32_values(files, name + ".nested_absmax", nested_blocks, true);
    state->nested_code = f32_values(files, name + ".nested_quant_map", 256, true);
  } else {
    if (absmax.dtype() != DType::F32 || absmax.numel() != blocks)
      fail("{}: '{}.absmax' is {} {}, expected float32 [{}]", where, name, dtype_name(absmax.dtype()),
           shape_str(absmax.shape()), blocks);
    state->absmax = absmax.to_f32();
  }
  return Tensor::view(DType::NF4, shape, codes.raw(), nullptr).with_aux(std::move(state)).with_keepalive(codes);
}

void add_4bit(SafetensorsWriter& writer, const std::string& name, const Tensor& t) {
  const nf4::State& s = nf4::state_of(t);
  const int64_t numel = t.numel();
  Tensor codes = Tensor::zeros(DType::U8, {(numel + 1) / 2, 1});
  std::memcpy(codes.raw(), t.raw(), size_t((numel + 1) / 2));
  writer.add(name, codes);
  writer.add(name + ".quant_map", Tensor::from_f32(s.quant_map, {int64_t(s.quant_map.size())}));
  json j = {{"quant_type", "nf4"},
            {"blocksize", s.blocksize},
            {"dtype", s.original_dtype == DType::F16 ? "float16" : s.original_dtype == DType::F32 ? "float32" : "bfloat16"},
            {"shape", t.shape()}};
  if (s.nested) {
    Tensor q = Tensor::zeros(DType::U8, {int64_t(s.qabsmax.size())});
    std::memcpy(q.raw(), s.qabsmax.data(), s.qabsmax.size());
    writer.add(name + ".absmax", q);
    writer.add(name + ".nested_absmax", Tensor::from_f32(s.nested_absmax, {int64_t(s.nested_absmax.size())}));
    writer.add(name + ".nested_quant_map", Tensor::from_f32(s.nested_code, {int64_t(s.nested_code.size())}));
    j["nested_blocksize"] = s.nested_blocksize;
    j["nested_dtype"] = "float32";
    j["nested_offset"] = s.offset;
  } else {
    writer.add(name + ".absmax", Tensor::from_f32(s.absmax, {int64_t(s.absmax.size())}));
  }
  const std::string blob = j.dump();
  Tensor b = Tensor::zeros(DType::U8, {int64_t(blob.size())});
  std::memcpy(b.raw(), blob.data(), blob.size());
  writer.add(name + kStateSuffix, b);
}

}  // namespace unicorn::bnb
