"""Likelihood of flows: divergences (exact, Hutchinson) and the instantaneous change of variables.

A velocity field v_t defines a continuous normalizing flow whose log-density follows
d/dt log p_t(x_t) = -div v_t(x_t) along its trajectories (t = 0 noise N(0, I), t = 1 data).

Example:
    >>> import torch
    >>> from flowmatch.likelihood import log_prob, make_divergence
    >>> x1 = torch.zeros(3, 2)
    >>> r = log_prob(lambda t, x: -x, x1, make_divergence("exact", x1), solver="rk4", steps=20)
    >>> r.log_prob.shape, r.stderr.tolist()
    (torch.Size([3]), [0.0, 0.0, 0.0])
"""

from flowmatch.likelihood.change_of_variables import (
    AugmentedSolution,
    LogProbResult,
    gauss_legendre,
    integrate_divergence,
    log_prob,
    sample_log_prob,
    standard_normal_log_prob,
)
from flowmatch.likelihood.divergence import (
    AUTO_EXACT_MAX_DIM,
    DIVERGENCES,
    LOG_PROB_EXACT_MAX_DIM,
    LOOP_MAX_DIM,
    PROBES,
    Divergence,
    ExactDivergence,
    HutchinsonDivergence,
    draw_probes,
    exact_divergence,
    exact_divergence_loop,
    hutchinson_divergence,
    make_divergence,
    resolve_divergence,
)
from flowmatch.likelihood.nll import (
    NLLSummary,
    bits_per_dim,
    dequantized_log_prob,
    summarize_nll,
)
from flowmatch.likelihood.transport import (
    ContinuityResidual,
    continuity_residual,
    log_density_at,
)

__all__ = [
    "AUTO_EXACT_MAX_DIM",
    "DIVERGENCES",
    "LOG_PROB_EXACT_MAX_DIM",
    "LOOP_MAX_DIM",
    "PROBES",
    "AugmentedSolution",
    "ContinuityResidual",
    "Divergence",
    "ExactDivergence",
    "HutchinsonDivergence",
    "LogProbResult",
    "NLLSummary",
    "bits_per_dim",
    "continuity_residual",
    "dequantized_log_prob",
    "draw_probes",
    "exact_divergence",
    "exact_divergence_loop",
    "gauss_legendre",
    "hutchinson_divergence",
    "integrate_divergence",
    "log_density_at",
    "log_prob",
    "make_divergence",
    "resolve_divergence",
    "sample_log_prob",
    "standard_normal_log_prob",
    "summarize_nll",
]
