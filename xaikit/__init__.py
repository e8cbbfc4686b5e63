"""xaikit: train small image CNNs on CIFAR-10 and explain their predictions.

Models, attribution methods and data sets come from plugins (entry-point group ``xaikit``).
Everything a plugin needs is importable from here; see docs/plugins.md.
"""

from xaikit.attribution.base import Attribution, upsample
from xaikit.errors import DataError, NotApplicableError, XaikitError
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
    "DataError",
    "DatasetSpec",
    "ModelSpec",
    "NotApplicableError",
    "Recipe",
    "XaikitError",
    "__version__",
    "create_model",
    "get_attribution",
    "get_dataset_spec",
    "get_model_spec",
    "hookimpl",
    "list_attributions",
    "list_datasets",
    "list_models",
    "upsample",
]
