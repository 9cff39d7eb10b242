#!/usr/bin/env bash
# The SASS (machine code) that CUDA's ptxas makes of one of our .cu files, for counting what a
# kernel's loop issues, on a machine whose CUDA toolkit has nvcc and ptxas but no disassembler
# (this project's development VM: /usr/local/cuda has no cuobjdump or nvdisasm).
#
# The disassembler comes from Debian's non-free nvidia-cuda-toolkit package (CUDA 11.8, which
# knows sm_90), downloaded once into ~/.cache/unicorn-sass without installing anything. Newer
# toolkits write cubins with another ELF ABI version and flag layout, so the cubin's header is
# rewritten to the 11.8 form first (the instructions themselves are the same sm_90 ones).
# Developer tooling only: no build or test uses it.
#
# Usage: scripts/cuda-sass.sh FILE.cu [KERNEL_SUBSTRING]   (default arch sm_90a; ARCH=sm_90 to change)
#   e.g. scripts/cuda-sass.sh src/backends/cuda/cuda_matvec.cu 'WFmtE6ELi1ELi1ELi16E'
# Prints the kernels' disassembly (only those whose mangled name contains KERNEL_SUBSTRING),
# a count of instructions by opcode for them, and each one's instruction count and the size of
# its largest loop (what a trip of its main loop issues, branches off the loop's path included).
set -euo pipefail
src=${1:?usage: scripts/cuda-sass.sh FILE.cu [KERNEL_SUBSTRING]}
want=${2:-}
arch=${ARCH:-sm_90a}
root=$(cd "$(dirname "$0")/.." && pwd)
nvcc=${NVCC:-/usr/local/cuda/bin/nvcc}
cache=${XDG_CACHE_HOME:-$HOME/.cache}/unicorn-sass
disasm=$cache/usr/bin/nvdisasm

if [[ ! -x $disasm ]]; then
  mkdir -p "$cache/lists/partial" "$cache/deb"
  echo "deb http://deb.debian.org/debian bookworm non-free" > "$cache/sources.list"
  opts=(-o "Dir::Etc::SourceList=$cache/sources.list" -o Dir::Etc::SourceParts=/dev/null
        -o "Dir::State::Lists=$cache/lists")
  apt-get "${opts[@]}" update > /dev/null
  (cd "$cache/deb" && apt-get "${opts[@]}" download nvidia-cuda-toolkit > /dev/null 2>&1)
  dpkg -x "$cache"/deb/nvidia-cuda-toolkit_*.deb "$cache"
  [[ -x $disasm ]] || { echo "cuda-sass: no nvdisasm in Debian's nvidia-cuda-toolkit" >&2; exit 1; }
fi

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
"$nvcc" -std=c++20 -arch="$arch" --expt-relaxed-constexpr -I"$root/src" -cubin -o "$work/in.cubin" "$src"
python3 - "$work/in.cubin" "$work/old.cubin" <<'PY'
import struct, sys
b = bytearray(open(sys.argv[1], "rb").read())
b[7], b[8] = 33, 7  # EI_OSABI, EI_ABIVERSION as CUDA 11.8 writes them
sm = 90             # e_flags (offset 0x30 in ELF64): 11.8's layout, sm_90 real and virtual
struct.pack_into("<I", b, 0x30, sm | (5 << 8) | (sm << 16))
open(sys.argv[2], "wb").write(b)
PY
"$disasm" -c "$work/old.cubin" > "$work/all.sass"
# One pass over the disassembly: the picked kernels' text, then their opcodes counted, then each
# one's instruction count and largest loop.
python3 - "$work/all.sass" "$want" <<'PY'
import collections, re, sys
want = sys.argv[2]
kernels = {}  # name -> (instructions, label -> index)
name = None
for line in open(sys.argv[1]):
    m = re.match(r"^//-+ \.text\.(\S+)", line)
    if m:
        name = m.group(1) if want in m.group(1) else None
        if name:
            kernels[name] = ([], {})
    if name is None:
        continue
    print(line, end="")
    instr, labels = kernels[name]
    m = re.match(r"^(\.L_x_\d+):", line)
    if m:
        labels[m.group(1)] = len(instr)
        continue
    m = re.match(r"^\s+/\*[0-9a-f]+\*/\s+(.*?)\s*;", line)
    if m and "NOP" not in m.group(1):
        instr.append(m.group(1))
print("== instructions by opcode")
opcodes = collections.Counter(
    re.sub(r"^@!?U?P\w+ ", "", text).split()[0].split(".")[0] for instr, _ in kernels.values() for text in instr)
for op, n in opcodes.most_common():
    print(f"{n:7d} {op}")
print("== each kernel: instructions, and those of its largest loop (label to backward branch)")
for name, (instr, labels) in kernels.items():
    loop = 0
    for i, text in enumerate(instr):
        m = re.search(r"BRA.*`\((\.L_x_\d+)\)", text)
        if m and labels.get(m.group(1), i) < i:
            loop = max(loop, i - labels[m.group(1)])
    print(f"{len(instr):6d} {loop:6d}  {name}")
PY
