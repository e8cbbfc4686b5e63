"""One-cycle training of a registered model into a run folder, resume, and the LR range test.

``train(TrainSettings("ultimus"))`` runs the model's recipe (with any overrides) and writes
``config.json``, ``env.json``, and after every epoch ``checkpoint.pt`` and ``history.json``
(all atomically). ``resume(folder)`` continues a killed run from its last checkpoint; on
the CPU it ends with the same history as an uninterrupted run.
"""

from __future__ import annotations

import datetime as _dt
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

import torch
from torch import nn

from xaikit.errors import DivergedError, RunError, XaikitError
from xaikit.registry import get_model_spec
from xaikit.specs import DataBundle, ModelSpec, Recipe
from xaikit.train.checkpoint import (
    CHECKPOINT_NAME, capture_rng_state, load_checkpoint, restore_rng_state, save_checkpoint,
)
from xaikit.runs_io import write_json
from xaikit.train.env import environment_record, now_iso, resolve_device
from xaikit.train.loop import (
    build_optimizer, build_scheduler, cudnn_autotune, evaluate_split, steps_per_epoch,
    train_one_epoch,
)
from xaikit.train.lr_finder import LRFinderResult, lr_range_test, save_lr_find
from xaikit.train.progress import TrainProgress
from xaikit.train.runs import (
    CONFIG_NAME, ENV_NAME, HISTORY_NAME, load_run, load_run_data, read_json,
)

EpochCallback = Callable[[dict[str, Any]], None]


@dataclass
class TrainSettings:
    """What ``xaikit train`` was asked for. ``None`` recipe fields mean "the model's recipe".

    ``bf16=None`` means on for CUDA, off on the CPU. ``max_lr_auto`` runs the LR range test
    first (``lr_find_steps`` steps) and trains with its suggestion. ``sync_every`` is the number
    of batches between host reads of the loss (progress, divergence check) on CUDA; on the CPU,
    where a read costs nothing, the loss is read after every batch.
    """

    model: str
    dataset: str = "cifar10"
    data_path: str | None = None
    subset: int | None = None
    seed: int = 0
    device: str = "auto"
    epochs: int | None = None
    batch_size: int | None = None
    max_lr: float | None = None
    max_lr_auto: bool = False
    optimizer: str | None = None
    weight_decay: float | None = None
    label_smoothing: float | None = None
    compile: bool = False
    tta: bool = False
    bf16: bool | None = None
    model_kwargs: dict[str, Any] = field(default_factory=dict)
    sync_every: int = 20
    lr_find_steps: int = 100

    def recipe_overrides(self) -> dict[str, Any]:
        names = ("epochs", "batch_size", "max_lr", "optimizer", "weight_decay", "label_smoothing")
        return {n: getattr(self, n) for n in names if getattr(self, n) is not None}


def check_recipe(recipe: Recipe) -> None:
    """Raise ``XaikitError`` (one line) for a recipe no training can run."""
    problems = []
    if recipe.epochs < 1:
        problems.append("--epochs must be at least 1")
    if recipe.batch_size < 1:
        problems.append("--batch-size must be at least 1")
    if not recipe.max_lr > 0:
        problems.append("--max-lr must be positive")
    if recipe.optimizer.lower() not in ("adam", "sgd"):
        problems.append(f"--optimizer must be adam or sgd, not {recipe.optimizer!r}")
    if recipe.weight_decay < 0:
        problems.append("--weight-decay must be >= 0")
    if not 0 <= recipe.label_smoothing < 1:
        problems.append("--label-smoothing must be in [0, 1)")
    if problems:
        raise XaikitError("; ".join(problems))


def default_run_dir(model: str, root: Path = Path("runs")) -> Path:
    """``runs/<model>-<YYYYmmdd-HHMMSS>``."""
    return root / f"{model}-{_dt.datetime.now():%Y%m%d-%H%M%S}"


def load_training_data(
    dataset: str, data_path: str | None, subset: int | None, seed: int
) -> DataBundle:
    """Load a data set (and its balanced subset of ``subset`` training images)."""
    from xaikit.data import balanced_subset, load_data

    bundle = load_data(dataset, data_path)
    if subset:
        bundle = balanced_subset(bundle, subset, seed=seed)
    return bundle


