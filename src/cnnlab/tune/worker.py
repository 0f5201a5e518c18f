"""One search worker in its own process (what `cnnlab tune --jobs N` starts N of).

    python -m cnnlab.tune.worker '{"file": "tune.yaml", "name": "tune", "folder": "runs/tune",
                                   "storage": "sqlite:///...", "worker": 1, ...}'

It runs trials from the shared study until the budget or the time is spent, and
exits 0, 130/143 when interrupted (the running trial checkpointed and will be
retried), or the error's code with its message on stderr.
"""
from __future__ import annotations

import json
import sys

from ..errors import CnnlabError
from ..experiments.worker import _die_with_parent
from .space import load_tune
from .study import open_study, work


def main(argv=None) -> int:
    args = json.loads((argv or sys.argv[1:])[0])
    _die_with_parent(args.get("parent"))
    try:
        tune = load_tune(args["file"], args["name"], trials=args["trials"],
                         epochs=args["epochs"], data=args["data"])
        study = open_study(tune, args["storage"], args["folder"], worker=args["worker"])
        return int(work(tune, study, args["folder"], deadline=args["deadline"],
                        threads=args["threads"], log=lambda text: print(text, flush=True)))
    except CnnlabError as err:
        print(f"cnnlab: error: {err}", file=sys.stderr)
        return int(err.exit_code)


if __name__ == "__main__":
    sys.exit(main())
