"""One experiment run in its own process (what `--jobs N` starts N of).

    python -m cnnlab.experiments.worker '{"config": {...}, "folder": "runs/improve",
                                          "name": "dropout-s0", "action": "new"}'

Exits with the run's exit code (0, 8 for NaN, 130/143 when interrupted after
checkpointing), or the error's code with its message on stderr.
"""
from __future__ import annotations

import json
import os
import signal
import sys

from ..config import RunConfig
from ..errors import CnnlabError, ExitStatus
from .execute import run_one


def _die_with_parent(parent: int | None) -> None:
    """Linux: get SIGTERM (checkpoint, exit 143) if the experiment process dies first."""
    if parent is None or not sys.platform.startswith("linux"):
        return
    try:
        import ctypes
        ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG
    except (OSError, AttributeError):
        return
    if os.getppid() != parent:  # it died before prctl took effect
        sys.exit(int(ExitStatus.TERMINATED))


def main(argv=None) -> int:
    args = json.loads((argv or sys.argv[1:])[0])
    _die_with_parent(args.get("parent"))
    try:
        res = run_one(RunConfig.from_dict(args["config"]), args["folder"], args["name"],
                      args["action"])
    except CnnlabError as err:
        print(f"cnnlab: error: {err}", file=sys.stderr)
        return int(err.exit_code)
    if res.message:
        print(res.message, file=sys.stderr)
    return int(res.exit_code)


if __name__ == "__main__":
    sys.exit(main())
