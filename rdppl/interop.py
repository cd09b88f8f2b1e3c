"""Decoders trained elsewhere as JAX callables: Equinox, Flax and PyTorch weights.

rdppl evaluates any callable ``z -> output`` (wrap it with
:func:`rdppl.decoder_model`, or call it in your own NumPyro program). This module turns
weights saved by other frameworks into such callables:

- :func:`load_equinox` reads a module saved with ``eqx.tree_serialise_leaves`` into a
  skeleton of the same architecture, as ``eqx.tree_deserialise_leaves`` does, and says
  which file and which leaf do not match when the skeleton is wrong.
- :func:`mlp_from_torch` and :func:`mlp_from_flax` build a :class:`DenseDecoder` (an
  Equinox module) from the weights of a stack of dense layers: a PyTorch
  ``state_dict`` (``net.0.weight`` of shape ``(out, in)``) or Flax parameters
  (``Dense_0/kernel`` of shape ``(in, out)``, ``flax.linen`` or ``flax.nnx``), as a
  dictionary or an ``.npz`` file.

Convolutional decoders are not converted automatically: ``docs/interop.md`` shows the
forward pass in JAX from PyTorch's ``Conv2d``/``ConvTranspose2d`` weights.
"""

from __future__ import annotations

import os
import re
from collections.abc import Callable, Mapping, Sequence
from typing import Any, Literal

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
from jax.typing import DTypeLike

__all__ = [
    "ACTIVATIONS",
    "DenseDecoder",
    "activation_function",
    "load_equinox",
    "mlp_from_flax",
    "mlp_from_torch",
]

Framework = Literal["torch", "flax"]


def _gelu_exact(x: jax.Array) -> jax.Array:
    # PyTorch's nn.GELU() default: x * Phi(x) with the error function
    return jax.nn.gelu(x, approximate=False)


def _gelu_tanh(x: jax.Array) -> jax.Array:
    # Flax's nn.gelu default (jax.nn.gelu's), PyTorch's nn.GELU(approximate="tanh")
    return jax.nn.gelu(x, approximate=True)


def _leaky_relu(x: jax.Array) -> jax.Array:
    # slope 0.01 in both PyTorch (nn.LeakyReLU) and Flax (nn.leaky_relu)
    return jax.nn.leaky_relu(x, negative_slope=0.01)


def _mish(x: jax.Array) -> jax.Array:
    return x * jnp.tanh(jax.nn.softplus(x))


def _identity(x: jax.Array) -> jax.Array:
    return x


# Each name means the framework's default-argument activation: PyTorch's module
# (nn.ReLU(), nn.ELU(), ...) or Flax's function (flax.linen.relu, ...). They agree
# except for "gelu" (see _GELU), checked against both frameworks by the test suite.
ACTIVATIONS: dict[str, Callable[[jax.Array], jax.Array]] = {
    "identity": _identity,
    "relu": jax.nn.relu,
    "relu6": jax.nn.relu6,
    "tanh": jnp.tanh,
    "sigmoid": jax.nn.sigmoid,
    "gelu_exact": _gelu_exact,
    "gelu_tanh": _gelu_tanh,
    "elu": jax.nn.elu,
    "selu": jax.nn.selu,
    "celu": jax.nn.celu,
    "silu": jax.nn.silu,
    "swish": jax.nn.silu,
    "leaky_relu": _leaky_relu,
    "softplus": jax.nn.softplus,
    "log_sigmoid": jax.nn.log_sigmoid,
    "mish": _mish,
}
# PyTorch's nn.GELU() is exact (erf); Flax's nn.gelu is the tanh approximation
_GELU = {"torch": _gelu_exact, "flax": _gelu_tanh, None: _gelu_exact}
_ALIASES = {"linear": "identity", "none": "identity", "logsigmoid": "log_sigmoid"}


