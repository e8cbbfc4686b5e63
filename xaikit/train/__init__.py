"""Training: one-cycle trainer, run folders, checkpoints, the LR range test.

The run-folder API (``Run``, ``load_run``, ``load_model``, ``load_run_data``,
``resolve_device``) is what ``evaluate``, ``explain`` and ``report`` build on.
"""

from xaikit.train.checkpoint import load_checkpoint, save_checkpoint
from xaikit.train.env import resolve_device
from xaikit.train.lr_finder import LRFinderResult, lr_range_test, save_lr_find, suggest_lr
from xaikit.train.runs import Run, load_model, load_run, load_run_data
from xaikit.train.trainer import TrainSettings, resume, run_lr_range_test, train

__all__ = [
    "LRFinderResult",
    "Run",
    "TrainSettings",
    "load_checkpoint",
    "load_model",
    "load_run",
    "load_run_data",
    "lr_range_test",
    "resolve_device",
    "resume",
    "run_lr_range_test",
    "save_checkpoint",
    "save_lr_find",
    "suggest_lr",
    "train",
]
