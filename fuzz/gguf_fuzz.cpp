// libFuzzer target: GgufFile::open_buffer on arbitrary bytes. Invalid input must end in
// unicorn::Error; valid input must give tensors whose bytes lie inside the input (ASan checks
// the touches below) and must survive GgufWriter and a second parse unchanged.
#include <cstddef>
#include <cstdint>
#include <string>

#include "core/error.h"
#include "formats/gguf.h"
#include "formats/gguf_writer.h"

namespace {

void check(bool ok) {
  if (!ok) __builtin_trap();
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace unicorn;
  std::shared_ptr<GgufFile> f;
  try {
    f = GgufFile::open_buffer(data, size, "fuzz input");
  } catch (const Error&) {
    return 0;
  }
  GgufWriter w;
  for (const auto& [key, value] : f->metadata()) {
    (void)value.to_string();
    (void)value.as_int();
    (void)value.as_float();
    w.set(key, value);
  }
  volatile uint8_t sink = 0;
  size_t supported = 0;
  for (const GgufTensorInfo& t : f->tensors()) {
    // The bounds the parser promised: first and last byte of every tensor, in any type.
    const uint8_t* p = data + f->data_offset() + t.offset;
    sink = sink + p[0] + p[t.bytes - 1];
    try {
      const Tensor x = f->tensor(t);
      check(uint64_t(x.nbytes()) == t.bytes);
      w.add(t.name, x);
      ++supported;
    } catch (const Error&) {
      check(!t.type->dtype);  // only unsupported ggml types may refuse a view
    }
  }
  const std::string again = w.serialize();
  std::shared_ptr<GgufFile> g;
  try {
    g = GgufFile::open_buffer(again.data(), again.size(), "round trip");
  } catch (const Error&) {
    __builtin_trap();  // the writer produced a file the reader refuses
  }
  check(g->metadata().size() == f->metadata().size());
  check(g->tensors().size() == supported);
  for (size_t i = 0; i < f->metadata().size(); ++i) {
    check(g->metadata()[i].first == f->metadata()[i].first);
    check(g->metadata()[i].second.to_string(1u << 20) == f->metadata()[i].second.to_string(1u << 20));
  }
  return 0;
}
