"""PyTorch MLPs as JAX decoders: :func:`mlp_from_torch` reads a ``state_dict``.

A stack of ``nn.Linear`` layers saved by PyTorch (a ``state_dict`` as a mapping of
arrays or CPU tensors, or an ``.npz`` file written from one, with ``<layer>.weight`` of
shape ``(out, in)`` and an optional ``<layer>.bias``) becomes a
:class:`~rdppl.interop.dense.DenseDecoder`, with ``"gelu"`` meaning PyTorch's exact
``nn.GELU()``.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import jax
from jax.typing import DTypeLike

from rdppl.interop.arrays import _as_path, _read_npz, _unwrap
from rdppl.interop.dense import DenseDecoder, _dense_decoder

__all__ = ["mlp_from_torch"]


def mlp_from_torch(
    state_dict: Mapping[str, Any] | str | os.PathLike,
    *,
    activation: str | Callable[[jax.Array], jax.Array] | None = "relu",
    final_activation: str | Callable[[jax.Array], jax.Array] | None = None,
    prefix: str = "",
    layers: Sequence[str] | None = None,
    dtype: DTypeLike | None = None,
) -> DenseDecoder:
    """Build a :class:`DenseDecoder` from a PyTorch MLP's ``state_dict``.

    The network is a stack of ``nn.Linear`` layers with the same activation between
    them (an ``nn.Sequential`` of ``Linear``/activation modules, or a module whose
    ``forward`` applies them in turn). Its ``state_dict`` has one ``<layer>.weight``
    of shape ``(out, in)`` and one optional ``<layer>.bias`` of shape ``(out,)`` per
    layer. Export it on the PyTorch side with
    ``np.savez(path, **{k: v.numpy() for k, v in model.state_dict().items()})``.

    Parameters
    ----------
    state_dict
        The path of that ``.npz`` file, or a mapping from key to array (NumPy arrays,
        or CPU tensors).
    activation
        Activation between layers, a name (:func:`activation_function`; ``"gelu"``
        is PyTorch's exact ``nn.GELU()``) or a callable.
    final_activation
        Activation after the last layer, ``None`` for none (a decoder giving logits
        to :func:`rdppl.decoder_model`'s Bernoulli likelihood, or a Gaussian mean).
    prefix
        Use only the keys that start with this (e.g. ``"decoder."`` for the decoder of
        a whole autoencoder); it is removed from the layer names.
    layers
        Layer names (keys without ``.weight``/``.bias`` and without ``prefix``) in
        forward order. Needed only when the order cannot be read from the numbers in
        the names (``net.0, net.2, ..., net.10`` and ``fc1, fc2`` can be; ``hidden``
        and ``out`` cannot); layers not listed are ignored.
    dtype
        Dtype of the weights; default JAX's default float (float32, or float64 under
        ``jax_enable_x64``), the dtype of the latent ``z`` rdppl samples.

    Returns
    -------
    DenseDecoder
        The decoder, ``z`` of shape ``(latent_dim,)`` to the output.

    Raises
    ------
    FileNotFoundError
        If the path does not exist.
    KeyError
        If a layer has no weight, or ``prefix``/``layers`` name nothing.
    ValueError
        If a key is not a weight or bias, the shapes do not chain (the message names
        the layers and shapes), a value is not finite, the layer order is ambiguous
        or an activation is unknown.

    Examples
    --------
    Weights as PyTorch saves an ``nn.Sequential(nn.Linear(2, 8), nn.Tanh(),
    nn.Linear(8, 5))`` (random here):

    >>> import numpy as np
    >>> rng = np.random.default_rng(0)
    >>> state = {
    ...     "0.weight": rng.normal(size=(8, 2)),
    ...     "0.bias": rng.normal(size=8),
    ...     "2.weight": rng.normal(size=(5, 8)),
    ...     "2.bias": rng.normal(size=5),
    ... }
    >>> decoder = mlp_from_torch(state, activation="tanh")
    >>> decoder.layer_names, decoder.latent_dim, decoder.output_dim
    (('0', '2'), 2, 5)
    """
    path = _as_path(state_dict)
    source = repr(path) if path is not None else "state_dict"
    flat = _read_npz(path) if path is not None else _torch_flat(state_dict)
    return _dense_decoder(
        flat,
        framework="torch",
        separator=".",
        weight_name="weight",
        bias_name="bias",
        prefix=prefix,
        layers=layers,
        activation=activation,
        final_activation=final_activation,
        dtype=dtype,
        source=source,
    )


def _torch_flat(state_dict: Any) -> dict[str, Any]:
    if not isinstance(state_dict, Mapping):
        raise TypeError(
            "state_dict must be a mapping of key -> array or the path of an .npz "
            f"file, got {type(state_dict).__name__}"
        )
    return {str(key): _unwrap(value) for key, value in state_dict.items()}
