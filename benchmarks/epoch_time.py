"""Issue 6's benchmark: cnnlab against tf.keras, Keras 3 (JAX, torch) and PyTorch eager.

Trains the lecture's model on the same in-memory data with each system, one
subprocess per system in its own venv (benchmarks/setup.sh makes them), the
systems alternating round by round to cancel drift. Prints, per system, the
median seconds per epoch (first epoch of each run excluded as warm-up), the
ratio to tf.keras, achieved GFLOP/s and its share of the matmul rate measured
in the same run, peak RSS, inference images/s at batch 1000 and single-image
predict latency; then issue 6's targets for cnnlab. Writes everything to
benchmarks/out/epoch_time.json.

    .venv/bin/python benchmarks/epoch_time.py                     # full: 60000 images, 3 epochs
    .venv/bin/python benchmarks/epoch_time.py --epochs 2 --images 12000 --rounds 1
    .venv/bin/python benchmarks/epoch_time.py --time-to-accuracy  # Fashion-MNIST, lecture vs fast
    .venv/bin/python benchmarks/epoch_time.py --variants --check  # every examples/improve.yaml model
"""
from __future__ import annotations

import argparse
import enum
import json
import os
import platform
import statistics
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE / "workers"))  # lecture.py, shared with the workers

import datasets  # noqa: E402
import lecture  # noqa: E402
import report  # noqa: E402
import variants  # noqa: E402

REPO = HERE.parent
WORKERS = HERE / "workers"
VENVS = HERE / ".venvs"
OUT = HERE / "out"


class ExitStatus(enum.IntEnum):
    OK = 0
    ERROR = 1
    USAGE = 2
    TARGET_MISSED = 3  # only with --check


@dataclass(frozen=True)
class System:
    name: str
    worker: str  # file in benchmarks/workers/
    venv: str | None  # folder in benchmarks/.venvs/; None: the project's .venv
    env: dict = field(default_factory=dict)


SYSTEMS = {s.name: s for s in (
    System("cnnlab", "cnnlab_worker.py", None),
    System("tf-keras", "tfkeras.py", "tf"),
    System("keras-jax", "keras3.py", "keras-jax", {"KERAS_BACKEND": "jax"}),
    System("keras-torch", "keras3.py", "keras-torch", {"KERAS_BACKEND": "torch"}),
    System("torch-eager", "torch_eager.py", None),
)}
EPOCH_SYSTEMS = "cnnlab,tf-keras,keras-jax,keras-torch,torch-eager"
TTA_SYSTEMS = "cnnlab,tf-keras"


@dataclass(frozen=True)
class Run:
    """One line of the benchmark: a system trained with one recipe."""
    label: str
    system: System
    recipe: str = "lecture"


