"""The `cnnlab` command: parse, call the library, map errors to exit codes.

    cnnlab train [CONFIG.yaml] [--data NAME] [--epochs N] ...
    cnnlab summary [FILE | RUN] [--json]
    cnnlab evaluate RUN | predict RUN IMAGE... | plot RUN | runs
    cnnlab export RUN [--format keras|onnx|torchscript] [--output FILE]
    cnnlab explain RUN IMAGE... [--output DIR] [--json] | report RUN [--output DIR]
    cnnlab serve [RUN...] [--host 127.0.0.1] [--port 8000]
    cnnlab data list | info NAME | fetch NAME

`main()` turns every `CnnlabError` into its message on stderr and its exit
code (see cnnlab.errors.ExitStatus); `program()` holds the logic.
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from .errors import CnnlabError, ConfigError, ExitStatus


class Parser(argparse.ArgumentParser):
    def error(self, message):  # usage errors: exit 2 with the usage line, as argparse does
        self.print_usage(sys.stderr)
        self.exit(ExitStatus.USAGE, f"{self.prog}: error: {message}\n")


def _number(convert, ok, expected):
    """An argparse type: `convert` the text, accept it if `ok(value)`."""
    def parse(text):
        try:
            value = convert(text)
        except ValueError:
            value = None
        if value is None or not ok(value):
            raise argparse.ArgumentTypeError(f"expected {expected}, received {text!r}")
        return value
    return parse


_positive_int = _number(int, lambda v: v > 0, "a positive integer")
_nonneg_int = _number(int, lambda v: v >= 0, "an integer >= 0")
_positive_float = _number(float, lambda v: v > 0, "a positive number")


def _data_args(p):
    p.add_argument("--data", metavar="NAME", help="dataset: mnist, fashion-mnist, mnist-sample, "
                   "cifar10, cifar100, cifar100-coarse, npz:PATH, idx:DIR or folder:PATH "
                   "(default: the config's, else mnist)")
    p.add_argument("--data-dir", metavar="DIR", help="look for datasets here first "
                   "(default: $CNNLAB_DATA)")
    p.add_argument("--no-fallback", action="store_true",
                   help="fail instead of using the bundled MNIST sample when full MNIST is missing")


def build_parser() -> argparse.ArgumentParser:
    from . import __version__
    p = Parser(prog="cnnlab", description="Build, train, compare and serve CNN image "
               "classifiers: Keras's vocabulary, PyTorch's engine.")
    p.add_argument("--version", action="version", version=f"cnnlab {__version__}")
    sub = p.add_subparsers(dest="command", metavar="COMMAND", parser_class=Parser)
    sub.required = True

    t = sub.add_parser("train", help="train a model (default: the lecture's)")
    t.add_argument("config", nargs="?", help="YAML config (model/data/train sections) or bare "
                   "model spec (default: the lecture's model and schedule)")
    _data_args(t)
    t.add_argument("--epochs", type=_positive_int, help="epochs (default: config's, lecture 10)")
    t.add_argument("--batch-size", type=_positive_int, help="batch size (default: config's, 128)")
    t.add_argument("--optimizer", help="adam, sgd, rmsprop, adagrad or adamw (default: adam)")
    t.add_argument("--lr", type=_positive_float, help="learning rate (default: the optimizer's)")
    t.add_argument("--seed", type=_nonneg_int, help="random seed (default: 0)")
    t.add_argument("--recipe", help="named training settings: lecture, fast (default: none)")
    t.add_argument("--name", help="run name (default: generated from the time)")
    t.add_argument("--out", default="runs", help="runs folder (default: runs)")
    t.add_argument("--device", choices=("cpu", "cuda", "mps", "auto"),
                   help="device (default: auto)")
    t.add_argument("--precision", choices=("32", "bf16", "16-mixed"), help="32: float32; bf16, "
                   "16-mixed: autocast (loss scaling for 16-mixed, CUDA only) (default: 32)")
    t.add_argument("--threads", type=_positive_int, help="torch threads (default: all cores)")
    t.add_argument("--checkpoint-every", type=_nonneg_int, metavar="STEPS",
                   help="also checkpoint every STEPS steps (default: 0, epoch ends only)")
    t.add_argument("--resume", metavar="RUN", help="continue an interrupted run (path or name)")
    t.add_argument("--quiet", action="store_true", help="print only the final result")
    t.add_argument("--no-report", action="store_true",
                   help="skip the run report made at the end (default: make RUN/report)")
    t.add_argument("--nproc", type=_positive_int, metavar="N", help="data-parallel training "
                   "in N processes on this machine, started with torchrun; batch-size is the "
                   "global batch (default: 1; docs/distributed.md)")
    t.add_argument("--tensorboard", action="store_true", help="write TensorBoard event files "
                   "into RUN/tensorboard (`tensorboard --logdir runs`) (default: off)")

    s = sub.add_parser("summary", help="print a model's summary (default: the lecture's)")
    s.add_argument("target", nargs="?", help="config/spec YAML file or run (default: lecture)")
    s.add_argument("--json", action="store_true", help="print JSON instead of the table")
    s.add_argument("--out", default="runs", help="runs folder (default: runs)")

    e = sub.add_parser("evaluate", help="loss, accuracy and per-class accuracy of a run")
    e.add_argument("run")
    _data_args(e)
    e.add_argument("--out", default="runs", help="runs folder (default: runs)")
    e.add_argument("--json", action="store_true", help="print JSON")

    pr = sub.add_parser("predict", help="classify PNG/JPEG images with a run's model")
    pr.add_argument("run")
    pr.add_argument("images", nargs="+", metavar="IMAGE")
    pr.add_argument("--top", type=_positive_int, default=3, help="classes shown (default: 3)")
    pr.add_argument("--json", action="store_true", help="print JSON")
    pr.add_argument("--out", default="runs", help="runs folder (default: runs)")

    pl = sub.add_parser("plot", help="redraw a run's accuracy and loss curves")
    pl.add_argument("run")
    pl.add_argument("--out", default="runs", help="runs folder (default: runs)")

    ex = sub.add_parser("export", help="write a run's model as a file Keras, ONNX runtimes "
                        "or TorchScript open")
    ex.add_argument("run")
    ex.add_argument("--format", default="keras", choices=("keras", "onnx", "torchscript"),
                    help="file format: keras, Keras 3's .keras zip; onnx; torchscript, a .pt "
                    "for torch.jit.load (default: keras)")
    ex.add_argument("--output", metavar="FILE", help="where to write it (default: "
                    "RUN/model.keras, .onnx or .pt)")
    ex.add_argument("--weights", choices=("final", "best"), default="final",
                    help="which of the run's weights (default: final)")
    ex.add_argument("--out", default="runs", help="runs folder (default: runs)")

    _serve_args(sub)

    r = sub.add_parser("runs", help="list runs with their headline figures")
    r.add_argument("--out", default="runs", help="runs folder (default: runs)")
    r.add_argument("--json", action="store_true", help="print JSON")

    x = sub.add_parser("experiment", help="run a base config and its variants, then report")
    x.add_argument("file", help="experiment YAML: base config + named variants")
    _data_args(x)
    x.add_argument("--epochs", type=_positive_int, help="epochs for every variant (default: file's)")
    x.add_argument("--seeds", type=_positive_int, help="seeds per variant (default: file's, else 1)")
    x.add_argument("--jobs", type=_positive_int, default=1,
                   help="runs in parallel, cores divided between them (default: 1)")
    x.add_argument("--only", metavar="NAMES", help="comma-separated variant names to run (default: all)")
    x.add_argument("--name", help="experiment folder name (default: the file's stem)")
    x.add_argument("--out", default="runs", help="runs folder (default: runs)")
    x.add_argument("--quiet", action="store_true", help="print only the report's location")

    _tune_parser(sub)

    c = sub.add_parser("compare", help="compare runs: table, overlaid curves, report")
    c.add_argument("runs", nargs="+", metavar="RUN")
    c.add_argument("--out", default="runs", help="runs folder (default: runs)")
    c.add_argument("--report", metavar="DIR", help="write the report here (default: runs/compare-<time>)")

    _insight_parsers(sub)

    d = sub.add_parser("data", help="datasets: list, info, fetch")
    dsub = d.add_subparsers(dest="data_command", metavar="ACTION", parser_class=Parser)
    dsub.required = True
    dl = dsub.add_parser("list", help="datasets, and where each is found here")
    dl.add_argument("--data-dir", metavar="DIR")
    di = dsub.add_parser("info", help="source, counts, class balance, checksum")
    di.add_argument("name")
    di.add_argument("--data-dir", metavar="DIR")
    df = dsub.add_parser("fetch", help="download a dataset into the cache")
    df.add_argument("name")
    df.add_argument("--data-dir", metavar="DIR")
    return p


def _serve_args(sub):
    from .serve.limits import Settings
    d = Settings()
    v = sub.add_parser("serve", help="serve runs over HTTP: prediction API, draw page, dashboard")
    v.add_argument("runs", nargs="*", metavar="RUN", help="runs to serve (default: every run "
                   "of --runs-dir with final weights)")
    v.add_argument("--runs-dir", "--out", dest="runs_dir", default="runs", help="runs folder, "
                   "for RUN names and the dashboard (default: runs)")
    v.add_argument("--host", default="127.0.0.1", help="address to bind (default: 127.0.0.1, "
                   "this machine only)")
    v.add_argument("--port", type=_nonneg_int, default=8000, help="port (default: 8000)")
    v.add_argument("--max-batch", type=_positive_int, default=d.max_batch,
                   help=f"images per forward pass, dynamic batching (default: {d.max_batch})")
    v.add_argument("--max-wait-ms", type=_number(float, lambda x: x >= 0, "a number >= 0"),
                   default=d.max_wait_ms, help="ms a batch waits for more requests "
                   f"(default: {d.max_wait_ms:g}; 0 with --max-batch 1 turns batching off)")
    v.add_argument("--timeout", type=_positive_float, default=d.timeout_s,
                   help=f"seconds a request may wait for its prediction (default: {d.timeout_s:g})")
    v.add_argument("--threads", type=_positive_int, default=1,
                   help="torch threads for the forward passes (default: 1; more helps large "
                   "batches on an otherwise idle machine)")


def _tune_parser(sub):
    u = sub.add_parser("tune", help="search a config's settings with Optuna (docs/tune.md)")
    u.add_argument("file", help="tune YAML: base config, params (the search space), variant")
    _data_args(u)
    u.add_argument("--trials", type=_positive_int, help="trials in the study, those already run "
                   "included (default: the file's, else 20)")
    u.add_argument("--timeout", type=_positive_float, metavar="SECONDS",
                   help="start no trial after this many seconds (default: none)")
    u.add_argument("--jobs", type=_positive_int, default=1, help="trials in parallel processes, "
                   "cores divided between them (default: 1)")
    u.add_argument("--storage", metavar="URL", help="Optuna storage shared by workers: "
                   "sqlite:///PATH, postgresql://..., mysql://..., journal:PATH (default: "
                   "sqlite in OUT/NAME/study.db)")
    u.add_argument("--epochs", type=_positive_int, help="epochs per trial (default: the base's)")
    u.add_argument("--name", help="study and folder name (default: the file's stem)")
    u.add_argument("--out", default="runs", help="runs folder (default: runs)")
    u.add_argument("--quiet", action="store_true", help="print only the report's location")


# -- commands ----------------------------------------------------------------------

def _train_overrides(args) -> tuple[dict, dict]:
    data = {"name": args.data, "data_dir": args.data_dir}
    if args.no_fallback:
        data["fallback"] = False
    train = {"epochs": args.epochs, "batch_size": args.batch_size, "seed": args.seed,
             "device": args.device, "threads": args.threads,
             "checkpoint_every_steps": args.checkpoint_every,
             "precision": getattr(args, "precision", None)}
    return data, train


def _optimizer_override(cfg, args):
    if args.optimizer is None and args.lr is None:
        return None
    current = cfg.train["optimizer"]
    current = {"name": current} if isinstance(current, str) else dict(current)
    if args.optimizer is not None and args.optimizer.lower() != current["name"]:
        current = {"name": args.optimizer}
    if args.lr is not None:
        current["learning_rate"] = args.lr
    return current


def _with_tensorboard(cfg):
    """The config with Keras's TensorBoard callback writing into the run's tensorboard/ folder
    (unless it has one: a resumed run's config already holds it)."""
    entries = list(cfg.train["callbacks"] or [])
    if any((e if isinstance(e, str) else next(iter(e))) == "TensorBoard" for e in entries
           if isinstance(e, (str, dict)) and e):
        return cfg
    return cfg.with_overrides(train={"callbacks": [*entries, {"TensorBoard": {
        "log_dir": "tensorboard"}}]})


def cmd_train(args, out):
    from .config import RunConfig
    from .parallel import distributed, launch, train_distributed
    from .runner import run_config, train_run
    if args.nproc and args.nproc > 1 and not distributed():
        return launch(args.nproc, args.argv)
    cfg = RunConfig.load(args.config) if args.config else None
    if args.resume and args.name:
        raise ConfigError("--name cannot be used with --resume: a resumed run keeps its name.")
    if args.resume and cfg is None:  # the run's own config, with this command's flags on top
        cfg = run_config(args.resume, args.out)[1]
    data, train = _train_overrides(args)
    cfg = (cfg or RunConfig.load(None)).with_recipe(args.recipe)
    cfg = cfg.with_overrides(data=data, train=train)
    opt = _optimizer_override(cfg, args)
    if opt is not None:
        cfg = cfg.with_overrides(train={"optimizer": opt})
    if args.tensorboard:
        cfg = _with_tensorboard(cfg)
    prefix = Path(args.config).stem if args.config else "lecture"
    if distributed():  # one of torchrun's workers: rank 0 reports, the others are silent
        res = train_distributed(cfg, out=args.out, name=args.name, quiet=args.quiet, stream=out,
                                prefix=prefix, resume=args.resume)
        if res is None:
            return ExitStatus.OK
    else:
        res = train_run(cfg, out=args.out, name=args.name, quiet=args.quiet, stream=out,
                        handle_signals=True, prefix=prefix, resume=args.resume)
    m = res.metrics
    if res.message:
        print(res.message, file=sys.stderr)
    acc = m.get("final_val_accuracy")
    line = f"Run: {res.run_dir}"
    if acc is not None:
        line += (f"  val_accuracy {acc:.4f} (best {m['best_val_accuracy']:.4f})"
                 f"  {m.get('train_seconds', 0):.1f}s")
    out.write(line + "\n")
    if not args.quiet and res.exit_code == ExitStatus.OK:
        out.write(f"Curves: {res.run_dir / 'accuracy.png'}, {res.run_dir / 'loss.png'}\n")
    if res.exit_code == ExitStatus.OK and not args.no_report:
        _report_after_training(res.run_dir, args.quiet, out)
    return res.exit_code


def _insight_parsers(sub):
    ex = sub.add_parser("explain", help="draw what a run's model does with images, layer by "
                        "layer, and where it looked")
    ex.add_argument("run")
    ex.add_argument("images", nargs="+", metavar="IMAGE")
    ex.add_argument("--top", type=_positive_int, default=3, help="classes listed (default: 3)")
    ex.add_argument("--json", action="store_true", help="print the top classes and file "
                    "paths as JSON")
    ex.add_argument("--output", metavar="DIR", help="where the PNGs and explain.html go "
                    "(default: RUN/explain)")
    ex.add_argument("--out", default="runs", help="runs folder (default: runs)")
    rp = sub.add_parser("report", help="write a run's report: metrics, confusion matrix, "
                        "mistakes, filters, calibration, diagnoses")
    rp.add_argument("run")
    rp.add_argument("--output", metavar="DIR", help="where report.html/.md/.json and the "
                    "PNGs go (default: RUN/report)")
    rp.add_argument("--json", action="store_true", help="print the headline numbers as JSON")
    rp.add_argument("--out", default="runs", help="runs folder (default: runs)")


def _report_after_training(run_dir, quiet, out):
    """The run report at the end of `cnnlab train`; a failure leaves the run as it is and
    says how to retry (the training itself succeeded)."""
    from .insight.report import write_run_report
    try:
        r = write_run_report(run_dir, root=run_dir.parent)
    except Exception as err:  # noqa: BLE001 - a report's failure must not fail the training
        what = str(err) if isinstance(err, CnnlabError) else f"{type(err).__name__}: {err}"
        print(f"cnnlab: note: no run report ({what}). The run is complete; retry with: "
              f"cnnlab report {run_dir}", file=sys.stderr)
        return
    if not quiet:
        out.write(f"Report: {r['html']} ({r['seconds']:.1f}s)\n")
        for f in r["findings"]:
            out.write(f"Diagnosis: {f['title']}\n")


def cmd_explain(args, out):
    from .insight.explain import explain_run, format_explain
    r = explain_run(args.run, args.images, root=args.out, out=args.output, top=args.top)
    out.write((json.dumps(r, indent=2) if args.json else format_explain(r)) + "\n")
    return 0


def cmd_report(args, out):
    from .insight.report import format_report, write_run_report
    r = write_run_report(args.run, root=args.out, out=args.output)
    out.write((json.dumps(r, indent=2) if args.json else format_report(r)) + "\n")
    return 0


def _spec_from_target(target, runs_root):
    from .config import RunConfig
    from .runs import find_run
    if target is None:
        return RunConfig.load(None).spec
    path = Path(target)
    if path.is_file():
        return RunConfig.load(path).spec
    return RunConfig.load(find_run(target, runs_root) / "config.yaml").spec


def cmd_summary(args, out):
    from .summary import summary_json, summary_text
    spec = _spec_from_target(args.target, args.out)
    out.write((json.dumps(summary_json(spec), indent=2) if args.json else summary_text(spec)) + "\n")
    return 0


def cmd_export(args, out):
    from .saving.export import export_run
    path = export_run(args.run, args.format, args.output, args.out, args.weights)
    out.write(f"Wrote {path}\n")
    return 0


def cmd_serve(args, out):
    from .serve import Settings, serve
    settings = Settings(max_batch=args.max_batch, max_wait_ms=args.max_wait_ms,
                        timeout_s=args.timeout)
    return serve(args.runs, args.runs_dir, args.host, args.port, settings, stream=out,
                 threads=args.threads)


def cmd_runs(args, out):
    from .runs import format_runs, list_runs
    rows = list_runs(args.out)
    out.write((json.dumps(rows, indent=2) if args.json else format_runs(rows)) + "\n")
    return 0


def cmd_plot(args, out):
    from .plots import plot_history
    from .runs import find_run, read_json
    run = find_run(args.run, args.out)
    h = read_json(run / "history.json")
    from .tolerant import check_history
    if h and check_history(h):
        from .errors import RunError
        raise RunError(f"{run / 'history.json'} is damaged: {check_history(h)}.")
    if not h:
        raise ConfigError(f"Run {run} has no history yet (history.json is missing or empty).")
    for path in plot_history(h, run):
        out.write(f"{path}\n")
    return 0


def cmd_evaluate(args, out):
    from .evaluate import evaluate_run, format_evaluation
    result = evaluate_run(args.run, root=args.out, data=args.data, data_dir=args.data_dir,
                          fallback=not args.no_fallback)
    out.write((json.dumps(result, indent=2) if args.json else format_evaluation(result)) + "\n")
    return 0


def cmd_predict(args, out):
    from .evaluate import format_predictions, predict_files
    result = predict_files(args.run, args.images, root=args.out, top=args.top)
    out.write((json.dumps(result, indent=2) if args.json else format_predictions(result)) + "\n")
    return 0


def cmd_data(args, out):
    from .data import commands
    fn = {"list": lambda: commands.data_list(args.data_dir),
          "info": lambda: commands.data_info(args.name, args.data_dir),
          "fetch": lambda: commands.data_fetch(args.name, args.data_dir)}[args.data_command]
    out.write(fn().rstrip("\n") + "\n")
    return 0


def cmd_experiment(args, out):
    from .experiments import run_experiment
    data = {"name": args.data, "data_dir": args.data_dir}
    if args.no_fallback:
        data["fallback"] = False
    report = run_experiment(args.file, out=args.out, name=args.name, epochs=args.epochs,
                            seeds=args.seeds, jobs=args.jobs, data=data, quiet=args.quiet,
                            only=args.only.split(",") if args.only else None, stream=out)
    out.write(f"Report: {report}\n")
    return 0


def cmd_tune(args, out):
    from .tune import run_tune
    data = {"name": args.data, "data_dir": args.data_dir}
    if args.no_fallback:
        data["fallback"] = False
    report = run_tune(args.file, out=args.out, name=args.name, trials=args.trials,
                      timeout=args.timeout, jobs=args.jobs, storage=args.storage,
                      epochs=args.epochs, data=data, quiet=args.quiet, stream=out)
    out.write(f"Report: {report}\nBest config: {report.parent / 'best_config.yaml'}\n")
    return 0


def cmd_compare(args, out):
    from .experiments import compare_runs
    report = compare_runs(args.runs, root=args.out, report_dir=args.report, stream=out)
    out.write(f"Report: {report}\n")
    return 0


COMMANDS = {"tune": cmd_tune, "experiment": cmd_experiment, "compare": cmd_compare, "train": cmd_train, "summary": cmd_summary, "runs": cmd_runs, "plot": cmd_plot,
            "export": cmd_export, "explain": cmd_explain, "report": cmd_report,
            "serve": cmd_serve,
            "evaluate": cmd_evaluate, "predict": cmd_predict, "data": cmd_data}


def program(argv, out=None) -> int:
    args = build_parser().parse_args(argv)
    args.argv = list(argv)  # --nproc runs the same command line in each process
    return COMMANDS[args.command](args, out or sys.stdout)


def main(argv=None) -> int:
    import warnings
    from .tolerant import one_line_warnings
    shown = warnings.showwarning
    one_line_warnings()
    try:
        code = program(sys.argv[1:] if argv is None else argv)
    except CnnlabError as err:
        print(f"cnnlab: error: {err}", file=sys.stderr)
        code = err.exit_code
    except KeyboardInterrupt:
        print("cnnlab: interrupted", file=sys.stderr)
        code = ExitStatus.INTERRUPTED
    except BrokenPipeError:
        code = ExitStatus.OK
    except RuntimeError as err:  # torch's out-of-memory errors (GPU or CPU allocator)
        if not out_of_memory(err):
            raise
        first = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
        print(f"cnnlab: error: out of memory: {first} Expected a smaller model or --batch-size, "
              "or another --device.", file=sys.stderr)
        code = ExitStatus.SPEC
    finally:
        warnings.showwarning = shown
    sys.exit(int(code))


def out_of_memory(err: BaseException) -> bool:
    """torch.OutOfMemoryError (CUDA), or the CPU allocator's RuntimeError."""
    return type(err).__name__ == "OutOfMemoryError" or "can't allocate memory" in str(err)


if __name__ == "__main__":
    main()
