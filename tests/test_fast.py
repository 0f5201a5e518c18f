"""cnnlab.fast: the rewrite, the kernels' build and choice, the notice, the fence."""
import ast
import os
import pathlib
import shutil

import numpy as np
import pytest
import torch

import cnnlab
from cnnlab import fast
from cnnlab.builder import build
from cnnlab.config import LECTURE_MODEL
from cnnlab.fast import FusedConvPool, MaxPool2x2, cpu, isa, kernels
from cnnlab.layers.modules import Conv2d, Flatten, Linear, Pool2d
from cnnlab.spec import ModelSpec

SRC = pathlib.Path(cnnlab.__file__).parent


# -- the rewrite -----------------------------------------------------------------------

def _chain(spec_dict):
    spec = ModelSpec.from_dict(spec_dict)
    net = build(spec, fuse_pooling=False)
    return spec, net, fast.optimize_chain(zip(spec.layers, net.layers, spec.output_shapes))


def test_the_lectures_pairs_become_one_module_each_holding_the_originals():
    spec, net, (modules, index) = _chain(LECTURE_MODEL)
    assert [type(m) for m in modules] == [FusedConvPool, FusedConvPool, Flatten, Linear, Linear]
    assert index == [0, 0, 1, 1, 2, 3, 4]
    assert modules[0].conv is net.layers[0] and modules[0].pool is net.layers[1]
    assert modules[1].conv is net.layers[2] and modules[1].pool is net.layers[3]
    assert modules[0].out_hw == (13, 13) and modules[1].out_hw == (6, 6)
    # the originals are not changed: the conv keeps its activation, the pooling its job
    assert net.layers[0].activation.name == "relu"
    x = torch.rand(2, 1, 28, 28)
    assert net.layers[1](net.layers[0](x)).shape == (2, 32, 13, 13)


def test_pairs_the_kernels_cannot_fuse_still_move_the_activation_or_keep_their_layers():
    layers = [
        {"Conv2D": {"filters": 4, "kernel_size": 3, "strides": 2, "activation": "elu"}},
        {"MaxPooling2D": {}},                                       # moved, not one kernel
        {"Conv2D": {"filters": 4, "kernel_size": 1, "activation": "relu"}},
        {"MaxPooling2D": {"pool_size": 3, "strides": 1, "padding": "same"}},  # moved, 3x3
        {"Conv2D": {"filters": 4, "kernel_size": 1}},
        {"AveragePooling2D": {}},                                   # not max: untouched
        {"MaxPooling2D": {"pool_size": 1}},                         # not 2x2: untouched
        {"Conv2D": {"filters": 4, "kernel_size": 1, "activation": "softmax"}},
        {"MaxPooling2D": {}},                                       # not monotone: the pool alone
        {"Flatten": {}}, {"Dense": {"units": 2, "activation": "softmax"}}]
    spec, net, (modules, index) = _chain({"input_shape": [33, 33, 2], "layers": layers})
    assert [type(m).__name__ for m in modules] == [
        "FusedConvPool", "FusedConvPool", "Conv2d", "Pool2d", "Pool2d", "Conv2d", "MaxPool2x2",
        "Flatten", "Linear"]
    assert index == [0, 0, 1, 1, 2, 3, 4, 5, 6, 7, 8]
    assert not modules[0].one_kernel and modules[0].then is not None
    assert not modules[1].one_kernel and modules[1].then is None
    assert modules[6].pool is net.layers[8] and modules[6].activation is None
    rewritten = build(spec)
    rewritten.load_state_dict(net.state_dict())
    x = torch.rand(3, 33, 33, 2)
    torch.testing.assert_close(rewritten(x), net(x), rtol=1e-5, atol=1e-6)


def test_the_rewrite_leaves_parameters_and_state_where_they_were():
    fused = build(ModelSpec.from_dict(LECTURE_MODEL), seed=0)
    plain = build(ModelSpec.from_dict(LECTURE_MODEL), seed=0, fuse_pooling=False)
    assert list(fused.state_dict()) == list(plain.state_dict())
    assert [p.shape for p in fused.parameters()] == [p.shape for p in plain.parameters()]
    assert [len(w) for w in fused.keras_weights()] == [2, 0, 2, 0, 0, 2, 2]


