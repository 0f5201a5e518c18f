"""What tutorial code calls on `keras.backend` (`from cnnlab import backend as K`).

    >>> from cnnlab import backend as K
    >>> K.image_data_format()        # 'channels_last': cnnlab's images are (H, W, C)
    >>> K.epsilon(), K.floatx()      # 1e-07, 'float32'
    >>> K.clear_session()            # layer names count from the start again

cnnlab computes in float32 on channels-last images only; the setters accept those
values (so tutorial preambles run) and refuse others with a clear error.
"""
from __future__ import annotations

import gc

import numpy as np

from .errors import ConfigError

_EPSILON = 1e-7  # Keras's fuzz factor (losses clip probabilities to [eps, 1 - eps])
_CLEAR_HOOKS: list = []  # functions clear_session() calls: modules with session state register


def backend() -> str:
    """The engine under the Keras vocabulary: 'torch', as Keras 3 on its torch backend."""
    return "torch"


def image_data_format() -> str:
    return "channels_last"


def set_image_data_format(data_format: str) -> None:
    if data_format == "channels_last":
        return
    if data_format == "channels_first":
        raise ConfigError("cnnlab supports only data_format='channels_last': images are "
                          "(height, width, channels). Received data_format='channels_first'; "
                          "transpose the images instead, e.g. x.transpose(0, 2, 3, 1).")
    raise ConfigError(f"Invalid value for argument `data_format`. Expected 'channels_last'. "
                      f"Received data_format={data_format!r}.")


def epsilon() -> float:
    return _EPSILON


def set_epsilon(value: float) -> None:
    if value != _EPSILON:
        raise ConfigError(f"cnnlab's losses use Keras's default epsilon 1e-07 only. "
                          f"Received epsilon={value!r}.")


def floatx() -> str:
    return "float32"


def set_floatx(value: str) -> None:
    if value != "float32":
        raise ConfigError(f"cnnlab computes in float32 only. Expected 'float32'. "
                          f"Received floatx={value!r}.")


def int_shape(x) -> tuple:
    """The shape of an array, tensor or symbolic tensor, as a tuple (None: unknown size)."""
    shape = getattr(x, "shape", None)
    if shape is None:
        shape = np.shape(x)
    return tuple(None if d is None else int(d) for d in shape)


_UIDS: dict[str, int] = {}


def get_uid(prefix: str = "") -> int:
    """1, 2, 3, ... per prefix, as Keras numbers automatic names; clear_session restarts."""
    _UIDS[prefix] = _UIDS.get(prefix, 0) + 1
    return _UIDS[prefix]


def standardize_dtype(dtype) -> str:
    """A dtype's name ('float32', 'int64'), from a string, NumPy or torch dtype."""
    if not isinstance(dtype, (str, np.dtype, type)):  # a torch dtype: torch.float32
        dtype = str(dtype).replace("torch.", "")
    try:
        return np.dtype(dtype).name
    except TypeError:
        raise ConfigError(f"Invalid dtype. Expected a name such as 'float32'. "
                          f"Received {dtype!r}.") from None


def clear_session(free_memory: bool = True) -> None:
    """Forget session state (automatic layer names restart), and free memory."""
    _UIDS.clear()
    for hook in _CLEAR_HOOKS:
        hook()
    if free_memory:
        gc.collect()


def register_clear_hook(fn) -> None:
    """Have clear_session() call `fn` (e.g. to reset a counter of automatic names)."""
    if fn not in _CLEAR_HOOKS:
        _CLEAR_HOOKS.append(fn)
