"""Activation functions by name, as PyTorch and Flax mean them, in JAX.

:data:`ACTIVATIONS` maps each name to the elementwise JAX function of the framework's
default-argument activation, and :func:`activation_function` resolves a name (in any
case, with or without underscores, ``"gelu"`` per framework) or a callable to that
function; :mod:`~rdppl.interop.dense` applies them between the layers of a
:class:`~rdppl.interop.dense.DenseDecoder`.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Literal

import jax
import jax.numpy as jnp

__all__ = ["ACTIVATIONS", "activation_function"]

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