@pytest.mark.requires_kernels
def test_without_the_kernels_the_same_modules_give_the_same_results(monkeypatch):
    """The fused modules' torch fallback against the kernels, forward and gradients."""
    spec = ModelSpec.from_dict(LECTURE_MODEL)
    x = torch.rand(4, 28, 28, 1)

    def run():
        net = build(spec, seed=0)
        out = net(x, logits=True)
        out.square().sum().backward()
        return out.detach(), [p.grad for p in net.parameters()]

    with_kernels = run()
    monkeypatch.setattr(kernels, "EXT", None)
    without = run()
    torch.testing.assert_close(without[0], with_kernels[0], rtol=1e-5, atol=1e-5)
    for a, b in zip(without[1], with_kernels[1]):
        torch.testing.assert_close(a, b, rtol=1e-4, atol=1e-5)


# -- the build and the choice of binary ------------------------------------------------

def test_where_a_compiler_exists_the_build_made_the_kernels_this_cpu_runs():
    """So that a broken build cannot hide behind the tests that skip without kernels."""
    from torch.utils.cpp_extension import get_cxx_compiler
    compiler = get_cxx_compiler()
    if shutil.which(compiler) is None:
        pytest.skip(f"no C++ compiler ({compiler}) here: the kernels cannot be built")
    built = kernels.built_variants()
    assert built, f"{compiler} exists, but no kernel binary was built: {kernels.notice()}"
    chosen, why = isa.choose(isa.variants(), isa.cpu_features(),
                             torch.backends.cpu.get_cpu_capability())
    if chosen is None:
        pytest.skip(why)
    assert chosen in built
    # the binary loads (with CNNLAB_KERNELS=on, as `make test` runs, even an AVX2 one)
    assert kernels.load({kernels.FORCE: "on"})[0] is not None
    if os.environ.get(kernels.ENV, "") in ("", "0") and (
            chosen == "avx512" or os.environ.get(kernels.FORCE) == "on"):
        assert fast.kernels_available(), kernels.REASON
        assert fast.kernels_status() == chosen


@pytest.mark.parametrize("features, capability, expected", [
    ({"sse2", "avx2", "fma", "avx512f", "avx512bw", "avx512vl", "avx512dq"}, None, "avx512"),
    ({"sse2", "avx2", "fma", "avx512f"}, None, "avx2"),    # AVX-512 without BW/VL/DQ
    ({"sse2", "avx2", "fma"}, "AVX512", "avx2"),           # the CPU's own flags win
    ({"sse2", "avx", "sse4_2"}, None, None),              # no AVX2: no binary
    (None, "AVX512", "avx512"), (None, "AVX2", "avx2"),   # flags unknown: torch's view
    (None, "DEFAULT", None),
])
def test_the_binary_is_the_best_one_the_cpu_runs(features, capability, expected):
    chosen, why = isa.choose(isa.variants("x86_64"), features, capability)
    assert chosen == expected
    assert (why == "") == (expected is not None)
    if expected is None:
        assert why == "this CPU lacks AVX2+FMA, the least the kernels are built for"


def test_other_architectures_get_the_compilers_defaults():
    assert isa.variants("aarch64") == {"generic": ((), ())}
    assert isa.choose(isa.variants("aarch64"), {"asimd"}, None) == ("generic", "")


def test_cpu_features_come_from_the_flags_line(tmp_path):
    info = tmp_path / "cpuinfo"
    info.write_text("processor\t: 0\nflags\t\t: fpu sse2 avx2 fma\nbugs\t\t: x\n")
    assert isa.cpu_features(str(info)) == {"fpu", "sse2", "avx2", "fma"}
    assert isa.cpu_features(str(tmp_path / "missing")) is None


