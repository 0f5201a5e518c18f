"""Each diagnosis fires on numbers built to show it and stays silent otherwise, with its evidence.

The two real histories are cnnlab runs on the bundled MNIST sample (seed 0, CPU): the
lecture's model for 10 epochs, and the same with BatchNormalization after each Conv2D for
2 epochs (63 steps per epoch), whose validation sits at chance while training is at 97%.
"""
import math

import numpy as np
import pytest

from cnnlab.insight import diagnose as d

LECTURE_10 = {  # runs/lecture, 10 epochs on mnist-sample: the lecture's normal run
    "loss": [0.7753, 0.1949, 0.1235, 0.0883, 0.0700, 0.0562, 0.0422, 0.0338, 0.0290, 0.0196],
    "accuracy": [0.7808, 0.9441, 0.9636, 0.9736, 0.9791, 0.9829, 0.9871, 0.9898, 0.9914, 0.9948],
    "val_loss": [0.3189, 0.1735, 0.1378, 0.1332, 0.1059, 0.1182, 0.1109, 0.1140, 0.1011, 0.1150],
    "val_accuracy": [0.9115, 0.9485, 0.957, 0.9575, 0.9705, 0.967, 0.9685, 0.9685, 0.9755, 0.976]}
BN_2 = {"loss": [0.4495, 0.0872], "accuracy": [0.869, 0.974375],
        "val_loss": [2.1212, 2.6519], "val_accuracy": [0.1125, 0.1125]}
OVERFIT = {  # val loss bottoms at epoch 3, then climbs while train keeps improving
    "loss": [0.9, 0.4, 0.25, 0.15, 0.09, 0.05, 0.03],
    "accuracy": [0.70, 0.86, 0.92, 0.95, 0.97, 0.985, 0.995],
    "val_loss": [0.6, 0.45, 0.40, 0.42, 0.47, 0.53, 0.60],
    "val_accuracy": [0.80, 0.85, 0.87, 0.87, 0.865, 0.86, 0.855]}


def kinds(findings):
    return [f.kind for f in findings]


def test_the_lectures_normal_run_gets_no_diagnosis():
    assert d.diagnose_history(LECTURE_10, num_classes=10) == []
    assert d.diagnose_history(LECTURE_10, num_classes=10, bn_momentum=None, steps=630) == []


def test_batchnorm_warmup_is_named_with_its_steps_and_not_called_overfitting():
    found = d.diagnose_history(BN_2, num_classes=10, bn_momentum=0.99, steps=126)
    assert kinds(found) == ["batchnorm_warmup"]
    f = found[0]
    assert f.evidence["steps"] == 126 and f.evidence["momentum"] == 0.99
    assert f.evidence["initial_weight_left"] == pytest.approx(0.99 ** 126)
    assert f.evidence["steps_needed"] == math.ceil(math.log(0.01) / math.log(0.99))  # 459
    assert "126 training steps" in f.text and "28.2%" in f.text and "11.2%" in f.text
    assert "not overfitting" in f.title and "momentum" in f.advice


def test_batchnorm_warmup_needs_batchnorm_chance_level_and_cold_statistics():
    assert d.batchnorm_warmup(BN_2, 10, momentum=None, steps=126) is None      # no BN layer
    assert d.batchnorm_warmup(BN_2, 10, momentum=0.99, steps=5000) is None     # warmed up
    assert d.batchnorm_warmup(BN_2, 10, momentum=0.9, steps=126) is None       # 0.9^126 ~ 0
    above_chance = dict(BN_2, val_accuracy=[0.5, 0.6])
    assert d.batchnorm_warmup(above_chance, 10, momentum=0.99, steps=126) is None
    low_train = dict(BN_2, accuracy=[0.2, 0.3])
    assert d.batchnorm_warmup(low_train, 10, momentum=0.99, steps=126) is None


def test_real_overfitting_is_found_with_the_epoch_it_began():
    found = d.diagnose_history(OVERFIT, num_classes=10, bn_momentum=0.99, steps=5000)
    assert kinds(found) == ["overfitting"]
    f = found[0]
    assert f.evidence["best_val_loss_epoch"] == 3 and f.evidence["began_epoch"] == 4
    assert f.evidence["val_loss_rise"] == pytest.approx(0.5)
    assert f.evidence["gap_at_best"] == pytest.approx(0.05)
    assert f.evidence["final_gap"] == pytest.approx(0.14)
    assert "from epoch 4" in f.title and "lowest at epoch 3" in f.text
    # with BN and validation at chance the same gap is the warm-up, not overfitting
    assert d.overfitting(dict(OVERFIT, val_accuracy=[0.1] * 7), 10) is None