def activation_function(
    activation: str | Callable[[jax.Array], jax.Array] | None,
    *,
    framework: Framework | None = None,
) -> Callable[[jax.Array], jax.Array]:
    """Return the JAX function of an activation given by name (or a callable).

    Parameters
    ----------
    activation
        A callable (returned as is), ``None`` (the identity) or a name, in any case and
        with or without underscores (``"leaky_relu"``, ``"LeakyReLU"``): ``identity``,
        ``relu``, ``relu6``, ``tanh``, ``sigmoid``, ``gelu``, ``gelu_exact``,
        ``gelu_tanh``, ``elu``, ``selu``, ``celu``, ``silu`` (``swish``),
        ``leaky_relu``, ``softplus``, ``log_sigmoid``, ``mish``. Each means the
        activation with its default arguments in PyTorch (``nn.ELU()``: alpha 1;
        ``nn.LeakyReLU()``: slope 0.01) and in Flax, which agree.
    framework
        Where the name comes from, for ``"gelu"`` only: ``"torch"`` (and ``None``)
        means PyTorch's ``nn.GELU()``, the exact ``x * Phi(x)``; ``"flax"`` means
        Flax's ``nn.gelu``, the tanh approximation (``jax.nn.gelu``'s default).

    Returns
    -------
    callable
        Elementwise function of a JAX array.

    Raises
    ------
    ValueError
        If the name is unknown (the message lists the known names).

    Examples
    --------
    >>> import jax.numpy as jnp
    >>> f = activation_function("LeakyReLU")
    >>> f(jnp.array([-1.0, 2.0]))
    Array([-0.01,  2.  ], dtype=float32)
    >>> float(activation_function("gelu", framework="flax")(jnp.array(1.0)))
    0.8411920070648193
    """
    if framework not in _GELU:
        raise ValueError(f"framework must be 'torch' or 'flax', got {framework!r}")
    if activation is None:
        return _identity
    if callable(activation):
        return activation
    if not isinstance(activation, str):
        raise TypeError(f"activation must be a name or a callable, got {activation!r}")
    key = re.sub(r"[\s_-]", "", activation.lower())
    names = {re.sub("_", "", name): name for name in ACTIVATIONS}
    if key == "gelu":
        return _GELU[framework]
    key = _ALIASES.get(key, key)
    if key in ACTIVATIONS:
        return ACTIVATIONS[key]
    if key in names:
        return ACTIVATIONS[names[key]]
    raise ValueError(
        f"unknown activation {activation!r}; known: "
        f"{', '.join(sorted([*ACTIVATIONS, 'gelu']))}, or pass a callable"
    )


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


# ---------------------------------------------------------------- reading weights


def _as_path(source: Any) -> str | None:
    if isinstance(source, str | os.PathLike):
        return os.fspath(source)
    return None


def _read_npz(path: str) -> dict[str, np.ndarray]:
    if not os.path.exists(path):
        raise FileNotFoundError(f"no weights file at {path!r}")
    if not path.endswith(".npz"):
        raise ValueError(
            f"{path!r}: rdppl reads weights from .npz files (np.savez); load other "
            "formats yourself (torch.load, flax.serialization.msgpack_restore, "
            "pickle) and pass the dictionary"
        )
    try:
        with np.load(path, allow_pickle=False) as archive:
            return {key: archive[key] for key in archive.files}
    except (OSError, ValueError) as error:
        raise ValueError(f"{path!r} is not a readable .npz file: {error}") from error


def _unwrap(value: Any) -> Any:
    # flax.nnx.State leaves are Variables (nnx.Param) holding the array in .value;
    # torch tensors are converted by np.asarray only on the CPU, without grad
    if not hasattr(value, "__array__") and hasattr(value, "value"):
        value = value.value
    if hasattr(value, "detach") and hasattr(value, "cpu"):
        value = value.detach().cpu().numpy()
    return value


def _flatten(tree: Mapping, prefix: tuple = ()) -> dict[tuple, Any]:
    flat = {}
    for key, value in tree.items():
        path = (*prefix, key)
        if isinstance(value, Mapping):
            flat.update(_flatten(value, path))
        else:
            flat[path] = _unwrap(value)
    return flat


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
    if prefix:
        selected = {k: v for k, v in flat.items() if k.startswith(prefix)}
        if not selected:
            raise KeyError(
                f"{source}: no key starts with prefix {prefix!r}; keys: "
                f"{sorted(flat, key=_natural_key)}"
            )
        flat = {k[len(prefix) :]: v for k, v in selected.items()}
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
    order = _order_layers(list(found), layers, source)

    weights, biases = [], []
    previous = None
    for name in order:
        parts = found[name]
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
        weights.append(weight)
        biases.append(bias)
        previous = (name, n_out)
    return DenseDecoder(
        tuple(weights),
        tuple(biases),
        activation=activation_function(activation, framework=framework),
        final_activation=activation_function(final_activation, framework=framework),
        layer_names=tuple(prefix + name for name in order),
    )


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


