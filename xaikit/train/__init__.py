"""Training: the one-cycle trainer, resume, and the LR range test.

Training writes a run folder (:mod:`xaikit.run`); nothing after training imports this package.
"""

from xaikit.train.lr_finder import LRFinderResult, lr_range_test, save_lr_find, suggest_lr
from xaikit.train.resuming import resume
from xaikit.train.trainer import run_lr_range_test, train

__all__ = [
    "LRFinderResult",
    "lr_range_test",
    "resume",
    "run_lr_range_test",
    "save_lr_find",
    "suggest_lr",
    "train",
]
