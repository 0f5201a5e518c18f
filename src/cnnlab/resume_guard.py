"""A checkpoint is untrusted input: its fields are checked against the run before a resume.

    >>> check_checkpoint(run_dir / "checkpoint.safetensors", meta, cfg)   # RunError (exit 5)

A resume continues from the checkpoint's own state, so what matters is that the
checkpoint and the run's config describe the same run: the config the checkpoint
was written with (stored in it since this version) must equal `config.yaml` with
the command's flags, except for what may change on a resume (`--epochs`, threads,
where the data is); the optimizer recorded in it (its hyperparameter names and
values) must be the one the config builds; positions, counters and the history
must be what a run writes. Everything is read from the metadata, no tensor is
loaded; the tensors' shapes are checked where they are loaded
(`train.checkpoint`).
"""
from __future__ import annotations

import json
import math

from .errors import RunError

# torch param_group keys that are hyperparameters (others, like `foreach` or `fused`, say
# how the step runs, not what it computes)
HYPERPARAMETERS = ("lr", "betas", "eps", "weight_decay", "momentum", "nesterov", "dampening",
                   "alpha", "centered", "rho", "initial_accumulator_value", "lr_decay", "amsgrad")


def _is_count(v) -> bool:
    return isinstance(v, int) and not isinstance(v, bool) and 0 <= v < 2**63


def _plain(v):
    return json.loads(json.dumps(v))  # tuples as lists, as the checkpoint's JSON has them


def _refuse(path, problems: list[str]) -> None:
    if problems:
        raise RunError(f"Cannot resume from {path}: it does not match the run.\n  "
                       + "\n  ".join(problems) + "\nResume with the run's own config, or start "
                       "a new run.")


def _fields(meta: dict) -> list[str]:
    """Fields of the wrong kind or range. (A missing field is reported where the restore
    reads it, as a damaged checkpoint.)"""
    problems = []
    pos = meta.get("position", {"epoch": 0, "step": 0, "seen": 0, "global_step": 0})
    if not isinstance(pos, dict) or not all(_is_count(pos.get(k)) for k in
                                            ("epoch", "step", "seen", "global_step")):
        problems.append(f"position: expected counts epoch, step, seen, global_step >= 0; "
                        f"found {pos!r}")
    hist = meta.get("history", {})
    epoch = pos.get("epoch") if isinstance(pos, dict) else None
    if not isinstance(hist, dict) or not all(
            isinstance(k, str) and isinstance(v, list)
            and all(isinstance(x, (int, float)) and not isinstance(x, bool) for x in v)
            and (not _is_count(epoch) or len(v) <= epoch)
            for k, v in hist.items()):
        problems.append("history: expected lists of numbers, at most one per epoch done")
    opt = meta.get("optimizer", {"param_groups": [{}]})
    groups = opt.get("param_groups") if isinstance(opt, dict) else None
    if not isinstance(groups, list) or not groups or not all(isinstance(g, dict) for g in groups):
        problems.append("optimizer: expected its param_groups")
    else:
        for g in groups:
            lr = g.get("lr", 0)
            if isinstance(lr, bool) or not isinstance(lr, (int, float)) or not (
                    math.isfinite(lr) and lr >= 0):
                problems.append(f"optimizer learning rate: expected a finite number >= 0; "
                                f"found {lr!r}")
    for key in ("seed", "batch_size"):
        if key in meta and not _is_count(meta[key]):
            problems.append(f"{key}: expected an integer >= 0; found {meta[key]!r}")
    return problems


def _config(meta: dict, cfg, allowed) -> list[str]:
    from .config import RunConfig
    from .runner import config_differences
    from .spec import load_yaml
    stored = (meta.get("extra") or {}).get("config")
    problems = []
    if stored is not None:
        try:
            old = RunConfig.from_dict(load_yaml(stored, "the checkpoint's config"))
        except Exception as err:  # noqa: BLE001 - any damage is the checkpoint's problem
            return [f"its stored config does not load ({err})"]
        for s, k, a, b in config_differences(old, cfg):
            # the data's own SHA-256, in the checkpoint, is checked against the data found:
            # its name (an npz path) may change with the folder it is in
            if (s, k) not in allowed and (s, k) != ("data", "name"):
                problems.append(f"{s}.{k}: checkpoint has {a!r}, config.yaml {b!r}")
        return problems
    t = cfg.train  # an older checkpoint: what it records of the config
    for key in ("seed", "batch_size"):
        if key in meta and meta[key] != t[key]:
            problems.append(f"train.{key}: checkpoint has {meta[key]!r}, config.yaml {t[key]!r}")
    return problems


def _optimizer(meta: dict, cfg, compare_lr: bool) -> list[str]:
    """The checkpoint's optimizer against the config's: the same hyperparameter names (the
    same optimizer) and values. The learning rate is compared only where nothing moves it
    (no schedule, no callbacks) and the checkpoint has no config of its own to compare."""
    import torch

    from . import optimizers
    groups = meta["optimizer"]["param_groups"]
    built = optimizers.get(cfg.train["optimizer"]).build([torch.zeros(1, requires_grad=True)])
    want = built.param_groups[0]
    have = groups[0]
    name = optimizers.get(cfg.train["optimizer"]).name
    keys_want = {k for k in HYPERPARAMETERS if k in want}
    keys_have = {k for k in HYPERPARAMETERS if k in have}
    if keys_want != keys_have:
        return [f"optimizer: the checkpoint's has hyperparameters {sorted(keys_have)}, the "
                f"config's {name!r} has {sorted(keys_want)} (another optimizer)"]
    scheduled = (not compare_lr or cfg.train["lr_schedule"] is not None
                 or getattr(built, "cnnlab_schedule", None) is not None)
    problems = []
    for k in sorted(keys_want):
        if k == "lr" and scheduled:
            continue  # a schedule moves it: the checkpoint holds where it was
        if _plain(have[k]) != _plain(want[k]):
            problems.append(f"optimizer {k}: checkpoint has {have[k]!r}, config.yaml "
                            f"{_plain(want[k])!r}")
    return problems


def check_checkpoint(path, meta: dict, cfg, allowed) -> None:
    """RunError (exit 5) listing what in the checkpoint's metadata does not fit the run's
    config `cfg` (config.yaml with this command's allowed changes, `allowed`)."""
    problems = _fields(meta)
    _refuse(path, problems)
    problems = _config(meta, cfg, allowed)
    if not problems and "optimizer" in meta:
        legacy = (meta.get("extra") or {}).get("config") is None
        problems = _optimizer(meta, cfg, compare_lr=legacy and not cfg.train["callbacks"])
    _refuse(path, problems)