# ---------------------------------------------------------------- Equinox files


class _LeafError(ValueError):
    """A leaf of an Equinox file does not fit the skeleton (raised inside tree_map)."""


def load_equinox(path: str | os.PathLike, like: Any) -> Any:
    """Load a module saved with ``eqx.tree_serialise_leaves`` into a skeleton.

    Does what ``eqx.tree_deserialise_leaves(path, like)`` does, and checks that the
    file fits the skeleton ``like`` (the same architecture built fresh, or with
    ``eqx.filter_eval_shape``): every error names the file and the leaf, and a file
    holding more leaves than the skeleton is refused (Equinox would read the first
    ones and ignore the rest).

    Parameters
    ----------
    path
        The file written by ``eqx.tree_serialise_leaves(path, module)``.
    like
        A pytree of the same structure, with leaves of the same shapes and dtypes.

    Returns
    -------
    pytree
        ``like`` with its array leaves read from the file.

    Raises
    ------
    FileNotFoundError
        If ``path`` does not exist.
    ValueError
        If the file ends before the skeleton's last leaf, a leaf's shape or dtype
        differs, or the file has data left after the skeleton's last leaf.

    Examples
    --------
    >>> import equinox as eqx, jax, os, tempfile
    >>> trained = eqx.nn.MLP(2, 5, 8, 1, key=jax.random.key(0))
    >>> path = os.path.join(tempfile.mkdtemp(), "decoder.eqx")
    >>> eqx.tree_serialise_leaves(path, trained)
    >>> skeleton = eqx.nn.MLP(2, 5, 8, 1, key=jax.random.key(1))
    >>> decoder = load_equinox(path, skeleton)
    >>> bool((decoder.layers[0].weight == trained.layers[0].weight).all())
    True
    """
    path = os.fspath(path)
    if not os.path.exists(path):
        raise FileNotFoundError(f"no Equinox file at {path!r}")
    leaves = jax.tree_util.tree_flatten_with_path(like)[0]
    names = [jax.tree_util.keystr(leaf_path) or "<root>" for leaf_path, _ in leaves]
    position = iter(range(len(names)))

    def read_leaf(file, leaf):
        # Equinox reads the skeleton's leaves in flattening order: name each one
        name = names[next(position)]
        start = file.tell()
        try:
            value = eqx.default_deserialise_filter_spec(file, leaf)
        except Exception as error:
            file.seek(0, os.SEEK_END)
            ended = file.tell() <= start
            reason = "the file ends there" if ended else str(error)
            raise _LeafError(
                f"{path!r}: could not read leaf {name} of the skeleton ({reason}); "
                "the saved module has fewer leaves: build `like` with the "
                "architecture that was saved"
            ) from error
        if not hasattr(leaf, "shape"):
            return value
        expected = (tuple(leaf.shape), np.dtype(leaf.dtype))
        got = (tuple(value.shape), np.dtype(value.dtype))
        if got != expected:
            raise _LeafError(
                f"{path!r}: leaf {name} has shape {got[0]} and dtype {got[1]} in the "
                f"file but shape {expected[0]} and dtype {expected[1]} in the "
                "skeleton: build `like` with the architecture that was saved"
            )
        return value

    with open(path, "rb") as file:
        try:
            loaded = eqx.tree_deserialise_leaves(file, like, filter_spec=read_leaf)
        except Exception as error:
            # jax.tree_util wraps the error raised in read_leaf: raise that one
            cause = error
            while cause is not None and not isinstance(cause, _LeafError):
                cause = cause.__cause__
            if cause is None:
                raise
            raise ValueError(str(cause)) from cause.__cause__
        left = len(file.read())
    if left:
        raise ValueError(
            f"{path!r}: {left} bytes are left after the skeleton's last leaf "
            f"({names[-1] if names else 'none'}); the saved module has more leaves: "
            "build `like` with the architecture that was saved"
        )
    return loaded
