"""Speed options of training: autocast precision (with fp16's gradient scaler) and compiling.

Both act on the training step alone. Sampling, inversion and likelihood of a trained run use
the EMA weights in float32 and are never compiled, whatever the run trained with.
"""

from __future__ import annotations

import contextlib
import os
import shutil
from contextlib import AbstractContextManager
from typing import Any

import torch
from torch import nn

from flowmatch.errors import FlowmatchError, lookup

__all__ = [
    "NOT_COMPILED",
    "PRECISIONS",
    "Precision",
    "check_compile_method",
    "compile_velocity",
    "compiler_missing",
]

PRECISIONS: dict[str, torch.dtype | None] = {
    "fp32": None,
    "bf16": torch.bfloat16,
    "fp16": torch.float16,
}
"""``--precision`` name -> the autocast dtype of the training forward pass (None: plain fp32)."""

NOT_COMPILED: dict[str, str] = {
    "cnf": "its loss differentiates the network with torch.func (the divergence), which "
    "torch.compile does not trace: it would run eagerly",
    "planar": "a planar flow has no velocity network to compile",
}
"""``--method`` -> why ``--compile`` cannot help it (measured with torch 2.13: a compiled network
called inside ``torch.func.vjp``/``vmap`` falls back to eager, and compiled graphs do not
support the double backward of autograd divergences either)."""


class Precision:
    """The precision of a run's training forward pass on its device.

    ``fp32`` trains as before; ``bf16`` runs the forward pass under
    ``torch.autocast(dtype=torch.bfloat16)`` (CPUs and GPUs with native bf16); ``fp16`` does
    so with float16 on CUDA only, where a gradient scaler keeps small gradients from
    flushing to zero. Autocast lowers the precision of matrix products only; the losses
    subtract their targets in float32, so the loss stays float32.

    Args:
        name: a key of :data:`PRECISIONS`.
        device: where the run trains.

    Raises:
        FlowmatchError: the name is unknown or ``device`` cannot run it (fp16 on a CPU, bf16
            on a CUDA GPU without bf16 support).

    Example:
        >>> p = Precision("bf16", torch.device("cpu"))
        >>> with p.autocast():
        ...     y = torch.nn.Linear(2, 2)(torch.ones(1, 2))
        >>> y.dtype, p.scaler
        (torch.bfloat16, None)
    """

    def __init__(self, name: str = "fp32", device: torch.device | str = "cpu") -> None:
        self.name = name
        self.device = torch.device(device)
        self.dtype: torch.dtype | None = lookup(PRECISIONS, name, "--precision")
        kind = self.device.type
        if name == "fp16" and kind != "cuda":
            raise FlowmatchError(
                f"--precision fp16 needs a CUDA GPU (it trains with a gradient scaler there), "
                f"but --device is {self.device}; use --precision bf16 on the {kind}"
            )
        if name == "bf16" and kind == "cuda" and not _cuda_bf16(self.device):
            raise FlowmatchError(
                f"--precision bf16 needs a GPU with bfloat16 support, and {self.device} "
                f"({torch.cuda.get_device_name(self.device)}) has none; use --precision fp16"
            )
        self.scaler: torch.amp.GradScaler | None = (
            torch.amp.GradScaler("cuda") if name == "fp16" else None
        )
        """The gradient scaler of fp16 training (None otherwise); its state is checkpointed."""

    def autocast(self) -> AbstractContextManager[Any]:
        """A context in which the forward pass runs at this precision (nothing for fp32)."""
        if self.dtype is None:
            return contextlib.nullcontext()
        return torch.autocast(self.device.type, dtype=self.dtype)

    def __repr__(self) -> str:
        return f"Precision({self.name!r}, {str(self.device)!r})"


def _cuda_bf16(device: torch.device) -> bool:
    """Whether the CUDA ``device`` runs bfloat16 (the test autocast itself makes)."""
    with torch.cuda.device(device):
        return torch.cuda.is_bf16_supported()


def check_compile_method(method: str) -> None:
    """Refuse ``--compile`` with a ``--method`` it cannot speed up (see :data:`NOT_COMPILED`).

    Example:
        >>> check_compile_method("fm")
        >>> check_compile_method("planar")  # doctest: +ELLIPSIS
        Traceback (most recent call last):
        ...
        flowmatch.errors.FlowmatchError: --compile does not work with --method planar: ...
    """
    if method in NOT_COMPILED:
        raise FlowmatchError(
            f"--compile does not work with --method {method}: {NOT_COMPILED[method]}; "
            "drop --compile"
        )


def compiler_missing(device: torch.device) -> str | None:
    """Why ``torch.compile`` (TorchDynamo + Inductor) cannot build kernels for ``device``
    here, or None if it can.

    Inductor writes C++ for the CPU, built by the compiler it finds as ``$CXX`` or ``g++``,
    and Triton kernels for CUDA GPUs.
    """
    from torch._dynamo import is_dynamo_supported

    if not is_dynamo_supported():
        return "torch.compile does not support this Python or platform"
    if device.type == "cuda":
        from torch.utils._triton import has_triton

        return None if has_triton() else "Inductor needs Triton for CUDA (pip install triton)"
    try:
        from torch._inductor import exc
        from torch._inductor.cpp_builder import get_cpp_compiler
    except ImportError:  # another torch layout: look for the default compiler ourselves
        cxx = os.environ.get("CXX", "g++")
        return None if shutil.which(cxx) else f"Inductor needs a C++ compiler ({cxx}) on the CPU"
    try:
        get_cpp_compiler()
    except exc.InvalidCxxCompiler:
        cxx = os.environ.get("CXX", "g++")
        return f"Inductor needs a C++ compiler on the CPU and found none ({cxx}; set $CXX)"
    return None


def compile_velocity(model: nn.Module, device: torch.device) -> None:
    """Compile the velocity network of ``model`` in place with ``torch.compile``.

    ``nn.Module.compile`` compiles the module's call and keeps its ``state_dict`` keys, so
    checkpoints read the same as those of an eager run (``torch.compile(module)`` would
    prefix them with ``_orig_mod.``). Compilation happens at the first call, after which a
    step agrees with the eager one to float rounding. Call it after the EMA copy is made:
    a deep copy of a compiled module would call the original.

    Args:
        model: a flow with a ``velocity`` network (:class:`~flowmatch.flows.FlowModel`).
        device: where it trains.

    Raises:
        FlowmatchError: the model has no velocity network, or this machine cannot compile.
    """
    velocity = getattr(model, "velocity", None)
    if not isinstance(velocity, nn.Module):
        raise FlowmatchError(
            f"--compile compiles a velocity network and {type(model).__name__} has none; "
            "drop --compile"
        )
    why = compiler_missing(device)
    if why is not None:
        raise FlowmatchError(f"--compile cannot work here: {why}; or drop --compile")
    velocity.compile()
