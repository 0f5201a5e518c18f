"""Keras's vocabulary in training: loss objects (from_logits), metrics with Keras's history
keys, learning-rate schedules, resume with metric state, the backend module and Keras 2
spellings; the messages of bad inputs."""
import warnings

import numpy as np
import pytest
import torch

import cnnlab
from cnnlab import losses, metrics, optimizers
from cnnlab.errors import ConfigError
from cnnlab.optimizers import schedules
from cnnlab.train.callbacks import Callback
from cnnlab.train.checkpoint import restore_checkpoint, save_checkpoint
from test_models import small_model, tiny_data


def _twin(model_a, model_b):
    model_b.net.load_state_dict(model_a.net.state_dict())


def _dense_only(classes=3, activation=None):
    return cnnlab.Sequential([
        cnnlab.layers.Conv2D(4, 3, input_shape=(8, 8, 1), activation="relu"),
        cnnlab.layers.MaxPooling2D(), cnnlab.layers.Flatten(),
        cnnlab.layers.Dense(classes, activation=activation)])


def test_from_logits_on_a_model_without_softmax_trains_as_the_softmax_model():
    """Dense(3) + SparseCategoricalCrossentropy(from_logits=True) is the same computation as
    Dense(3, softmax) + 'sparse_categorical_crossentropy' (whose softmax the loss takes
    over): the same weights give the same history."""
    x, y = tiny_data()
    logits_model, softmax_model = _dense_only(), _dense_only(activation="softmax")
    _twin(logits_model, softmax_model)
    logits_model.compile(optimizer="adam", metrics=["accuracy"], device="cpu",
                         loss=losses.SparseCategoricalCrossentropy(from_logits=True))
    softmax_model.compile(optimizer="adam", loss="sparse_categorical_crossentropy",
                          metrics=["accuracy"], device="cpu")
    ha = logits_model.fit(x, y, epochs=3, batch_size=16, seed=1, verbose=0,
                          validation_split=0.25).history
    hb = softmax_model.fit(x, y, epochs=3, batch_size=16, seed=1, verbose=0,
                           validation_split=0.25).history
    assert ha == hb
    assert ha["loss"][-1] < ha["loss"][0]
    logits = logits_model.predict(x)
    probs = softmax_model.predict(x)
    np.testing.assert_allclose(torch.softmax(torch.from_numpy(logits), -1).numpy(), probs,
                               rtol=1e-5, atol=1e-6)
    # evaluate's loss is the loss object's value on the model's outputs
    loss, acc = logits_model.evaluate(x, y, verbose=0)
    keras_loss = losses.SparseCategoricalCrossentropy(from_logits=True)(y, logits)
    assert loss == pytest.approx(float(keras_loss), rel=1e-5)
    assert acc == pytest.approx(float((logits.argmax(1) == y).mean()))


def test_compile_takes_loss_objects_functions_and_strings_alike():
    x, y = tiny_data()
    onehot = cnnlab.utils.to_categorical(y, 3)
    names = ("categorical_crossentropy", losses.categorical_crossentropy,
             losses.CategoricalCrossentropy(), "CategoricalCrossentropy")
    models = [small_model() for _ in names]
    for model in models[1:]:
        _twin(models[0], model)  # the same start
    results = []
    for loss, model in zip(names, models):
        model.compile(optimizer="sgd", loss=loss, metrics=["accuracy"], device="cpu")
        results.append(model.fit(x, onehot, epochs=1, batch_size=32, seed=0, verbose=0).history)
    assert all(r == results[0] for r in results)


def test_metric_history_keys_are_the_names_keras_writes():
    x, y = tiny_data()
    model = small_model()
    model.compile(optimizer="adam", loss="sparse_categorical_crossentropy", device="cpu",
                  metrics=["acc", "sparse_top_k_categorical_accuracy", metrics.Precision(),
                           metrics.AUC(), "mse"])
    h = model.fit(x, y, epochs=2, batch_size=16, seed=0, verbose=0, validation_split=0.25)
    keys = ["acc", "sparse_top_k_categorical_accuracy", "precision", "auc", "mse"]
    assert list(h.history) == ["loss", *keys, "val_loss", *[f"val_{k}" for k in keys]]
    assert model.metrics == keys


