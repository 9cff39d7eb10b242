#include "models/gemma3/weights.h"

#include <algorithm>
#include <set>

#include "core/error.h"
#include "core/quant/nf4.h"
#include "formats/bnb.h"
#include "core/quant/quant.h"

namespace unicorn::gemma3 {

namespace {

// Tensors a checkpoint may hold that the model does not use.
bool ignorable(const std::string& name) {
  static const char* const kSuffixes[] = {"lm_head.weight", "rotary_emb.inv_freq"};
  for (const char* s : kSuffixes) {
    const std::string suffix = s;
    if (name.size() >= suffix.size() && name.compare(name.size() - suffix.size(), suffix.size(), suffix) == 0)
      return true;
  }
  // SigLIP's attention-pooling head (vision_use_head) is not part of Gemma 3's vision path.
  return name.find("vision_model.head.") != std::string::npos || name.find("vision_tower.head.") != std::string::npos;
}

}  // namespace

Weights Weights::from_safetensors(std::shared_ptr<const SafetensorsSet> files, const Config& config) {
  Weights w;
  w.files_ = files;
  w.specs_ = tensor_table(config);
  const std::string where = files->description();

  // Each component's prefix: the first candidate under which its first tensor exists.
  for (Component c : {Component::Text, Component::Vision, Component::Projector}) {
    auto first = std::find_if(w.specs_.begin(), w.specs_.end(), [c](const TensorSpec& s) { return s.component == c; });
    if (first == w.specs_.end()) continue;
    const std::vector<std::string> prefixes = hf_prefixes(c, config.multimodal());
    auto found = std::find_if(prefixes.begin(), prefixes.end(),
                              [&](const std::string& p) { return files->find(p + first->inner) != nullptr; });
    if (found == prefixes.end()) {
      std::string tried;
      for (const auto& p : prefixes) tried += (tried.empty() ? "'" : ", '") + p + first->inner + "'";
      fail("{}: no {} weights found (looked for {}); is this a Gemma 3 checkpoint of architecture {}?", where,
           component_name(c), tried, config.architecture);
    }
    w.prefixes_[size_t(c)] = *found;
  }

  // Every expected tensor: present, right shape, a float type we compute with (or, for the
  // matrices of linear layers, bitsandbytes 4-bit).
  std::set<std::string> used;
  std::map<std::string, Tensor> nf4;
  for (const TensorSpec& spec : w.specs_) {
    const std::string name = w.prefix(spec.component) + spec.inner;
    if (spec.matrix && bnb::is_4bit(*files, name)) {
      const Tensor t = bnb::load_4bit(*files, name);
      if (t.shape() != spec.shape)
        fail("{}: 4-bit tensor '{}' has shape {}, expected {} from config.json", where, name, shape_str(t.shape()),
             shape_str(spec.shape));
      for (const std::string& e : bnb::entry_names(name))
        if (files->find(e)) used.insert(e);
      nf4[spec.canonical] = t;
      continue;
    }
    const auto* loc = files->find(name);
    if (!loc)
      fail("{}: missing tensor '{}' ({} weight {}, expected shape {})", where, name, component_name(spec.component),
           spec.canonical, shape_str(spec.shape));
    const Tensor t = loc->file->tensor(*loc->entry);
    if (t.shape() != spec.shape)
      fail("{}: tensor '{}' has shape {}, expected {} from config.json", loc->file->path(), name,
           shape_str(t.shape()), shape_str(spec.shape));
    if (t.dtype() != DType::BF16 && t.dtype() != DType::F16 && t.dtype() != DType::F32)
      fail("{}: tensor '{}' has dtype {}, expected BF16, F16 or F32", loc->file->path(), name, dtype_name(t.dtype()));
    used.insert(name);
  }
  std::vector<std::string> unknown;
  for (const std::string& name : files->names()) {
    if (!used.count(name) && !ignorable(name)) unknown.push_back(name);
  }
  if (!unknown.empty()) {
    std::string list;
    for (size_t i = 0; i < unknown.size() && i < 5; ++i) list += (i ? ", '" : "'") + unknown[i] + "'";
    fail("{}: {} tensor(s) that a {} with this config.json does not have: {}{} (config and weights disagree?)", where,
         unknown.size(), config.architecture, list, unknown.size() > 5 ? ", ..." : "");
  }
  // All checks passed: now take the views.
  for (const TensorSpec& spec : w.specs_) {
    auto q = nf4.find(spec.canonical);
    w.tensors_[spec.canonical] = q != nf4.end() ? q->second : files->tensor(w.prefix(spec.component) + spec.inner);
  }
  return w;
}

Weights Weights::from_tensors(std::map<std::string, Tensor> tensors, const Config& config, const std::string& where,
                              bool allow_block_formats) {
  Weights w;
  w.specs_ = tensor_table(config);
  std::set<std::string> expected;
  for (const TensorSpec& spec : w.specs_) {
    expected.insert(spec.canonical);
    auto it = tensors.find(spec.canonical);
    if (it == tensors.end())
      fail("{}: missing tensor '{}' ({} weight {}, expected shape {})", where, spec.gguf, component_name(spec.component),
           spec.canonical, shape_str(spec.shape));
    const Tensor& t = it->second;
    if (t.shape() != spec.shape)
      fail("{}: tensor '{}' ({}) has shape {}, expected {} from the model's configuration", where, spec.gguf,
           spec.canonical, shape_str(t.shape()), shape_str(spec.shape));
    const DType d = t.dtype();
    const bool plain_float = d == DType::BF16 || d == DType::F16 || d == DType::F32;
    const bool block_ok = allow_block_formats && spec.matrix && is_block_format(d) && d != DType::NF4;
    if (!plain_float && !block_ok)
      fail("{}: tensor '{}' ({}) has dtype {}, expected F32, F16 or BF16{}", where, spec.gguf, spec.canonical,
           dtype_name(d), allow_block_formats && spec.matrix ? " or a ggml block format" : "");
  }
  for (const auto& [name, t] : tensors) {
    if (!expected.count(name)) fail("{}: weight '{}' is not part of a {} with this configuration", where, name, config.architecture);
  }
  w.tensors_ = std::move(tensors);
  return w;
}

const Tensor& Weights::get(const std::string& canonical) const {
  auto it = tensors_.find(canonical);
  if (it == tensors_.end()) fail("internal: no weight '{}'", canonical);
  return it->second;
}

void Weights::quantize_text_matrices(DType target, DType fallback, ThreadPool* pool) {
  for (DType t : {target, fallback})
    if (t != DType::NF4 && !can_quantize_to(t)) fail("cannot quantize weights to {}", dtype_name(t));
  for (const TensorSpec& spec : specs_) {
    if (spec.component != Component::Text || !spec.matrix) continue;
    Tensor& t = tensors_.at(spec.canonical);
    if (target == DType::NF4) {  // blocks over the flattened tensor: any shape
      if (t.dtype() != DType::NF4) t = nf4::quantize_tensor(t, true);
      continue;
    }
    const int64_t cols = t.dim(1);
    DType to = target;
    if (cols % dtype_info(to).block_elems) to = fallback;
    if (cols % dtype_info(to).block_elems || t.dtype() == to) continue;
    // From another 4-bit format (the NF4-stored demo model) through its dequantized values.
    const bool plain = t.dtype() == DType::BF16 || t.dtype() == DType::F16 || t.dtype() == DType::F32;
    t = quantize_matrix(plain ? t : t.converted(DType::F32), to, pool);
  }
}

ComponentStats Weights::stats(Component c) const {
  ComponentStats s;
  for (const TensorSpec& spec : specs_) {
    if (spec.component != c) continue;
    const Tensor& t = get(spec.canonical);
    int64_t bytes = t.nbytes();
    if (t.dtype() == DType::NF4) bytes += nf4::state_of(t).bytes();  // scales beside the codes
    s.parameters += t.numel();
    s.bytes += bytes;
    s.bytes_by_dtype[std::string(dtype_name(t.dtype()))] += bytes;
  }
  return s;
}

}  // namespace unicorn::gemma3
