"""Discrete normalizing flows: the planar layer, stacks of layers and their change of variables.

Example:
    >>> import torch
    >>> from flowmatch.flows import planar_stack
    >>> _ = torch.manual_seed(0)
    >>> flow = planar_stack(2, layers=8).double()
    >>> x = torch.randn(4, 2, dtype=torch.float64)
    >>> z, ladj = flow.inverse(x)
    >>> bool(torch.allclose(flow(z)[0], x))
    True
"""

from flowmatch.flows.affine import ElementwiseAffine
from flowmatch.flows.base import ODE_OPTIONS, Flow
from flowmatch.flows.discrete import DiscreteFlowModel
from flowmatch.flows.euler import EULER_MAX_DIM, EulerStep, euler_stack
from flowmatch.flows.monotone import solve_increasing
from flowmatch.flows.planar import (
    PLANAR_ACTIVATIONS,
    LeakyReLU,
    PlanarActivation,
    PlanarLayer,
    Tanh,
)
from flowmatch.flows.stack import FlowStack, planar_stack, standard_normal_log_prob
from flowmatch.flows.variational import (
    EnergyFitReport,
    effective_sample_size,
    evaluate_energy_fit,
    reverse_kl_loss,
)

__all__ = [
    "EULER_MAX_DIM",
    "ODE_OPTIONS",
    "PLANAR_ACTIVATIONS",
    "DiscreteFlowModel",
    "ElementwiseAffine",
    "EnergyFitReport",
    "EulerStep",
    "Flow",
    "FlowStack",
    "LeakyReLU",
    "PlanarActivation",
    "PlanarLayer",
    "Tanh",
    "effective_sample_size",
    "euler_stack",
    "evaluate_energy_fit",
    "planar_stack",
    "reverse_kl_loss",
    "solve_increasing",
    "standard_normal_log_prob",
]