def parse_args(argv=None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--epochs", type=int, default=None,
                   help="epochs per system and round; the first is warm-up, excluded from the "
                        "median (default: 3; 10, the lecture's, with --time-to-accuracy)")
    p.add_argument("--rounds", type=int, default=1,
                   help="times each system runs; rounds alternate the order (default: 1)")
    p.add_argument("--systems", default=None,
                   help=f"comma-separated, from {', '.join(SYSTEMS)}; a system whose venv is "
                        f"missing is skipped (default: {EPOCH_SYSTEMS}; {TTA_SYSTEMS} with "
                        "--time-to-accuracy)")
    p.add_argument("--images", type=int, default=60_000,
                   help="training images per epoch (default: 60000; all of Fashion-MNIST's "
                        "train set with --time-to-accuracy)")
    p.add_argument("--dataset", choices=("synthetic", "fashion-mnist"), default="synthetic",
                   help="data of the epoch-time mode (default: synthetic)")
    p.add_argument("--seed", type=int, default=0, help="data and framework seed (default: 0)")
    p.add_argument("--threads", type=int, default=len(os.sched_getaffinity(0)),
                   help="threads every system uses (default: all cores, here "
                        f"{len(os.sched_getaffinity(0))})")
    p.add_argument("--latency-calls", type=int, default=200,
                   help="timed single-image predicts per run (default: 200)")
    p.add_argument("--time-to-accuracy", action="store_true",
                   help="instead of epoch times: on full Fashion-MNIST, cnnlab's lecture "
                        "schedule vs its fast recipe (and tf.keras's lecture schedule)")
    p.add_argument("--target-accuracy", type=float, default=None,
                   help="validation accuracy to reach with --time-to-accuracy (default: the "
                        "final accuracy of cnnlab's lecture schedule, else tf.keras's)")
    p.add_argument("--fashion-dir", type=Path, default=datasets.FASHION_MNIST_DIR,
                   help=f"Fashion-MNIST's IDX files (default: {datasets.FASHION_MNIST_DIR})")
    p.add_argument("--timeout", type=float, default=3600,
                   help="seconds before a worker is stopped (default: 3600)")
    p.add_argument("--out", type=Path, default=None,
                   help="the JSON record (default: benchmarks/out/epoch_time.json, or "
                        "benchmarks/out/time_to_accuracy.json)")
    p.add_argument("--variants", nargs="?", const="all", default=None, metavar="NAMES",
                   help="instead of the lecture's model: every variant of --variant-file (or the "
                        "comma-separated NAMES; 'base' is the lecture's), on cnnlab, tf-keras and "
                        "torch-eager, --steps steps per epoch (default: off)")
    p.add_argument("--variant-file", type=Path, default=REPO / "examples" / "improve.yaml",
                   help="the experiment file of --variants (default: examples/improve.yaml)")
    p.add_argument("--baseline-src", type=Path, default=None,
                   help="with --variants: also run the cnnlab whose package is in this folder (an "
                        "older checkout's src/) as system cnnlab-baseline, side by side "
                        "(default: none)")
    p.add_argument("--steps", type=int, default=100,
                   help="steps per epoch with --variants: images = steps x the variant's batch "
                        "size (default: 100)")
    p.add_argument("--check", action="store_true",
                   help=f"exit {int(ExitStatus.TARGET_MISSED)} when a cnnlab target is missed "
                        "(default: off)")
    p.add_argument("--dry-run", action="store_true",
                   help="smoke test: 1024 images, 2 epochs, 20 latency calls (default: off)")
    args = p.parse_args(argv)
    tta = args.time_to_accuracy
    if args.epochs is None:
        args.epochs = 10 if tta else 3
    if args.systems is None:
        args.systems = (TTA_SYSTEMS if tta else
                        ",".join(variants.SYSTEMS) if args.variants else EPOCH_SYSTEMS)
    if args.dry_run:
        args.images, args.epochs, args.latency_calls = 1024, 2, 20
    if args.out is None:
        args.out = OUT / ("time_to_accuracy.json" if tta else
                          "variants.json" if args.variants else "epoch_time.json")
    return args


def validate(args: argparse.Namespace) -> list[str]:
    """Messages for arguments that cannot work; empty when all is well."""
    errors = []
    unknown = [s for s in args.systems.split(",") if s not in SYSTEMS]
    if unknown:
        errors.append(f"Invalid value for argument `--systems`. Expected names from "
                      f"{', '.join(SYSTEMS)}. Received {', '.join(unknown)}.")
    least, why = (1, "") if args.time_to_accuracy else (2, " (the first is warm-up)")
    if args.epochs < least:
        errors.append(f"Invalid value for argument `--epochs`. Expected at least {least}{why}. "
                      f"Received epochs={args.epochs}.")
    fashion = args.time_to_accuracy or args.dataset == "fashion-mnist"
    if fashion and args.images > 60_000:
        errors.append("Invalid value for argument `--images`. Fashion-MNIST has 60000 training "
                      f"images. Received images={args.images}.")
    if args.variants and args.time_to_accuracy:
        errors.append("--variants and --time-to-accuracy are two modes; choose one.")
    for name in ("rounds", "images", "threads", "latency_calls", "steps"):
        if getattr(args, name) < 1:
            errors.append(f"Invalid value for argument `--{name.replace('_', '-')}`. Expected a "
                          f"strictly positive value. Received {name}={getattr(args, name)}.")
    return errors


# --- running workers ----------------------------------------------------------

