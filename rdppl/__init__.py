"""rdppl: rate-distortion curves of NumPyro generative models by AIS.

Write a generative model as a NumPyro program, mark it with :func:`model`, and call
:func:`rd_curve` to get the whole rate-distortion curve from one annealed importance
sampling run, as an ``xarray.DataTree``.

Submodules and names that need heavy optional imports (Optax for the trainers,
matplotlib for plots) are loaded on first use.
"""

from __future__ import annotations

import importlib
from typing import Any

__version__ = "0.1.0"

from rdppl.adaptation import StepSizeAdaptation, StepSizeState, step_size_adaptation
from rdppl.bdmc import bdmc
from rdppl.kernels import HMC, NUTS, BlackJAXKernel, MCMCKernel
from rdppl.likelihood import log_likelihood
from rdppl.model import Model, ModelStructure, TracedModel, model
from rdppl.rd import rd_curve
from rdppl.results import (
    ResultFileError,
    from_netcdf,
    from_zarr,
    to_netcdf,
    to_zarr,
)
from rdppl.schedules import (
    geometric_schedule,
    linear_schedule,
    sigmoid_schedule,
    thermodynamic_schedule,
    validate_schedule,
)
from rdppl.tracing import trace_model

# name -> module that defines it, imported on first access
_LAZY = {
    "analytic": "rdppl.analytic",
    "decoders": "rdppl.decoders",
    "echo": "rdppl.echo",
    "estimators": "rdppl.estimators",
    "plot": "rdppl.plot",
    "results": "rdppl.results",
    "schedules": "rdppl.schedules",
    "training": "rdppl.training",
    "variational": "rdppl.variational",
    "decoder_model": "rdppl.decoders",
    "EchoChannel": "rdppl.echo",
    "GaussianEncoder": "rdppl.variational",
    "variational_bounds": "rdppl.variational",
    "train_amortized_encoder": "rdppl.training",
    "train_beta_vae": "rdppl.training",
    "train_echo_autoencoder": "rdppl.training",
    "trained_decoders": "rdppl.architectures",
    "trained_encoders": "rdppl.architectures",
    "as_inverse_temperature": "rdppl.results",
}


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        module = importlib.import_module(_LAZY[name])
        value = module if module.__name__ == f"rdppl.{name}" else getattr(module, name)
        globals()[name] = value
        return value
    raise AttributeError(f"module 'rdppl' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_LAZY))


__all__ = [
    "HMC",
    "NUTS",
    "BlackJAXKernel",
    "EchoChannel",
    "GaussianEncoder",
    "MCMCKernel",
    "Model",
    "ModelStructure",
    "ResultFileError",
    "StepSizeAdaptation",
    "StepSizeState",
    "TracedModel",
    "analytic",
    "as_inverse_temperature",
    "bdmc",
    "decoder_model",
    "decoders",
    "echo",
    "estimators",
    "from_netcdf",
    "from_zarr",
    "geometric_schedule",
    "linear_schedule",
    "log_likelihood",
    "model",
    "plot",
    "rd_curve",
    "results",
    "schedules",
    "sigmoid_schedule",
    "step_size_adaptation",
    "thermodynamic_schedule",
    "to_netcdf",
    "to_zarr",
    "trace_model",
    "train_amortized_encoder",
    "train_beta_vae",
    "train_echo_autoencoder",
    "trained_decoders",
    "trained_encoders",
    "training",
    "validate_schedule",
    "variational",
    "variational_bounds",
]
