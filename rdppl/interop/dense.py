"""A stack of dense layers as an Equinox module, built from named weight arrays.

:class:`DenseDecoder` runs ``z -> output`` through dense layers in JAX, and
:func:`_dense_decoder` builds one from a flat dictionary of named arrays, whatever the
framework that saved them: it selects the keys under a prefix, groups them into layers
by name, orders the layers, checks that every array is finite and that the shapes
chain, and resolves the activations with :mod:`~rdppl.interop.activations`.
Convolutional decoders are not converted automatically: ``docs/interop.md`` shows the
forward pass in JAX from PyTorch's ``Conv2d``/``ConvTranspose2d`` weights.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from typing import Any

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
from jax.typing import DTypeLike

from rdppl.interop.activations import Framework, activation_function

__all__ = ["DenseDecoder"]


class DenseDecoder(eqx.Module):
    """A stack of dense layers ``z -> output``, with weights from another framework.

    Layer ``i`` computes ``h = weights[i] @ h + biases[i]``, followed by
    ``activation`` between layers and ``final_activation`` after the last one. Made
    by :func:`mlp_from_torch` and :func:`mlp_from_flax`; as an Equinox module it is a
    pytree, so it can be jitted, vmapped, differentiated and saved with
    ``eqx.tree_serialise_leaves``.

    Attributes
    ----------
    weights
        One ``(out, in)`` matrix per layer (PyTorch's layout).
    biases
        One ``(out,)`` vector per layer (zeros for a layer saved without bias).
    activation, final_activation
        Elementwise functions (static).
    layer_names
        Where each layer came from (the key prefix in the saved weights).

    Examples
    --------
    >>> import jax.numpy as jnp
    >>> decoder = DenseDecoder(
    ...     (jnp.ones((4, 2)), jnp.ones((3, 4))),
    ...     (jnp.zeros(4), jnp.zeros(3)),
    ...     activation=jax.nn.relu,
    ...     final_activation=jnp.tanh,
    ...     layer_names=("hidden", "out"),
    ... )
    >>> decoder.latent_dim, decoder.output_dim
    (2, 3)
    >>> decoder(jnp.array([1.0, -0.5])).shape
    (3,)
    """

    weights: tuple[jax.Array, ...]
    biases: tuple[jax.Array, ...]
    activation: Callable[[jax.Array], jax.Array] = eqx.field(static=True)
    final_activation: Callable[[jax.Array], jax.Array] = eqx.field(static=True)
    layer_names: tuple[str, ...] = eqx.field(static=True)

    @property
    def latent_dim(self) -> int:
        """Size of the input ``z``."""
        return int(self.weights[0].shape[1])

    @property
    def output_dim(self) -> int:
        """Size of the output."""
        return int(self.weights[-1].shape[0])

    def __call__(self, z: jax.Array) -> jax.Array:
        """Decode one latent vector ``z`` of shape ``(latent_dim,)``."""
        z = jnp.asarray(z)
        if z.shape != (self.latent_dim,):
            raise ValueError(
                f"DenseDecoder expects z of shape ({self.latent_dim},), got "
                f"{z.shape}; decode a batch with jax.vmap(decoder)"
            )
        h = z
        last = len(self.weights) - 1
        for i, (weight, bias) in enumerate(zip(self.weights, self.biases, strict=True)):
            h = weight @ h + bias
            h = self.final_activation(h) if i == last else self.activation(h)
        return h


# ---------------------------------------------------------------- building one


def _natural_key(name: str) -> tuple:
    # "Dense_10" after "Dense_2", "net.10" after "net.2": numbers compare as numbers
    parts = re.split(r"(\d+)", name)
    return tuple(int(part) if i % 2 else part for i, part in enumerate(parts))


def _order_layers(
    names: list[str], layers: Sequence[str] | None, source: str
) -> list[str]:
    if layers is not None:
        if isinstance(layers, str):
            raise TypeError("layers must be a sequence of layer names, not a string")
        missing = [name for name in layers if name not in names]
        if missing:
            raise KeyError(
                f"{source}: no layer named {missing[0]!r} (from layers=); the "
                f"layers found are {names}"
            )
        if len(set(layers)) != len(layers):
            raise ValueError(f"layers= names a layer twice: {list(layers)}")
        return list(layers)
    ordered = sorted(names, key=_natural_key)
    # the order is read from the numbers in the names; it is only defined when the
    # names differ by their numbers alone (net.0, net.2 / Dense_0, Dense_1 / fc1, fc2)
    skeletons = {re.sub(r"\d+", "#", name) for name in names}
    if len(skeletons) > 1:
        raise ValueError(
            f"{source}: cannot tell the order of the layers {ordered} from their "
            "names (they differ by more than a number); pass them in forward order "
            "as layers=[...], or select one network with prefix="
        )
    return ordered


def _array(value: Any, key: str, source: str, dtype: DTypeLike | None) -> jax.Array:
    try:
        array = np.asarray(value)
    except Exception as error:  # noqa: BLE001 (any failure to convert is the user's)
        raise TypeError(f"{source}: {key!r} is not an array: {error}") from error
    if not (np.issubdtype(array.dtype, np.floating) or array.dtype.kind in "iu"):
        raise TypeError(
            f"{source}: {key!r} has dtype {array.dtype}, expected floating-point "
            "weights"
        )
    if not np.all(np.isfinite(array)):
        bad = int(np.size(array) - np.count_nonzero(np.isfinite(array)))
        raise ValueError(
            f"{source}: {key!r} (shape {array.shape}) has {bad} non-finite values"
        )
    # the default float type (float32, or float64 with jax_enable_x64) matches the
    # latent z rdppl samples, as strict dtype promotion requires
    return jnp.asarray(array, dtype=jnp.result_type(float) if dtype is None else dtype)


def _select_prefix(flat: dict[str, Any], prefix: str, source: str) -> dict[str, Any]:
    """Keep the keys of ``flat`` under ``prefix``, with the prefix removed."""
    if not prefix:
        return flat
    selected = {k: v for k, v in flat.items() if k.startswith(prefix)}
    if not selected:
        raise KeyError(
            f"{source}: no key starts with prefix {prefix!r}; keys: "
            f"{sorted(flat, key=_natural_key)}"
        )
    return {k[len(prefix) :]: v for k, v in selected.items()}


def _group_layers(
    flat: dict[str, Any],
    *,
    separator: str,
    weight_name: str,
    bias_name: str,
    prefix: str,
    layers: Sequence[str] | None,
    source: str,
) -> dict[str, dict[str, tuple[str, Any]]]:
    """Group ``flat`` by layer: layer -> leaf (weight or bias) -> (full key, value)."""
    found: dict[str, dict[str, tuple[str, Any]]] = {}
    for key, value in flat.items():
        layer, _, leaf = key.rpartition(separator)
        if leaf not in (weight_name, bias_name):
            if layers is not None and layer not in layers:
                continue  # not a selected layer: ignore whatever it holds
            raise ValueError(
                f"{source}: key {prefix + key!r} is neither a {weight_name!r} nor a "
                f"{bias_name!r}; only dense layers are converted (select the "
                "decoder with prefix= or layers=, or see docs/interop.md for other "
                "layers)"
            )
        found.setdefault(layer, {})[leaf] = (prefix + key, value)
    return found


def _dense_layer(
    name: str,
    parts: dict[str, tuple[str, Any]],
    previous: tuple[str, int] | None,
    *,
    framework: Framework,
    weight_name: str,
    bias_name: str,
    prefix: str,
    dtype: DTypeLike | None,
    source: str,
) -> tuple[jax.Array, jax.Array]:
    """Return the ``(out, in)`` weight and ``(out,)`` bias of one layer, checked.

    ``previous`` is the name and output size of the layer before (``None`` for the
    first), whose outputs this layer's inputs must match.
    """
    if weight_name not in parts:
        raise KeyError(
            f"{source}: layer {prefix + name!r} has no {weight_name!r} (keys: "
            f"{sorted(key for key, _ in parts.values())})"
        )
    key, value = parts[weight_name]
    weight = _array(value, key, source, dtype)
    if weight.ndim != 2:
        raise ValueError(
            f"{source}: {key!r} has shape {weight.shape}; a dense layer's "
            f"{weight_name} is 2-D (convolutions: see docs/interop.md)"
        )
    if framework == "flax":
        weight = weight.T  # Flax stores (in, out), the decoder uses (out, in)
    n_out, n_in = weight.shape
    if previous is not None and n_in != previous[1]:
        raise ValueError(
            f"{source}: layer {prefix + name!r} takes {n_in} inputs ({key!r} "
            f"has shape {tuple(np.shape(value))}) but the layer before it, "
            f"{prefix + previous[0]!r}, gives {previous[1]} outputs"
        )
    if bias_name in parts:
        bias_key, bias_value = parts[bias_name]
        bias = _array(bias_value, bias_key, source, dtype)
        if bias.shape != (n_out,):
            raise ValueError(
                f"{source}: {bias_key!r} has shape {bias.shape}, expected "
                f"({n_out},) to match {key!r} of shape "
                f"{tuple(np.shape(value))}"
            )
    else:  # a layer saved without bias (bias=False / use_bias=False)
        bias = jnp.zeros(n_out, dtype=weight.dtype)
    return weight, bias


def _dense_decoder(
    flat: dict[str, Any],
    *,
    framework: Framework,
    separator: str,
    weight_name: str,
    bias_name: str,
    prefix: str,
    layers: Sequence[str] | None,
    activation: Any,
    final_activation: Any,
    dtype: DTypeLike | None,
    source: str,
) -> DenseDecoder:
    """Group ``flat`` (key -> array) into dense layers and build the decoder."""
    if not flat:
        raise ValueError(f"{source}: no weights found (empty)")
    flat = _select_prefix(flat, prefix, source)
    found = _group_layers(
        flat,
        separator=separator,
        weight_name=weight_name,
        bias_name=bias_name,
        prefix=prefix,
        layers=layers,
        source=source,
    )
    order = _order_layers(list(found), layers, source)

    weights, biases = [], []
    previous = None
    for name in order:
        weight, bias = _dense_layer(
            name,
            found[name],
            previous,
            framework=framework,
            weight_name=weight_name,
            bias_name=bias_name,
            prefix=prefix,
            dtype=dtype,
            source=source,
        )
        weights.append(weight)
        biases.append(bias)
        previous = (name, int(weight.shape[0]))
    return DenseDecoder(
        tuple(weights),
        tuple(biases),
        activation=activation_function(activation, framework=framework),
        final_activation=activation_function(final_activation, framework=framework),
        layer_names=tuple(prefix + name for name in order),
    )
