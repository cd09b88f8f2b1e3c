"""Decoders trained elsewhere, as JAX functions rdppl can run.

One module per framework: :mod:`~rdppl.interop.pytorch` (:func:`mlp_from_torch`),
:mod:`~rdppl.interop.flax_params` (:func:`mlp_from_flax`) and
:mod:`~rdppl.interop.equinox_leaves` (:func:`load_equinox`), all building a
:class:`~rdppl.interop.dense.DenseDecoder` (:mod:`~rdppl.interop.dense`) with the
activations of :mod:`~rdppl.interop.activations`. Layer 2: imports nothing else of
rdppl.
"""

from rdppl.interop.activations import ACTIVATIONS, activation_function
from rdppl.interop.dense import DenseDecoder
from rdppl.interop.equinox_leaves import load_equinox
from rdppl.interop.flax_params import mlp_from_flax
from rdppl.interop.pytorch import mlp_from_torch

__all__ = [
    "ACTIVATIONS",
    "DenseDecoder",
    "activation_function",
    "load_equinox",
    "mlp_from_flax",
    "mlp_from_torch",
]
