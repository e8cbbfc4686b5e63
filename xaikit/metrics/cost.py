"""What a map costs, counted in model evaluations, and how many images a check can afford.

Four checks of the scorecard recompute a method's maps: max-sensitivity (one map per noise
draw), the randomisation cascade (one per layer), random logit and eMPRT (one each). For a
gradient method a map is one forward and backward pass; for LIME, KernelSHAP, occlusion or
Score-CAM it is hundreds, and these checks would cost a hundred times the maps. So each check
gets a budget of model evaluations (images through the model's forward): it runs on the first

    n = clamp(budget // (evaluations per map x maps per image), minimum, configured)

images, where ``evaluations per map`` is *counted* while the method makes its maps
(:func:`count_evaluations`), so a plugin declares nothing and the count is the same on every
machine (unlike a time budget). A cheap method keeps every configured image; an expensive one
is checked on fewer, and its intervals are honestly wider (the scorecard records ``n``).

The randomisation cascade needs one map per image at each of its ``L`` layers. Where even
``minimum`` images cannot pay for all of them, the cascade compares the maps at as many evenly
spaced steps as the budget pays for, always including the fully random model that the verdict
reads (:func:`cascade_budget`); the layers are still re-initialised in order, so each compared
step means what it means in the full cascade.
"""

from __future__ import annotations

import contextlib
from typing import Any, Iterator

from torch import Tensor, nn


@contextlib.contextmanager
def count_evaluations(model: nn.Module) -> Iterator[list[int]]:
    """Count the images that go through ``model``'s forward inside the block.

    Yields a one-element list; on exit its item is the larger of two counts: the images given
    to ``model``'s own forward, and those given to its first module with parameters (a method
    may call the model's ``forward`` directly, as Captum's DeepLIFT does, which skips the
    model's hooks but not its first layer's). The hooks are removed on exit, also on an
    exception.
    """
    first = next((m for m in model.modules() if m is not model
                  and any(True for _ in m.parameters(recurse=False))), None)
    counts = {"model": 0, "first": 0}
    result = [0]

    def counter(key: str):  # noqa: ANN202
        def hook(_module: nn.Module, args: tuple[Any, ...]) -> None:
            if args and isinstance(args[0], Tensor) and args[0].ndim > 0:
                counts[key] += int(args[0].shape[0])
        return hook

    handles = [model.register_forward_pre_hook(counter("model"))]
    try:
        if first is not None:
            handles.append(first.register_forward_pre_hook(counter("first")))
        yield result
    finally:
        for handle in handles:
            handle.remove()
        result[0] = max(counts.values())


def affordable_images(configured: int | None, total: int, evaluations_per_map: float,
                      maps_per_image: int, budget: int | None, minimum: int) -> int:
    """Images a check can run on: ``configured`` (``None``: all ``total``), cut to what
    ``budget`` model evaluations pay for at ``evaluations_per_map x maps_per_image`` each,
    but never below ``minimum`` (nor above ``total``). ``budget=None`` means no cut."""
    n = total if configured is None else max(0, min(configured, total))
    if n == 0 or budget is None:
        return n
    per_image = max(1.0, float(evaluations_per_map)) * max(1, maps_per_image)
    return max(min(minimum, n), min(n, int(budget // per_image)))


def cascade_budget(layers: int, images: int, evaluations_per_map: float | None,
                   budget: int | None) -> int | None:
    """Cascade steps whose maps ``budget`` model evaluations pay for on ``images`` images
    (``None``: every one of the ``layers`` steps), never fewer than 1, the fully random model."""
    if budget is None or images < 1:
        return None
    per_step = max(1.0, float(evaluations_per_map or 1.0)) * images
    affordable = int(budget // per_step)
    return None if affordable >= layers else max(1, affordable)
