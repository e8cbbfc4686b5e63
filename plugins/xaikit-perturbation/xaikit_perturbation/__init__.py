"""Black-box perturbation attribution methods for xaikit (entry point ``perturbation``).

They only call the model's forward pass on perturbed copies of the image, so they apply to
any classifier; every perturbed copy of every image of a batch goes through the model in
large batches on the model's device.
"""

from xaikit_perturbation.rise import Rise

ALL_METHODS = (Rise,)

__all__ = ["ALL_METHODS", "Rise"]
