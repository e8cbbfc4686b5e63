"""Fast checks of the benchmark helpers: the Markdown table, and that the plain torchvision loop
trains exactly like the xaikit pipeline (so the training benchmark compares like with like).

No timings are asserted here; the benchmarks themselves run with ``make bench``.
"""

from __future__ import annotations

import copy
import importlib.util
import sys
from pathlib import Path
from types import ModuleType

import torch
from torch import nn

from xaikit.specs import Recipe
from xaikit.schedule import build_scheduler
from xaikit.train.loop import build_optimizer, train_one_epoch

BENCH_DIR = Path(__file__).resolve().parents[1] / "benchmarks"


def load_bench_module(name: str) -> ModuleType:
    """Import ``benchmarks/<name>.py`` by path (the folder is not a package)."""
    spec = importlib.util.spec_from_file_location(f"xaikit_bench_{name}", BENCH_DIR / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


RESULTS = {
    "machine_info": {
        "xaikit": {
            "cpu_model": "Test CPU @ 3.00GHz",
            "cpu_cores": 2,
            "torch": "2.15.0",
            "torch_threads": 1,
            "cuda_device": None,
        }
    },
    "benchmarks": [
        {
            "name": "test_ultimus_attention[cpu-block-batched-forward-128]",
            "params": {"device": "cpu", "module": "block", "batch": 128},
            "stats": {"mean": 0.0005, "stddev": 0.00002, "rounds": 1200},
            "extra_info": {"images_per_round": 128, "images_per_s": 256000.0},
        },
        {
            "name": "test_training_throughput[cpu-ultimus-xaikit]",
            "params": {"device": "cpu", "model": "ultimus", "loop": "xaikit"},
            "stats": {"mean": 12.5, "stddev": 0.25, "rounds": 2},
            "extra_info": {"images_per_round": 10240},
        },
        {
            "name": "test_plain",
            "params": None,
            "stats": {"mean": 0.25, "stddev": 0.0, "rounds": 5},
            "extra_info": {},
        },
    ],
}


def test_table_turns_benchmark_json_into_markdown_rows() -> None:
    table = load_bench_module("table")
    lines = table.markdown(RESULTS).splitlines()
    assert lines == [
        "| benchmark | params | mean | stddev | rounds | images/s |",
        "|---|---|---:|---:|---:|---:|",
        (
            "| test_ultimus_attention | device=cpu, module=block, batch=128 "
            "| 500.0 µs | 20.0 µs | 1200 | 256,000 |"
        ),
        (
            "| test_training_throughput | device=cpu, model=ultimus, loop=xaikit "
            "| 12.500 s | 250.00 ms | 2 | 819 |"
        ),
        "| test_plain |  | 250.00 ms | 0.0 µs | 5 |  |",
        "",
        "Hardware: Test CPU @ 3.00GHz (2 cores), torch 2.15.0 (1 thread), CUDA none",
    ]


def test_table_main_reports_an_unreadable_file(tmp_path, capsys) -> None:
    table = load_bench_module("table")
    assert table.main([str(tmp_path / "missing.json")]) == 1
    assert "cannot read" in capsys.readouterr().err


def tiny_bn_net() -> nn.Module:
    """Conv (no bias) > BatchNorm > ReLU > GAP > Linear: BatchNorm makes the batch matter."""
    return nn.Sequential(
        nn.Conv2d(3, 4, 3, padding=1, bias=False),
        nn.BatchNorm2d(4),
        nn.ReLU(),
        nn.AdaptiveAvgPool2d(1),
        nn.Flatten(),
        nn.Linear(4, 10),
    )


def test_plain_loop_and_pipeline_train_the_same_model_the_same_way() -> None:
    plain_loop = load_bench_module("plain_loop")
    generator = torch.Generator().manual_seed(0)
    images = torch.randint(0, 256, (16, 3, 32, 32), dtype=torch.uint8, generator=generator)
    labels = torch.randint(0, 10, (16,), generator=generator)
    mean, std = (0.49, 0.48, 0.45), (0.25, 0.24, 0.26)
    recipe = Recipe(epochs=2, batch_size=16, optimizer="sgd", max_lr=0.1, label_smoothing=0.1)
    device = torch.device("cpu")
    criterion = nn.CrossEntropyLoss(label_smoothing=recipe.label_smoothing)

    def fresh(model: nn.Module):
        optimizer = build_optimizer(model, recipe)
        return optimizer, build_scheduler(optimizer, recipe, steps_per_epoch=1)

    ours = tiny_bn_net()
    plain = copy.deepcopy(ours)
    ours_opt, ours_sched = fresh(ours)
    plain_opt, plain_sched = fresh(plain)
    loader = plain_loop.plain_loader(
        images, labels, mean, std, batch_size=16, augment=False, num_workers=0
    )
    for epoch in (1, 2):  # one batch per epoch: the 2nd loss depends on the 1st update
        ours_result = train_one_epoch(
            ours, ours_opt, ours_sched, criterion, images, labels, mean, std, None, 16,
            torch.Generator().manual_seed(epoch), epoch=epoch,
        )
        plain_result = plain_loop.train_plain_epoch(
            plain, plain_opt, plain_sched, criterion, loader, device
        )
        assert plain_result.images == 16
        torch.testing.assert_close(plain_result.loss, ours_result.loss, rtol=1e-5, atol=1e-6)
        torch.testing.assert_close(plain_result.acc, ours_result.acc)
    assert ours_result.loss != 0.0
    for (name, p_ours), p_plain in zip(ours.state_dict().items(), plain.state_dict().values()):
        torch.testing.assert_close(p_plain, p_ours, rtol=1e-5, atol=1e-6, msg=name)


def test_plain_transform_augments_each_image_with_crop_and_flip() -> None:
    plain_loop = load_bench_module("plain_loop")
    steps = plain_loop.plain_transform((0.5,) * 3, (0.25,) * 3).transforms
    names = [type(t).__name__ for t in steps]
    assert names == ["RandomCrop", "RandomHorizontalFlip", "ToTensor", "Normalize"]
    crop = steps[0]
    assert (crop.size, crop.padding, crop.padding_mode) == ((32, 32), 4, "reflect")
