"""Flax MLPs as JAX decoders: :func:`mlp_from_flax` reads dense-layer parameters.

The parameters of a stack of ``flax.linen.Dense`` or ``flax.nnx.Linear`` layers (a
nested dictionary, with or without the top-level ``"params"`` collection, or an
``.npz`` file of ``/``-joined paths; kernels of shape ``(in, out)``) become a
:class:`~rdppl.interop.dense.DenseDecoder`, with ``"gelu"`` meaning Flax's
``nn.gelu``, the tanh approximation.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import jax
from jax.typing import DTypeLike

from rdppl.interop.arrays import _as_path, _flatten, _read_npz
from rdppl.interop.dense import DenseDecoder, _dense_decoder

__all__ = ["mlp_from_flax"]


def mlp_from_flax(
    params: Mapping[str, Any] | str | os.PathLike,
    *,
    activation: str | Callable[[jax.Array], jax.Array] | None = "relu",
    final_activation: str | Callable[[jax.Array], jax.Array] | None = None,
    prefix: str = "",
    layers: Sequence[str] | None = None,
    dtype: DTypeLike | None = None,
) -> DenseDecoder:
    """Build a :class:`DenseDecoder` from a Flax MLP's parameters.

    The network is a stack of dense layers with the same activation between them:
    ``flax.linen.Dense`` layers (variables ``{"params": {"Dense_0": {"kernel",
    "bias"}, ...}}``) or ``flax.nnx.Linear`` layers (the pure dictionary of
    ``nnx.state(model, nnx.Param)``, e.g. ``{"layers": {0: {"kernel", "bias"},
    ...}}``). Each kernel has shape ``(in, out)``, each bias ``(out,)``.

    Parameters
    ----------
    params
        The nested dictionary (with or without the top-level ``"params"``; arrays or
        ``nnx`` variables as leaves), e.g. from ``flax.serialization.msgpack_restore``
        or ``pickle.load``, or the path of an ``.npz`` whose keys are the paths
        joined by ``/`` (``"params/Dense_0/kernel"``, as
        ``flax.traverse_util.flatten_dict(variables, sep="/")`` writes them).
    activation
        Activation between layers, a name (:func:`activation_function`; ``"gelu"``
        is Flax's ``nn.gelu``, the tanh approximation) or a callable.
    final_activation
        Activation after the last layer, ``None`` for none.
    prefix
        Use only the paths that start with this, written with ``/``
        (``"decoder/"``; below ``"params"``, which is added when the variables have
        that level).
    layers
        Layer names (paths joined by ``/``, without ``prefix``) in forward order, when
        it cannot be read from the numbers in the names (``Dense_0 ... Dense_10`` and
        ``layers/0 ... layers/2`` can be); layers not listed are ignored.
    dtype
        Dtype of the weights; default JAX's default float.

    Returns
    -------
    DenseDecoder
        The decoder, ``z`` of shape ``(latent_dim,)`` to the output.

    Raises
    ------
    FileNotFoundError
        If the path does not exist.
    KeyError
        If a layer has no kernel, or ``prefix``/``layers`` name nothing.
    ValueError
        If a path is not a kernel or bias, the variables hold more than
        ``"params"``, the shapes do not chain, a value is not finite, the layer order
        is ambiguous or an activation is unknown.

    Examples
    --------
    Parameters as ``flax.linen`` initialises ``Dense(8)`` then ``Dense(5)`` on a
    2-vector (random here):

    >>> import numpy as np
    >>> rng = np.random.default_rng(0)
    >>> variables = {
    ...     "params": {
    ...         "Dense_0": {"kernel": rng.normal(size=(2, 8)), "bias": np.zeros(8)},
    ...         "Dense_1": {"kernel": rng.normal(size=(8, 5)), "bias": np.zeros(5)},
    ...     }
    ... }
    >>> decoder = mlp_from_flax(variables, activation="gelu")
    >>> decoder.layer_names, decoder.latent_dim, decoder.output_dim
    (('params/Dense_0', 'params/Dense_1'), 2, 5)
    """
    path = _as_path(params)
    if path is not None:
        source = repr(path)
        flat = _read_npz(path)
    else:
        source = "params"
        if not isinstance(params, Mapping):
            raise TypeError(
                "params must be a nested mapping of arrays or the path of an .npz "
                f"file, got {type(params).__name__}"
            )
        flat = {
            "/".join(map(str, key)): value for key, value in _flatten(params).items()
        }
    # the variables of flax.linen's init/apply: read the "params" collection
    collections = {key.split("/", 1)[0] for key in flat}
    if "params" in collections and not prefix.startswith("params/"):
        others = sorted(collections - {"params"})
        if others:
            raise ValueError(
                f"{source}: the variables hold collections {others} besides "
                "'params'; only dense layers are converted (pass "
                f"prefix='params/{prefix}' to ignore the others, or see "
                "docs/interop.md)"
            )
        prefix = "params/" + prefix
    return _dense_decoder(
        flat,
        framework="flax",
        separator="/",
        weight_name="kernel",
        bias_name="bias",
        prefix=prefix,
        layers=layers,
        activation=activation,
        final_activation=final_activation,
        dtype=dtype,
        source=source,
    )
