"""One-cycle training of a registered model into a run folder, resume, and the LR range test.

``train(RunConfig("ultimus"))`` runs the model's recipe (with ``config.overrides`` applied).
The run folder appears when the first epoch has finished: then, and after every later epoch,
``checkpoint.pt`` and ``history.json`` are written, and at the first one also ``env.json`` and
``config.json`` (all atomically; see :mod:`xaikit.run`). A training that fails before
(bad flags, data, a loss that is not finite in epoch 1) leaves no folder behind, so the
corrected command just runs. ``resume(folder)`` continues a killed run from its last
checkpoint; on the CPU it ends with the same history as an uninterrupted run.
"""

from __future__ import annotations

import datetime as _dt
import math
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

import torch
from torch import nn

from xaikit.atomic import atomic_write_json, remove_stale_temporaries
from xaikit.device import resolve_device
from xaikit.errors import DivergedError, RunError, XaikitError
from xaikit.evaluate import evaluate_split
from xaikit.plugins import UNKNOWN_DISTRIBUTION
from xaikit.registry import get_model_spec, model_entries, dataset_entries
from xaikit.run import (
    CHECKPOINT_NAME, CONFIG_NAME, ENV_NAME, HISTORY_NAME, LR_FIND_JSON, LR_FIND_PNG, METRICS_NAME,
    DataFacts, EpochRecord, LRSuggestion, Origin, RunConfig, build_model, environment_record,
    LOCK_NAME, Run, check_output_folder, is_run_folder, load_checkpoint, load_data, load_run, now_iso, read_env, run_lock,
    save_checkpoint, write_config,
)
from xaikit.specs import DataBundle, ModelSpec, Recipe
from xaikit.train.loop import (
    build_optimizer, cudnn_autotune, train_one_epoch,
)
from xaikit.schedule import build_scheduler, steps_per_epoch
from xaikit.train.lr_finder import LRFinderResult, lr_range_test, save_lr_find
from xaikit.train.progress import TrainProgress
from xaikit.train.rng import capture_rng_state, restore_rng_state

EpochCallback = Callable[[EpochRecord], None]

RUN_FILES = (CONFIG_NAME, HISTORY_NAME, CHECKPOINT_NAME, ENV_NAME, METRICS_NAME, LR_FIND_JSON,
             LR_FIND_PNG)
"""Files a training run owns; ``--overwrite`` replaces exactly these."""


def check_recipe(recipe: Recipe) -> None:
    """Raise ``XaikitError`` (one line) for a recipe no training can run."""
    problems = []
    for name in ("max_lr", "weight_decay", "label_smoothing", "pct_start", "momentum",
                 "div_factor", "final_div_factor"):
        if not math.isfinite(getattr(recipe, name)):
            problems.append(f"--{name.replace('_', '-')} must be a finite number, not {getattr(recipe, name)}")
    if problems:
        raise XaikitError("; ".join(problems))
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


def resolve_recipe(config: RunConfig) -> tuple[ModelSpec, Recipe]:
    """The model's spec and the recipe ``config`` trains with (its own, or the model's recipe
    with ``config.overrides`` applied), checked.

    Raises:
        UnknownNameError: the model is not registered.
        XaikitError: an override names no recipe field, or the recipe cannot run.
    """
    spec = get_model_spec(config.model)
    recipe = config.recipe
    if recipe is None:
        fields = set(Recipe.__dataclass_fields__)
        unknown = sorted(set(config.overrides) - fields)
        if unknown:
            raise XaikitError(f"unknown recipe setting(s) {', '.join(unknown)}; known: {', '.join(sorted(fields))}")
        recipe = spec.recipe.replace(**config.overrides)
    check_recipe(recipe)
    return spec, recipe


def _origin(entries: dict[str, Any], name: str) -> Origin | None:
    """The plugin and distribution of registry entry ``name`` (``None`` if it has none)."""
    entry = entries.get(name)
    if entry is None:
        return None
    dist = entry.dist
    if dist is None or dist == UNKNOWN_DISTRIBUTION:  # registered by hand, not installed
        return Origin(entry.plugin)
    return Origin(entry.plugin, dist.name, dist.version)


