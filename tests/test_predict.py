"""`cnnlab predict` on pictures of digits drawn black on white, rendered by the test itself."""
import json
import sys
from pathlib import Path

import pytest

from cnnlab.cli import main
from cnnlab.config import RunConfig
from cnnlab.runner import train_run

sys.path.insert(0, str(Path(__file__).parent))
from pen_digits import pen_digit_png  # noqa: E402


@pytest.fixture(scope="module")
def trained_run(tmp_path_factory):
    out = tmp_path_factory.mktemp("runs")
    cfg = RunConfig.load(None).with_overrides(data={"name": "mnist-sample"},
                                              train={"epochs": 3})
    result = train_run(cfg, out=out, name="digits", quiet=True)
    assert result.metrics["final_val_accuracy"] > 0.95
    return result.run_dir


def test_predict_rendered_digits(trained_run, tmp_path, capsys):
    paths = []
    for digit in range(10):
        for size, ink, paper in [((200, 240), "black", "white"), ((80, 60), "#202020", "#f0f0e0")]:
            path = tmp_path / f"{digit}-{size[0]}.png"
            path.write_bytes(pen_digit_png(digit, size=size, ink=ink, paper=paper))
            paths.append((digit, path))
    with pytest.raises(SystemExit) as code:
        main(["predict", str(trained_run), *[str(p) for _, p in paths], "--json"])
    out = json.loads(capsys.readouterr().out)
    assert code.value.code == 0
    preds = out["predictions"]
    assert len(preds) == len(paths) and all(len(p["top"]) == 3 for p in preds)
    right = [d for (d, _), p in zip(paths, preds) if p["top"][0]["class"] == str(d)]
    assert len(right) >= 19, [(d, p["top"][0]["class"]) for (d, _), p in zip(paths, preds)]
    probs = [t["probability"] for t in preds[0]["top"]]
    assert probs == sorted(probs, reverse=True) and 0 < sum(probs) <= 1.0001


def test_predict_text_output_and_bad_image(trained_run, tmp_path, capsys):
    good = tmp_path / "seven.png"
    good.write_bytes(pen_digit_png(7))
    bad = tmp_path / "broken.png"
    bad.write_bytes(b"\x89PNG\r\n\x1a\n" + b"\0" * 20)
    with pytest.raises(SystemExit) as code:
        main(["predict", str(trained_run), str(good)])
    out = capsys.readouterr().out
    assert code.value.code == 0 and out.startswith(f"{good}: 7 ")
    with pytest.raises(SystemExit) as code:
        main(["predict", str(trained_run), str(good), str(bad)])
    err = capsys.readouterr().err
    assert code.value.code == 4 and "broken.png" in err and "Traceback" not in err
