// libFuzzer target: SafetensorsFile::open_buffer on arbitrary bytes. Invalid input must end
// in unicorn::Error; valid input must give tensors whose bytes lie inside the input (ASan
// checks the touches below) and must survive SafetensorsWriter and a second parse.
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <string>

#include "core/error.h"
#include "formats/safetensors.h"

namespace {

void check(bool ok) {
  if (!ok) __builtin_trap();
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace unicorn;
  std::shared_ptr<SafetensorsFile> f;
  try {
    f = SafetensorsFile::open_buffer(data, size, "fuzz input");
  } catch (const Error&) {
    return 0;
  }
  SafetensorsWriter w;
  for (const auto& [k, v] : f->metadata()) w.set_metadata(k, v);
  volatile uint8_t sink = 0;
  for (const SafetensorsEntry& e : f->entries()) {
    const Tensor t = f->tensor(e);
    check(uint64_t(t.nbytes()) == e.end - e.begin);
    if (t.nbytes() > 0) {
      const uint8_t* p = static_cast<const uint8_t*>(t.raw());
      sink = sink + p[0] + p[t.nbytes() - 1];
    }
    w.add(e.name, t);
  }
  const std::string again = w.serialize();
  std::shared_ptr<SafetensorsFile> g;
  try {
    g = SafetensorsFile::open_buffer(again.data(), again.size(), "round trip");
  } catch (const Error&) {
    __builtin_trap();  // the writer produced a file the reader refuses
  }
  check(g->entries().size() == f->entries().size());
  check(g->metadata() == f->metadata());
  for (const SafetensorsEntry& e : f->entries()) {
    const SafetensorsEntry* h = g->find(e.name);
    check(h && h->dtype == e.dtype && h->shape == e.shape);
    if (e.end > e.begin) check(std::memcmp(g->tensor(*h).raw(), f->tensor(e).raw(), size_t(e.end - e.begin)) == 0);
  }
  return 0;
}
