"""One-cycle training of a registered model into a run folder, resume, and the LR range test.

``train(RunConfig("ultimus"))`` runs the model's recipe (with ``config.overrides`` applied).
The run folder appears when the first epoch has finished: then, and after every later epoch,
``checkpoint.pt`` and ``history.json`` are written, and at the first one also ``env.json`` and
``config.json`` (all atomically; see :mod:`xaikit.run`). A training that fails before
(bad flags, data, a loss that is not finite in epoch 1) leaves no folder behind, so the
corrected command just runs. ``resume(folder)`` continues a killed run from its last
checkpoint; on the CPU it ends with the same history as an uninterrupted run.

Under torchrun (``torchrun --nproc-per-node N -m xaikit train ...``) both join the process
group and train with DistributedDataParallel: every process trains on its part of each global
batch (:mod:`xaikit.train.shard`), rank 0 alone writes the run folder and prints, and errors
that only some processes meet are agreed on so that all stop together
(:mod:`xaikit.distributed`; what is exact is listed in :mod:`xaikit.train.parallel`).
"""

from __future__ import annotations

import contextlib
import datetime as _dt
import math
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

import torch
from torch import nn

from xaikit import distributed
from xaikit.atomic import atomic_write_json, remove_stale_temporaries
from xaikit.errors import DivergedError, RunError, XaikitError
from xaikit.evaluate import evaluate_split
from xaikit.plugins import UNKNOWN_DISTRIBUTION
from xaikit.registry import get_model_spec, model_entries, dataset_entries
from xaikit.run import (
    CHECKPOINT_NAME, CONFIG_NAME, ENV_NAME, HISTORY_NAME, LR_FIND_JSON, LR_FIND_PNG, METRICS_NAME,
    DataFacts, EpochRecord, LRSuggestion, Origin, RunConfig, build_model, environment_record,
    LOCK_NAME, check_output_folder, is_run_folder, load_data, now_iso, run_lock,
    save_checkpoint, write_config,
)
from xaikit.specs import DataBundle, ModelSpec, Recipe
from xaikit.train.loop import (
    build_optimizer, cudnn_autotune, recipe_extras, train_one_epoch,
)
from xaikit.schedule import build_scheduler, steps_per_epoch
from xaikit.train.lookahead import Lookahead
from xaikit.train.lr_finder import LRFinderResult, lr_range_test, save_lr_find
from xaikit.train.parallel import (
    check_batch_split, check_parallel, epoch_seed, evaluate_sharded, wrap,
)
from xaikit.train.progress import TrainProgress
from xaikit.train.rng import capture_rng_state, restore_rng_state
from xaikit.train.shard import Shard

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
    if recipe.schedule not in ("one-cycle", "triangular"):
        problems.append(f"schedule must be one-cycle or triangular, not {recipe.schedule!r}")
    if not (math.isfinite(recipe.norm_lr_scale) and recipe.norm_lr_scale > 0):
        problems.append("norm_lr_scale must be a positive number")
    if recipe.lookahead_every < 0 or not 0 <= recipe.lookahead_alpha <= 1:
        problems.append("lookahead_every must be >= 0 and lookahead_alpha in [0, 1]")
    if recipe.tta_shift < 0:
        problems.append("tta_shift must be >= 0")
    if "flip" in recipe.augment and "altflip" in recipe.augment:
        problems.append("augment takes flip or altflip, not both")
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
        if spec.init_from_data is not None:
            spec.init_from_data(model, data)
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
    hosts: list[str] = field(default_factory=list)  # of every process, under torchrun

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

    Under torchrun every process calls this with the same ``config``; rank 0's ``out`` (or
    default folder) is the run folder, and only rank 0 creates, locks and writes it.

    Raises:
        UnknownNameError: the model or data set is not registered.
        DataError: the data cannot be loaded.
        RunError: ``out`` already holds a run (without ``overwrite``).
        DivergedError: a loss became non-finite; the last good checkpoint stays.
    """
    with distributed.process_group():
        with distributed.agree_on_errors():  # a plugin may be missing on one machine only
            spec, recipe = resolve_recipe(config)
        folder = Path(out) if out is not None else default_run_dir(spec.name)
        folder = Path(distributed.broadcast_object(str(folder)))
        created: list[Path] | None = None  # set once this process made the folder
        try:
            with contextlib.ExitStack() as stack:
                with distributed.agree_on_errors():
                    device = distributed.rank_device(config.device)
                    check_parallel(config, device)
                    if distributed.is_main():
                        check_output_folder(folder)
                        created = [p for p in (folder, *folder.parents) if not p.exists()]
                        folder.mkdir(parents=True, exist_ok=True)  # to hold the lock; removed on failure
                        stack.enter_context(run_lock(folder))
                        _check_out_folder(folder, overwrite)
                        remove_stale_temporaries(folder)  # left by a process killed mid-write
                return _train(config, spec, recipe, device, folder, overwrite, show_progress, on_epoch_end)
        except BaseException:
            if created is not None:
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
    with distributed.agree_on_errors():  # the data may be missing on one machine only
        data = load_data(config).to(device)
    notes = []
    forbidden = set(data.forbidden_augment) | ({"altflip"} if "flip" in data.forbidden_augment else set())
    dropped = [a for a in recipe.augment if a in forbidden]
    if dropped:
        recipe = recipe.replace(augment=tuple(a for a in recipe.augment if a not in dropped))
        notes.append(f"data set {config.dataset!r} forbids {', '.join(dropped)}: trained without it")
    if config.sync_bn and not distributed.is_distributed():
        notes.append("--sync-bn has no effect in a single process (start it with torchrun)")
    config = config.replace(
        recipe=recipe, device=str(device), data=data_facts(data), world_size=distributed.world_size(),
        bf16=device.type == "cuda" if config.bf16 is None else config.bf16,
        model_origin=_origin(model_entries(), spec.name),
        dataset_origin=_origin(dataset_entries(), config.dataset),
        created=now_iso(),
    )
    torch.manual_seed(config.seed)
    model = build_model(spec, config).to(device)
    if spec.init_from_data is not None:
        spec.init_from_data(model, data)
    config = config.replace(
        model_kwargs={**config.model_kwargs, "num_classes": len(data.classes)},
        channels_last=to_channels_last(model, data),
    )
    lr_test = None
    if config.max_lr_auto:
        with distributed.agree_on_errors():  # rank 0 runs the range test, the others wait
            if distributed.is_main():
                lr_test = run_lr_range_test(
                    spec, recipe, data, device, config.seed, model=model, bf16=bool(config.bf16),
                    steps=config.lr_find_steps,
                )
        lr_test = distributed.broadcast_object(lr_test)
        assert lr_test is not None
        config = config.replace(
            recipe=recipe.replace(max_lr=lr_test.suggested_lr),
            max_lr_suggestion=LRSuggestion(lr_test.suggested_lr, lr_test.rule),
        )
    state = _Training(folder, config, device, data, model, _new_generator(device, config.seed),
                      overwrite=overwrite, lr_test=lr_test, notes=notes,
                      hosts=distributed.hosts() if distributed.is_distributed() else [])
    return _fit(state, show_progress, on_epoch_end)


def _save_epoch(state: _Training, epoch: int, model: nn.Module, optimizer: Any, scheduler: Any,
                lookahead: Lookahead | None) -> None:
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
        env = environment_record(state.device, state.config.seed)
        if distributed.is_distributed():
            env.update(world_size=distributed.world_size(), backend=distributed.backend(), hosts=state.hosts)
        atomic_write_json(state.folder / ENV_NAME, env)
    checkpoint = {
        "model_name": state.config.model,
        "model": model.state_dict(),
        "optimizer": optimizer.state_dict(),
        "scheduler": scheduler.state_dict(),
        "epoch": epoch,
        "history": state.history,
        "rng": capture_rng_state(state.generator),
    }
    if lookahead is not None:
        checkpoint["lookahead"] = lookahead.state_dict()
    if distributed.is_distributed():
        checkpoint["world_size"] = distributed.world_size()
    save_checkpoint(state.folder / CHECKPOINT_NAME, checkpoint)
    atomic_write_json(state.folder / HISTORY_NAME, state.history)
    if first:
        write_config(state.folder, state.config)  # last: a folder with a config is a run


def _trainable(model: nn.Module) -> set[str]:
    return {name for name, p in model.named_parameters() if p.requires_grad}


def _fit(state: _Training, show_progress: bool | None, on_epoch_end: EpochCallback | None) -> Path:
    recipe, data, config = state.recipe, state.data, state.config
    model = state.model
    shard = Shard.current() if distributed.is_distributed() else None
    optimizer = build_optimizer(model, recipe)
    num_images = int(data.train_labels.shape[0])
    steps = steps_per_epoch(num_images, recipe.batch_size)
    if shard is not None:
        check_batch_split(num_images, recipe.batch_size, shard.world)
    scheduler = build_scheduler(optimizer, recipe, steps)
    lookahead, after_step, altflip = recipe_extras(model, recipe, scheduler, num_images, config.seed,
                                                   state.device)
    saved = state.resume_state
    if saved is not None:
        try:
            model.load_state_dict(saved["model"])
            optimizer.load_state_dict(saved["optimizer"])
            scheduler.load_state_dict(saved["scheduler"])
            restore_rng_state(saved["rng"], state.generator)
            if lookahead is not None:
                lookahead.load_state_dict(saved["lookahead"])
        except (RuntimeError, KeyError, ValueError, TypeError) as exc:
            raise RunError(f"{state.folder / CHECKPOINT_NAME} does not fit model {config.model!r}: "
                           f"{' '.join(str(exc).split())[:300]}") from None
    trained: nn.Module = model
    if shard is not None:  # the converted model shares the parameters the optimizer holds
        model, trained = wrap(model, state.device, sync_bn=bool(config.sync_bn))
    net = torch.compile(trained) if config.compile else trained
    trainable = _trainable(model)  # what DistributedDataParallel was built for
    criterion, augment = _criterion(recipe), _augment(recipe)
    on_epoch_start = get_model_spec(config.model).on_epoch_start
    main = distributed.is_main()
    progress = TrainProgress(recipe.epochs, steps, state.start_epoch, enabled=show_progress, silent=not main)
    with cudnn_autotune(state.device.type == "cuda"), progress:
        for note in state.notes:
            progress.message(note)
        if state.start_epoch > recipe.epochs:
            progress.message(f"{state.folder} already finished all {recipe.epochs} epochs")
        for epoch in range(state.start_epoch, recipe.epochs + 1):
            started = time.perf_counter()
            progress.start_epoch(epoch)
            if shard is not None:  # randomness inside the model: per process, from (seed, epoch, rank)
                torch.manual_seed(epoch_seed(config.seed, epoch, shard.rank))
            if on_epoch_start is not None:
                on_epoch_start(model, epoch)
                if shard is not None and _trainable(model) != trainable:
                    raise XaikitError(
                        f"{config.model}'s on_epoch_start changed which parameters train at epoch "
                        f"{epoch}, which DistributedDataParallel cannot follow; continue in one "
                        f"process: xaikit train --resume {state.folder}"
                    )
            try:
                result = train_one_epoch(
                    net, optimizer, scheduler, criterion, data.train_images, data.train_labels,
                    data.mean, data.std, augment, recipe.batch_size, state.generator,
                    epoch=epoch, bf16=bool(config.bf16), channels_last=bool(config.channels_last),
                    sync_every=state.sync_every, on_progress=progress.update_batch, shard=shard,
                    altflip=altflip, after_step=after_step,
                )
            except DivergedError as exc:
                lower = f"{exc.lr / 3:.2g}" if exc.lr else "a lower value"
                retrain = f"xaikit train {config.model} --max-lr {lower} --out {state.folder}"
                kept = (f"the checkpoint of epoch {epoch - 1} is kept in {state.folder}; to retry "
                        f"with a lower peak LR: {retrain} --overwrite"
                        if epoch > 1 else f"no run folder was written; retry with: {retrain}")
                raise DivergedError(f"{exc}; {kept}") from None
            kwargs = dict(tta=config.tta, tta_shift=recipe.tta_shift, bf16=bool(config.bf16),
                          channels_last=bool(config.channels_last))
            if shard is None:
                test = evaluate_split(net, data.test_images, data.test_labels, data.mean, data.std, **kwargs)
            else:
                test = evaluate_sharded(model, data, shard, **kwargs)
            record: EpochRecord = {
                "epoch": epoch, "train_loss": result.loss, "train_acc": result.acc,
                "test_loss": test["loss"], "test_acc": test["acc"], "lr": result.lr,
                "seconds": round(time.perf_counter() - started, 3),
            }
            if config.tta:
                record["test_acc_tta"] = test["acc_tta"]
            state.history.append(record)
            with distributed.agree_on_errors():  # a full disk on rank 0 stops every process
                if main:
                    _save_epoch(state, epoch, model, optimizer, scheduler, lookahead)
            progress.end_epoch(dict(record))
            if on_epoch_end is not None:
                on_epoch_end(record)
    return state.folder