def data_facts(data: DataBundle) -> DataFacts:
    """What a run records about its training data."""
    return DataFacts(
        source=data.source, classes=tuple(data.classes), num_train=int(data.train_labels.shape[0]),
        num_test=int(data.test_labels.shape[0]), mean=tuple(map(float, data.mean)),
        std=tuple(map(float, data.std)),
    )


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
    if folder.is_dir() and any(p.name != LOCK_NAME for p in folder.iterdir()) and not overwrite:
        if is_run_folder(folder):
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


@dataclass
class _Training:
    """The live objects of one training process (its settings are all in ``config``)."""

    folder: Path
    config: RunConfig
    device: torch.device
    data: DataBundle
    model: nn.Module
    generator: torch.Generator
    history: list[EpochRecord] = field(default_factory=list)
    start_epoch: int = 1
    resume_state: dict[str, Any] | None = None  # a checkpoint to continue from
    overwrite: bool = False
    lr_test: LRFinderResult | None = None  # saved with the first epoch
    notes: list[str] = field(default_factory=list)  # printed when training starts

    @property
    def recipe(self) -> Recipe:
        assert self.config.recipe is not None
        return self.config.recipe

    @property
    def sync_every(self) -> int:
        return 1 if self.device.type == "cpu" else self.config.sync_every


def train(
    config: RunConfig, out: str | Path | None = None, *, overwrite: bool = False,
    show_progress: bool | None = None, on_epoch_end: EpochCallback | None = None,
) -> Path:
    """Train ``config.model`` into a new run folder and return the folder.

    Raises:
        UnknownNameError: the model or data set is not registered.
        DataError: the data cannot be loaded.
        RunError: ``out`` already holds a run (without ``overwrite``).
        DivergedError: a loss became non-finite; the last good checkpoint stays.
    """
    spec, recipe = resolve_recipe(config)
    device = resolve_device(config.device)
    folder = Path(out) if out is not None else default_run_dir(spec.name)
    check_output_folder(folder)
    created = [p for p in (folder, *folder.parents) if not p.exists()]
    folder.mkdir(parents=True, exist_ok=True)  # to hold the lock; removed again on failure
    try:
        with run_lock(folder):
            _check_out_folder(folder, overwrite)
            remove_stale_temporaries(folder)  # left by a process killed mid-write
            return _train(config, spec, recipe, device, folder, overwrite, show_progress, on_epoch_end)
    except BaseException:
        _remove_unused(folder, created)
        raise


def _remove_unused(folder: Path, created: list[Path]) -> None:
    """After a training that wrote no epoch: remove the lock file and the folders this process
    created, if nothing else is in them (a folder with a run, or anything else, stays)."""
    if [p.name for p in folder.iterdir()] == [LOCK_NAME] and folder in created:
        (folder / LOCK_NAME).unlink(missing_ok=True)
    for path in created:  # deepest first
        try:
            path.rmdir()
        except OSError:
            break


