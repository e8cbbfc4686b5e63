"""Maps for two classes of a trained model differ, for every method that says its map depends
on the class (``class_discriminative = True``); class-agnostic methods give one map."""

from __future__ import annotations

import pytest
import torch
from xaikit_gradcam import METHODS, FullGrad, ScoreCAM

DISCRIMINATIVE = [cls for cls in METHODS if cls.class_discriminative]
AGNOSTIC = [cls for cls in METHODS if not cls.class_discriminative]


def other_class(predicted: torch.Tensor) -> torch.Tensor:
    """A fixed other class for each image: the predicted one shifted by half the classes."""
    return (predicted + 5) % 10


def test_the_flags_are_deliberate():
    assert {cls.name for cls in AGNOSTIC} == {"eigencam", "kpca-cam", "fem", "fullgrad"}


@pytest.mark.parametrize("method_cls", DISCRIMINATIVE, ids=lambda cls: cls.name)
def test_maps_of_two_classes_of_a_trained_model_differ(
    method_cls, trained_shapes, rank_correlation
):
    model, x, labels = trained_shapes
    method = method_cls(model)
    correlation = rank_correlation(method(x, labels), method(x, other_class(labels)))
    assert correlation < 0.9, f"{method_cls.name}: Spearman {correlation:.3f} between two classes"


@pytest.mark.parametrize(
    "method_cls", [c for c in AGNOSTIC if c is not FullGrad], ids=lambda c: c.name
)
def test_class_agnostic_methods_give_one_map_for_every_class(method_cls, trained_shapes):
    model, x, labels = trained_shapes
    method = method_cls(model)
    torch.testing.assert_close(method(x[:8], labels[:8]), method(x[:8], other_class(labels[:8])))


def test_fullgrad_depends_on_the_class_but_too_little_to_count_as_discriminative(
    trained_shapes, rank_correlation
):
    # absolute values of input- and bias-gradients: the class changes the map, the ranking hardly
    model, x, labels = trained_shapes
    method = FullGrad(model)
    a, b = method(x, labels), method(x, other_class(labels))
    assert not torch.allclose(a, b)
    assert rank_correlation(a, b) > 0.9


def test_scorecam_with_the_softmax_of_probabilities_was_class_agnostic(
    trained_shapes, rank_correlation
):
    # The fault this plugin's Score-CAM had (the paper's Algorithm 1 read literally): a softmax
    # over channels of probabilities in [0, 1] weighs every channel about equally.
    model, x, labels = trained_shapes

    class SoftmaxOfProbabilities(ScoreCAM):
        def _weights(self, scores, x, target):
            return torch.softmax(scores, dim=1)

    old = SoftmaxOfProbabilities(model, score="probability")
    assert rank_correlation(old(x, labels), old(x, other_class(labels))) > 0.95