def test_the_environment_variable_turns_the_kernels_off():
    assert kernels.load({kernels.ENV: "1"}) == (None, "CNNLAB_NO_KERNELS=1 is set")
    assert kernels.load({kernels.ENV: "0"})[1] != "CNNLAB_NO_KERNELS=0 is set"


# -- the notice --------------------------------------------------------------------------

def _fit_tiny():
    m = cnnlab.Sequential([cnnlab.layers.Flatten(input_shape=(4, 4, 1)),
                           cnnlab.layers.Dense(2, activation="softmax")])
    m.compile(loss="categorical_crossentropy", optimizer="adam", device="cpu")
    m.fit(np.zeros((4, 4, 4, 1), np.float32), np.eye(2, dtype=np.float32)[[0, 1] * 2],
          epochs=1, verbose=0)


def test_one_notice_at_the_first_fit_without_the_kernels(monkeypatch, capsys):
    monkeypatch.setattr(kernels, "EXT", None)
    monkeypatch.setattr(kernels, "REASON", "they were not built with this install")
    monkeypatch.setattr(cpu, "_noticed", False)
    _fit_tiny()
    _fit_tiny()
    lines = capsys.readouterr().err.splitlines()
    assert lines == [
        "cnnlab: note: training without cnnlab's compiled CPU kernels (they were not built "
        "with this install): Conv2D + MaxPooling2D run on torch's own ops, with the same "
        "results, slower on CPUs with AVX-512; install cnnlab where a C++ compiler is found "
        "to build them (`make venv`, or `pip install .`; see README, 'Compiled kernels')."]


def test_the_notice_names_the_variable_when_it_turned_them_off():
    line = kernels.notice("CNNLAB_NO_KERNELS=1 is set")
    assert "(CNNLAB_NO_KERNELS=1 is set)" in line and line.endswith("unset CNNLAB_NO_KERNELS "
                                                                    "to use them.")


def test_no_notice_where_the_kernels_run(monkeypatch, capsys):
    monkeypatch.setattr(kernels, "EXT", object())
    monkeypatch.setattr(cpu, "_noticed", False)
    assert cpu.notice_once() is False
    assert capsys.readouterr().err == ""


# -- the fence ---------------------------------------------------------------------------

def test_no_module_outside_cnnlab_fast_imports_its_internals():
    """Outside cnnlab/fast, only `cnnlab.fast` and the names it exports are imported."""
    offenders = []
    for path in SRC.rglob("*.py"):
        rel = path.relative_to(SRC)
        if rel.parts[0] == "fast":
            continue
        package = ["cnnlab", *rel.parts[:-1]]
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ImportFrom):
                base = package[:len(package) - node.level + 1] if node.level else []
                module = ".".join(base + ([node.module] if node.module else []))
                names = [a.name for a in node.names]
            elif isinstance(node, ast.Import):
                module, names = "", [a.name for a in node.names]
            else:
                continue
            for target in ([f"{module}.{n}" for n in names] if module else names):
                parts = target.split(".")
                if parts[:2] == ["cnnlab", "fast"] and len(parts) > 2:
                    inner = parts[2]
                    if len(parts) > 3 or inner not in fast.__all__:
                        offenders.append(f"{rel}: {target}")
    assert offenders == []


def test_the_avx2_build_runs_only_when_asked_for(monkeypatch):
    """On a CPU without AVX-512 torch's own ops train faster (benchmarks/kernels_ab.py), so
    the AVX2 binary is not used by default; CNNLAB_KERNELS=on uses it."""
    monkeypatch.setattr(isa, "cpu_features", lambda *a: {"sse2", "avx2", "fma"})
    if "avx2" not in kernels.built_variants():
        pytest.skip("the AVX2 kernels were not built here")
    assert kernels.load({}) == (None, kernels.NO_AVX512)
    ext, why = kernels.load({kernels.FORCE: "on"})
    assert ext is not None and ext.ISA == "avx2" and why == ""
    assert kernels.notice(kernels.NO_AVX512).endswith("set CNNLAB_KERNELS=on to use their "
                                                      "AVX2 build anyway.")
