"""rdppl: rate-distortion curves of NumPyro generative models by AIS.

Write a generative model as a NumPyro program, mark it with :func:`model`, and call
:func:`rd_curve` to get the whole rate-distortion curve from one annealed importance
sampling run, as an ``xarray.DataTree``.
"""

__version__ = "0.1.0"

from rdppl import (
    analytic,
    decoders,
    echo,
    estimators,
    plot,
    results,
    schedules,
    training,
    variational,
)
from rdppl.bdmc import bdmc
from rdppl.decoders import decoder_model
from rdppl.echo import EchoChannel
from rdppl.kernels import HMC, NUTS
from rdppl.likelihood import log_likelihood
from rdppl.model import Model, model
from rdppl.rd import rd_curve
from rdppl.results import from_netcdf, to_netcdf
from rdppl.schedules import (
    geometric_schedule,
    linear_schedule,
    sigmoid_schedule,
    validate_schedule,
)
from rdppl.training import (
    train_amortized_encoder,
    train_beta_vae,
    train_echo_autoencoder,
)
from rdppl.variational import GaussianEncoder, variational_bounds

__all__ = [
    "EchoChannel",
    "GaussianEncoder",
    "HMC",
    "NUTS",
    "Model",
    "analytic",
    "bdmc",
    "decoder_model",
    "decoders",
    "echo",
    "estimators",
    "from_netcdf",
    "geometric_schedule",
    "linear_schedule",
    "log_likelihood",
    "model",
    "plot",
    "rd_curve",
    "results",
    "schedules",
    "sigmoid_schedule",
    "to_netcdf",
    "train_amortized_encoder",
    "train_beta_vae",
    "train_echo_autoencoder",
    "training",
    "validate_schedule",
    "variational",
    "variational_bounds",
]
