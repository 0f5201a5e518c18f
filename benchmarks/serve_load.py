"""Load check of `cnnlab serve`: N concurrent clients for a fixed time, batching on and off.

    .venv/bin/python benchmarks/serve_load.py                     # trains the lecture's model 1 epoch
    .venv/bin/python benchmarks/serve_load.py --run runs/lecture-1 --seconds 20
    .venv/bin/python benchmarks/serve_load.py --clients 64 --seconds 600 --modes on   # memory soak

Each client (an asyncio task with its own keep-alive connection) sends one single-image
request after another: a 28x28 PNG of a rendered digit as an image/png body, so every request
is decoded and prepared as `cnnlab predict` does. Per (mode, clients): requests per
second, latency p50/p95/p99 in ms, errors (must be 0), and the server's resident
memory (MiB) at the start and end, sampled every 10% of the run. "off" is
`--max-batch 1 --max-wait-ms 0` (each request its own forward pass). The server and
the clients share the machine's cores: the figures are the pair's, on this machine.
Targets (issue 19, 2-core machine): p50 < 10 ms at 1 client, >= 1,000 predictions/s
at 64 clients, zero errors, memory flat over 10 minutes. Prints a Markdown table and
writes JSON with --json FILE. Exit 3 with --check if a target is missed.
"""
from __future__ import annotations

import argparse
import asyncio
import json
import os
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def train_lecture(root: Path) -> Path:
    from cnnlab.config import RunConfig
    from cnnlab.runner import train_run
    cfg = RunConfig.load(ROOT / "examples" / "lecture.yaml").with_overrides(
        data={"name": "mnist-sample"}, train={"epochs": 1})
    return train_run(cfg, out=root, name="lecture", quiet=True).run_dir