def python_of(system: System) -> Path | None:
    """The interpreter of the system's venv, or None when it is not installed."""
    if system.venv is None:
        project = REPO / ".venv" / "bin" / "python"
        return project if project.exists() else Path(sys.executable)
    python = VENVS / system.venv / "bin" / "python"
    return python if python.exists() else None


def worker_env(args: argparse.Namespace, system: System) -> dict:
    env = dict(os.environ)
    threads = str(args.threads)
    env.update({
        # Same thread count for every system, fixed before any runtime starts.
        "OMP_NUM_THREADS": threads, "MKL_NUM_THREADS": threads,
        "TF_NUM_INTRAOP_THREADS": threads, "TF_NUM_INTEROP_THREADS": threads,
        "TF_CPP_MIN_LOG_LEVEL": "2",  # TF's banner goes to the log, not the terminal
        "CUDA_VISIBLE_DEVICES": "", "JAX_PLATFORMS": "cpu",  # CPU only, no GPU probing
        "PYTHONUNBUFFERED": "1",
    })
    env.pop("PYTHONPATH", None)  # each venv sees only its own packages
    if system.venv is None:  # ... and the project's venv this checkout's cnnlab
        env["PYTHONPATH"] = str(REPO / "src")
    env.update(system.env)
    return env


def run_worker(args, run: Run, round_index: int, data_path: Path, mode: str,
               variant: tuple[Path, str] | None = None) -> dict:
    """Start one worker, wait for it, and return its result (or why there is none)."""
    python = python_of(run.system)
    base = {"system": run.system.name, "label": run.label, "round": round_index}
    if python is None:
        return {**base, "status": "skipped",
                "reason": f"no venv at {VENVS / run.system.venv} (run benchmarks/setup.sh)"}
    stem = f"{run.label}-round{round_index}" + (f"-{variant[1]}" if variant else "")
    (OUT / "logs").mkdir(parents=True, exist_ok=True)
    (OUT / "results").mkdir(parents=True, exist_ok=True)
    result_path, log_path = OUT / "results" / f"{stem}.json", OUT / "logs" / f"{stem}.log"
    result_path.unlink(missing_ok=True)
    cmd = [str(python), str(WORKERS / run.system.worker), "--data", str(data_path),
           "--result", str(result_path), "--mode", mode, "--recipe", run.recipe,
           "--epochs", str(args.epochs), "--threads", str(args.threads),
           "--latency-calls", str(args.latency_calls), "--seed", str(args.seed + round_index),
           "--inference-images", str(min(10_000, args.images))]
    if variant:
        cmd += ["--variant-file", str(variant[0]), "--variant", variant[1]]
    with open(log_path, "w") as log:
        try:
            proc = subprocess.run(cmd, stdout=log, stderr=subprocess.STDOUT,
                                  env=worker_env(args, run.system), timeout=args.timeout)
            returncode = proc.returncode
        except subprocess.TimeoutExpired:
            returncode = None
    if result_path.exists():
        return {**base, **json.loads(result_path.read_text()), "log": str(log_path)}
    tail = log_path.read_text(errors="replace").strip().splitlines()[-3:]
    why = f"timed out after {args.timeout:.0f} s" if returncode is None else f"exit {returncode}"
    return {**base, "status": "failed", "reason": f"{why}; {' | '.join(tail)}", "log": str(log_path)}


def cli_train_rss(args, data_path: Path) -> dict:
    """Peak RSS of the `cnnlab train` command itself, one epoch on MNIST-sized data.

    The data are the run's training images with MNIST's .npz layout (60,000 train and,
    here, the first 10,000 again as test images), trained through cnnlab's own data
    path (uint8 in memory); the number is the child's own ru_maxrss (os.wait4).
    """
    import shutil
    import tempfile

    import numpy as np
    raw = np.load(data_path)
    x, y = raw["x_train"], raw["y_train"]
    cnnlab = REPO / ".venv" / "bin" / "cnnlab"
    if not cnnlab.exists():
        return {"status": "skipped", "reason": f"{cnnlab} not found (make test installs it)"}
    work = Path(tempfile.mkdtemp(prefix="cnnlab-rss-"))
    try:
        npz = work / "mnist-sized.npz"
        np.savez(npz, x_train=x, y_train=y, x_test=x[:10_000], y_test=y[:10_000])
        cmd = [str(cnnlab), "train", "--data", f"npz:{npz}", "--epochs", "1", "--quiet",
               "--threads", str(args.threads), "--out", str(work / "runs")]
        t0 = time.perf_counter()
        proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                                env=worker_env(args, SYSTEMS["cnnlab"]))
        output = proc.stdout.read().decode(errors="replace")
        _, status, usage = os.wait4(proc.pid, 0)
        wall = time.perf_counter() - t0
    finally:
        shutil.rmtree(work, ignore_errors=True)
    if os.waitstatus_to_exitcode(status) != 0:
        return {"status": "failed", "reason": output.strip().splitlines()[-1:] or ["no output"]}
    return {"status": "ok", "peak_rss_mb": usage.ru_maxrss / 1024.0, "images": len(x),
            "wall_s": wall, "command": " ".join(cmd[1:4]) + " ... --epochs 1"}


