"""Experiment files: a base config, named variants, seeds -> validated runs to make.

    title: Improving the lecture's CNN      # optional, heads the report
    base: lecture.yaml                      # a config file (relative to this file) or inline
    seeds: 3                                # every variant runs with seeds s, s+1, ... s+N-1
    variants:
      dropout: {insert: {after: flatten, layer: {Dropout: {rate: 0.25}}}}
      sgd:     {train: {optimizer: {name: sgd, learning_rate: 0.01}}}

    >>> exp = load_experiment("examples/improve.yaml", epochs=2, seeds=2)
    >>> [v.name for v in exp.variants][:2], len(exp.jobs())
    (['base', 'mlp'], 34)

Every variant is built into a RunConfig (so its model spec is validated, shapes
included) and checked against its data before anything trains; all the invalid
ones are reported together, by name, with the reason.
"""
from __future__ import annotations

import copy
from dataclasses import dataclass
from pathlib import Path

from ..config import RunConfig
from ..errors import CnnlabError, ConfigError, reject_unknown_keys
from ..guard import check_derived_name, check_name
from ..spec import read_yaml_file
from .variants import apply_variant, describe

EXPERIMENT_KEYS = ("title", "base", "seeds", "variants")
BASE = "base"  # the name of the unchanged base, always run first
MAX_SEEDS = 1000


@dataclass(frozen=True)
class Variant:
    name: str
    change: str          # plain words: what differs from the base
    cfg: RunConfig


@dataclass(frozen=True)
class Job:
    variant: str
    seed: int
    cfg: RunConfig

    @property
    def run_name(self) -> str:
        return f"{self.variant}-s{self.seed}"


@dataclass(frozen=True)
class Experiment:
    name: str            # the experiment folder's name
    title: str
    source: str
    seeds: int
    variants: tuple[Variant, ...]

    def jobs(self) -> list[Job]:
        """Seed-major order: every variant's first seed, then every second seed, ...

        An interrupted experiment thus has a complete (if 1-seed) comparison early."""
        out = []
        for i in range(self.seeds):
            for v in self.variants:
                seed = v.cfg.train["seed"] + i
                out.append(Job(v.name, seed, v.cfg.with_overrides(train={"seed": seed})))
        return out

    def to_dict(self) -> dict:
        return {"name": self.name, "title": self.title, "source": self.source,
                "seeds": self.seeds, "base": BASE,
                "variants": [{"name": v.name, "change": v.change,
                              "runs": [j.run_name for j in self.jobs() if j.variant == v.name]}
                             for v in self.variants]}


def _positive_int(value, what):
    if isinstance(value, bool) or not isinstance(value, int) or value <= 0:
        raise ConfigError(f"Invalid value for `{what}`. Expected a strictly positive integer. "
                          f"Received {what}={value!r}.")
    return value


def _check_variant_name(name) -> None:
    try:
        check_name(name if isinstance(name, str) and len(name) <= 90 else "")
    except ConfigError:
        raise ConfigError(f"Invalid variant name {name!r}. Expected letters, digits, '.', '_' or "
                          "'-' (at most 90, starting with a letter or digit): it names the "
                          "variant's run folders.") from None


def _check_output(cfg: RunConfig) -> None:
    shape = cfg.spec.output_shape
    if len(shape) != 1:
        raise ConfigError(f"the model's output has shape (None, {', '.join(map(str, shape))}). "
                          "Expected a vector of class scores (None, classes): is a Flatten "
                          "missing?")


def _base_dict(base, source_dir: Path) -> dict:
    if base is None:
        return RunConfig.from_dict({}).to_dict()
    if isinstance(base, str):
        path = Path(base)
        if not path.is_absolute() and not path.is_file() and (source_dir / path).is_file():
            path = source_dir / path
        return RunConfig.load(path).to_dict()
    if isinstance(base, dict):
        return RunConfig.from_dict(base, "`base`").to_dict()
    raise ConfigError(f"Invalid value for `base`. Expected a config file path or an inline config "
                      f"(model/data/train). Received {base!r}.")


