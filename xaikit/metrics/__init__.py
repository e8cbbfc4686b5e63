"""The scorecard of attribution maps: faithfulness, robustness, complexity, sanity, statistics.

Modules (one concept each; every function is batched in torch on the model's device):

* :mod:`~xaikit.metrics.imputation` -- ROAD's noisy linear imputation, batched CG solve;
* :mod:`~xaikit.metrics.road` -- ROAD MoRF / LeRF curves and the combined score;
* :mod:`~xaikit.metrics.deletion` -- deletion (to the mean colour) / insertion (onto a blur);
* :mod:`~xaikit.metrics.references` -- smooth random reference maps, blur, a method's resolution;
* :mod:`~xaikit.metrics.ordering` -- pixel ranks with seeded tie-breaking;
* :mod:`~xaikit.metrics.fidelity` -- infidelity (Captum) and IG completeness;
* :mod:`~xaikit.metrics.robustness` -- max-sensitivity (Captum);
* :mod:`~xaikit.metrics.complexity` -- sparseness (Gini), entropy complexity, histogram entropy;
* :mod:`~xaikit.metrics.sanity` -- cascading randomisation, random logit, efficient MPRT;
* :mod:`~xaikit.metrics.statistics` -- bootstrap intervals, paired bootstrap, verdicts;
* :mod:`~xaikit.metrics.catalogue` -- what each score means and which way is better;
* :mod:`~xaikit.metrics.scorecard` -- all of it for one method, as a JSON-ready dict.
"""

from xaikit.metrics.catalogue import CRITERIA, METRICS, MetricInfo
from xaikit.metrics.complexity import complexity, histogram_entropy, sparseness
from xaikit.metrics.deletion import auc_trapezoid, deletion_insertion
from xaikit.metrics.fidelity import completeness_gap, infidelity
from xaikit.metrics.imputation import (
    ImputationConvergenceWarning,
    SolveInfo,
    linear_impute,
    noisy_linear_impute,
)
from xaikit.metrics.ordering import pixel_ranks
from xaikit.metrics.references import gaussian_blur, map_resolution, random_reference
from xaikit.metrics.road import ROAD_PERCENTILES, road
from xaikit.metrics.robustness import sensitivity_max
from xaikit.metrics.sanity import emprt, random_logit, randomization, randomized_copy, spearman
from xaikit.metrics.scorecard import GROUPS, ScorecardSettings, scorecard
from xaikit.metrics.statistics import (
    bootstrap_ci,
    compare,
    compare_detail,
    paired_bootstrap,
    rank_with_ties,
    verdict,
)

__all__ = [
    "CRITERIA", "GROUPS", "METRICS", "ROAD_PERCENTILES",
    "ImputationConvergenceWarning", "MetricInfo", "ScorecardSettings", "SolveInfo",
    "auc_trapezoid", "bootstrap_ci", "compare", "compare_detail", "completeness_gap", "complexity",
    "deletion_insertion", "emprt", "gaussian_blur", "histogram_entropy", "infidelity",
    "linear_impute", "map_resolution", "noisy_linear_impute", "paired_bootstrap", "pixel_ranks",
    "random_logit", "random_reference", "randomization", "randomized_copy", "rank_with_ties",
    "road", "scorecard", "sensitivity_max", "sparseness", "spearman", "verdict",
]