def measure_matmul(args) -> dict:
    python = python_of(SYSTEMS["torch-eager"])
    path = OUT / "results" / "matmul.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    subprocess.run([str(python), str(WORKERS / "matmul.py"), "--result", str(path),
                    "--threads", str(args.threads)], check=True, capture_output=True,
                   env=worker_env(args, SYSTEMS["torch-eager"]))
    return json.loads(path.read_text())


def matmul_text(m: dict) -> str:
    return (f"{m['gflops']:.0f} GFLOP/s median, {m['gflops_best']:.0f} best "
            f"(float32 {m['size']}x{m['size']}, {len(m['chunks'])} chunks)")


def round_order(runs: list[Run], round_index: int) -> list[Run]:
    """Odd rounds run backwards (A B C, C B A, ...): over an even number of
    rounds every system sits at every distance from the start, which cancels
    a linear drift (thermal, a neighbour's load)."""
    return runs if round_index % 2 == 0 else runs[::-1]


def run_rounds(args, runs: list[Run], data_path: Path, mode: str) -> dict[str, list[dict]]:
    results = {r.label: [] for r in runs}
    for i in range(args.rounds):
        for run in round_order(runs, i):
            t0 = time.perf_counter()
            print(f"[round {i + 1}/{args.rounds}] {run.label} ...", end=" ", flush=True)
            result = run_worker(args, run, i, data_path, mode)
            results[run.label].append(result)
            print(progress_line(result, time.perf_counter() - t0), flush=True)
        # A system without its venv is skipped once, not once per round.
        runs = [r for r in runs if not results[r.label] or results[r.label][-1]["status"] != "skipped"]
    return results


def progress_line(result: dict, wall_s: float) -> str:
    if result["status"] != "ok":
        return f"{result['status']}: {result.get('reason', '')}"
    epochs = ", ".join(f"{s:.2f}" for s in result["epoch_s"])
    acc = result.get("val_accuracy") or result.get("train_accuracy") or []
    acc_text = f"; accuracy {acc[-1]:.3f}" if acc else ""
    return (f"epochs {epochs} s{acc_text}; peak RSS {result['peak_rss_mb']:.0f} MB "
            f"({wall_s:.0f} s in all)")


# --- the record --------------------------------------------------------------

def machine() -> dict:
    cpu, flags = platform.processor(), set()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
            elif line.startswith("flags"):
                flags = set(line.split(":", 1)[1].split())
    except OSError:
        pass
    return {"cpu": cpu, "cores": os.cpu_count(), "cores_visible": len(os.sched_getaffinity(0)),
            "simd": sorted(f for f in flags if f in ("avx2", "fma", "avx512f", "avx512_vnni")),
            "platform": platform.platform()}


def git_state() -> dict:
    def git(*a):
        out = subprocess.run(["git", *a], cwd=REPO, capture_output=True, text=True)
        return out.stdout.strip() if out.returncode == 0 else None
    return {"commit": git("rev-parse", "HEAD"), "dirty": bool(git("status", "--porcelain", "--", "src"))}


def write_record(path: Path, record: dict) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(record, indent=1, default=str))
    os.replace(tmp, path)


# --- the two modes -------------------------------------------------------------