def _train(
    config: RunConfig, spec: ModelSpec, recipe: Recipe, device: torch.device, folder: Path,
    overwrite: bool, show_progress: bool | None, on_epoch_end: EpochCallback | None,
) -> Path:
    data = load_data(config).to(device)
    notes = []
    dropped = [a for a in recipe.augment if a in data.forbidden_augment]
    if dropped:
        recipe = recipe.replace(augment=tuple(a for a in recipe.augment if a not in dropped))
        notes.append(f"data set {config.dataset!r} forbids {', '.join(dropped)}: trained without it")
    config = config.replace(
        recipe=recipe, device=str(device), data=data_facts(data),
        bf16=device.type == "cuda" if config.bf16 is None else config.bf16,
        model_origin=_origin(model_entries(), spec.name),
        dataset_origin=_origin(dataset_entries(), config.dataset),
        created=now_iso(),
    )
    torch.manual_seed(config.seed)
    model = build_model(spec, config).to(device)
    config = config.replace(
        model_kwargs={**config.model_kwargs, "num_classes": len(data.classes)},
        channels_last=to_channels_last(model, data),
    )
    lr_test = None
    if config.max_lr_auto:
        lr_test = run_lr_range_test(
            spec, recipe, data, device, config.seed, model=model, bf16=bool(config.bf16),
            steps=config.lr_find_steps,
        )
        config = config.replace(
            recipe=recipe.replace(max_lr=lr_test.suggested_lr),
            max_lr_suggestion=LRSuggestion(lr_test.suggested_lr, lr_test.rule),
        )
    state = _Training(folder, config, device, data, model, _new_generator(device, config.seed),
                      overwrite=overwrite, lr_test=lr_test, notes=notes)
    return _fit(state, show_progress, on_epoch_end)


def resume(
    run_dir: str | Path, *, device: str | None = None, data_path: str | None = None,
    show_progress: bool | None = None, on_epoch_end: EpochCallback | None = None,
) -> Path:
    """Continue the run in ``run_dir`` from its last checkpoint with its own settings.

    Model, optimizer and scheduler states, the epoch, the history and the CPU/CUDA/data RNG
    states come from ``checkpoint.pt``; everything else from ``config.json``.

    Raises:
        RunError: not a run, no checkpoint, a checkpoint of another model, or data whose
            classes differ from the run's.
    """
    load_run(run_dir)  # a folder that is no run is refused before anything is touched
    with run_lock(run_dir):
        remove_stale_temporaries(Path(run_dir))
        return _resume(load_run(run_dir), device, data_path, show_progress, on_epoch_end)


def _resume(
    run: Run, device: str | None, data_path: str | None, show_progress: bool | None,
    on_epoch_end: EpochCallback | None,
) -> Path:
    config = run.config
    assert config.recipe is not None
    check_recipe(config.recipe)
    if not run.checkpoint_path.is_file():
        raise RunError(
            f"{run.checkpoint_path} is missing, so {run.path} cannot be resumed; "
            f"train again with --out {run.path} --overwrite"
        )
    stored_device = torch.device(config.device)
    target = resolve_device(device or str(stored_device))
    if target.type != stored_device.type:
        config = config.replace(bf16=target.type == "cuda")
    data = load_data(run, data_path).to(target)
    torch.manual_seed(config.seed)
    model = build_model(run.spec, config).to(target)
    channels_last = bool(config.channels_last) and to_channels_last(model, data)
    config = config.replace(channels_last=channels_last)
    checkpoint = load_checkpoint(run.checkpoint_path, map_location=target)
    if checkpoint.get("model_name") not in (None, run.spec.name):
        raise RunError(f"{run.checkpoint_path} holds a {checkpoint['model_name']!r} model, not {run.spec.name!r}")
    state = _Training(run.path, config, target, data, model, _new_generator(target, config.seed))
    state.start_epoch = int(checkpoint["epoch"]) + 1
    state.history = list(checkpoint.get("history", []))
    state.resume_state = checkpoint
    env = read_env(run.path)
    env.setdefault("resumes", []).append(
        {"start_time": now_iso(), "device": str(target), "from_epoch": state.start_epoch}
    )
    atomic_write_json(run.path / ENV_NAME, env)
    return _fit(state, show_progress, on_epoch_end)


