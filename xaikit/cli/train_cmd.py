"""``xaikit train`` and ``xaikit lr-find``: parse flags, call ``xaikit.train``, print results.

Progress goes to stderr; the last line on stdout is the run (or LR-test) folder. Under torchrun
(``torchrun --nproc-per-node N -m xaikit train ...``) only rank 0 prints: the other processes
exit with the same code and no output.
"""

from __future__ import annotations

import contextlib
import datetime as _dt
import math
from pathlib import Path
from typing import Iterator, Optional

import typer

from xaikit.errors import XaikitError

DATA_HELP = (
    "CIFAR-10 source: cifar-10-batches-py folder, ImageFolder tree or .tar(.gz) of one "
    "(default: $XAIKIT_DATA, else torchvision download)."
)


def parse_max_lr(value: str | None) -> tuple[float | None, bool]:
    """``"auto"`` -> ``(None, True)``; a positive number -> ``(value, False)``; ``None`` -> recipe."""
    if value is None:
        return None, False
    if value.strip().lower() == "auto":
        return None, True
    try:
        lr = float(value)
    except ValueError:
        raise XaikitError(f"--max-lr must be a number or 'auto', not {value!r}") from None
    if not (lr > 0 and math.isfinite(lr)):
        raise XaikitError(f"--max-lr must be a positive finite number, not {value}")
    return lr, False


def train_command(
    model: Optional[str] = typer.Argument(None, help="Registered model name (see `xaikit plugins list`)."),
    epochs: Optional[int] = typer.Option(None, help="Epochs (default: the model's recipe)."),
    batch_size: Optional[int] = typer.Option(None, help="Batch size."),
    max_lr: Optional[str] = typer.Option(None, help="Peak LR of the one-cycle schedule, or 'auto' (LR range test)."),
    optimizer: Optional[str] = typer.Option(None, help="adam (AdamW) or sgd (Nesterov momentum)."),
    weight_decay: Optional[float] = typer.Option(None, help="Weight decay."),
    label_smoothing: Optional[float] = typer.Option(None, help="Label smoothing of the loss."),
    seed: int = typer.Option(0, help="Seed of model init, shuffling, augmentation and subset."),
    subset: Optional[int] = typer.Option(None, help="Train on a class-balanced subset of N images."),
    dataset: str = typer.Option("cifar10", help="Registered data set name."),
    data: Optional[str] = typer.Option(None, help=DATA_HELP),
    device: Optional[str] = typer.Option(None, help="auto, cpu or cuda (default: auto)."),
    out: Optional[Path] = typer.Option(None, help="Run folder (default: runs/<model>-<YYYYmmdd-HHMMSS>)."),
    resume: Optional[Path] = typer.Option(None, help="Continue the run in this folder from its checkpoint."),
    overwrite: bool = typer.Option(False, "--overwrite", help="Replace the run files in an existing --out folder."),
    compile: bool = typer.Option(False, "--compile", help="torch.compile the model."),
    tta: bool = typer.Option(False, "--tta", help="Also record test accuracy with test-time augmentation each epoch (flip; multi-crop where the recipe sets tta_shift)."),
    bf16: Optional[bool] = typer.Option(None, "--bf16/--no-bf16", help="bf16 autocast (default: on for CUDA)."),
    model_arg: list[str] = typer.Option([], "--model-arg", help="KEY=VALUE for the model factory; repeatable."),
    sync_bn: bool = typer.Option(
        False, "--sync-bn", help="Under torchrun on CUDA: SyncBatchNorm (batch statistics over all processes)."
    ),
) -> None:
    """Train MODEL with its one-cycle recipe (flags override it) into a run folder.

    Start it with torchrun (`torchrun --nproc-per-node N -m xaikit train MODEL ...`) to train
    on N processes with DistributedDataParallel; --batch-size stays the global batch.
    """
    from xaikit import distributed

    try:
        _train_or_resume(
            model, epochs, batch_size, max_lr, optimizer, weight_decay, label_smoothing, seed,
            subset, dataset, data, device, out, resume, overwrite, compile, tta, bf16, model_arg,
            sync_bn,
        )
    except (XaikitError, typer.Exit) as exc:
        if distributed.is_main():
            raise
        code = exc.exit_code if isinstance(exc, typer.Exit) else 2
        raise typer.Exit(code) from None  # rank 0 prints the one line


def _train_or_resume(
    model: str | None, epochs: int | None, batch_size: int | None, max_lr: str | None,
    optimizer: str | None, weight_decay: float | None, label_smoothing: float | None, seed: int,
    subset: int | None, dataset: str, data: str | None, device: str | None, out: Path | None,
    resume: Path | None, overwrite: bool, compile: bool, tta: bool, bf16: bool | None,
    model_arg: list[str], sync_bn: bool,
) -> None:
    from xaikit import distributed
    from xaikit.registry import get_model_spec
    from xaikit.run import RunConfig
    from xaikit.train import resume as resume_run
    from xaikit.train import train
    from xaikit.train.trainer import default_run_dir

    if resume is not None:
        given = {
            "--epochs": epochs, "--batch-size": batch_size,
            "--max-lr": max_lr, "--optimizer": optimizer, "--weight-decay": weight_decay,
            "--label-smoothing": label_smoothing, "--subset": subset, "--out": out,
            "--bf16/--no-bf16": bf16, "--model-arg": model_arg or None,
            "--compile": compile or None, "--tta": tta or None, "--sync-bn": sync_bn or None,
        }
        extra = [flag for flag, value in given.items() if value not in (None, False)]
        if extra:
            raise XaikitError(
                f"--resume continues {resume} with its own settings; drop {', '.join(extra)}"
            )
        with _resume_hint_on_interrupt(resume):
            folder = resume_run(resume, device=device, data_path=data, expect_model=model)
    else:
        if model is None:
            raise XaikitError("name a model to train (see `xaikit plugins list`) or pass --resume RUN")
        lr, auto = parse_max_lr(max_lr)
        spec = get_model_spec(model)
        overrides = {
            "epochs": epochs, "batch_size": batch_size, "max_lr": lr, "optimizer": optimizer,
            "weight_decay": weight_decay, "label_smoothing": label_smoothing,
        }
        config = RunConfig(
            model=model, dataset=dataset, data_path=_absolute(data), subset=subset, seed=seed,
            device=device or "auto", overrides={k: v for k, v in overrides.items() if v is not None},
            max_lr_auto=auto, compile=compile, tta=tta, bf16=bf16, sync_bn=sync_bn,
            model_kwargs=spec.parse_model_args(model_arg),
        )
        target = out if out is not None else default_run_dir(spec.name)
        with _resume_hint_on_interrupt(target):
            folder = train(config, target, overwrite=overwrite)
    if distributed.is_main():
        _print_final(folder)