def rss_mib(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def start_server(run: Path, mode: str, port: int):
    import httpx
    flags = ["--max-batch", "1", "--max-wait-ms", "0"] if mode == "off" else []
    env = {**os.environ, "PYTHONPATH": str(ROOT / "src")}
    proc = subprocess.Popen([sys.executable, "-m", "cnnlab", "serve", str(run), "--runs-dir",
                             str(run.parent), "--port", str(port), *flags],
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, env=env)
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise SystemExit(f"the server exited: {proc.stderr.read().decode()}")
        try:
            if httpx.get(f"http://127.0.0.1:{port}/readyz", timeout=1).status_code == 200:
                return proc
        except httpx.TransportError:
            time.sleep(0.2)
    proc.kill()
    raise SystemExit("the server did not start in 120 s")


class Connection:
    """One keep-alive HTTP/1.1 connection written by hand: httpx's own overhead per request
    (~1 ms of CPU) would be measured instead of the server's on a 2-core machine."""

    def __init__(self, host, port, path, body):
        self.addr = (host, port)
        self.request = (f"POST {path} HTTP/1.1\r\nHost: {host}:{port}\r\nContent-Type: image/png\r\n"
                        f"Content-Length: {len(body)}\r\n\r\n").encode() + body
        self.reader = self.writer = None

    async def post(self) -> int:
        if self.writer is None:
            self.reader, self.writer = await asyncio.open_connection(*self.addr)
        self.writer.write(self.request)
        head = await self.reader.readuntil(b"\r\n\r\n")
        status = int(head.split(b" ", 2)[1])
        length = next(int(line.split(b":")[1]) for line in head.split(b"\r\n")
                      if line.lower().startswith(b"content-length:"))
        await self.reader.readexactly(length)
        return status

    def close(self):
        if self.writer is not None:
            self.writer.close()


async def load(port: int, path: str, body: bytes, clients: int, seconds: float, pid: int) -> dict:
    latencies, errors, memory = [], 0, [rss_mib(pid)]
    connections = [Connection("127.0.0.1", port, path, body) for _ in range(clients)]
    for c in connections:  # warm-up: connections, the model's first call
        await c.post()
    end = time.perf_counter() + seconds

    async def one_client(c):
        nonlocal errors
        while time.perf_counter() < end:
            t0 = time.perf_counter()
            try:
                ok = await c.post() == 200
            except (OSError, asyncio.IncompleteReadError, ValueError):
                ok = False
                c.close()
                c.writer = None
            if ok:
                latencies.append(time.perf_counter() - t0)
            else:
                errors += 1

    async def sample_memory():
        while time.perf_counter() < end:
            await asyncio.sleep(seconds / 10)
            memory.append(rss_mib(pid))
    t0 = time.perf_counter()
    await asyncio.gather(sample_memory(), *(one_client(c) for c in connections))
    elapsed = time.perf_counter() - t0
    for c in connections:
        c.close()
    ms = np.array(latencies) * 1000
    return {"clients": clients, "seconds": round(elapsed, 2), "requests": len(latencies),
            "per_second": round(len(latencies) / elapsed, 1), "errors": errors,
            "p50_ms": round(float(np.percentile(ms, 50)), 2) if len(ms) else None,
            "p95_ms": round(float(np.percentile(ms, 95)), 2) if len(ms) else None,
            "p99_ms": round(float(np.percentile(ms, 99)), 2) if len(ms) else None,
            "rss_mib": [round(m, 1) for m in memory]}


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--run", help="run to serve (default: the lecture's model trained 1 epoch "
                   "on mnist-sample in a temporary folder)")
    p.add_argument("--clients", default="1,8,64", help="concurrent clients, comma-separated "
                   "(default: 1,8,64)")
    p.add_argument("--modes", default="on,off", help="dynamic batching on, off or both (default: on,off)")
    p.add_argument("--seconds", type=float, default=10.0, help="seconds per cell (default: 10)")
    p.add_argument("--json", help="also write the results here (default: none)")
    p.add_argument("--check", action="store_true", help="exit 3 if a target is missed")
    args = p.parse_args()
    from cnnlab.images import render_digit_png
    body = render_digit_png(7, size=(28, 28))
    with tempfile.TemporaryDirectory() as tmp:
        run = Path(args.run) if args.run else train_lecture(Path(tmp))
        rows = []
        for mode in args.modes.split(","):
            port = free_port()
            server = start_server(run, mode, port)
            try:
                path = f"/v1/models/{run.name}/predict"
                for n in map(int, args.clients.split(",")):
                    r = asyncio.run(load(port, path, body, n, args.seconds, server.pid))
                    rows.append({"batching": mode, **r})
                    print(f"batching {mode:3} clients {n:3}: {r['per_second']:8.1f}/s  p50 "
                          f"{r['p50_ms']} ms  p95 {r['p95_ms']} ms  p99 {r['p99_ms']} ms  errors "
                          f"{r['errors']}  RSS {r['rss_mib'][0]:.0f} -> {r['rss_mib'][-1]:.0f} MiB",
                          flush=True)
            finally:
                server.terminate()
                server.wait(60)
    print("\n| batching | clients | predictions/s | p50 ms | p95 ms | p99 ms | errors | RSS MiB start -> end |")
    print("| --- | ---: | ---: | ---: | ---: | ---: | ---: | --- |")
    for r in rows:
        print(f"| {r['batching']} | {r['clients']} | {r['per_second']:.0f} | {r['p50_ms']} | {r['p95_ms']} "
              f"| {r['p99_ms']} | {r['errors']} | {r['rss_mib'][0]:.0f} -> {r['rss_mib'][-1]:.0f} |")
    print(f"\nmachine: {os.cpu_count()} cores, load average {os.getloadavg()[0]:.2f} at the end")
    if args.json:
        Path(args.json).write_text(json.dumps({"rows": rows, "cpu_count": os.cpu_count()}, indent=2))
    missed = [r for r in rows if r["errors"]]
    missed += [r for r in rows if r["clients"] == 1 and (r["p50_ms"] or 1e9) >= 10]
    missed += [r for r in rows if r["clients"] == 64 and r["batching"] == "on" and r["per_second"] < 1000]
    if missed:
        print(f"targets missed by: {[(r['batching'], r['clients']) for r in missed]}")
    return 3 if args.check and missed else 0


if __name__ == "__main__":
    sys.exit(main())
