#!/usr/bin/env python3
"""Reads a CUDA kernel trace (UNICORN_CUDA_TRACE=FILE from a build configured with
-DUNICORN_CUDA_TRACE=ON; see README, "CUDA") and prints where the last whole step's time went.

Each kernel is named by its shape (blocks x threads) and those of its neighbours, so the
kernels of a decode layer come apart (qkv: after a norm, before attention; gate/up: after a
norm, before down; ...). Per kernel: `cp`, from its input wait returning to the next kernel's
(what it adds to the critical path: its work, its drain, the next one's launch where that is
late), `start`, when its block 0 began against the previous kernel's wait (negative: it was
resident and waiting early), and `wait`, from its start to its own wait returning.

Usage: scripts/cuda-trace.py FILE [--steps N]  (N: steps to average, the last ones; default 3)
A step ends at a trace tick (a 1 x 32 marker kernel queued before each download of results).
"""
import argparse
import collections


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("file")
    ap.add_argument("--steps", type=int, default=3)
    args = ap.parse_args()
    starts, waits = [], []
    with open(args.file) as f:
        for line in f:
            kind, t, blocks, threads = (int(v) for v in line.split())
            (starts if kind == 0 else waits).append((t, blocks, threads))
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


if __name__ == "__main__":
    main()