def test_validation_metrics_equal_the_metric_objects_on_the_predictions():
    x, y = tiny_data()
    xv, yv = x[72:], y[72:]
    model = small_model()
    model.compile(optimizer="adam", loss="sparse_categorical_crossentropy", device="cpu",
                  metrics=["accuracy", metrics.Precision(), metrics.Recall(thresholds=0.4),
                           metrics.AUC(), metrics.TopKCategoricalAccuracy(k=2)])
    h = model.fit(x[:72], y[:72], epochs=2, batch_size=16, seed=0, verbose=0,
                  validation_data=(xv, yv)).history
    probs = model.predict(xv)
    onehot = cnnlab.utils.to_categorical(yv, 3)
    for key, m in [("precision", metrics.Precision()), ("recall", metrics.Recall(thresholds=0.4)),
                   ("auc", metrics.AUC()), ("top_k_categorical_accuracy",
                                            metrics.TopKCategoricalAccuracy(k=2))]:
        m.update_state(onehot, probs)
        assert h[f"val_{key}"][-1] == pytest.approx(m.result(), rel=1e-6, abs=1e-9), key
    assert h["val_accuracy"][-1] == pytest.approx(float((probs.argmax(1) == yv).mean()))
    # evaluate: [loss, *metrics] in compile's order, or a dict
    values = model.evaluate(xv, yv, verbose=0)
    as_dict = model.evaluate(xv, yv, verbose=0, return_dict=True)
    assert list(as_dict) == ["loss", "accuracy", "precision", "recall", "auc",
                             "top_k_categorical_accuracy"]
    assert values == list(as_dict.values())
    assert as_dict["auc"] == pytest.approx(h["val_auc"][-1])


def test_metrics_see_probabilities_when_the_loss_took_over_the_sigmoid():
    """binary_crossentropy folds the model's sigmoid into the loss; AUC and binary accuracy
    must still see probabilities, as in Keras."""
    x, y = tiny_data(classes=2)
    model = cnnlab.Sequential([cnnlab.layers.Flatten(input_shape=(8, 8, 1)),
                               cnnlab.layers.Dense(1, activation="sigmoid")])
    model.compile(optimizer="adam", loss="binary_crossentropy", device="cpu",
                  metrics=["accuracy", metrics.AUC(), "binary_accuracy"])
    model.fit(x, y, epochs=2, batch_size=16, seed=0, verbose=0)
    result = model.evaluate(x, y, verbose=0, return_dict=True)
    probs = model.predict(x)
    auc = metrics.AUC()
    auc.update_state(y.reshape(-1, 1), probs)
    assert result["auc"] == pytest.approx(auc.result())
    acc = float(((probs[:, 0] > 0.5) == y).mean())
    assert result["accuracy"] == pytest.approx(acc) and result["binary_accuracy"] == pytest.approx(acc)


def test_the_fast_step_stays_for_accuracy_and_steps_aside_for_metric_objects():
    from cnnlab import fast
    if not fast.kernels_available():
        pytest.skip(f"the compiled kernels do not run here: {fast.kernels_status()}")
    x, y = tiny_data()
    plain, as_object, with_auc = small_model(), small_model(), small_model()
    _twin(plain, as_object)
    plain.compile(optimizer="adam", loss="sparse_categorical_crossentropy",
                  metrics=["accuracy"], device="cpu")
    as_object.compile(optimizer="adam", loss="sparse_categorical_crossentropy",
                      metrics=[metrics.SparseCategoricalAccuracy()], device="cpu")
    with_auc.compile(optimizer="adam", loss="sparse_categorical_crossentropy",
                     metrics=["accuracy", "auc"], device="cpu")
    h = [model.fit(x, y, epochs=1, batch_size=16, seed=0, verbose=0).history
         for model in (plain, as_object, with_auc)]
    assert plain._trainer.fast_step is not None and as_object._trainer.fast_step is not None
    assert with_auc._trainer.fast_step is None
    assert h[1] == {"loss": h[0]["loss"], "sparse_categorical_accuracy": h[0]["accuracy"]}


