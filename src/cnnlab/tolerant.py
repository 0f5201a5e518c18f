"""Reading many runs when some are damaged: one line naming the damaged file, then go on.

    >>> metrics = run_file(run / "metrics.json", check_metrics)   # {} and a warning if damaged
    >>> warn("runs/x/history.json: not JSON")                      # cnnlab: warning: ...

`cnnlab runs`, `compare` and the experiment reports read every run's files; a
file that cannot be read, is not JSON, or holds values of the wrong kinds makes
that run "damaged" (its row says so) instead of failing the whole command.
Library warnings (PIL, matplotlib, deprecations) reach the user the same way,
one line each (`one_line_warnings`).
"""
from __future__ import annotations

import sys
import warnings

from .errors import CnnlabError

# numbers a run's metrics.json holds, read by the listings and reports
METRIC_NUMBERS = ("final_val_accuracy", "best_val_accuracy", "final_accuracy", "final_loss",
                  "final_val_loss", "train_seconds", "params", "best_epoch", "epochs_done",
                  "epochs")


def warn(message: str) -> None:
    print(f"cnnlab: warning: {message}", file=sys.stderr)


def _number(v) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool)


def check_metrics(m) -> str | None:
    """Why `m` is not a run's metrics (None: it is)."""
    if not isinstance(m, dict):
        return f"expected a JSON object, found {type(m).__name__}"
    for key in METRIC_NUMBERS:
        if key in m and m[key] is not None and not _number(m[key]):
            return f"`{key}` is {m[key]!r}, expected a number"
    if "status" in m and not isinstance(m["status"], str):
        return f"`status` is {m['status']!r}, expected a word"
    if "epoch_seconds" in m and not (isinstance(m["epoch_seconds"], list)
                                     and all(_number(x) for x in m["epoch_seconds"])):
        return "`epoch_seconds` is not a list of numbers"
    if "data" in m and not isinstance(m["data"], (dict, type(None))):
        return "`data` is not an object"
    return None


def check_history(h) -> str | None:
    if not isinstance(h, dict) or not all(
            isinstance(v, list) and all(_number(x) for x in v) for v in h.values()):
        return "expected an object of lists of numbers"
    return None


def run_file(path, check, default=None):
    """The JSON in `path` if it reads and passes `check`; else `default` (or {}), after one
    warning line naming the file. Returns (value, damaged)."""
    from .runs import read_json
    try:
        value = read_json(path, default)
    except CnnlabError as err:
        warn(f"{err} Skipping what it holds.")
        return ({} if default is None else default), True
    if value is default:
        return value, False
    why = check(value)
    if why:
        warn(f"{path} is damaged: {why}. Skipping what it holds.")
        return ({} if default is None else default), True
    return value, False


def _show(message, category, filename, lineno, file=None, line=None):
    text = " ".join(str(message).split())  # one line, however the library wrapped it
    if not text.startswith("cnnlab:"):
        text = f"cnnlab: warning: {category.__name__}: {text}"
    print(text, file=file or sys.stderr)


def one_line_warnings() -> None:
    """Every warning as one line on stderr (the CLI's; the library keeps Python's)."""
    warnings.showwarning = _show
