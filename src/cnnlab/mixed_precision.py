"""Keras's `mixed_precision`: `set_global_policy("mixed_bfloat16")` before `fit`.

    >>> cnnlab.mixed_precision.set_global_policy("mixed_bfloat16")
    >>> cnnlab.mixed_precision.global_policy().compute_dtype
    'bfloat16'

See cnnlab.train.precision for what each policy runs.
"""
from .train.precision import Precision as Policy
from .train.precision import global_policy, policy_scope, set_global_policy

__all__ = ["Policy", "global_policy", "policy_scope", "set_global_policy"]
