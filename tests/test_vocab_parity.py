"""Losses, metrics, optimizers and learning-rate schedules against real Keras 3's values
(tests/keras_refs/vocab_refs.json, made by make_vocab_refs.py)."""
import json
from pathlib import Path

import numpy as np
import pytest
import torch

import cnnlab
from cnnlab import losses, metrics, optimizers
from cnnlab.optimizers import schedules

REFS = json.loads((Path(__file__).parent / "keras_refs" / "vocab_refs.json").read_text())
INPUTS = {k: np.asarray(v) for k, v in REFS["inputs"].items()}


def _input(key):
    a = INPUTS[key]
    return a.astype(np.int64) if key in ("sparse", "multi_sparse") else a.astype(np.float32)


def _id(case):
    return f"{case.get('function', case['class'])}-{case['kwargs']}-{case['y_true']}"


def test_references_come_from_keras_3_on_torch():
    assert REFS["keras_version"].startswith("3.") and REFS["backend"] == "torch"


@pytest.mark.parametrize("case", REFS["losses"], ids=_id)
def test_loss_functions_and_objects_give_keras_values(case):
    y_true, y_pred = _input(case["y_true"]), _input(case["y_pred"])
    per = getattr(losses, case["function"])(y_true, y_pred, **case["kwargs"])
    np.testing.assert_allclose(per.numpy(), case["per_sample"], rtol=1e-5, atol=1e-6)
    obj = getattr(losses, case["class"])(**case["kwargs"])
    np.testing.assert_allclose(float(obj(y_true, y_pred)), case["object"], rtol=1e-5, atol=1e-6)
    weighted = obj(y_true, y_pred, sample_weight=INPUTS["weights"])
    np.testing.assert_allclose(float(weighted), case["object_weighted"], rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("case", REFS["losses"], ids=_id)
def test_the_training_loss_is_the_keras_loss(case):
    """What the loop computes (the registry entry's per-sample loss, smoothing applied as the
    trainer does) averages to Keras's loss object's value."""
    entry = losses.get(getattr(losses, case["class"])(**case["kwargs"]))
    y_true = torch.as_tensor(_input(case["y_true"]))
    y_pred = torch.as_tensor(_input(case["y_pred"]))
    target = losses.smooth(y_true, entry.target, entry.label_smoothing)
    per = entry.fn(y_pred, target, entry.from_logits)
    np.testing.assert_allclose(float(per.mean()), case["object"], rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("case", REFS["metrics"], ids=_id)
def test_metrics_give_keras_values_batch_by_batch(case):
    m = getattr(metrics, case["class"])(**case["kwargs"])
    # Keras numbers repeated names in one session ("precision_1"); cnnlab keeps the base name
    keras_name = case["name"].rsplit("_", 1)[0] if case["name"][-1].isdigit() else case["name"]
    assert m.name == keras_name
    y_true, y_pred = _input(case["y_true"]), _input(case["y_pred"])
    n = len(y_true) // 2
    m.update_state(y_true[:n], y_pred[:n])
    assert m.result() == pytest.approx(case["after_first_batch"], rel=1e-5, abs=1e-6)
    m.update_state(y_true[n:], y_pred[n:])
    assert m.result() == pytest.approx(case["result"], rel=1e-5, abs=1e-6)
    m.reset()
    assert m.result() == 0.0
    m.update_state(y_true, y_pred, sample_weight=INPUTS["metric_weights"])
    assert m.result() == pytest.approx(case["weighted"], rel=1e-5, abs=1e-6)


def _keras_problem():
    p = REFS["optimizer_problem"]
    return (np.asarray(p["w0"], np.float32), np.asarray(p["a"], np.float32),
            np.asarray(p["b"], np.float32), p["steps"])


def _cnnlab_optimizer(case):
    kwargs = dict(case["kwargs"])
    lr = kwargs.get("learning_rate")
    if isinstance(lr, list):  # (schedule class, its arguments), as JSON keeps a tuple
        kwargs["learning_rate"] = getattr(schedules, lr[0])(**lr[1])
    return getattr(optimizers, case["class"])(**kwargs)


@pytest.mark.parametrize("case", REFS["optimizers"], ids=lambda c: f"{c['class']}-{c['kwargs']}")
def test_optimizers_step_as_keras_on_a_quadratic(case):
    w0, a, b, steps = _keras_problem()
    opt = _cnnlab_optimizer(case)
    p = torch.nn.Parameter(torch.from_numpy(w0.copy()))
    torch_opt = opt.build([p])
    schedule = getattr(torch_opt, "cnnlab_schedule", None)
    for i in range(steps):
        if schedule is not None:  # what the training loop does before each step
            for g in torch_opt.param_groups:
                g["lr"] = schedule(i)
        p.grad = torch.from_numpy(a) * p.detach() + torch.from_numpy(b)
        torch_opt.step()
        np.testing.assert_allclose(p.detach().numpy(), case["trace"][i], rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("case", [c for c in REFS["optimizers"] if not c["kwargs"]],
                         ids=lambda c: c["class"])
def test_new_optimizers_have_keras_defaults(case):
    args = _cnnlab_optimizer(case).args
    for key, value in case["config"].items():
        assert args[key] == pytest.approx(value, rel=1e-6), key


@pytest.mark.parametrize("case", REFS["schedules"], ids=lambda c: f"{c['class']}-{c['kwargs']}")
def test_schedules_give_keras_rates(case):
    s = getattr(schedules, case["class"])(**case["kwargs"])
    got = [s(step) for step in REFS["schedule_steps"]]
    np.testing.assert_allclose(got, case["values"], rtol=1e-6, atol=1e-9)


def test_backend_answers_as_keras():
    from cnnlab import backend as K
    ref = REFS["backend_module"]
    assert K.image_data_format() == ref["image_data_format"]
    assert K.epsilon() == ref["epsilon"] and K.floatx() == ref["floatx"]
    assert cnnlab.backend is K