@contextlib.contextmanager
def _resume_hint_on_interrupt(folder: Path) -> Iterator[None]:
    """On Ctrl-C: one line saying how to continue (when an epoch was saved), exit code 130."""
    try:
        yield
    except KeyboardInterrupt:
        from xaikit import distributed
        from xaikit.cli.text import one_line
        from xaikit.run import is_run_folder

        if not distributed.is_main():
            raise typer.Exit(130) from None
        if is_run_folder(folder):
            message = f"interrupted; continue with: xaikit train --resume {folder}"
        else:
            message = "interrupted before the first epoch finished; nothing was written"
        typer.echo(one_line(message), err=True)
        raise typer.Exit(130) from None


def _absolute(path: str | None) -> str | None:
    """A local data path made absolute, so the run still finds it from another folder."""
    if path is None:
        return None
    candidate = Path(path).expanduser()
    return str(candidate.resolve()) if candidate.exists() else path


def _print_final(folder: Path) -> None:
    from xaikit.run import HISTORY_NAME, read_history

    history = read_history(folder / HISTORY_NAME) if (folder / HISTORY_NAME).is_file() else []
    if history:
        last = history[-1]
        line = f"epoch {last['epoch']}: test_acc {last['test_acc']:.4f}  test_loss {last['test_loss']:.4f}"
        if last.get("test_acc_tta") is not None:
            line += f"  test_acc_tta {last['test_acc_tta']:.4f}"
        typer.echo(line)
    typer.echo(str(folder))


def lr_find_command(
    model: str = typer.Argument(..., help="Registered model name."),
    data: Optional[str] = typer.Option(None, help=DATA_HELP),
    dataset: str = typer.Option("cifar10", help="Registered data set name."),
    subset: Optional[int] = typer.Option(None, help="Use a class-balanced subset of N images."),
    device: str = typer.Option("auto", help="auto, cpu or cuda."),
    start_lr: float = typer.Option(1e-7, help="First LR of the sweep."),
    end_lr: float = typer.Option(10.0, help="Last LR of the sweep."),
    steps: int = typer.Option(100, help="Number of steps (one batch each)."),
    batch_size: Optional[int] = typer.Option(None, help="Batch size (default: the recipe's)."),
    optimizer: Optional[str] = typer.Option(None, help="adam or sgd (default: the recipe's)."),
    seed: int = typer.Option(0, help="Seed."),
    out: Optional[Path] = typer.Option(None, help="Folder (default: runs/lr-find-<model>-<time>)."),
) -> None:
    """LR range test: sweep the LR exponentially, plot the loss, suggest a max LR."""
    from rich.console import Console
    from rich.progress import Progress

    from xaikit.device import resolve_device
    from xaikit.registry import get_model_spec
    from xaikit.run import RunConfig, load_data
    from xaikit.train import run_lr_range_test, save_lr_find
    from xaikit.train.trainer import check_recipe

    if steps < 2 or not 0 < start_lr < end_lr:
        raise XaikitError("need --steps >= 2 and 0 < --start-lr < --end-lr")
    spec = get_model_spec(model)
    torch_device = resolve_device(device)
    recipe = spec.recipe.replace(batch_size=batch_size, optimizer=optimizer)
    check_recipe(recipe)
    request = RunConfig(model=model, dataset=dataset, data_path=_absolute(data), subset=subset, seed=seed)
    bundle = load_data(request).to(torch_device)
    folder = out or Path("runs") / f"lr-find-{spec.name}-{_dt.datetime.now():%Y%m%d-%H%M%S}"
    console = Console(stderr=True)
    with Progress(console=console, disable=not console.is_terminal, transient=True) as bar:
        task = bar.add_task("LR range test", total=steps)
        result = run_lr_range_test(
            spec, recipe, bundle, torch_device, seed, bf16=torch_device.type == "cuda",
            start_lr=start_lr, end_lr=end_lr, steps=steps,
            model_kwargs={"num_classes": len(bundle.classes)},
            on_step=lambda step, lr, loss: bar.update(task, completed=step),
        )
    png, json_path = save_lr_find(result, folder, title=f"LR range test: {spec.name}")
    stop = f", stopped early at lr {result.lrs[-1]:.3g}" if result.stopped_early else ""
    typer.echo(f"suggested max LR: {result.suggested_lr:.3g} (rule: {result.rule}{stop})")
    typer.echo(f"plot: {png}")
    typer.echo(f"curve: {json_path}")
    typer.echo(str(folder))


def register(app: typer.Typer) -> None:
    """Add ``train`` and ``lr-find`` to the ``xaikit`` app."""
    app.command("train")(train_command)
    app.command("lr-find")(lr_find_command)