def _save_epoch(state: _Training, epoch: int, model: nn.Module, optimizer: Any, scheduler: Any) -> None:
    """Write the checkpoint and the history; at a new run's first epoch, create the run
    (replace an old one's files with ``overwrite``, write ``env.json``, then ``config.json``)."""
    first = state.resume_state is None and epoch == 1
    if first:
        state.folder.mkdir(parents=True, exist_ok=True)
        if state.overwrite:
            for name in RUN_FILES:
                (state.folder / name).unlink(missing_ok=True)
        if state.lr_test is not None:
            save_lr_find(state.lr_test, state.folder, title=f"LR range test: {state.config.model}")
        atomic_write_json(state.folder / ENV_NAME, environment_record(state.device, state.config.seed))
    save_checkpoint(state.folder / CHECKPOINT_NAME, {
        "model_name": state.config.model,
        "model": model.state_dict(),
        "optimizer": optimizer.state_dict(),
        "scheduler": scheduler.state_dict(),
        "epoch": epoch,
        "history": state.history,
        "rng": capture_rng_state(state.generator),
    })
    atomic_write_json(state.folder / HISTORY_NAME, state.history)
    if first:
        write_config(state.folder, state.config)  # last: a folder with a config is a run


def _fit(state: _Training, show_progress: bool | None, on_epoch_end: EpochCallback | None) -> Path:
    recipe, data, config = state.recipe, state.data, state.config
    model = state.model
    optimizer = build_optimizer(model, recipe)
    steps = steps_per_epoch(int(data.train_labels.shape[0]), recipe.batch_size)
    scheduler = build_scheduler(optimizer, recipe, steps)
    saved = state.resume_state
    if saved is not None:
        try:
            model.load_state_dict(saved["model"])
            optimizer.load_state_dict(saved["optimizer"])
            scheduler.load_state_dict(saved["scheduler"])
            restore_rng_state(saved["rng"], state.generator)
        except (RuntimeError, KeyError, ValueError, TypeError) as exc:
            raise RunError(f"{state.folder / CHECKPOINT_NAME} does not fit model {config.model!r}: "
                           f"{' '.join(str(exc).split())[:300]}") from None
    net = torch.compile(model) if config.compile else model
    criterion, augment = _criterion(recipe), _augment(recipe)
    progress = TrainProgress(recipe.epochs, steps, state.start_epoch, enabled=show_progress)
    with cudnn_autotune(state.device.type == "cuda"), progress:
        for note in state.notes:
            progress.message(note)
        if state.start_epoch > recipe.epochs:
            progress.message(f"{state.folder} already finished all {recipe.epochs} epochs")
        for epoch in range(state.start_epoch, recipe.epochs + 1):
            started = time.perf_counter()
            progress.start_epoch(epoch)
            try:
                result = train_one_epoch(
                    net, optimizer, scheduler, criterion, data.train_images, data.train_labels,
                    data.mean, data.std, augment, recipe.batch_size, state.generator,
                    epoch=epoch, bf16=bool(config.bf16), channels_last=bool(config.channels_last),
                    sync_every=state.sync_every, on_progress=progress.update_batch,
                )
            except DivergedError as exc:
                lower = f"{exc.lr / 3:.2g}" if exc.lr else "a lower value"
                retrain = f"xaikit train {config.model} --max-lr {lower} --out {state.folder}"
                kept = (f"the checkpoint of epoch {epoch - 1} is kept in {state.folder}; to retry "
                        f"with a lower peak LR: {retrain} --overwrite"
                        if epoch > 1 else f"no run folder was written; retry with: {retrain}")
                raise DivergedError(f"{exc}; {kept}") from None
            test = evaluate_split(
                net, data.test_images, data.test_labels, data.mean, data.std, tta=config.tta,
                bf16=bool(config.bf16), channels_last=bool(config.channels_last),
            )
            record: EpochRecord = {
                "epoch": epoch, "train_loss": result.loss, "train_acc": result.acc,
                "test_loss": test["loss"], "test_acc": test["acc"], "lr": result.lr,
                "seconds": round(time.perf_counter() - started, 3),
            }
            if config.tta:
                record["test_acc_tta"] = test["acc_tta"]
            state.history.append(record)
            _save_epoch(state, epoch, model, optimizer, scheduler)
            progress.end_epoch(dict(record))
            if on_epoch_end is not None:
                on_epoch_end(record)
    return state.folder