def test_overfitting_stays_silent_without_a_sustained_rise_or_a_growing_gap():
    one_epoch_bump = dict(OVERFIT, val_loss=[0.6, 0.45, 0.40, 0.39, 0.38, 0.37, 0.45])
    assert d.overfitting(one_epoch_bump, 10) is None
    small_rise = dict(OVERFIT, val_loss=[0.6, 0.45, 0.40, 0.41, 0.42, 0.43, 0.44])  # +10%
    assert d.overfitting(small_rise, 10) is None
    shrinking_gap = dict(OVERFIT, val_accuracy=[0.70, 0.86, 0.90, 0.95, 0.97, 0.985, 0.995])
    assert d.overfitting(shrinking_gap, 10) is None
    train_rising = dict(OVERFIT, loss=[0.9, 0.4, 0.25, 0.3, 0.35, 0.4, 0.45])
    assert d.overfitting(train_rising, 10) is None
    no_acc = {k: v for k, v in OVERFIT.items() if "acc" not in k}  # the loss gap alone
    assert d.overfitting(no_acc, 10).evidence["final_loss_gap"] == pytest.approx(0.57)
    every_other = dict(OVERFIT, val_loss=OVERFIT["val_loss"][1::2])  # validation_freq=2
    assert d.overfitting(every_other, 10) is None


LONG_25 = {  # the lecture's model on mnist-sample, 25 epochs (a real run)
    "loss": [0.7753, 0.1949, 0.1235, 0.0883, 0.07, 0.0562, 0.0422, 0.0338, 0.029, 0.0196,
             0.0168, 0.0138, 0.0101, 0.0118, 0.0081, 0.0089, 0.0038, 0.0025, 0.0022, 0.0012,
             0.0008, 0.0007, 0.0006, 0.0005, 0.0004],
    "accuracy": [0.7808, 0.9441, 0.9636, 0.9736, 0.9791, 0.9829, 0.9871, 0.9898, 0.9914, 0.9948,
                 0.9954, 0.9959, 0.9974, 0.9969, 0.9976, 0.9969, 0.9994, 0.9999, 0.9996, 1.0,
                 1.0, 1.0, 1.0, 1.0, 1.0],
    "val_loss": [0.3189, 0.1735, 0.1378, 0.1332, 0.1059, 0.1182, 0.1109, 0.114, 0.1011, 0.115,
                 0.1068, 0.1149, 0.1064, 0.1225, 0.1244, 0.1228, 0.1181, 0.1191, 0.1203, 0.1238,
                 0.123, 0.1249, 0.1297, 0.1283, 0.129],
    "val_accuracy": [0.9115, 0.9485, 0.957, 0.9575, 0.9705, 0.967, 0.9685, 0.9685, 0.9755,
                     0.976, 0.975, 0.973, 0.977, 0.9745, 0.971, 0.9745, 0.976, 0.9765, 0.9755,
                     0.978, 0.9765, 0.9775, 0.9755, 0.9755, 0.975]}


def test_the_lectures_model_trained_too_long_overfits_from_epoch_10():
    found = d.diagnose_history(LONG_25, num_classes=10)
    assert kinds(found) == ["overfitting"]
    e = found[0].evidence
    assert e["best_val_loss_epoch"] == 9 and e["began_epoch"] == 10
    assert e["val_loss_rise"] == pytest.approx(0.129 / 0.1011 - 1)
    assert e["final_gap"] > e["gap_at_best"]