@dataclass
class _Session:
    """Everything one training process holds."""

    folder: Path
    config: dict[str, Any]
    recipe: Recipe
    device: torch.device
    data: DataBundle
    model: nn.Module
    generator: torch.Generator
    bf16: bool
    channels_last: bool
    history: list[dict[str, Any]] = field(default_factory=list)
    start_epoch: int = 1
    resume_state: dict[str, Any] | None = None  # a checkpoint to continue from

    @property
    def sync_every(self) -> int:
        if self.device.type == "cpu":
            return 1
        return int(self.config["flags"].get("sync_every", 20))


def to_channels_last(model: nn.Module, data: DataBundle) -> bool:
    """Put ``model`` (in place) in channels_last (NHWC) memory format if it runs in it; say if it does.

    Training uses channels_last on every device: cuDNN's tensor-core convolutions want it on
    CUDA, and on the CPU oneDNN trains ULTIMUS 1.4x faster with it (7,300 against 5,100
    images/s on 2 cores). A model that reshapes activations with ``view`` (``x.view(len(x),
    -1)`` after a conv, common in tutorials) cannot take NHWC tensors, so the model is probed
    once on two training images and stays NCHW if that forward pass raises.
    """
    from xaikit.data import normalize
    from xaikit.modules import module_mode

    model.to(memory_format=torch.channels_last)
    x = normalize(data.train_images[:2], data.mean, data.std).contiguous(memory_format=torch.channels_last)
    try:
        with torch.no_grad(), module_mode(model, training=False):
            model(x)
    except RuntimeError:
        model.to(memory_format=torch.contiguous_format)
        return False
    return True


def _new_generator(device: torch.device, seed: int) -> torch.Generator:
    return torch.Generator(device=device).manual_seed(seed)


def _criterion(recipe: Recipe) -> nn.Module:
    return nn.CrossEntropyLoss(label_smoothing=recipe.label_smoothing)


def _augment(recipe: Recipe) -> Callable[..., torch.Tensor] | None:
    from xaikit.data import BatchAugment

    return BatchAugment.from_recipe(recipe) if recipe.augment else None


def _check_out_folder(folder: Path, overwrite: bool) -> None:
    """Refuse an ``--out`` that is a file, holds a run, or is not empty (unless ``overwrite``)."""
    if folder.exists() and not folder.is_dir():
        raise RunError(f"--out {folder} exists and is not a folder")
    if folder.is_dir() and any(folder.iterdir()) and not overwrite:
        if (folder / CONFIG_NAME).exists():
            raise RunError(f"{folder} already holds a run; use --resume {folder}, --overwrite, or another --out")
        raise RunError(f"--out {folder} is not empty; pick another folder or pass --overwrite")


def run_lr_range_test(
    spec: ModelSpec, recipe: Recipe, data: DataBundle, device: torch.device, seed: int, *,
    model: nn.Module | None = None, bf16: bool = False, start_lr: float = 1e-7,
    end_lr: float = 10.0, steps: int = 100, model_kwargs: dict[str, Any] | None = None,
    on_step: Callable[[int, float, float], None] | None = None,
) -> LRFinderResult:
    """LR range test of ``spec``'s model (or of ``model``, left unchanged) with ``recipe``'s
    optimizer, batch size, augmentation and label smoothing, on ``data`` (already on ``device``)."""
    if model is None:
        torch.manual_seed(seed)
        model = spec.create(**(model_kwargs or {})).to(device)
    channels_last = to_channels_last(model, data)
    optimizer = build_optimizer(model, recipe)
    return lr_range_test(
        model, optimizer, _criterion(recipe), data.train_images, data.train_labels, data.mean,
        data.std, batch_size=recipe.batch_size, augment=_augment(recipe), start_lr=start_lr,
        end_lr=end_lr, steps=steps, generator=_new_generator(device, seed), bf16=bf16,
        channels_last=channels_last, on_step=on_step,
    )


