"""`cnnlab train` on several processes: torchrun's workers, and `--nproc N` that starts them.

    torchrun --nproc-per-node 2 -m cnnlab train examples/lecture.yaml     # or:
    cnnlab train examples/lecture.yaml --nproc 2

Each process runs `runner.train_run` with the `DataParallel` callback
(train/distributed.py: the global batch split across processes, gradients
averaged). Only rank 0 writes the run directory, its logs and checkpoints;
the other ranks train in a private scratch folder that is removed when they
end (their files would be copies of rank 0's: the same weights, the same
figures). Resuming (`--resume RUN`) works with the same or another number of
processes: the checkpoint counts steps of the global batch, so the position,
weights, optimizer and history carry over unchanged; what differs with
another count is only the float rounding of the gradient sums (and, with
dropout, which process draws which mask). See docs/distributed.md.
"""
from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

from .errors import CnnlabError, RunError
from .train.distributed import DataParallel, world

# files a non-zero rank copies from rank 0's run to resume it in its scratch folder
RESUME_FILES = ("config.yaml", "metrics.json", "checkpoint.safetensors")


def distributed() -> bool:
    """Started by torchrun with more than one process?"""
    return world()[1] > 1


def train_distributed(cfg, *, out, name=None, quiet=False, resume=None, stream=None,
                      prefix="run"):
    """This process's part of a data-parallel `cnnlab train`; rank 0's RunResult (others': None)."""
    from .runner import train_run
    rank, size = world()
    _pick_gpu()
    try:
        if rank == 0:
            return train_run(cfg, out=out, name=name, quiet=quiet, resume=resume, stream=stream,
                             handle_signals=True, prefix=prefix, callbacks=[DataParallel()])
        scratch = Path(tempfile.mkdtemp(prefix=f"cnnlab-rank{rank}-"))
        try:
            if resume is not None:
                resume = _copy_for_resume(resume, out, scratch)
            train_run(cfg, out=scratch, name=None if resume else f"rank-{rank}", quiet=True,
                      resume=resume, handle_signals=True, prefix=prefix,
                      callbacks=[DataParallel()])
        finally:
            shutil.rmtree(scratch, ignore_errors=True)
        return None
    except CnnlabError:
        raise
    except RuntimeError as err:  # torch.distributed's errors: a peer died or timed out
        if not _collective_error(err):
            raise
        raise RunError(f"Process {rank} of {size}: the data-parallel job lost a process "
                       f"({type(err).__name__}: {str(err).splitlines()[0] if str(err) else ''}). "
                       "Rank 0's last checkpoint is intact: resume with `cnnlab train --resume "
                       "RUN --nproc N` (any N).") from None
    finally:
        _shutdown()


def _pick_gpu() -> None:
    """One GPU per process on a machine: torchrun's LOCAL_RANK, made the current CUDA device
    (what --device cuda / auto then resolves to)."""
    import torch
    if torch.cuda.is_available():
        local = int(os.environ.get("LOCAL_RANK", 0))
        torch.cuda.set_device(local % torch.cuda.device_count())


def _collective_error(err: RuntimeError) -> bool:
    import torch.distributed as dist
    return dist.is_initialized() or "gloo" in str(err).lower() or "nccl" in str(err).lower()


def _shutdown() -> None:
    import torch.distributed as dist
    if dist.is_initialized():
        try:
            dist.destroy_process_group()
        except RuntimeError:  # a peer is already gone: nothing left to tear down
            pass


def _copy_for_resume(resume, out, scratch: Path) -> Path:
    from .runs import find_run
    run_dir = find_run(resume, out)  # on a shared disk (or the same path on every node)
    copy = scratch / run_dir.name
    copy.mkdir()
    for name in RESUME_FILES:
        if (run_dir / name).exists():
            shutil.copy2(run_dir / name, copy / name)
    return copy


# -- cnnlab train --nproc N ---------------------------------------------------------------

def without_nproc(argv: list[str]) -> list[str]:
    """The command line with --nproc N / --nproc=N removed (what each worker runs)."""
    out, skip = [], False
    for a in argv:
        if skip:
            skip = False
        elif a == "--nproc":
            skip = True
        elif not a.startswith("--nproc="):
            out.append(a)
    return out


def launch(nproc: int, argv: list[str]) -> int:
    """Run `cnnlab <argv>` in `nproc` processes on this machine with torchrun; its exit code.

    torchrun stops every worker when one fails (SIGTERM, then SIGKILL after its timeout)."""
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone",
           f"--nproc-per-node={nproc}", "-m", "cnnlab", *without_nproc(argv)]
    # each worker gets cores / nproc threads unless the user chose (torchrun sets 1 otherwise)
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    env = {**os.environ}
    env.setdefault("OMP_NUM_THREADS", str(max(1, (cores or 1) // nproc)))
    proc = subprocess.Popen(cmd, env=env, stderr=subprocess.PIPE, text=True, bufsize=1)
    failed = relay_stderr(proc.stderr, sys.stderr)
    code = proc.wait()
    return code if failed is None or code == 0 else failed


_LAUNCHER = "torch/distributed/run.py"   # a frame of torchrun's own main
# glog-style lines of torchrun's agent: "W1206 04:21:11.310000 17362 .../torch/distributed/..."
_TORCHRUN_LOG = re.compile(r"[IWE]\d{4} \d\d:\d\d:\d\d\.\d+ +\d+ .*torch/distributed/elastic/")


def relay_stderr(lines, out) -> int | None:
    """Copy the workers' stderr (cnnlab's one-line errors, notices) to `out` as it comes, but
    not torchrun's own report of a failed worker: a launcher traceback and a box of fields
    under a user's mistake that the worker has already explained in one line. Returns the
    failed worker's exit code from that report, or None."""
    held: list[str] = []   # a traceback, until its first frame says whose it is
    launcher = False       # inside torchrun's report: dropped to the end
    code, root = None, False
    for line in lines:
        if launcher:
            root = root or line.startswith("Root Cause")  # the worker that failed first
            m = re.match(r"\s*exitcode\s*:\s*(-?\d+)", line)
            if m and root and code is None:
                code = int(m.group(1))
            continue
        if _TORCHRUN_LOG.match(line):  # torchrun's log of stopping the other workers
            continue
        if held:
            held.append(line)
            if not line[:1].isspace():  # the exception's line: the traceback is whole
                if any(_LAUNCHER in h.replace("\\", "/") for h in held):
                    launcher = True  # torchrun's: it and its report that follows are dropped
                else:
                    out.writelines(held)
                held = []
            continue
        if line.startswith("Traceback (most recent call last):"):
            held = [line]
            continue
        out.write(line)
        out.flush()
    out.writelines(held)
    if code is not None and code < 0:  # a worker killed by a signal
        code = 1
    return code