class _Record(Callback):
    def __init__(self):
        super().__init__()
        self.logs = []

    def on_epoch_end(self, epoch, logs=None):
        self.logs.append(dict(logs))


class _SaveAndStop(Callback):
    def __init__(self, at_step, path):
        super().__init__()
        self.at_step, self.path = at_step, path

    def on_train_batch_end(self, batch, logs=None):
        if self.trainer.position.global_step == self.at_step:
            save_checkpoint(self.path, self.trainer)
            self.trainer.stop_training = True


def _resumable_model():
    torch.manual_seed(5)
    model = small_model()
    model.compile(optimizer=optimizers.SGD(learning_rate=schedules.ExponentialDecay(0.2, 3, 0.5),
                                           momentum=0.9),
                  loss="sparse_categorical_crossentropy", device="cpu",
                  metrics=["acc", metrics.Precision(), metrics.AUC(num_thresholds=50)])
    return model


def _fit(model, x, y, callbacks, position=None):
    tr = model._trainer
    train, val = model._arrays(x[:72], y[:72], "training"), model._arrays(x[72:], y[72:], "v")
    tr.fit(train, val, epochs=3, batch_size=16, callbacks=callbacks, seed=4, position=position)


def test_resume_mid_epoch_restores_metric_state_and_schedule_bit_for_bit(tmp_path):
    x, y = tiny_data()
    whole = _resumable_model()
    rec_whole = _Record()
    _fit(whole, x, y, [rec_whole])
    path = tmp_path / "ckpt.safetensors"
    first = _resumable_model()
    rec = _Record()
    _fit(first, x, y, [rec, _SaveAndStop(7, path)])  # epoch 2 of 3, step 3 of 5
    assert len(rec.logs) == 1
    second = _resumable_model()
    position = restore_checkpoint(path, second._trainer)
    assert position.global_step == 7 and position.step == 2
    assert float(position.sums.objects()[0].state()[0]) > 0  # precision's running counts
    rest = _Record()
    _fit(second, x, y, [rest], position=position)
    assert rec.logs + rest.logs == rec_whole.logs
    for a, b in zip(whole.net.parameters(), second.net.parameters()):
        assert torch.equal(a, b)
    # the schedule's rate for the last step (index 14): restored from the step counter
    assert second._trainer.optimizer.param_groups[0]["lr"] == pytest.approx(0.2 * 0.5 ** (14 / 3))


def test_a_schedule_sets_the_rate_of_every_step_from_zero():
    x, y = tiny_data()
    model = small_model()
    s = schedules.PiecewiseConstantDecay([2, 4], [0.1, 0.05, 0.01])
    model.compile(optimizer=optimizers.Adam(learning_rate=s), device="cpu",
                  loss="sparse_categorical_crossentropy")
    seen = []

    class Rates(Callback):
        def on_train_batch_end(self, batch, logs=None):
            seen.append(self.trainer.optimizer.param_groups[0]["lr"])

    model.fit(x, y, epochs=2, batch_size=32, seed=0, verbose=0, callbacks=[Rates()])
    assert seen == [s(i) for i in range(6)] == [0.1, 0.1, 0.1, 0.05, 0.05, 0.01]


def test_new_optimizers_train_a_model():
    x, y = tiny_data()
    for opt in (optimizers.Adadelta(learning_rate=1.0), optimizers.Nadam(0.01),
                optimizers.Adamax(0.01), "nadam", {"name": "adadelta", "rho": 0.9}):
        model = small_model()
        model.compile(optimizer=opt, loss="sparse_categorical_crossentropy", device="cpu")
        h = model.fit(x, y, epochs=3, batch_size=16, seed=0, verbose=0).history
        assert list(h) == ["loss"] and h["loss"][-1] < h["loss"][0], opt


def test_keras_2_lr_is_accepted_with_one_notice():
    import cnnlab.deprecation as dep
    dep._NOTICED.discard("lr")
    with pytest.warns(FutureWarning, match=r"`lr` is Keras 2's spelling; use `learning_rate`"):
        opt = optimizers.SGD(lr=0.05, momentum=0.9)
    assert opt.args["learning_rate"] == 0.05
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert optimizers.Adam(lr=0.002).args["learning_rate"] == 0.002  # once is enough
        assert optimizers.get({"name": "sgd", "lr": 0.3}).args["learning_rate"] == 0.3