def parse_experiment(d, source="<experiment>", source_dir=".", name=None, *, epochs=None,
                     seeds=None, data=None, only=None) -> Experiment:
    """An Experiment from the file's mapping; global overrides apply to every variant."""
    if not isinstance(d, dict):
        raise ConfigError(f"Expected {source} to be a mapping with keys "
                          f"{', '.join(EXPERIMENT_KEYS)}. Received {type(d).__name__}.")
    reject_unknown_keys(d, EXPERIMENT_KEYS, source)
    n_seeds = _positive_int(seeds if seeds is not None else d.get("seeds", 1), "seeds")
    if n_seeds > MAX_SEEDS:  # each seed is a run of every variant
        raise ConfigError(f"Invalid value for `seeds`. Expected an integer in [1, {MAX_SEEDS}]. "
                          f"Received seeds={n_seeds}.")
    raw = d.get("variants") or {}
    if not isinstance(raw, dict):
        raise ConfigError(f"Invalid value for `variants`. Expected a mapping from variant names to "
                          f"changes. Received {raw!r}.")
    try:
        base = _base_dict(d.get("base"), Path(source_dir))
    except CnnlabError as err:
        raise type(err)(f"Invalid base config in {source}: {err}") from None
    overrides = {"train": {"epochs": epochs}, "data": dict(data or {})}
    selected = _select(raw, only)

    variants, errors = [], []
    for vname, ops in [(BASE, {})] + [(k, raw[k]) for k in selected]:
        try:
            _check_variant_name(vname)
            cfg = RunConfig.from_dict(apply_variant(copy.deepcopy(base), ops), f"variant {vname}")
            cfg = cfg.with_overrides(data=overrides["data"], train=overrides["train"])
            _check_output(cfg)
            variants.append(Variant(vname, "base config" if vname == BASE else describe(ops), cfg))
        except CnnlabError as err:
            errors.append(f"  {vname}: {err}")
    if BASE in raw:
        errors.append("  base: the name 'base' is reserved for the unchanged base config.")
    if errors:
        raise ConfigError(f"{len(errors)} invalid variant(s) in {source}; nothing was trained:\n"
                          + "\n".join(errors))
    title = d.get("title") or f"Experiment {name or Path(source).stem}"
    return Experiment(name or Path(source).stem, str(title), str(source), n_seeds, tuple(variants))


def _select(raw: dict, only) -> list[str]:
    names = [k for k in raw if k != BASE]
    if not only:
        return names
    unknown = [o for o in only if o not in raw and o != BASE]
    if unknown:
        raise ConfigError(f"Unknown variant {unknown[0]!r} in --only. Expected names from: "
                          f"{', '.join(names)}.")
    return [k for k in names if k in only]


def load_experiment(path, name=None, **overrides) -> Experiment:
    path = Path(path)
    # the folder's name: checked before the file is even read, as every name a user gives
    if name is not None:
        check_name(name, "experiment")
    else:
        check_derived_name(path.stem, path.name, "experiment", room=0)
    return parse_experiment(read_yaml_file(path), str(path), path.parent, name, **overrides)


def check_data(exp: Experiment) -> None:
    """Load each dataset once and check every variant's input shape and classes against it."""
    from ..data import load_dataset
    from ..data.preprocess import prepare_images
    from ..losses import get as get_loss
    loaded, errors = {}, []
    for v in exp.variants:
        d = v.cfg.data
        key = (d["name"], d["data_dir"], d["fallback"])
        try:
            if d["name"] == "folder":  # its shape and classes only: train_run checks each file
                from ..data.folder_data import check_fits
                check_fits(d, v.cfg.spec, get_loss(v.cfg.train["loss"]).target == "binary")
                continue
            if key not in loaded:
                loaded[key] = load_dataset(d["name"], data_dir=d["data_dir"],
                                           fallback=d["fallback"], progress=False)
            ds, spec = loaded[key], v.cfg.spec
            prepare_images(ds.x_test[:1], spec.input_shape)
            binary = get_loss(v.cfg.train["loss"]).target == "binary"
            if len(ds.class_names) > spec.num_outputs and not binary:
                raise ConfigError(f"dataset {ds.name!r} has {len(ds.class_names)} classes, but the "
                                  f"model's last layer has {spec.num_outputs} units.")
        except CnnlabError as err:
            errors.append(f"  {v.name}: {err}")
    if errors:
        raise ConfigError(f"{len(errors)} variant(s) do not fit their data; nothing was trained:\n"
                          + "\n".join(errors))
