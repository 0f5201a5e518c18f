"""cnnlab's speed, fenced: everything that makes training fast lives here.

The rest of cnnlab calls only these names (never a submodule):

    >>> modules, index = fast.optimize_chain(zip(layers, built, output_shapes))  # builder
    >>> step = fast.step_function(torch_optimizer)       # the optimizer's step, direct
    >>> with fast.cpu_settings(device):                  # around a fit
    ...     fast_step = fast.plan_step(trainer)          # None: the trainer uses autograd
    >>> fast.kernels_available(), fast.kernels_status()  # (True, 'avx2') or (False, why)
    >>> y = fast.batch_norm_train(x, gamma, beta, moving_mean, moving_var, 0.99, 1e-3, image)
    >>> y = fast.dropout(x, rate, training)             # Dropout's forward
    >>> y = fast.elu(x), fast.elu(x, fast.SELU_ALPHA, fast.SELU_SCALE)   # elu, selu

Inside: rewrite.py (the graph rewrite and the fused modules), ops.py (the compiled
kernels as torch ops with autograd functions), csrc/ (the C++), kernels.py and isa.py
(which binary this CPU runs), step.py (a training step without autograd), adam.py (the
direct fused-Adam call), cpu.py, denormals.py, memory.py (the CPU settings of a fit).
Without the compiled kernels everything runs on torch's ops with the same results.
"""
from __future__ import annotations

from . import kernels as _kernels
from .adam import step_function
from .batchnorm import batch_norm_train
from .drop import dropout
from .elementwise import SELU_ALPHA, SELU_SCALE, elu
from .cpu import cpu_settings
from .rewrite import FusedConvNormPool, FusedConvPool, MaxPool2x2, optimize_chain
from .step import plan_step

__all__ = ["FusedConvNormPool", "FusedConvPool", "batch_norm_train", "MaxPool2x2", "cpu_settings",
           "dropout", "elu", "SELU_ALPHA", "SELU_SCALE", "kernels_available", "kernels_status", "optimize_chain", "plan_step",
           "step_function"]


def kernels_available() -> bool:
    """Whether this process runs the compiled kernels."""
    return _kernels.EXT is not None


def kernels_status() -> str:
    """The instruction set of the kernels this process runs ('avx2', ...), or why none."""
    return _kernels.EXT.ISA if _kernels.EXT is not None else _kernels.REASON