def selected_runs(args) -> list[Run]:
    runs = [Run(name, SYSTEMS[name]) for name in args.systems.split(",")]
    if args.time_to_accuracy:
        runs = [Run(f"{r.label}-lecture", r.system) for r in runs]
        if "cnnlab" in args.systems.split(","):
            runs.insert(1, Run("cnnlab-fast", SYSTEMS["cnnlab"], "fast"))
    return runs


def epoch_mode(args, record: dict) -> ExitStatus:
    out_data = OUT / "data"
    if args.dataset == "synthetic":
        data_path, record["data"] = datasets.synthetic(out_data, args.images, args.seed)
    else:
        data_path, record["data"] = datasets.fashion_mnist(out_data, args.fashion_dir, args.images)
    print(f"data: {record['data']['name']}, {args.images} images; {args.epochs} epochs per run, "
          f"the first excluded as warm-up; {args.rounds} round(s); {args.threads} threads")
    before = measure_matmul(args)
    print(f"matmul rate before: {matmul_text(before)}")
    results = run_rounds(args, selected_runs(args), data_path, "epoch")
    cli = cli_train_rss(args, data_path) if "cnnlab" in args.systems else None
    if cli:
        print(f"cnnlab train (the command), 1 epoch: "
              + (f"peak RSS {cli['peak_rss_mb']:.0f} MB" if cli["status"] == "ok" else cli["reason"]))
    after = measure_matmul(args)
    # The yardstick is the machine's capability: the best chunk of either
    # measurement, which a neighbour's load disturbs least.
    matmul = max(before["gflops_best"], after["gflops_best"])
    print(f"matmul rate after: {matmul_text(after)}; the table uses the best chunk, {matmul:.0f} GFLOP/s")

    summary = report.summarise_epochs(results, args.images, matmul)
    targets = report.check_targets(summary, args.images, cli)
    flop = lecture.train_flop(args.images)
    print(f"\nLecture model, batch {lecture.BATCH_SIZE}, {args.images} images per epoch "
          f"= {flop / 1e12:.3f} TFLOP of training "
          f"({lecture.forward_macs() / 1e6:.2f} M multiply-adds forward per image, x3 for training)\n")
    print(report.epoch_table(summary))
    if any((v.get("matmul_fraction") or 0) > 1 for v in summary.values()):
        print("note: a share above 100% means the matmul rate was measured while the machine was busy")
    print()
    print(report.targets_table(targets))
    record.update(cli_train=cli,
                  matmul={"before": before, "after": after, "reference_gflops": matmul},
                  train_tflop_per_epoch=flop / 1e12, summary=summary, targets=targets, runs=results)
    missed = any(t["verdict"] == "MISS" and t.get("required", True) for t in targets)
    return ExitStatus.TARGET_MISSED if args.check and missed else ExitStatus.OK


def tta_mode(args, record: dict) -> ExitStatus:
    images = None if args.images == 60_000 else args.images
    data_path, record["data"] = datasets.fashion_mnist(OUT / "data", args.fashion_dir, images)
    print(f"data: Fashion-MNIST, {args.images} train / 10000 validation images; "
          f"lecture schedule: {args.epochs} epochs, batch {lecture.BATCH_SIZE}, Adam; "
          f"{args.rounds} round(s)")
    runs = selected_runs(args)
    results = run_rounds(args, runs, data_path, "tta")
    target, source = tta_target(args, results)
    if target is None:
        print("\nNo lecture schedule finished and no --target-accuracy: no time to accuracy.")
        record.update(runs=results)
        return ExitStatus.ERROR
    baseline = "cnnlab-lecture" if "cnnlab-lecture" in results else runs[0].label
    summary = report.summarise_tta(results, target, baseline)
    print(f"\nTarget: validation accuracy {target:.4f} ({source}); train time only, "
          f"validation excluded; speedup = {baseline}'s time / the run's time\n")
    print(report.tta_table(summary, target))
    targets = report.check_tta_targets(summary)
    print()
    print(report.targets_table(targets))
    record.update(target_accuracy=target, target_source=source, baseline=baseline,
                  summary=summary, targets=targets, runs=results)
    return ExitStatus.OK


