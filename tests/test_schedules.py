"""The one-cycle learning-rate schedule (cosine and linear) and the recipes that use it."""
from __future__ import annotations

import math

import numpy as np
import pytest

import cnnlab
from cnnlab.config import RECIPES, RunConfig
from cnnlab.errors import ConfigError
from cnnlab.train.schedules import one_cycle_lr


@pytest.mark.parametrize("anneal", ["cos", "linear"])
def test_one_cycle_starts_low_peaks_after_pct_start_and_ends_near_zero(anneal):
    total, peak = 200, 0.01
    rates = [one_cycle_lr(s, total, peak, 0.25, anneal_strategy=anneal) for s in range(total)]
    assert rates[0] == pytest.approx(peak / 25)
    assert max(rates) == pytest.approx(peak) and int(np.argmax(rates)) == 50
    assert rates[-1] < peak / 100     # annealed toward max/(div*final_div), one step short
    assert all(a <= b for a, b in zip(rates[:50], rates[1:51]))    # rises, then falls
    assert all(a >= b for a, b in zip(rates[50:], rates[51:]))


def test_linear_one_cycle_is_straight_lines_and_cosine_is_not():
    total, peak, start, end = 100, 0.01, 0.01 / 25, 0.01 / 25e4
    lin = [one_cycle_lr(s, total, peak, 0.2, anneal_strategy="linear") for s in range(total)]
    assert lin[10] == pytest.approx(start + (peak - start) * 10 / 20)        # halfway up
    assert lin[60] == pytest.approx(end + (peak - end) * (1 - 40 / 80))      # halfway down
    cos = one_cycle_lr(60, total, peak, 0.2)
    assert cos == pytest.approx(end + (peak - end) * (1 + math.cos(math.pi * 0.5)) / 2)
    assert one_cycle_lr(70, total, peak, 0.2) < lin[70]  # the cosine falls faster late on


@pytest.mark.parametrize("schedule, message", [
    ({"one_cycle": {}}, "Missing `train.lr_schedule.one_cycle.max_learning_rate`."),
    ({"one_cycle": {"max_learning_rate": 0.01, "anneal_strategy": "cosine"}},
     "`train.lr_schedule.one_cycle.anneal_strategy`. Expected one of: cos, linear. "
     "Received 'cosine'."),
    ({"one_cycle": {"max_learning_rate": 0.01, "pct_start": 1.5}}, "Expected a number between 0 and 1. Received 1.5."),
    ({"one_cycle": {"max_learning_rate": -1}}, "Expected a strictly positive number. Received -1."),
    ({"one_cycle": {"warmup": 3}}, "Expected null or {one_cycle: {max_learning_rate: 0.004"),
    ({"cosine": {}}, "Expected null or {one_cycle:"),
])
def test_bad_schedules_are_config_errors_naming_the_key(schedule, message):
    with pytest.raises(ConfigError, match=message.replace("{", r"\{").replace(".", r"\.")
                       .replace("(", r"\(").replace(")", r"\)").replace("-", r"\-")):
        RunConfig.from_dict({"train": {"lr_schedule": schedule}})


def test_every_recipe_is_a_valid_train_section():
    for name, recipe in RECIPES.items():
        RunConfig.from_dict({"train": recipe})  # raises on a bad key or value


def test_fit_with_the_fast_recipe_uses_its_settings_and_anneals_the_rate():
    recipe = RECIPES["fast"]
    rng = np.random.default_rng(0)
    x = rng.random((64, 28, 28, 1), dtype=np.float32)
    y = np.eye(10, dtype=np.float32)[rng.integers(0, 10, 64)]
    model = cnnlab.Sequential([cnnlab.layers.Conv2D(4, 3, activation="relu", input_shape=(28, 28, 1)),
                               cnnlab.layers.MaxPooling2D(), cnnlab.layers.Flatten(),
                               cnnlab.layers.Dense(10, activation="softmax")])
    model.compile(loss="categorical_crossentropy", optimizer="adam", metrics=["accuracy"])
    history = model.fit(x, y, recipe="fast", verbose=0, seed=0, batch_size=4)  # 16 steps an epoch
    assert history.params["epochs"] == recipe["epochs"] and history.params["steps"] == 16
    opt = model._trainer.optimizer
    assert opt.param_groups[0]["betas"][1] == recipe["optimizer"].get("beta_2", 0.999)
    assert model._trainer.label_smoothing == recipe["label_smoothing"]
    cycle = recipe["lr_schedule"]["one_cycle"]
    total = recipe["epochs"] * 16
    last = one_cycle_lr(total - 1, total, cycle["max_learning_rate"], cycle.get("pct_start", 0.25),
                        anneal_strategy=cycle.get("anneal_strategy", "cos"))
    assert opt.param_groups[0]["lr"] == pytest.approx(last)  # the last step's rate
    assert last < cycle["max_learning_rate"] / 10
