"""xaikit: train small image CNNs on CIFAR-10 and explain their predictions.

Models, attribution methods and data sets come from plugins (entry-point group ``xaikit``).
Everything a plugin needs is importable from here; see docs/plugins.md.

Importing xaikit before torch sets ``GOMP_SPINCOUNT=1000`` (unless it or ``OMP_WAIT_POLICY``
is set): torch's OpenMP threads then spin briefly at the end of a parallel region and sleep,
where by default they spin 300,000 times. On a quiet machine that costs nothing measurable; on a
busy one it is the difference between an epoch 35x slower and 10x slower beside eight busy
processes on 2 cores (benchmarks/busy_cpu.py). Every ``xaikit`` command gets it; a program that
imports torch first sets the variable itself.
"""

import os as _os
import sys as _sys

if "torch" not in _sys.modules and not {"GOMP_SPINCOUNT", "OMP_WAIT_POLICY"} & set(_os.environ):
    _os.environ["GOMP_SPINCOUNT"] = "1000"

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