def test_learning_rate_too_high_nan_rising_and_oscillating():
    nan = {"loss": [2.3, 5.1, float("nan")], "accuracy": [0.1, 0.1, 0.1]}
    found = d.diagnose_history(nan, 10)
    assert kinds(found) == ["lr_too_high"] and found[0].evidence["first_nan_epoch"] == 3
    rising = {"loss": [2.0, 2.4, 2.9, 3.5], "accuracy": [0.2, 0.15, 0.12, 0.1]}
    f = d.learning_rate_too_high(rising)
    assert f.evidence["rising_epochs"] == [2, 3, 4] and "went up" in f.title
    wobbly = {"loss": [1.0, 0.8, 0.9, 0.7, 0.85, 0.6, 0.7]}
    f = d.learning_rate_too_high(wobbly)
    assert f is not None and f.evidence["rising_epochs"] == [3, 5, 7]
    assert d.learning_rate_too_high(LECTURE_10) is None
    assert d.learning_rate_too_high({"loss": [1.0, 0.5, 0.51, 0.3]}) is None  # one rise


def test_learning_rate_too_low_and_underfitting_are_told_apart():
    slow = {"loss": [2.30, 2.25, 2.20, 2.14], "accuracy": [0.12, 0.2, 0.26, 0.31],
            "val_loss": [2.27, 2.22, 2.17, 2.11], "val_accuracy": [0.15, 0.22, 0.28, 0.33]}
    found = d.diagnose_history(slow, 10)
    assert kinds(found) == ["lr_too_low"]
    assert found[0].evidence["relative_drop"] == pytest.approx((2.30 - 2.14) / 2.30)
    plateau = {"loss": [1.2, 0.95, 0.9, 0.89], "accuracy": [0.55, 0.64, 0.66, 0.665],
               "val_loss": [1.0, 0.93, 0.91, 0.9], "val_accuracy": [0.6, 0.65, 0.66, 0.66]}
    found = d.diagnose_history(plateau, 10)
    assert kinds(found) == ["underfitting"]
    assert found[0].evidence["final_accuracy"] == 0.665
    assert d.underfitting(LECTURE_10, 10) is None and d.learning_rate_too_low(LECTURE_10) is None


def test_class_never_predicted():
    truth = np.array([0, 1, 2, 2, 1, 0])
    f = d.never_predicted(np.array([0, 1, 1, 1, 1, 0]), truth, ["a", "b", "c"])
    assert f.evidence == {"classes": ["c"], "support": [2], "images": 6}
    assert d.never_predicted(truth, truth, ["a", "b", "c"]) is None
    # a class absent from the labels is not "never predicted"
    assert d.never_predicted(np.array([0, 1]), np.array([0, 1]), ["a", "b", "c"]) is None


def test_dead_relu_units():
    f = d.dead_relu({"dense": np.array([True] * 4 + [False] * 4), "conv2d": np.ones(4, bool)}, 50)
    assert f.evidence["layers"] == {"dense": {"dead": 4, "units": 8, "share": 0.5}}
    assert "4 of 8 units" in f.text and "50 validation images" in f.text
    # the lecture's 10-epoch run: 14 of its 64 dense units never fire, no diagnosis
    assert d.dead_relu({"dense": np.array([True] * 50 + [False] * 14)}, 2000) is None


def test_data_that_looks_wrong():
    f = d.class_imbalance(np.array([0] * 80 + [1] * 10 + [2] * 10), ["a", "b", "c"])
    assert f.evidence["dominant"] == "a" and f.evidence["share"] == 0.8
    assert d.class_imbalance(np.array([0, 1, 2] * 10), ["a", "b", "c"]) is None
    f = d.class_imbalance(np.array([0, 1] * 10), ["a", "b", "c"])
    assert f.evidence["missing"] == ["c"]
    assert d.pixel_range(0.0, 255.0).evidence == {"min": 0.0, "max": 255.0}
    assert d.pixel_range(0.0, 1.0 / 255).title.endswith("(scaled twice)")
    assert d.pixel_range(0.0, 1.0) is None and d.pixel_range(0.0, 255.0, raw_pixels=True) is None


def test_run_findings_read_momentum_and_steps_from_the_run_files():
    config = {"model": {"layers": [{"Conv2D": {"filters": 4}}, {"BatchNormalization": {}},
                                   {"Dense": {"units": 10}}]}}
    metrics = {"data": {"num_classes": 10}, "steps_per_epoch": 63}
    found = d.run_history_findings(BN_2, config, metrics)
    assert kinds(found) == ["batchnorm_warmup"] and found[0].evidence["steps"] == 126
    assert d.bn_momentum({"layers": [{"BatchNormalization": {"momentum": 0.9}}]}) == 0.9
    assert d.bn_momentum({"layers": [{"Dense": {"units": 3}}]}) is None
    assert d.run_history_findings(LECTURE_10, {"model": {}}, metrics) == []
    assert d.run_history_findings(BN_2, config, {}) == []  # no class count: no claim


