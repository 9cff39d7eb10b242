#!/usr/bin/env python3
"""Reads a CUDA kernel trace (UNICORN_CUDA_TRACE=FILE from a build configured with
-DUNICORN_CUDA_TRACE=ON; see README, "CUDA") and prints where the last whole step's time went.

Each kernel is named by its shape (blocks x threads) and those of its neighbours, so the
kernels of a decode layer come apart (qkv: after a norm, before attention; gate/up: after a
norm, before down; ...). Per kernel: `cp`, from its input wait returning to the next kernel's
(what it adds to the critical path: its work, its drain, the next one's launch where that is
late), `start`, when its block 0 began against the previous kernel's wait (negative: it was
resident and waiting early), and `wait`, from its start to its own wait returning.

With --blocks, the streamed products (whose every block marks its input wait and its end) get
a second table: from block 0's wait, when the first and last blocks' waits returned, when the
median and the last block ended, and from the last block's end to the next kernel's wait (the
grid's completion and the next launch); `late` lists the blocks that ended last most often.
With --warps as well (each warp marks its end too), how far a block's last warp ends after its
median warp (the median over blocks, and in the block that ended last), and how far the last
block's last warp ends after the median block's last warp.

Usage: scripts/cuda-trace.py FILE [--steps N] [--blocks] [--warps]  (N: steps to average, the
last ones; default 3; --warps implies --blocks). A step ends at a trace tick (a 1 x 32 marker
kernel queued before each download of results).
"""
import argparse
import collections


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("file")
    ap.add_argument("--steps", type=int, default=3)
    ap.add_argument("--blocks", action="store_true")
    ap.add_argument("--warps", action="store_true")
    args = ap.parse_args()
    args.blocks |= args.warps
    starts, waits, block_waits, block_ends, warp_ends = [], [], [], [], []
    with open(args.file) as f:
        for line in f:
            kind, t, a, b = (int(v) for v in line.split())
            if kind == 4:
                if args.warps:
                    warp_ends.append((t, a & 0xFFFFF, b, a >> 20))
            elif args.blocks or kind < 2:
                [starts, waits, block_waits, block_ends][kind].append((t, a, b))
    if len(starts) != len(waits) or any(a[1:] != b[1:] for a, b in zip(starts, waits)):
        raise SystemExit("trace: starts and waits do not pair up (a kernel without both marks?)")
    ticks = [i for i, w in enumerate(waits) if w[1:] == (1, 32)]
    if len(ticks) < 2:
        raise SystemExit("trace: fewer than two steps (trace ticks) in the file")
    steps = list(zip(ticks[:-1], ticks[1:]))[-args.steps:]
    shape = lambda i: f"{waits[i][1]}x{waits[i][2]}"
    rows = collections.OrderedDict()
    for a, b in steps:
        for i in range(a + 1, b + 1):
            key = f"{shape(i - 1)} > {shape(i)} > {shape(i + 1) if i + 1 < len(waits) else '-'}"
            cp = (waits[i + 1][0] - waits[i][0]) / 1e3 if i + 1 < len(waits) else 0.0
            r = rows.setdefault(key, [0, 0.0, 0.0, 0.0])
            r[0] += 1
            r[1] += cp
            r[2] += (starts[i][0] - waits[i - 1][0]) / 1e3
            r[3] += (waits[i][0] - starts[i][0]) / 1e3
    total = sum((waits[b][0] - waits[a][0]) / 1e3 for a, b in steps)
    n = len(steps)
    print(f"{n} steps, {total / n:.1f} us a step (from tick to tick)")
    print(f"{'kernel (before > it > after)':44s} {'a step':>6s} {'cp us':>8s} {'start':>7s} {'wait':>6s} {'us a step':>10s}")
    for key, (count, cp, start, wait) in sorted(rows.items(), key=lambda kv: -kv[1][1]):
        print(f"{key:44s} {count / n:6.1f} {cp / count:8.2f} {start / count:7.2f} {wait / count:6.2f} {cp / n:10.1f}")
    if args.blocks:
        block_table(steps, waits, shape, sorted(block_waits), sorted(block_ends), sorted(warp_ends))