def test_keras_2_decay_is_keras_2s_inverse_time_decay():
    with pytest.warns(FutureWarning, match="decay"):
        opt = optimizers.Optimizer("sgd", {"learning_rate": 0.1, "decay": 0.01})
    rate = opt.args["learning_rate"]
    assert [rate(i) for i in (0, 10)] == [0.1, pytest.approx(0.1 / 1.1)]


def test_np_utils_is_keras_2s_to_categorical_with_a_notice():
    import cnnlab.deprecation as dep
    dep._NOTICED.discard("keras.utils.np_utils.to_categorical")
    from cnnlab.utils.np_utils import to_categorical
    with pytest.warns(FutureWarning, match="use `cnnlab.utils.to_categorical`"):
        got = to_categorical([0, 2], 3)
    np.testing.assert_array_equal(got, cnnlab.utils.to_categorical([0, 2], 3))


def test_backend_module():
    from cnnlab import backend as K
    assert K.image_data_format() == "channels_last" and K.backend() == "torch"
    K.set_image_data_format("channels_last")
    K.set_floatx("float32")
    assert K.int_shape(np.zeros((2, 5, 3))) == (2, 5, 3)
    assert K.int_shape(torch.zeros(4)) == (4,)
    calls = []
    K.register_clear_hook(lambda: calls.append(1))
    K.clear_session()
    assert calls == [1]
    assert [K.get_uid("dense"), K.get_uid("dense"), K.get_uid("conv2d")] == [1, 2, 1]
    K.clear_session()
    assert K.get_uid("dense") == 1
    assert K.standardize_dtype(torch.float32) == K.standardize_dtype(np.float32) == "float32"


