// unicorn devices: what this machine offers the engine: the CPU (model, SIMD features the
// kernels use, cores, memory) and each CUDA GPU (name, memory, compute capability), with the
// --device name that selects it.
#include <fmt/format.h>
#include <hwy/targets.h>
#include <sys/sysinfo.h>

#include <fstream>
#include <set>
#include <sstream>
#include <string>
#include <thread>

#include "backends/cuda/cuda_backend.h"
#include "cli/commands.h"

namespace unicorn::cli {

namespace {

struct CpuInfo {
  std::string model = "unknown CPU";
  std::set<std::string> flags;
  int physical_cores = 0;
};

CpuInfo read_cpuinfo() {
  CpuInfo c;
  std::ifstream f("/proc/cpuinfo");
  std::string line;
  std::set<std::pair<std::string, std::string>> cores;  // (physical id, core id)
  std::string physical;
  while (std::getline(f, line)) {
    const auto colon = line.find(':');
    if (colon == std::string::npos) continue;
    std::string key = line.substr(0, colon), value = colon + 2 <= line.size() ? line.substr(colon + 2) : "";
    while (!key.empty() && (key.back() == ' ' || key.back() == '\t')) key.pop_back();
    if (key == "model name") c.model = value;
    if (key == "physical id") physical = value;
    if (key == "core id") cores.insert({physical, value});
    if (key == "flags" && c.flags.empty()) {
      std::istringstream words(value);
      for (std::string w; words >> w;) c.flags.insert(w);
    }
  }
  c.physical_cores = int(cores.size());
  return c;
}

std::string gib(int64_t bytes) { return fmt::format("{:.1f} GiB", double(bytes) / double(1LL << 30)); }

int run_devices() {
  const CpuInfo cpu = read_cpuinfo();
  const unsigned threads = std::thread::hardware_concurrency();
  struct sysinfo si {};
  sysinfo(&si);
  const int64_t total = int64_t(si.totalram) * si.mem_unit, avail = int64_t(si.freeram + si.bufferram) * si.mem_unit;
  // What the kernels can use: Highway's best targets on this CPU, and the x86 features the
  // quantized kernels look for.
  std::string simd;
  for (int64_t t : hwy::SupportedAndGeneratedTargets()) simd += (simd.empty() ? "" : " ") + std::string(hwy::TargetName(t));
  std::string features;
  for (const char* f : {"avx2", "fma", "f16c", "avx512f", "avx512bw", "avx512vl", "avx512_vnni", "avx512_bf16",
                        "avx_vnni", "amx_tile", "amx_int8", "amx_bf16"})
    if (cpu.flags.count(f)) features += (features.empty() ? "" : " ") + std::string(f);
  fmt::print("cpu      {}\n", cpu.model);
  fmt::print("         {} hardware threads{}, {} memory ({} available)\n", threads,
             cpu.physical_cores > 0 ? fmt::format(" on {} cores", cpu.physical_cores) : "", gib(total), gib(avail));
  fmt::print("         kernels: {}\n", simd.empty() ? "portable" : simd);
  if (!features.empty()) fmt::print("         features: {}\n", features);
  fmt::print("         --device cpu\n");

  std::string why;
  const auto gpus = cuda_devices(&why);
  for (const CudaDeviceInfo& d : gpus) {
    fmt::print("cuda:{}   {}\n", d.index, d.name);
    fmt::print("         {} memory ({} free), compute capability {}.{}, {} multiprocessors\n", gib(d.total_memory),
               gib(d.free_memory), d.cc_major, d.cc_minor, d.multiprocessors);
    if (d.peak_bandwidth_gbs() > 0)
      fmt::print("         memory bus {} bit, {:.0f} GB/s theoretical\n", d.memory_bus_bits, d.peak_bandwidth_gbs());
    fmt::print("         matrix products of many rows: {}\n", cuda_gemm_status());
    fmt::print("         --device cuda:{}\n", d.index);
  }
  if (gpus.empty()) fmt::print("cuda     none: {}\n", why);
  return 0;
}

const CommandRegistration reg(80, [](CLI::App& app, int& exit_code) {
  auto* cmd = app.add_subcommand("devices", "List the CPU and the GPUs this build can run on, with their --device names");
  cmd->callback([&exit_code] { exit_code = run_devices(); });
});

}  // namespace

}  // namespace unicorn::cli