def train(
    settings: TrainSettings, out: str | Path | None = None, *, overwrite: bool = False,
    show_progress: bool | None = None, on_epoch_end: EpochCallback | None = None,
) -> Path:
    """Train ``settings.model`` into a new run folder and return the folder.

    Raises:
        UnknownNameError: the model is not registered.
        DataError: the data cannot be loaded.
        RunError: ``out`` already holds a run (without ``overwrite``).
        DivergedError: a loss became non-finite; the last good checkpoint stays.
    """
    spec = get_model_spec(settings.model)
    device = resolve_device(settings.device)
    recipe = spec.recipe.replace(**settings.recipe_overrides())
    check_recipe(recipe)
    folder = Path(out) if out is not None else default_run_dir(spec.name)
    _check_out_folder(folder, overwrite)
    data = load_training_data(settings.dataset, settings.data_path, settings.subset, settings.seed)
    data = data.to(device)
    folder.mkdir(parents=True, exist_ok=True)
    for name in (HISTORY_NAME, CHECKPOINT_NAME, "metrics.json", "lr_find.json", "lr_find.png"):
        (folder / name).unlink(missing_ok=True)  # only there with overwrite
    bf16 = device.type == "cuda" if settings.bf16 is None else settings.bf16
    model_kwargs = {"num_classes": len(data.classes), **settings.model_kwargs}
    torch.manual_seed(settings.seed)
    model = spec.create(**model_kwargs).to(device)
    channels_last = to_channels_last(model, data)
    lr_test: LRFinderResult | None = None
    if settings.max_lr_auto:
        lr_test = run_lr_range_test(
            spec, recipe, data, device, settings.seed, model=model, bf16=bf16,
            steps=settings.lr_find_steps,
        )
        save_lr_find(lr_test, folder, title=f"LR range test: {spec.name}")
        recipe = recipe.replace(max_lr=lr_test.suggested_lr)
    config = {
        "model": spec.name,
        "model_kwargs": model_kwargs,
        "dataset": settings.dataset,
        "data_path": settings.data_path,
        "data_source": data.source,
        "subset": settings.subset,
        "subset_seed": settings.seed,
        "seed": settings.seed,
        "device": str(device),
        "recipe": recipe.to_dict(),
        "flags": {
            "compile": settings.compile, "tta": settings.tta, "bf16": bf16,
            "channels_last": channels_last, "max_lr_auto": settings.max_lr_auto,
            "sync_every": settings.sync_every,
        },
        "overrides": settings.recipe_overrides(),
        "max_lr_suggestion": None if lr_test is None else {"lr": lr_test.suggested_lr, "rule": lr_test.rule},
        "classes": list(data.classes),
        "num_train": int(data.train_labels.shape[0]),
        "num_test": int(data.test_labels.shape[0]),
        "mean": list(data.mean),
        "std": list(data.std),
        "created": now_iso(),
    }
    write_json(folder / CONFIG_NAME, config)
    write_json(folder / ENV_NAME, environment_record(device, settings.seed))
    write_json(folder / HISTORY_NAME, [])
    session = _Session(folder, config, recipe, device, data, model,
                       _new_generator(device, settings.seed), bf16, channels_last)
    return _fit(session, show_progress, on_epoch_end)