@pytest.mark.parametrize("call, message", [
    (lambda: metrics.get("f1"), "Unknown metric 'f1'. Expected one of: acc, accuracy, auc, "
                                "binary_accuracy, categorical_accuracy, mae, mean_absolute_error"),
    (lambda: small_model().compile(loss="mse", metrics=["accuracy", "acc", "accuracy"]),
     "The metric name 'accuracy' is given twice in `metrics`"),
    (lambda: small_model().compile(loss="mse", metrics="accuracy"),
     "Invalid value for argument `metrics`. Expected a list such as ['accuracy']. "
     "Received metrics='accuracy'."),
    (lambda: metrics.get(metrics.AUC), "Expected a metric object such as AUC(). Received the "
                                       "class AUC itself: add the parentheses."),
    (lambda: metrics.AUC(curve="PRGAIN"), "Invalid value for argument `curve`. Expected one "
                                          "of: ROC, PR. Received curve='PRGAIN'."),
    (lambda: metrics.Precision(top_k=3), "Precision(top_k=...) is not supported by cnnlab. "
                                         "Received top_k=3; use thresholds or class_id."),
    (lambda: metrics.Recall(dtype="float16"), "cnnlab's metrics compute in float32. "
                                              "Received dtype='float16'."),
    (lambda: metrics.TopKCategoricalAccuracy(k=0), "Invalid value for argument `k`. Expected a "
                                                   "strictly positive integer. Received k=0."),
    (lambda: metrics.Precision(thresholds=1.5), "Invalid value for argument `thresholds`. "
                                                "Expected a number in [0, 1]. Received thresholds=1.5."),
    (lambda: losses.get("hinge_loss"), "Unknown loss 'hinge_loss'. Expected one of: "
                                       "binary_crossentropy, categorical_crossentropy, hinge"),
    (lambda: losses.get(lambda y_true, y_pred: (y_true - y_pred) ** 2),
     "Custom loss functions are not supported: received '<lambda>'. Expected a Keras loss: one "
     "of binary_crossentropy, categorical_crossentropy, hinge, kl_divergence"),
    (lambda: losses.get(losses.Hinge), "Expected a loss object such as Hinge(). Received the "
                                       "class Hinge itself: add the parentheses."),
    (lambda: losses.CategoricalCrossentropy(label_smoothing=1.5),
     "Invalid value for argument `label_smoothing`. Expected a number in [0, 1]. "
     "Received label_smoothing=1.5."),
    (lambda: losses.BinaryCrossentropy(from_logits="yes"),
     "Invalid value for argument `from_logits`. Expected True or False. Received from_logits='yes'."),
    (lambda: optimizers.SGD(lr=0.1, learning_rate=0.2),
     "Both `lr` and `learning_rate` were given. `lr` is Keras 2's spelling of `learning_rate`: "
     "pass only `learning_rate`."),
    (lambda: optimizers.Nadam(learning_rate=-0.01),
     "Invalid value for argument `learning_rate`. Expected a strictly positive number or a "
     "schedule from cnnlab.optimizers.schedules. Received learning_rate=-0.01."),
    (lambda: optimizers.Adadelta(clipnorm=1.0),
     "Unknown argument `clipnorm` for optimizer 'adadelta'. Expected one of: learning_rate, rho, "
     "epsilon."),
    (lambda: optimizers.get("adamux"), "Unknown optimizer 'adamux'. Expected one of: adadelta, "
                                       "adagrad, adam, adamax, adamw, nadam, rmsprop, sgd."),
    (lambda: schedules.ExponentialDecay(0.1, decay_steps=0, decay_rate=0.9),
     "Invalid value for argument `decay_steps`. Expected a strictly positive number. "
     "Received decay_steps=0."),
    (lambda: schedules.ExponentialDecay(-0.1, 10, 0.9),
     "Invalid value for argument `initial_learning_rate`. Expected a strictly positive number. "
     "Received initial_learning_rate=-0.1."),
    (lambda: schedules.PiecewiseConstantDecay([10, 20], [0.1, 0.01]),
     "The length of `values` should be one more than the length of `boundaries`. "
     "Received boundaries=[10, 20], values=[0.1, 0.01]."),
    (lambda: schedules.PiecewiseConstantDecay([20, 10], [0.1, 0.05, 0.01]),
     "Invalid value for argument `boundaries`. Expected increasing steps. "
     "Received boundaries=[20, 10]."),
    (lambda: schedules.CosineDecay(0.1, 100, alpha=-1),
     "Invalid value for argument `alpha`. Expected a number >= 0. Received alpha=-1."),
    (lambda: optimizers.get({"name": "sgd", "learning_rate": {"class_name": "Cyclic"}}),
     "Unknown learning-rate schedule 'Cyclic'. Expected one of: CosineDecay, ExponentialDecay, "
     "InverseTimeDecay, PiecewiseConstantDecay."),
    (lambda: cnnlab.backend.set_image_data_format("channels_first"),
     "cnnlab supports only data_format='channels_last': images are (height, width, channels). "
     "Received data_format='channels_first'; transpose the images instead"),
    (lambda: cnnlab.backend.set_floatx("float16"),
     "cnnlab computes in float32 only. Expected 'float32'. Received floatx='float16'."),
])
def test_bad_inputs_are_refused_with_keras_style_messages(call, message):
    with pytest.raises(ConfigError) as err:
        call()
    assert message in str(err.value)


def test_optimizer_config_round_trips_a_schedule():
    opt = optimizers.SGD(learning_rate=schedules.CosineDecay(0.1, 50, warmup_target=0.2,
                                                             warmup_steps=5))
    again = optimizers.get(opt.to_config())
    assert [again.args["learning_rate"](i) for i in (0, 3, 30, 80)] == \
        [opt.args["learning_rate"](i) for i in (0, 3, 30, 80)]


def test_a_run_config_takes_metric_names_and_a_schedule(tmp_path):
    from cnnlab.config import RunConfig
    from cnnlab.runner import train_run
    from test_resume_support import tiny_npz, write_config
    data = tiny_npz(tmp_path / "tiny.npz")
    schedule = {"class_name": "PiecewiseConstantDecay",
                "config": {"boundaries": [1], "values": [0.1, 0.02]}}
    cfg = RunConfig.load(write_config(tmp_path / "c.yaml", data, epochs=1,
                                      metrics=["accuracy", "precision", "auc"],
                                      optimizer={"name": "sgd", "learning_rate": schedule}))
    result = train_run(cfg, out=tmp_path / "runs", quiet=True)
    assert {"val_accuracy", "val_precision", "val_auc"} <= set(result.history)
    assert result.history["loss"][0] > 0
    with pytest.raises(ConfigError, match="Unknown metric 'f1'. Expected one of: acc, accuracy"):
        RunConfig.load(write_config(tmp_path / "d.yaml", data, metrics=["f1"]))