def block_table(steps, waits, shape, block_waits, block_ends, warp_ends):
    import bisect
    import statistics
    bw_t = [e[0] for e in block_waits]
    be_t = [e[0] for e in block_ends]
    we_t = [e[0] for e in warp_ends]
    warp_rows = collections.OrderedDict()
    rows = collections.OrderedDict()
    for a, b in steps:
        prev_bound = waits[a][0]
        for i in range(a + 1, b):
            t0, grid, t1 = waits[i][0], waits[i][1], waits[i + 1][0]
            ends = [e for e in block_ends[bisect.bisect_right(be_t, t0):bisect.bisect_left(be_t, t1)] if e[2] == grid]
            if len(ends) != grid:
                prev_bound = t0
                continue
            last_end = max(e[0] for e in ends)
            ws = [e for e in block_waits[bisect.bisect_right(bw_t, prev_bound):bisect.bisect_right(bw_t, last_end)]
                  if e[2] == grid]
            prev_bound = last_end
            if len(ws) != grid:
                continue
            key = f"{shape(i - 1)} > {shape(i)} > {shape(i + 1)}"
            r = rows.setdefault(key, {"n": 0, "w0": 0.0, "w1": 0.0, "med": 0.0, "end": 0.0, "drain": 0.0,
                                      "late": collections.Counter()})
            r["n"] += 1
            r["w0"] += (min(e[0] for e in ws) - t0) / 1e3
            r["w1"] += (max(e[0] for e in ws) - t0) / 1e3
            r["med"] += (statistics.median(e[0] for e in ends) - t0) / 1e3
            r["end"] += (last_end - t0) / 1e3
            r["drain"] += (t1 - last_end) / 1e3
            for e in sorted(ends)[-3:]:
                r["late"][e[1]] += 1
            if warp_ends:
                per = collections.defaultdict(list)  # block: its warps' ends
                for e in warp_ends[bisect.bisect_right(we_t, t0):bisect.bisect_left(we_t, t1)]:
                    if e[2] == grid:
                        per[e[1]].append(e[0])
                if len(per) == grid:
                    spread = {blk: max(v) - statistics.median(v) for blk, v in per.items()}
                    last_block = max(ends)[1]
                    lasts = [max(v) for v in per.values()]
                    w = warp_rows.setdefault(key, [0, 0.0, 0.0, 0.0])
                    w[0] += 1
                    w[1] += statistics.median(spread.values()) / 1e3
                    w[2] += spread[last_block] / 1e3
                    w[3] += (max(lasts) - statistics.median(lasts)) / 1e3
    print(f"\n{'streamed product (before > it > after)':44s} {'n':>4s} {'wait first':>10s} {'last':>6s}"
          f" {'end median':>10s} {'last':>6s} {'drain':>6s}  late blocks")
    for key, r in rows.items():
        c = r["n"]
        late = " ".join(f"{blk}:{k}" for blk, k in r["late"].most_common(4))
        print(f"{key:44s} {c:4d} {r['w0'] / c:10.2f} {r['w1'] / c:6.2f} {r['med'] / c:10.2f} {r['end'] / c:6.2f}"
              f" {r['drain'] / c:6.2f}  {late}")
    if warp_rows:
        print(f"\n{'streamed product (before > it > after)':44s} {'n':>4s} {'last warp - median warp: a block':>33s}"
              f" {'the last block':>15s} {'last block - median block':>26s}")
        for key, (c, typical, last, across) in warp_rows.items():
            print(f"{key:44s} {c:4d} {typical / c:33.2f} {last / c:15.2f} {across / c:26.2f}")


if __name__ == "__main__":
    main()
