"""IS-CAM, integrated Score-CAM."""

from __future__ import annotations

import torch
from torch import Tensor, nn

from xaikit import XaikitError
from xaikit_gradcam.scorecam import ScoreCAM


class ISCAM(ScoreCAM):
    """IS-CAM: Score-CAM with the class scores averaged along a path of scaled masks.

    Naidu, Ghosh, Maurya, Nayak K, Kundu, "IS-CAM: Integrated Score-CAM for axiomatic-based
    explanations", 2020, arXiv:2010.03023. With ``H^k`` Score-CAM's upsampled, min-max
    normalised channel ``k``, the masked input is scaled from the baseline towards ``X * H^k``
    in ``N`` steps, as integrated gradients' Riemann sum, and the scores are averaged::

        S_k = (1 / N) sum_{i=1..N} score_c(X * (i / N) H^k)
        L   = ReLU(sum_k alpha_k(S) A^k)

    where ``score_c`` and ``alpha`` are :class:`ScoreCAM`'s, chosen by ``score``: by default
    ``alpha_k = S_k - p_c(X_b)``, the averaged increase of the target-class probability over the
    all-zero input (see :class:`ScoreCAM`); ``score="softmax-logits"`` is torch-cam's
    ``softmax_k`` of the averaged logits. ``N = 1`` gives Score-CAM.

    ``cumulative=True`` uses torch-cam's ``ISCAM`` coefficients instead, the running sums
    ``c_i = sum_{j=1..i} j / N`` (the paper's equation read literally): they reach
    ``(N + 1) / 2``, scaling the masked image up to 5.5 times its own range for ``N = 10``,
    which is why the straight path is the default here.

    Deterministic. Sign and scale: as :class:`ScoreCAM` (non-negative, unnormalised). Cost:
    ``N K + 1`` forward passes per image (``K`` channels) and one for the baseline, in chunks
    of ``chunk_size``; no backward pass.
    """

    name = "iscam"
    class_discriminative = True
    scale = "ReLU'd, >= 0, unnormalised (Score-CAM with path-averaged class scores)"

    def __init__(
        self,
        model: nn.Module,
        layer: str | None = None,
        *,
        num_samples: int = 10,
        cumulative: bool = False,
        chunk_size: int = 1024,
        score: str = "cic",
    ) -> None:
        """Args:
            model: The classifier (logits ``[B, classes]``).
            layer: Module name of the layer to explain; default: the model's target layer.
            num_samples: Steps ``N`` of the path.
            cumulative: Use torch-cam's running-sum coefficients instead of ``i / N``.
            chunk_size: Masked images per forward pass.
            score: As :class:`ScoreCAM`.
        """
        super().__init__(model, layer, chunk_size=chunk_size, score=score)
        if num_samples < 1:
            raise XaikitError(f"num_samples must be >= 1, got {num_samples}")
        self.num_samples, self.cumulative = num_samples, bool(cumulative)

    def coefficients(self) -> list[float]:
        """The ``N`` scales of the masks along the path."""
        steps = [(i + 1) / self.num_samples for i in range(self.num_samples)]
        if self.cumulative:
            steps = [sum(steps[: i + 1]) for i in range(self.num_samples)]
        return steps

    def _mask_scores(self, x: Tensor, masks: Tensor, target: Tensor) -> Tensor:
        total = torch.zeros(masks.shape[:2], device=x.device)
        for coefficient in self.coefficients():
            total += self._masked_scores(x, coefficient * masks, target)
        return total / self.num_samples