def test_the_experiment_report_names_the_warmup_instead_of_more_overfitting():
    from pathlib import Path
    from cnnlab.experiments.collect import Group, RunData, summarize
    from cnnlab.experiments.report import finding_parts

    def run(i, history, model):
        metrics = {"status": "finished", "final_val_accuracy": history["val_accuracy"][-1],
                   "best_val_accuracy": max(history["val_accuracy"]),
                   "final_accuracy": history["accuracy"][-1], "steps_per_epoch": 63,
                   "data": {"num_classes": 10}, "params": 1000, "epoch_seconds": [1.0]}
        return RunData(f"r{i}", Path(f"r{i}"), metrics, history, {"model": model})
    lecture_2 = {k: v[:2] for k, v in LECTURE_10.items()}
    wobble = [0.0, 0.002]  # two seeds per side, so the gap's change can be significant
    base = Group("base", "base", [run(i, dict(lecture_2, val_accuracy=[0.9115, 0.9485 + w]), {})
                                  for i, w in enumerate(wobble)])
    bn_model = {"layers": [{"Conv2D": {}}, {"BatchNormalization": {}}]}
    bn = Group("batchnorm", "BatchNormalization after each Conv2D",
               [run(2 + i, dict(BN_2, val_accuracy=[0.1125, 0.1125 + w]), bn_model)
                for i, w in enumerate(wobble)])
    rows = summarize([base, bn])
    assert rows[1].gap_delta.significant  # the old report said "more overfitting" here
    _, text = finding_parts(rows[1], rows[0])
    assert "more overfitting" not in text
    assert "not overfitting, BatchNormalization's moving statistics" in text
    assert "Diagnosis in 2 of 2 runs: BatchNormalization not warmed up" in text
    assert "126 training steps" in text
    _, base_text = finding_parts(rows[0], rows[0])
    assert "Diagnosis" not in base_text


HIGH_LR = {  # the lecture's model, Adam at 0.05 for 5 epochs on mnist-sample (a real run)
    "loss": [2.9110, 2.3039, 2.3046, 2.3035, 2.3026],
    "accuracy": [0.105125, 0.105125, 0.104875, 0.10225, 0.1055],
    "val_loss": [2.3014, 2.3043, 2.3031, 2.3019, 2.3018],
    "val_accuracy": [0.1125, 0.107, 0.1125, 0.1, 0.1125]}


def test_training_stuck_at_chance_after_a_too_high_rate_is_not_called_underfitting():
    found = d.diagnose_history(HIGH_LR, num_classes=10)
    assert kinds(found) == ["stuck_at_chance"]
    f = found[0]
    assert "learning rate too high" in f.title
    assert f.evidence["uniform_loss"] == pytest.approx(math.log(10))
    assert f.evidence["first_loss"] == 2.9110
    # flat at ln(10) from the start: no claim about the learning rate
    flat = dict(HIGH_LR, loss=[2.3030, 2.3027, 2.3028, 2.3026, 2.3026])
    assert d.stuck_at_chance(flat, 10).title == "Training stuck at chance"
    assert d.stuck_at_chance(LECTURE_10, 10) is None and d.stuck_at_chance(BN_2, 10) is None


LOW_LR = {  # the lecture's model, SGD at 0.0005 for 5 epochs on mnist-sample (a real run)
    "loss": [2.3153, 2.3102, 2.3053, 2.3007, 2.2962],
    "accuracy": [0.113875, 0.11725, 0.12025, 0.123125, 0.129375],
    "val_loss": [2.3129, 2.3079, 2.3032, 2.2987, 2.2944],
    "val_accuracy": [0.111, 0.1125, 0.115, 0.118, 0.1235]}


def test_a_too_low_rate_near_chance_is_slow_progress_not_stuck():
    found = d.diagnose_history(LOW_LR, num_classes=10)
    assert kinds(found) == ["lr_too_low"]
    assert found[0].evidence["relative_drop"] == pytest.approx((2.3153 - 2.2962) / 2.3153)
    assert "Raise the learning rate" in found[0].advice
