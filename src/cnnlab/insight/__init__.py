"""See inside a model and a run: the pictures behind `cnnlab explain` and `cnnlab report`,
and diagnoses in plain words.

    >>> from cnnlab import insight
    >>> outs = insight.layer_outputs(model, x)     # [(name, type, shape, array), ...]
    >>> insight.saliency(model, x)["map"]; insight.grad_cam(model, x)["map"]
    >>> cm = insight.confusion_matrix(truth, pred, num_classes=10)
    >>> insight.diagnose_history(history, num_classes=10)   # [Finding, ...]

Modules: `maps` (layer outputs, saliency, Grad-CAM, filters), `scores` (confusion matrix,
precision/recall/F1, calibration), `diagnose` (findings with their evidence), `figures`
(matplotlib pictures as PNG bytes), `page` (HTML + Markdown), `explain` and `report`
(the two commands).
"""
from .diagnose import Finding, diagnose_history
from .maps import (LayerOutput, first_layer_filters, grad_cam, input_batch, layer_outputs,
                   saliency)
from .scores import calibration, confusion_matrix, most_confused, per_class, row_normalized

__all__ = ["Finding", "diagnose_history", "LayerOutput", "first_layer_filters", "grad_cam",
           "input_batch", "layer_outputs", "saliency", "calibration", "confusion_matrix",
           "most_confused", "per_class", "row_normalized"]
