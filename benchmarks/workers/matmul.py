"""Benchmark worker: the machine's float32 matmul rate, the yardstick of the epoch times.

Times (n x n) @ (n x n) float32 matmuls with torch on --threads threads, in
chunks, and reports the median chunk's GFLOP/s (2 n^3 FLOP per matmul) and
the best. The driver runs it before and after the systems. Runs in the
project's .venv.

    python benchmarks/workers/matmul.py --result /tmp/m.json
"""
from __future__ import annotations

import argparse
import json
import os
import statistics
import time


def parse_args() -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--result", required=True, help="where to write the JSON result")
    p.add_argument("--size", type=int, default=2048, help="matrix side n (default: 2048)")
    p.add_argument("--chunks", type=int, default=5, help="timed chunks (default: 5)")
    p.add_argument("--per-chunk", type=int, default=5, help="matmuls per chunk (default: 5)")
    p.add_argument("--threads", type=int, default=os.cpu_count(), help="threads (default: all cores)")
    return p.parse_args()


def gflops(size: int, matmuls: int, seconds: float) -> float:
    return 2.0 * size**3 * matmuls / seconds / 1e9


def main() -> None:
    args = parse_args()
    import torch

    torch.set_num_threads(args.threads)
    a = torch.randn(args.size, args.size)
    b = torch.randn(args.size, args.size)
    out = torch.empty(args.size, args.size)
    for _ in range(2):  # warm-up: thread pool, page faults, caches
        torch.mm(a, b, out=out)
    rates = []
    for _ in range(args.chunks):
        t0 = time.perf_counter()
        for _ in range(args.per_chunk):
            torch.mm(a, b, out=out)
        rates.append(gflops(args.size, args.per_chunk, time.perf_counter() - t0))
    result = {"gflops": statistics.median(rates), "gflops_best": max(rates), "chunks": rates,
              "size": args.size, "threads_used": torch.get_num_threads(), "torch": torch.__version__}
    with open(args.result, "w") as f:
        json.dump(result, f)
    print(json.dumps(result))


if __name__ == "__main__":
    main()
