"""Attribution methods: the base class (one interface for every method) and drawing of maps.

The scorecard of maps lives in :mod:`xaikit.metrics`.
"""

from xaikit.attribution.base import Attribution, default_layer_name, resolve_layer, upsample

__all__ = ["Attribution", "default_layer_name", "resolve_layer", "upsample"]
