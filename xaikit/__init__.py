"""xaikit: train small image CNNs on CIFAR-10 and explain their predictions.

Models, attribution methods and data sets come from plugins (entry-point group ``xaikit``).
"""

from xaikit.attribution.base import Attribution
from xaikit.errors import XaikitError
from xaikit.hookspecs import hookimpl
from xaikit.registry import (
    create_model,
    get_attribution,
    get_dataset_spec,
    get_model_spec,
    list_attributions,
    list_datasets,
    list_models,
)
from xaikit.specs import DataBundle, DatasetSpec, ModelSpec, Recipe

__version__ = "0.1.0"

__all__ = [
    "Attribution",
    "DataBundle",
    "DatasetSpec",
    "ModelSpec",
    "Recipe",
    "XaikitError",
    "create_model",
    "get_attribution",
    "get_dataset_spec",
    "get_model_spec",
    "hookimpl",
    "list_attributions",
    "list_datasets",
    "list_models",
]
