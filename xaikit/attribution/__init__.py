"""Attribution methods: the base class, and faithfulness / sanity metrics."""

from xaikit.attribution.base import Attribution, default_layer_name, resolve_layer, upsample

__all__ = ["Attribution", "default_layer_name", "resolve_layer", "upsample"]
