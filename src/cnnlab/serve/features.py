"""Feature maps for the draw page: what each image-shaped layer computes for one image.

    >>> maps = FeatureMaps(served.model)
    >>> maps(uint8_image)   # [{"name": "conv2d", "shape": [28, 28, 32], "maps": [[[0..255]]]}, ...]

The run's model is rebuilt once without cnnlab.fast's rewrites (a fused Conv2D + max
pooling never produces the Conv2D's own output), with the same weights, and its
program is run call by call keeping every output. Each layer shows its first
`MAX_MAPS` channels, each scaled to 0..255 on its own. A stand-in until the
`cnnlab explain` functions land; the page only draws what this returns.
"""
from __future__ import annotations

import threading

import numpy as np
import torch

MAX_MAPS = 8   # channels shown per layer


class FeatureMaps:
    def __init__(self, model):
        from ..builder import build
        from ..layers.reshaping import takes_raw_pixels
        spec = model.to_spec()
        self.spec = spec
        self.net = build(spec, fuse_pooling=False)
        self.net.load_state_dict(model.net.state_dict())
        self.net.eval()
        names = {id(layer): n for layer, n in zip(spec.layers, spec.layer_names)}
        self.names = [names[id(node.layer)] for node in spec.nodes]  # per call, its layer's name
        self.scale = 1.0 if takes_raw_pixels(spec) else 1 / 255  # as predict scales uint8
        self.lock = threading.Lock()  # one caller at a time: the module keeps no per-call state, torch's threads do

    def __call__(self, image: np.ndarray) -> list[dict]:
        """uint8 (1, *input_shape), as the predict endpoint prepares it -> per image layer, its maps."""
        x = torch.from_numpy(image.astype(np.float32) * self.scale)
        if len(self.spec.input_shape) == 3:
            x = x.permute(0, 3, 1, 2)  # (1, H, W, C) -> (1, C, H, W)
        out = []
        n_in = len(self.spec.inputs)
        with self.lock, torch.no_grad():
            values = [x] + [None] * len(self.spec.nodes)
            for module, sources, multi, at in self.net.program:
                arg = [values[s] for s in sources] if multi else values[sources[0]]
                values[at] = module(arg)
                if values[at].dim() == 4:
                    out.append(self._maps(self.names[at - n_in], values[at][0]))
        return out

    @staticmethod
    def _maps(name: str, t: torch.Tensor) -> dict:
        """(C, H, W) -> the first MAX_MAPS channels as 0..255 integer grids."""
        maps = []
        for c in t[:MAX_MAPS]:
            lo, hi = float(c.min()), float(c.max())
            scaled = (c - lo) * (255.0 / (hi - lo)) if hi > lo else torch.zeros_like(c)
            maps.append(scaled.round().to(torch.uint8).tolist())
        return {"name": name, "shape": [t.shape[1], t.shape[2], t.shape[0]], "maps": maps}