def variants_mode(args, record: dict) -> ExitStatus:
    """Every variant on every system, one worker process each (so each first epoch pays its
    own warm-up), the systems alternating within a variant, reversed on odd rounds."""
    names = None if args.variants == "all" else args.variants.split(",")
    recipes = variants.resolve(args.variant_file, names)
    recipe_path = OUT / "variants-recipes.json"
    write_record(recipe_path, recipes)
    runs = [Run(name, SYSTEMS[name]) for name in args.systems.split(",")]
    if args.baseline_src:
        baseline = System(variants.BASELINE, "cnnlab_worker.py", None,
                          {"PYTHONPATH": str(args.baseline_src.resolve())})
        runs.insert(1, Run(baseline.name, baseline))
    print(f"variants of {args.variant_file}: {', '.join(recipes)}; {args.steps} steps per epoch, "
          f"{args.epochs} epochs (the first is warm-up), {args.rounds} round(s), "
          f"{args.threads} thread(s); systems {', '.join(r.label for r in runs)}")
    results = {v: {r.label: [] for r in runs} for v in recipes}
    flip = 0
    for i in range(args.rounds):
        for v, recipe in recipes.items():
            images = args.steps * recipe["batch_size"]
            data_path, _ = datasets.synthetic(OUT / "data", images, args.seed)
            for run in round_order(runs, flip):
                result = run_worker(args, run, i, data_path, "variant", (recipe_path, v))
                results[v][run.label].append(result)
                print(f"[round {i + 1}/{args.rounds}] {v} {run.label}: "
                      f"{progress_line(result, result.get('worker_wall_s', 0))}", flush=True)
            flip += 1  # the next variant starts with the system this one ended with
            # a run stopped early still leaves what it measured
            write_record(args.out, {**record, "recipes": recipes, "runs": results,
                                    "summary": variants.summarise(results), "partial": True})
    rows = variants.summarise(results)
    targets = variants.check_targets(rows)
    print(f"\nFastest epoch after the first ({args.steps} steps), seconds; x = cnnlab / other\n")
    print(variants.table(rows))
    print()
    print(variants.missed_text(targets))
    record.update(recipes=recipes, summary=rows, targets=targets, runs=results, partial=False)
    missed = any(t["verdict"] != "PASS" for t in targets)
    return ExitStatus.TARGET_MISSED if args.check and missed else ExitStatus.OK


def tta_target(args, results: dict) -> tuple[float | None, str]:
    if args.target_accuracy is not None:
        return args.target_accuracy, "--target-accuracy"
    for label in ("cnnlab-lecture", "tf-keras-lecture"):
        ok = [r for r in results.get(label, []) if r.get("status") == "ok"]
        if ok:
            finals = [r["val_accuracy"][-1] for r in ok]
            # the median over seeds (the mean of the middle two for an even count)
            return statistics.median(finals), f"median final accuracy of {label}, {len(ok)} seed(s)"
    return None, ""


def program(args) -> ExitStatus:
    record = {"tool": "benchmarks/epoch_time.py", "argv": sys.argv[1:],
              "config": {k: str(v) if isinstance(v, Path) else v for k, v in vars(args).items()},
              "machine": machine(), "git": git_state(), "started": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
              "loadavg_before": os.getloadavg()}
    if record["loadavg_before"][0] > 0.5:
        print(f"note: load average {record['loadavg_before'][0]:.1f} before the run: "
              "the machine is not quiet, figures are indicative only")
    mode = tta_mode if args.time_to_accuracy else variants_mode if args.variants else epoch_mode
    status = mode(args, record)
    record["loadavg_after"] = os.getloadavg()
    write_record(args.out, record)
    print(f"\nwrote {args.out}")
    return status


def main(argv=None) -> int:
    args = parse_args(argv)
    errors = validate(args)
    if errors:
        print("\n".join(errors), file=sys.stderr)
        return ExitStatus.USAGE
    try:
        return program(args)
    except KeyboardInterrupt:
        return ExitStatus.ERROR
    except (OSError, ValueError, subprocess.CalledProcessError) as e:
        print(f"error: {e}", file=sys.stderr)
        return ExitStatus.ERROR


if __name__ == "__main__":
    sys.exit(main())
