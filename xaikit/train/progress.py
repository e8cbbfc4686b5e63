"""Training progress on stderr: rich epoch and batch bars, and one summary line per epoch.

The bars are shown only when stderr is a terminal; the summary lines are always printed.
"""

from __future__ import annotations

from types import TracebackType
from typing import Any

from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TaskID,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)


def format_epoch_summary(record: dict[str, Any], epochs: int) -> str:
    """One line for an epoch's history record, e.g. ``epoch 3/24 train_loss 1.23 ...``."""
    parts = [
        f"epoch {record['epoch']}/{epochs}",
        f"train_loss {record['train_loss']:.4f}",
        f"train_acc {record['train_acc']:.4f}",
        f"test_loss {record['test_loss']:.4f}",
        f"test_acc {record['test_acc']:.4f}",
    ]
    if record.get("test_acc_tta") is not None:
        parts.append(f"test_acc_tta {record['test_acc_tta']:.4f}")
    parts += [f"lr {record['lr']:.3g}", f"{record['seconds']:.1f}s"]
    return "  ".join(parts)


class TrainProgress:
    """Context manager with an epoch bar and a batch bar (loss, accuracy, LR) on stderr.

    Args:
        epochs: Total epochs of the run.
        steps_per_epoch: Batches per epoch.
        first_epoch: The epoch training starts at (1-based; > 1 when resuming).
        enabled: ``False`` shows no bars (summary lines are still printed); ``None`` shows them
            when stderr is a terminal.
        silent: Print nothing at all (the processes other than rank 0 under torchrun).
    """

    def __init__(
        self, epochs: int, steps_per_epoch: int, first_epoch: int = 1, enabled: bool | None = None,
        silent: bool = False,
    ) -> None:
        self.console = Console(stderr=True, quiet=silent)
        self.epochs = epochs
        self.steps_per_epoch = steps_per_epoch
        self.first_epoch = first_epoch
        self.enabled = not silent and (self.console.is_terminal if enabled is None else enabled)
        self._progress: Progress | None = None
        self._epoch_task: TaskID | None = None
        self._batch_task: TaskID | None = None

    def __enter__(self) -> "TrainProgress":
        if self.enabled:
            self._progress = Progress(
                TextColumn("{task.description}"),
                BarColumn(),
                MofNCompleteColumn(),
                TextColumn("{task.fields[stats]}"),
                TimeElapsedColumn(),
                TimeRemainingColumn(),
                console=self.console,
                transient=False,
            )
            self._progress.__enter__()
            self._epoch_task = self._progress.add_task(
                "epochs", total=self.epochs, completed=self.first_epoch - 1, stats=""
            )
            self._batch_task = self._progress.add_task(
                "batches", total=self.steps_per_epoch, stats=""
            )
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if self._progress is not None:
            self._progress.__exit__(exc_type, exc, tb)
            self._progress = None

    def start_epoch(self, epoch: int) -> None:
        """Reset the batch bar for ``epoch`` (1-based)."""
        if self._progress is not None and self._batch_task is not None:
            self._progress.reset(self._batch_task, total=self.steps_per_epoch, stats="")
            self._progress.update(self._batch_task, description=f"epoch {epoch}")

    def update_batch(self, step: int, loss: float, acc: float, lr: float) -> None:
        """Show ``step`` batches done with the running loss, accuracy and the current LR."""
        if self._progress is not None and self._batch_task is not None:
            self._progress.update(
                self._batch_task, completed=step,
                stats=f"loss {loss:.4f}  acc {acc:.4f}  lr {lr:.3g}",
            )

    def end_epoch(self, record: dict[str, Any]) -> None:
        """Advance the epoch bar and print the epoch's summary line."""
        line = format_epoch_summary(record, self.epochs)
        if self._progress is not None and self._epoch_task is not None:
            self._progress.update(
                self._epoch_task, completed=record["epoch"],
                stats=f"test_acc {record['test_acc']:.4f}",
            )
            self._progress.console.print(line, highlight=False, markup=False, soft_wrap=True)
        else:
            self.console.print(line, highlight=False, markup=False, soft_wrap=True)

    def message(self, text: str) -> None:
        """Print a line on stderr (above the bars when they are shown)."""
        target = self._progress.console if self._progress is not None else self.console
        target.print(text, highlight=False, markup=False, soft_wrap=True)
