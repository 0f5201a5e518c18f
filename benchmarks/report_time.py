"""How long `cnnlab report` takes for the lecture's 10-epoch run on the MNIST sample (issue 18:
"a few seconds on this 2-core machine"), and `cnnlab explain` for one image.

Trains the run once (or takes --run), then times `write_run_report` and `explain_run`
`--rounds` times each, in this process after one warm-up (imports, first matplotlib
figure), and beside each round one training epoch of the lecture's model on the same
data: the report's time over that epoch's is a ratio measured side by side, which holds
on a loaded machine better than seconds. Exit 3 with --check when the median report
takes over --target seconds.

    .venv/bin/python benchmarks/report_time.py                 # train, then time
    .venv/bin/python benchmarks/report_time.py --run runs/lecture --rounds 5 --check
"""
from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

TARGET_S = 5.0  # seconds for the report of the lecture's 10-epoch run: "a few seconds"


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--run", help="an existing run (default: train the lecture's model, "
                   "10 epochs on mnist-sample, into a temporary folder)")
    p.add_argument("--rounds", type=int, default=3, help="timed repetitions (default: 3)")
    p.add_argument("--threads", type=int, help="torch threads (default: torch's)")
    p.add_argument("--check", action="store_true", help="exit 3 when the median is over --target")
    p.add_argument("--target", type=float, default=TARGET_S, help=f"seconds (default: {TARGET_S})")
    args = p.parse_args()

    import torch
    if args.threads:
        torch.set_num_threads(args.threads)
    from cnnlab.images import render_digit_png
    from cnnlab.insight.explain import explain_run
    from cnnlab.insight.report import write_run_report
    from cnnlab.runs import read_json

    with tempfile.TemporaryDirectory() as tmp:
        run = Path(args.run) if args.run else _train(Path(tmp))
        digit = Path(tmp) / "seven.png"
        digit.write_bytes(render_digit_png(7))
        write_run_report(run, out=Path(tmp) / "warm")          # warm-up: imports, fonts
        epoch_of = _epoch_timer()
        epoch_of()                                               # warm-up
        times, etimes, epochs = [], [], []
        for i in range(args.rounds):
            t0 = time.perf_counter()
            r = write_run_report(run, out=Path(tmp) / f"r{i}")
            times.append(time.perf_counter() - t0)
            t0 = time.perf_counter()
            explain_run(run, [digit], out=Path(tmp) / f"e{i}")
            etimes.append(time.perf_counter() - t0)
            epochs.append(epoch_of())
        done = (read_json(Path(run) / "metrics.json", {}) or {}).get("epochs_done")
        median = statistics.median(times)
        print(f"run: {run} ({done} epochs, {r['images']} validation images), "
              f"torch threads {torch.get_num_threads()}")
        print(f"report:  median {median:.2f} s, fastest {min(times):.2f} s over {args.rounds} rounds")
        print(f"explain: median {statistics.median(etimes):.2f} s for one image")
        ratios = [t / e for t, e in zip(times, epochs)]
        print(f"report / one training epoch beside it: median {statistics.median(ratios):.2f} "
              f"(epochs {statistics.median(epochs):.2f} s)")
    if args.check and median > args.target:
        print(f"MISSED: the report took {median:.2f} s, target {args.target:.1f} s", file=sys.stderr)
        return 3
    return 0


def _epoch_timer():
    """A function that trains the lecture's model for one epoch on the MNIST sample (batch
    128, Adam) and returns the seconds it took."""
    import cnnlab
    from cnnlab.config import RunConfig
    from cnnlab.data import load_dataset
    ds = load_dataset("mnist-sample")
    x, y = ds.x_train[..., None], cnnlab.utils.to_categorical(ds.y_train, 10)
    spec = RunConfig.load(Path(__file__).resolve().parent.parent / "examples" / "lecture.yaml").spec

    def once() -> float:
        model = cnnlab.Model.from_spec(spec)
        model.compile(loss="categorical_crossentropy", optimizer="adam", metrics=["accuracy"])
        t0 = time.perf_counter()
        model.fit(x, y, batch_size=128, epochs=1, verbose=0)
        return time.perf_counter() - t0
    return once


def _train(root: Path) -> Path:
    from cnnlab.config import RunConfig
    from cnnlab.runner import train_run
    cfg = RunConfig.load(Path(__file__).resolve().parent.parent / "examples" / "lecture.yaml")
    cfg = cfg.with_overrides(data={"name": "mnist-sample"})
    return train_run(cfg, out=root, name="lecture", quiet=True).run_dir


if __name__ == "__main__":
    sys.exit(main())
