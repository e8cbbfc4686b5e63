"""Resuming a run from its checkpoint, in one process or under torchrun with any number of
processes (rank 0 reads and locks the run folder and hands run and checkpoint to the others,
so other machines need not see the folder)."""

from __future__ import annotations

import contextlib
from pathlib import Path
from typing import Any

import torch

from xaikit import distributed
from xaikit.atomic import atomic_write_json, remove_stale_temporaries
from xaikit.errors import RunError, XaikitError
from xaikit.registry import get_model_spec
from xaikit.run import (
    ENV_NAME, Run, RunConfig, build_model, load_checkpoint, load_data, load_run, now_iso,
    read_env, run_lock,
)
from xaikit.train.parallel import check_parallel
from xaikit.train.trainer import (
    EpochCallback, _fit, _new_generator, _Training, check_recipe, to_channels_last,
)


def resume(
    run_dir: str | Path, *, device: str | None = None, data_path: str | None = None,
    show_progress: bool | None = None, on_epoch_end: EpochCallback | None = None,
    expect_model: str | None = None,
) -> Path:
    """Continue the run in ``run_dir`` from its last checkpoint with its own settings.

    Model, optimizer and scheduler states, the epoch, the history and the CPU/CUDA/data RNG
    states come from ``checkpoint.pt``; everything else from ``config.json``. Under torchrun
    rank 0 reads (and locks) the run and hands it to the other processes, whose number may
    differ from the run's: the batches stay the same (see :mod:`xaikit.train.parallel`).

    Raises:
        RunError: not a run, no checkpoint, a checkpoint of another model, or data whose
            classes differ from the run's.
        XaikitError: the run is not one of ``expect_model``.
    """
    with distributed.process_group(), contextlib.ExitStack() as stack:
        found = None
        with distributed.agree_on_errors():
            if distributed.is_main():
                run = load_run(run_dir)  # a folder that is no run is refused before anything is touched
                if expect_model is not None and run.config.model != expect_model:
                    raise XaikitError(f"{run_dir} is a run of {run.config.model!r}, not {expect_model!r}")
                stack.enter_context(run_lock(run_dir))
                remove_stale_temporaries(Path(run_dir))
                found = _read_checkpoint(load_run(run_dir))
        run, checkpoint = _share_run(found)
        return _resume(run, checkpoint, device, data_path, show_progress, on_epoch_end)


def _read_checkpoint(run: Run) -> tuple[Run, dict[str, Any]]:
    """The run and its checkpoint (on the CPU), checked."""
    assert run.config.recipe is not None
    check_recipe(run.config.recipe)
    if not run.checkpoint_path.is_file():
        raise RunError(
            f"{run.checkpoint_path} is missing, so {run.path} cannot be resumed; "
            f"train again with --out {run.path} --overwrite"
        )
    checkpoint = load_checkpoint(run.checkpoint_path, map_location="cpu")
    if checkpoint.get("model_name") not in (None, run.spec.name):
        raise RunError(f"{run.checkpoint_path} holds a {checkpoint['model_name']!r} model, not {run.spec.name!r}")
    return run, checkpoint


def _share_run(found: tuple[Run, dict[str, Any]] | None) -> tuple[Run, dict[str, Any]]:
    """Rank 0's run and checkpoint on every process (other machines need not see the folder)."""
    if distributed.world_size() == 1:
        assert found is not None
        return found
    payload = None
    if found is not None:
        run, checkpoint = found
        payload = (str(run.path), run.config.to_json(), run.history, checkpoint)
    path, config_json, history, checkpoint = distributed.broadcast_object(payload)
    with distributed.agree_on_errors():  # the model's plugin may be missing on one machine
        config = RunConfig.from_json(config_json)
        run = Run(Path(path), config, history, get_model_spec(config.model))
    return run, checkpoint


def _resume(
    run: Run, checkpoint: dict[str, Any], device: str | None, data_path: str | None,
    show_progress: bool | None, on_epoch_end: EpochCallback | None,
) -> Path:
    config = run.config
    stored_device = torch.device(config.device)
    with distributed.agree_on_errors():
        target = distributed.rank_device(device or str(stored_device))
        check_parallel(config, target)
        data = load_data(run, data_path).to(target)
    if target.type != stored_device.type:
        config = config.replace(bf16=target.type == "cuda")
    torch.manual_seed(config.seed)
    model = build_model(run.spec, config).to(target)
    channels_last = bool(config.channels_last) and to_channels_last(model, data)
    config = config.replace(channels_last=channels_last)
    state = _Training(run.path, config, target, data, model, _new_generator(target, config.seed))
    state.start_epoch = int(checkpoint["epoch"]) + 1
    state.history = list(checkpoint.get("history", []))
    state.resume_state = checkpoint
    state.hosts = distributed.hosts() if distributed.is_distributed() else []
    with distributed.agree_on_errors():
        if distributed.is_main():
            env = read_env(run.path)
            entry: dict[str, Any] = {"start_time": now_iso(), "device": str(target), "from_epoch": state.start_epoch}
            if distributed.is_distributed():
                entry.update(world_size=distributed.world_size(), hosts=state.hosts)
            env.setdefault("resumes", []).append(entry)
            atomic_write_json(run.path / ENV_NAME, env)
    return _fit(state, show_progress, on_epoch_end)