def test_metric_updates_and_losses_never_read_a_tensor_on_the_host(monkeypatch):
    """What runs every step stays on the device: no bool()/float()/item() of a tensor (each a
    host sync on a GPU), so the loop reads sums only at the end of an epoch."""
    rng = np.random.default_rng(0)
    probs = torch.softmax(torch.from_numpy(rng.normal(size=(6, 4)).astype(np.float32)), -1)
    index = torch.from_numpy(rng.integers(0, 4, 6))
    onehot = torch.nn.functional.one_hot(index, 4).float()
    objects = [cls() for cls in set(metrics.METRICS.values())] + [metrics.AUC(num_thresholds=7)]

    def host_read(*args):
        raise AssertionError("a tensor was read on the host")
    for name in ("__bool__", "__float__", "__int__", "item", "tolist"):
        monkeypatch.setattr(torch.Tensor, name, host_read)
    for m in objects:
        m.update(probs, onehot)
        m.update(probs, index)
    for entry in losses.LOSSES.values():
        target = index if entry.target == "index" else onehot
        entry.fn(probs, target, False)
        entry.fn(probs.log(), target, entry.name in ("categorical_crossentropy",
                                                    "sparse_categorical_crossentropy",
                                                    "binary_crossentropy"))
    monkeypatch.undo()
    assert all(m.result() >= 0 for m in objects)


def test_metric_functions_give_the_per_sample_values_of_their_classes():
    rng = np.random.default_rng(3)
    probs = rng.dirichlet(np.ones(4), 10).astype(np.float32)
    labels = rng.integers(0, 4, 10)
    onehot = cnnlab.utils.to_categorical(labels, 4)
    np.testing.assert_array_equal(metrics.categorical_accuracy(onehot, probs).numpy(),
                                  probs.argmax(1) == labels)
    np.testing.assert_array_equal(metrics.sparse_categorical_accuracy(labels, probs).numpy(),
                                  probs.argmax(1) == labels)
    top2 = np.argsort(-probs, 1)[:, :2]
    np.testing.assert_array_equal(metrics.sparse_top_k_categorical_accuracy(labels, probs, k=2),
                                  (top2 == labels[:, None]).any(1))
    p = probs[:, :1]
    np.testing.assert_array_equal(metrics.binary_accuracy(labels[:, None] % 2, p, 0.2).numpy(),
                                  (p[:, 0] > 0.2) == (labels % 2))
    m = metrics.get(metrics.top_k_categorical_accuracy)
    assert isinstance(m, metrics.TopKCategoricalAccuracy) and m.name == "top_k_categorical_accuracy"


@pytest.mark.parametrize("given, kept", [([], ["accuracy"]), (["acc"], ["accuracy"]),
                                         (["auc", "acc"], ["accuracy", "auc"])])
def test_a_run_always_records_accuracy_under_that_key(given, kept):
    from cnnlab.config import RunConfig
    assert RunConfig.from_dict({"train": {"metrics": given}}).train["metrics"] == kept


def test_keras_2_layer_modules_still_import():
    """`from keras.layers.convolutional import Conv2D` and `keras.layers.core`, Keras 2's
    module spellings that tutorials still use."""
    from cnnlab.layers.convolutional import Conv2D, MaxPooling2D
    from cnnlab.layers.core import Activation, Dense, Dropout, Flatten
    assert (Conv2D, MaxPooling2D, Dense, Dropout, Flatten, Activation) == (
        cnnlab.layers.Conv2D, cnnlab.layers.MaxPooling2D, cnnlab.layers.Dense,
        cnnlab.layers.Dropout, cnnlab.layers.Flatten, cnnlab.layers.Activation)
