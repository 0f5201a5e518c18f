"""Feature maps for the draw page: what each image-shaped layer computes for one image.

    >>> maps = FeatureMaps(served.model)
    >>> maps(uint8_image)   # [{"name": "conv2d", "shape": [28, 28, 32], "maps": [[[0..255]]]}, ...]

The layer outputs are `cnnlab explain`'s (`cnnlab.insight.layer_outputs`: every layer
call run as its own module, without cnnlab.fast's rewrites, which would hide a Conv2D's
own output behind its fused pooling). Each layer shows its first `MAX_MAPS` channels,
each scaled to 0..255 on its own, as small integer grids the page draws.
"""
from __future__ import annotations

import threading

import numpy as np

MAX_MAPS = 8   # channels shown per layer


class FeatureMaps:
    def __init__(self, model):
        self.model = model
        # one caller at a time: layer_outputs switches the shared module to inference mode
        # and back, and torch's intra-op threads are shared with the predict worker anyway
        self.lock = threading.Lock()

    def __call__(self, image: np.ndarray) -> list[dict]:
        """uint8 (1, *input_shape), as the predict endpoint prepares it -> per image layer, its maps."""
        from ..insight import layer_outputs
        with self.lock:
            outs = layer_outputs(self.model, image)
        return [self._maps(o.name, o.array[0]) for o in outs if len(o.shape) == 4]

    @staticmethod
    def _maps(name: str, a: np.ndarray) -> dict:
        """(H, W, C) -> the first MAX_MAPS channels as 0..255 integer grids."""
        maps = []
        for c in np.moveaxis(a[..., :MAX_MAPS], -1, 0):
            lo, hi = float(c.min()), float(c.max())
            scaled = (c - lo) * (255.0 / (hi - lo)) if hi > lo else np.zeros_like(c)
            maps.append(np.rint(scaled).astype(np.uint8).tolist())
        return {"name": name, "shape": list(a.shape), "maps": maps}