def resume(
    run_dir: str | Path, *, device: str | None = None, data_path: str | None = None,
    show_progress: bool | None = None, on_epoch_end: EpochCallback | None = None,
) -> Path:
    """Continue the run in ``run_dir`` from its last checkpoint with its own settings.

    Model, optimizer and scheduler states, the epoch, the history and the CPU/CUDA/data RNG
    states come from ``checkpoint.pt``; everything else from ``config.json``.
    """
    run = load_run(run_dir)
    config = run.config
    stored_device = torch.device(config.get("device", "cpu"))
    target = resolve_device(device or str(stored_device))
    recipe = Recipe.from_dict(config["recipe"])
    flags = config.get("flags", {})
    bf16 = bool(flags.get("bf16")) if target.type == stored_device.type else target.type == "cuda"
    data = load_run_data(run, data_path).to(target)
    seed = int(config.get("seed", 0))
    torch.manual_seed(seed)
    kwargs = dict(config.get("model_kwargs") or {})
    model = run.spec.create(**kwargs).to(target)
    channels_last = bool(flags.get("channels_last")) and to_channels_last(model, data)
    session = _Session(run.path, config, recipe, target, data, model, _new_generator(target, seed),
                       bf16, channels_last)
    checkpoint_path = run.path / CHECKPOINT_NAME
    if checkpoint_path.is_file():
        checkpoint = load_checkpoint(checkpoint_path, map_location=target)
        if checkpoint.get("model_name") not in (None, run.spec.name):
            raise RunError(f"{checkpoint_path} holds a {checkpoint['model_name']!r} model, not {run.spec.name!r}")
        session.start_epoch = int(checkpoint["epoch"]) + 1
        session.history = list(checkpoint.get("history", []))
        session.resume_state = checkpoint
    env = read_json(run.path / ENV_NAME) if (run.path / ENV_NAME).is_file() else {}
    env.setdefault("resumes", []).append(
        {"start_time": now_iso(), "device": str(target), "from_epoch": session.start_epoch}
    )
    write_json(run.path / ENV_NAME, env)
    return _fit(session, show_progress, on_epoch_end)


def _fit(session: _Session, show_progress: bool | None, on_epoch_end: EpochCallback | None) -> Path:
    recipe, data = session.recipe, session.data
    model = session.model
    optimizer = build_optimizer(model, recipe)
    steps = steps_per_epoch(int(data.train_labels.shape[0]), recipe.batch_size)
    scheduler = build_scheduler(optimizer, recipe, steps)
    state = session.resume_state
    if state is not None:
        try:
            model.load_state_dict(state["model"])
        except RuntimeError as exc:
            raise RunError(f"checkpoint does not fit model {session.config['model']!r}: "
                           f"{' '.join(str(exc).split())[:300]}") from None
        optimizer.load_state_dict(state["optimizer"])
        scheduler.load_state_dict(state["scheduler"])
        restore_rng_state(state["rng"], session.generator)
    net = torch.compile(model) if session.config["flags"].get("compile") else model
    criterion, augment = _criterion(recipe), _augment(recipe)
    tta = bool(session.config["flags"].get("tta"))
    progress = TrainProgress(recipe.epochs, steps, session.start_epoch, enabled=show_progress)
    with cudnn_autotune(session.device.type == "cuda"), progress:
        if session.start_epoch > recipe.epochs:
            progress.message(f"{session.folder} already finished all {recipe.epochs} epochs")
        for epoch in range(session.start_epoch, recipe.epochs + 1):
            started = time.perf_counter()
            progress.start_epoch(epoch)
            try:
                result = train_one_epoch(
                    net, optimizer, scheduler, criterion, data.train_images, data.train_labels,
                    data.mean, data.std, augment, recipe.batch_size, session.generator,
                    epoch=epoch, bf16=session.bf16, channels_last=session.channels_last,
                    sync_every=session.sync_every, on_progress=progress.update_batch,
                )
            except DivergedError as exc:
                kept = (f"the checkpoint of epoch {epoch - 1} is kept in {session.folder}"
                        if epoch > 1 else "no checkpoint was written")
                raise DivergedError(f"{exc}; {kept}") from None
            test = evaluate_split(
                net, data.test_images, data.test_labels, data.mean, data.std, tta=tta,
                bf16=session.bf16, channels_last=session.channels_last,
            )
            record = {
                "epoch": epoch, "train_loss": result.loss, "train_acc": result.acc,
                "test_loss": test["loss"], "test_acc": test["acc"], "lr": result.lr,
                "seconds": round(time.perf_counter() - started, 3),
            }
            if tta:
                record["test_acc_tta"] = test["acc_tta"]
            session.history.append(record)
            save_checkpoint(session.folder / CHECKPOINT_NAME, {
                "model_name": session.config["model"],
                "model": model.state_dict(),
                "optimizer": optimizer.state_dict(),
                "scheduler": scheduler.state_dict(),
                "epoch": epoch,
                "history": session.history,
                "rng": capture_rng_state(session.generator),
            })
            write_json(session.folder / HISTORY_NAME, session.history)
            progress.end_epoch(record)
            if on_epoch_end is not None:
                on_epoch_end(record)
    return session.folder

