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

from rdppl import _moved
from rdppl._version import __version__ as __version__

_moved.install()

# public submodule name -> its module (the old flat path still imports: rdppl._moved)
_SUBMODULES = {
    "analytic": "rdppl.numerics.analytic",
    "cache": "rdppl.sampler.cache",
    "decoders": "rdppl.program.decoders",
    "diagnostics": "rdppl.numerics.diagnostics",
    "echo": "rdppl.encoders.echo",
    "estimators": "rdppl.numerics.estimators",
    "interop": "rdppl.interop",
    "plot": "rdppl.plot",
    "results": "rdppl.results",
    "schedules": "rdppl.numerics.schedules",
    "training": "rdppl.encoders.training",
    "variational": "rdppl.variational",
}

# public name -> module that defines it, imported on first access
_ATTRIBUTES = {
    "StepSizeAdaptation": "rdppl.sampler.adaptation",
    "StepSizeState": "rdppl.sampler.adaptation",
    "step_size_adaptation": "rdppl.sampler.adaptation",
    "trained_decoders": "rdppl.encoders.architectures",
    "trained_encoders": "rdppl.encoders.architectures",
    "bdmc": "rdppl.bdmc",
    "use_compilation_cache": "rdppl.sampler.cache",
    "Checkpoint": "rdppl.sampler.checkpoint",
    "CheckpointError": "rdppl.sampler.checkpoint",
    "decoder_model": "rdppl.program.decoders",
    "RDWarning": "rdppl.numerics.diagnostics",
    "EchoChannel": "rdppl.encoders.echo",
    "DenseDecoder": "rdppl.interop",
    "load_equinox": "rdppl.interop",
    "mlp_from_flax": "rdppl.interop",
    "mlp_from_torch": "rdppl.interop",
    "BlackJAXKernel": "rdppl.sampler.kernels",
    "HMC": "rdppl.sampler.kernels",
    "MCMCKernel": "rdppl.sampler.kernels",
    "NUTS": "rdppl.sampler.kernels",
    "log_likelihood": "rdppl.likelihood",
    "Model": "rdppl.program.decorator",
    "ModelStructure": "rdppl.program.decorator",
    "TracedModel": "rdppl.program.decorator",
    "model": "rdppl.program.decorator",
    "rd_curve": "rdppl.rd",
    "InsufficientMemoryError": "rdppl.sampler.memory",
    "RecompilationWarning": "rdppl.program.recompile",
    "ResultFileError": "rdppl.results",
    "as_inverse_temperature": "rdppl.results",
    "from_netcdf": "rdppl.results",
    "from_zarr": "rdppl.results",
    "posterior_at": "rdppl.results",
    "to_netcdf": "rdppl.results",
    "to_zarr": "rdppl.results",
    "geometric_schedule": "rdppl.numerics.schedules",
    "linear_schedule": "rdppl.numerics.schedules",
    "sigmoid_schedule": "rdppl.numerics.schedules",
    "thermodynamic_schedule": "rdppl.numerics.schedules",
    "validate_schedule": "rdppl.numerics.schedules",
    "summary": "rdppl.results.summary",
    "ModelTraceError": "rdppl.program.tracing",
    "trace_model": "rdppl.program.tracing",
    "train_amortized_encoder": "rdppl.encoders.training",
    "train_beta_vae": "rdppl.encoders.training",
    "train_echo_autoencoder": "rdppl.encoders.training",
    "GaussianEncoder": "rdppl.variational",
    "variational_bounds": "rdppl.variational",
}

if TYPE_CHECKING:  # what static analysers and IDEs see
    from rdppl import interop, plot, results, variational
    from rdppl.bdmc import bdmc
    from rdppl.encoders import echo, training
    from rdppl.encoders.architectures import trained_decoders, trained_encoders
    from rdppl.encoders.echo import EchoChannel
    from rdppl.encoders.training import (
        train_amortized_encoder,
        train_beta_vae,
        train_echo_autoencoder,
    )
    from rdppl.interop import (
        DenseDecoder,
        load_equinox,
        mlp_from_flax,
        mlp_from_torch,
    )
    from rdppl.likelihood import log_likelihood
    from rdppl.numerics import analytic, diagnostics, estimators, schedules
    from rdppl.numerics.diagnostics import RDWarning
    from rdppl.numerics.schedules import (
        geometric_schedule,
        linear_schedule,
        sigmoid_schedule,
        thermodynamic_schedule,
        validate_schedule,
    )
    from rdppl.program import decoders
    from rdppl.program.decoders import decoder_model
    from rdppl.program.decorator import Model, ModelStructure, TracedModel, model
    from rdppl.program.recompile import RecompilationWarning
    from rdppl.program.tracing import ModelTraceError, trace_model
    from rdppl.rd import rd_curve
    from rdppl.results import (
        ResultFileError,
        as_inverse_temperature,
        from_netcdf,
        from_zarr,
        posterior_at,
        to_netcdf,
        to_zarr,
    )
    from rdppl.results.summary import summary
    from rdppl.sampler import cache
    from rdppl.sampler.adaptation import (
        StepSizeAdaptation,
        StepSizeState,
        step_size_adaptation,
    )
    from rdppl.sampler.cache import use_compilation_cache
    from rdppl.sampler.checkpoint import Checkpoint, CheckpointError
    from rdppl.sampler.kernels import HMC, NUTS, BlackJAXKernel, MCMCKernel
    from rdppl.sampler.memory import InsufficientMemoryError
    from rdppl.variational import GaussianEncoder, variational_bounds


def __getattr__(name: str) -> Any:
    if name in _SUBMODULES:
        value = importlib.import_module(_SUBMODULES[name])
    elif name in _ATTRIBUTES:
        value = getattr(importlib.import_module(_ATTRIBUTES[name]), name)
    else:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_SUBMODULES) | set(_ATTRIBUTES))


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
