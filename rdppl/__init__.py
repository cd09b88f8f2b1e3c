"""rdppl: rate-distortion curves of NumPyro generative models by AIS.

Write a generative model as a NumPyro program, mark it with :func:`model`, and call
:func:`rd_curve` to get the whole rate-distortion curve from one annealed importance
sampling run, as an ``xarray.DataTree``.

``import rdppl`` is cheap: every public name and submodule is imported on first use
(PEP 562), so JAX and NumPyro load with the first name that needs them, Optax with the
trainers and matplotlib with the figures.
"""

from __future__ import annotations

import importlib
import sys
import types
from typing import TYPE_CHECKING, Any

__version__ = "0.1.0"

# submodules exported under their own name
_SUBMODULES = frozenset(
    {
        "analytic",
        "cache",
        "decoders",
        "diagnostics",
        "echo",
        "estimators",
        "interop",
        "plot",
        "results",
        "schedules",
        "training",
        "variational",
    }
)

# public name -> module that defines it, imported on first access
_ATTRIBUTES = {
    "StepSizeAdaptation": "rdppl.adaptation",
    "StepSizeState": "rdppl.adaptation",
    "step_size_adaptation": "rdppl.adaptation",
    "trained_decoders": "rdppl.architectures",
    "trained_encoders": "rdppl.architectures",
    "bdmc": "rdppl.bdmc",
    "use_compilation_cache": "rdppl.cache",
    "Checkpoint": "rdppl.checkpoint",
    "CheckpointError": "rdppl.checkpoint",
    "decoder_model": "rdppl.decoders",
    "RDWarning": "rdppl.diagnostics",
    "EchoChannel": "rdppl.echo",
    "DenseDecoder": "rdppl.interop",
    "load_equinox": "rdppl.interop",
    "mlp_from_flax": "rdppl.interop",
    "mlp_from_torch": "rdppl.interop",
    "BlackJAXKernel": "rdppl.kernels",
    "HMC": "rdppl.kernels",
    "MCMCKernel": "rdppl.kernels",
    "NUTS": "rdppl.kernels",
    "log_likelihood": "rdppl.likelihood",
    "Model": "rdppl.model",
    "ModelStructure": "rdppl.model",
    "TracedModel": "rdppl.model",
    "model": "rdppl.model",
    "rd_curve": "rdppl.rd",
    "InsufficientMemoryError": "rdppl.memory",
    "RecompilationWarning": "rdppl.recompile",
    "ResultFileError": "rdppl.results",
    "as_inverse_temperature": "rdppl.results",
    "from_netcdf": "rdppl.results",
    "from_zarr": "rdppl.results",
    "posterior_at": "rdppl.results",
    "to_netcdf": "rdppl.results",
    "to_zarr": "rdppl.results",
    "geometric_schedule": "rdppl.schedules",
    "linear_schedule": "rdppl.schedules",
    "sigmoid_schedule": "rdppl.schedules",
    "thermodynamic_schedule": "rdppl.schedules",
    "validate_schedule": "rdppl.schedules",
    "summary": "rdppl.summary",
    "ModelTraceError": "rdppl.tracing",
    "trace_model": "rdppl.tracing",
    "train_amortized_encoder": "rdppl.training",
    "train_beta_vae": "rdppl.training",
    "train_echo_autoencoder": "rdppl.training",
    "GaussianEncoder": "rdppl.variational",
    "variational_bounds": "rdppl.variational",
}

if TYPE_CHECKING:  # what static analysers and IDEs see
    from rdppl import (
        analytic,
        cache,
        decoders,
        diagnostics,
        echo,
        estimators,
        interop,
        plot,
        results,
        schedules,
        training,
        variational,
    )
    from rdppl.adaptation import (
        StepSizeAdaptation,
        StepSizeState,
        step_size_adaptation,
    )
    from rdppl.architectures import trained_decoders, trained_encoders
    from rdppl.bdmc import bdmc
    from rdppl.cache import use_compilation_cache
    from rdppl.checkpoint import Checkpoint, CheckpointError
    from rdppl.decoders import decoder_model
    from rdppl.diagnostics import RDWarning
    from rdppl.echo import EchoChannel
    from rdppl.interop import (
        DenseDecoder,
        load_equinox,
        mlp_from_flax,
        mlp_from_torch,
    )
    from rdppl.kernels import HMC, NUTS, BlackJAXKernel, MCMCKernel
    from rdppl.likelihood import log_likelihood
    from rdppl.memory import InsufficientMemoryError
    from rdppl.model import Model, ModelStructure, TracedModel, model
    from rdppl.rd import rd_curve
    from rdppl.recompile import RecompilationWarning
    from rdppl.results import (
        ResultFileError,
        as_inverse_temperature,
        from_netcdf,
        from_zarr,
        posterior_at,
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
    from rdppl.summary import summary
    from rdppl.tracing import ModelTraceError, trace_model
    from rdppl.training import (
        train_amortized_encoder,
        train_beta_vae,
        train_echo_autoencoder,
    )
    from rdppl.variational import GaussianEncoder, variational_bounds


def __getattr__(name: str) -> Any:
    if name in _SUBMODULES:
        value = importlib.import_module(f"{__name__}.{name}")
    elif name in _ATTRIBUTES:
        value = getattr(importlib.import_module(_ATTRIBUTES[name]), name)
    else:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | _SUBMODULES | set(_ATTRIBUTES))


class _Package(types.ModuleType):
    """The package's module type: a submodule never hides the function it exports.

    Importing submodule ``rdppl.model`` (or ``rdppl.bdmc``, ``rdppl.summary``) binds
    the module to the package's attribute of that name; the public name is the
    function, so the function is bound instead.
    """

    def __setattr__(self, name: str, value: Any) -> None:
        if (
            isinstance(value, types.ModuleType)
            and name not in _SUBMODULES
            and _ATTRIBUTES.get(name) == value.__name__
        ):
            value = getattr(value, name)
        super().__setattr__(name, value)


sys.modules[__name__].__class__ = _Package

__all__ = [
    "Checkpoint",
    "CheckpointError",
    "HMC",
    "NUTS",
    "RDWarning",
    "RecompilationWarning",
    "BlackJAXKernel",
    "DenseDecoder",
    "EchoChannel",
    "GaussianEncoder",
    "InsufficientMemoryError",
    "MCMCKernel",
    "Model",
    "ModelStructure",
    "ModelTraceError",
    "ResultFileError",
    "StepSizeAdaptation",
    "StepSizeState",
    "TracedModel",
    "analytic",
    "as_inverse_temperature",
    "bdmc",
    "cache",
    "decoder_model",
    "decoders",
    "diagnostics",
    "echo",
    "estimators",
    "from_netcdf",
    "from_zarr",
    "geometric_schedule",
    "interop",
    "linear_schedule",
    "load_equinox",
    "log_likelihood",
    "mlp_from_flax",
    "mlp_from_torch",
    "model",
    "posterior_at",
    "plot",
    "rd_curve",
    "results",
    "schedules",
    "sigmoid_schedule",
    "step_size_adaptation",
    "summary",
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
    "use_compilation_cache",
]
