"""What each per-image score of the scorecard measures, which way is better, and its criterion.

The report reads :data:`METRICS` to explain each metric in one sentence with its direction,
and :data:`CRITERIA` for the headline comparison against the controls.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class MetricInfo:
    """One per-image score: its criterion, direction, one-line description and source."""

    criterion: str          # faithfulness, robustness, complexity, sanity
    higher_is_better: bool
    description: str
    reference: str


METRICS: dict[str, MetricInfo] = {
    "road_morf": MetricInfo(
        "faithfulness", False,
        "ROAD MoRF: class probability after the most relevant 10-90% of pixels are removed and "
        "filled by noisy linear imputation, averaged over the percentiles; lower is better.",
        "Rong et al., ICML 2022"),
    "road_lerf": MetricInfo(
        "faithfulness", True,
        "ROAD LeRF: class probability after the least relevant 10-90% of pixels are removed and "
        "imputed, averaged; higher is better.",
        "Rong et al., ICML 2022"),
    "road_combined": MetricInfo(
        "faithfulness", True,
        "ROAD combined (LeRF - MoRF) / 2: how much more the least relevant pixels can be spared "
        "than the most relevant ones; 0 for a random map, higher is better.",
        "Rong et al. 2022; Bluecher et al., TMLR 2024"),
    "deletion": MetricInfo(
        "faithfulness", False,
        "Deletion AUC: class probability while the most relevant pixels are set to the mean "
        "colour; lower is better.",
        "Petsiuk et al., BMVC 2018"),
    "insertion": MetricInfo(
        "faithfulness", True,
        "Insertion AUC: class probability while the most relevant pixels are copied onto a "
        "blurred image; higher is better.",
        "Petsiuk et al., BMVC 2018"),
    "deletion_random": MetricInfo(
        "faithfulness", False,
        "Deletion AUC of a seeded random map at the method's resolution (reference).",
        "Petsiuk et al., BMVC 2018"),
    "insertion_random": MetricInfo(
        "faithfulness", True,
        "Insertion AUC of a seeded random map at the method's resolution (reference).",
        "Petsiuk et al., BMVC 2018"),
    "infidelity": MetricInfo(
        "faithfulness", False,
        "Infidelity: squared error of the map's prediction of the logit change under small "
        "Gaussian input noise, after the best rescaling; lower is better.",
        "Yeh et al., NeurIPS 2019 (Captum)"),
    "completeness_gap": MetricInfo(
        "faithfulness", False,
        "Completeness gap |sum(map) - (f(x) - f(baseline))| of a method with a baseline "
        "(integrated gradients, DeepLIFT, the SHAP family); lower is better.",
        "Sundararajan et al., ICML 2017"),
    "sensitivity_max": MetricInfo(
        "robustness", False,
        "Max-sensitivity: largest relative change of the map under invisible uniform input "
        "noise; lower is better.",
        "Yeh et al., NeurIPS 2019 (Captum)"),
    "sparseness": MetricInfo(
        "complexity", True,
        "Sparseness: Gini index of |map|, 0 for a uniform map, near 1 for a single pixel; "
        "higher is more concise.",
        "Chalasani et al., ICML 2020"),
    "complexity": MetricInfo(
        "complexity", False,
        "Complexity: entropy of the normalised |map|; lower is simpler.",
        "Bhatt et al., IJCAI 2020"),
    "randomization_rho": MetricInfo(
        "sanity", False,
        "Spearman rho between the maps of the trained and the fully re-initialised model; "
        "lower is better (the map depends on the weights).",
        "Adebayo et al., NeurIPS 2018"),
    "randomization_rho_abs": MetricInfo(
        "sanity", False,
        "The same rho on absolute-valued maps; lower is better.",
        "Adebayo et al., NeurIPS 2018"),
    "random_logit_rho": MetricInfo(
        "sanity", False,
        "Spearman rho between the maps for the target class and for a random other class; "
        "lower is better (the map depends on the class).",
        "Sixt et al., ICML 2020"),
    "emprt": MetricInfo(
        "sanity", True,
        "Efficient MPRT: relative rise of the map's histogram entropy when the model is fully "
        "re-initialised; above 0 passes, higher is better.",
        "Hedstroem et al. 2023"),
}

#: The per-image score that stands for each criterion in the headline comparison with controls.
CRITERIA: dict[str, str] = {
    "faithfulness": "road_combined",
    "robustness": "sensitivity_max",
    "complexity": "sparseness",
    "sanity": "emprt",
}
