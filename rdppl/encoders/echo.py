"""Echo noise: a stochastic encoder whose mutual information is exact.

The Echo channel (Brekelmans et al., 2019) encodes ``x`` as

    z = f(x) + s(x) * eps,
    eps = sum_{l >= 0} (prod_{j < l} s(x^(j))) * f(x^(l)),

where ``x^(0), x^(1), ...`` are other draws from the data distribution (in practice
the other members of the batch, taken without replacement). The noise ``eps`` has the
distribution of ``z`` itself (Lemma 2.1), so ``I(X; Z) = -E_x sum_j log s_j(x)``
(Theorem 2.2) with no bound and no estimator. See docs/math.md §7.

The identity needs the noise to have a density. The noise is built from a finite set
of examples, whose distribution has entropy ``H <= log N``, and ``I(X; Z) <= H``;
where ``-E sum_j log s_j`` exceeds ``H`` the noise has become singular and the formula
overstates the information. :func:`rdppl.training.train_echo_autoencoder` records
``H`` as ``training_data_entropy`` and warns (:class:`rdppl.RDWarning`) there.

The infinite sum is truncated after ``num_terms`` terms. With ``|f| <= 1`` (``tanh``)
and ``s <= c``, the neglected terms sum to at most ``c ** num_terms / (1 - c)``;
:func:`echo_clip` returns the largest ``c`` for which this is below the machine epsilon
of the floating-point type, and clipping ``s`` to ``c * sigmoid(.)`` sets the lowest
rate the channel can reach, ``-latent_dim * log(c)`` nats.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Literal, final

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
from jax.typing import ArrayLike, DTypeLike

__all__ = ["EchoChannel", "echo_clip", "echo_noise"]

_MEAN_ACTIVATIONS = ("tanh", "identity")


def echo_clip(
    num_terms: int, *, dtype: DTypeLike | None = None, max_mean: float = 1.0
) -> float:
    """Largest clipping factor whose truncation error is below machine epsilon.

    Echo noise is a series whose ``l``-th term is bounded by ``max_mean * c ** l``
    when ``|f| <= max_mean`` and ``s <= c``. After ``num_terms`` terms the remainder is
    at most ``max_mean * c ** num_terms / (1 - c)``; this returns the largest ``c`` in
    ``(0, 1)`` for which that bound does not exceed the machine epsilon of ``dtype``.

    Parameters
    ----------
    num_terms
        Number of terms of the series that are summed (``T``).
    dtype
        Floating-point type whose epsilon is the target; defaults to JAX's default
        float type (``float32`` unless ``jax_enable_x64`` is set).
    max_mean
        Bound on ``|f(x)|`` (1 for a ``tanh`` mean network).

    Returns
    -------
    float
        The clipping factor ``c``.

    Raises
    ------
    ValueError
        If ``num_terms`` is not a positive integer, ``max_mean`` is not positive, or
        ``dtype`` is not a floating-point type.

    Examples
    --------
    >>> round(echo_clip(100, dtype="float32"), 4)
    0.8373
    """
    if isinstance(num_terms, bool) or not isinstance(num_terms, int) or num_terms < 1:
        raise ValueError(f"num_terms must be a positive integer, got {num_terms!r}")
    if not (math.isfinite(max_mean) and max_mean > 0):
        raise ValueError(f"max_mean must be positive and finite, got {max_mean!r}")
    dtype = jnp.result_type(float) if dtype is None else np.dtype(dtype)
    if not jnp.issubdtype(dtype, jnp.floating):
        raise ValueError(f"dtype must be a floating-point type, got {dtype!r}")
    log_eps = math.log(float(jnp.finfo(dtype).eps))

    def log_remainder(c: float) -> float:
        return math.log(max_mean) + num_terms * math.log(c) - math.log1p(-c)

    # log_remainder increases with c on (0, 1); bisect for the boundary, keeping
    # `low` on the admissible side. 200 halvings exhaust double precision.
    low, high = 0.0, 1.0
    for _ in range(200):
        mid = 0.5 * (low + high)
        if mid in (low, high):
            break
        if log_remainder(mid) <= log_eps:
            low = mid
        else:
            high = mid
    if low <= 0.0:
        raise ValueError(
            f"no clipping factor reaches machine epsilon with num_terms={num_terms} "
            f"and max_mean={max_mean}"
        )
    return low


def _echo_indices(rng_key: jax.Array, batch_size: int, num_terms: int) -> jax.Array:
    """Draw the batch members that make up each example's noise.

    Row ``i`` holds ``num_terms`` distinct indices in ``[0, batch_size)``, none equal
    to ``i``, in a random order drawn independently for every row.
    """
    keys = jax.random.split(rng_key, batch_size)

    def others(key: jax.Array, index: jax.Array) -> jax.Array:
        draw = jax.random.permutation(key, batch_size - 1)[:num_terms]
        return draw + (draw >= index).astype(draw.dtype)

    return jax.vmap(others)(keys, jnp.arange(batch_size))


def echo_noise(
    rng_key: jax.Array, mean: ArrayLike, log_scale: ArrayLike, *, num_terms: int
) -> jax.Array:
    """Echo noise for every member of a batch, built from the other members.

    For example ``i`` a random ordering ``j_0, j_1, ...`` of the other examples is
    drawn without replacement and

        eps_i = sum_{l < num_terms} exp(sum_{m < l} log_scale[j_m]) * mean[j_l].

    A fresh ordering is drawn for every example at every call.

    Parameters
    ----------
    rng_key
        PRNG key for the orderings.
    mean
        ``f(x)`` for the batch, shape ``(batch, latent_dim)``.
    log_scale
        ``log s(x)`` for the batch, same shape as ``mean``.
    num_terms
        Number of terms ``T`` of the series; the batch must hold at least
        ``num_terms + 1`` examples.

    Returns
    -------
    jax.Array
        The noise, shape ``(batch, latent_dim)``; differentiable with respect to
        ``mean`` and ``log_scale`` of every batch member.

    Raises
    ------
    ValueError
        If the shapes differ, are not two-dimensional, or the batch is smaller than
        ``num_terms + 1``.
    """
    mean = jnp.asarray(mean)
    log_scale = jnp.asarray(log_scale)
    if mean.ndim != 2 or mean.shape != log_scale.shape:
        raise ValueError(
            "mean and log_scale must both have shape (batch, latent_dim), got "
            f"{mean.shape} and {log_scale.shape}"
        )
    if isinstance(num_terms, bool) or not isinstance(num_terms, int) or num_terms < 1:
        raise ValueError(f"num_terms must be a positive integer, got {num_terms!r}")
    batch_size = mean.shape[0]
    if batch_size < num_terms + 1:
        raise ValueError(
            f"Echo noise with num_terms={num_terms} needs a batch of at least "
            f"{num_terms + 1} examples (each example's noise is made of "
            f"{num_terms} other members of the batch), got a batch of {batch_size}"
        )
    indices = _echo_indices(rng_key, batch_size, num_terms)
    echo_mean = mean[indices]
    echo_log_scale = log_scale[indices]
    # Attenuation of term l: product of the scales of the l examples before it.
    attenuation = jnp.cumsum(echo_log_scale[:, :-1], axis=1)
    attenuation = jnp.concatenate(
        [jnp.zeros_like(attenuation[:, :1]), attenuation], axis=1
    )
    return jnp.sum(jnp.exp(attenuation) * echo_mean, axis=1)


@final
class EchoChannel(eqx.Module):
    """Echo noise channel ``z = f(x) + s(x) * eps`` with exact mutual information.

    The mean network's output passes through ``tanh`` so that ``|f| <= 1``; the scale
    network's output ``a`` gives ``log s(x) = log(clip) + log_sigmoid(a)``, so that
    ``0 < s < clip < 1``. Sampling uses the other members of the batch as the noise
    source (:func:`echo_noise`), so every method takes a *batch* ``x`` of shape
    ``(batch, ...)``; the networks are applied to one example at a time.

    Parameters
    ----------
    mean_net
        Callable (usually an Equinox module) mapping one example to
        ``latent_dim`` pre-activations of the mean.
    scale_net
        Callable mapping one example to ``latent_dim`` pre-activations of the scale.
    latent_dim
        Dimension of ``z``.
    num_terms
        Number of terms ``T`` of the noise series; batches must hold at least
        ``num_terms + 1`` examples.
    clip
        Clipping factor ``c`` in ``(0, 1)``; defaults to :func:`echo_clip` of
        ``num_terms`` for JAX's default float type.
    mean_activation
        ``"tanh"`` (default; guarantees the truncation bound) or ``"identity"``
        (an unbounded linear mean, for analysis of Gaussian sources; the series then
        converges only in probability and the truncation bound does not apply).

    Examples
    --------
    >>> import equinox as eqx, jax
    >>> k1, k2, k3 = jax.random.split(jax.random.key(0), 3)
    >>> channel = EchoChannel(
    ...     eqx.nn.MLP(4, 2, 16, 1, key=k1),
    ...     eqx.nn.MLP(4, 2, 16, 1, key=k2),
    ...     latent_dim=2,
    ...     num_terms=8,
    ... )
    >>> x = jax.random.normal(k3, (16, 4))
    >>> channel(x, key=k3).shape, channel.information(x).shape
    ((16, 2), (16,))
    """

    mean_net: Callable[[jax.Array], jax.Array]
    scale_net: Callable[[jax.Array], jax.Array]
    latent_dim: int = eqx.field(static=True)
    num_terms: int = eqx.field(static=True)
    clip: float = eqx.field(static=True)
    mean_activation: Literal["tanh", "identity"] = eqx.field(static=True)

    def __init__(
        self,
        mean_net: Callable[[jax.Array], jax.Array],
        scale_net: Callable[[jax.Array], jax.Array],
        *,
        latent_dim: int,
        num_terms: int = 100,
        clip: float | None = None,
        mean_activation: Literal["tanh", "identity"] = "tanh",
    ):
        self.mean_net = mean_net
        self.scale_net = scale_net
        self.latent_dim = latent_dim
        self.num_terms = num_terms
        self.clip = echo_clip(num_terms) if clip is None else float(clip)
        self.mean_activation = mean_activation

    def __check_init__(self) -> None:
        """Validate the hyperparameters."""
        for name in ("latent_dim", "num_terms"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ValueError(f"{name} must be a positive integer, got {value!r}")
        if not 0.0 < self.clip < 1.0:
            raise ValueError(f"clip must lie in (0, 1), got {self.clip!r}")
        if self.mean_activation not in _MEAN_ACTIVATIONS:
            raise ValueError(
                f"mean_activation must be one of {_MEAN_ACTIVATIONS}, "
                f"got {self.mean_activation!r}"
            )

    @property
    def rate_floor(self) -> float:
        """Lowest information the clipped channel can reach, ``-latent_dim log c``."""
        return -self.latent_dim * math.log(self.clip)

    @property
    def truncation_error(self) -> float:
        """Bound ``c ** T / (1 - c)`` on the neglected noise terms (``tanh`` mean)."""
        return self.clip**self.num_terms / (1.0 - self.clip)

    def _apply(self, net: Callable[[jax.Array], jax.Array], x: jax.Array) -> jax.Array:
        out = jax.vmap(net)(x)
        if out.shape != (x.shape[0], self.latent_dim):
            raise ValueError(
                f"network output has shape {out.shape[1:]} per example, expected "
                f"({self.latent_dim},) (latent_dim)"
            )
        return out

    def encode(self, x: ArrayLike) -> tuple[jax.Array, jax.Array]:
        """Mean ``f(x)`` and log scale ``log s(x)`` of a batch.

        Parameters
        ----------
        x
            Batch of examples, shape ``(batch, ...)``.

        Returns
        -------
        mean, log_scale
            Both of shape ``(batch, latent_dim)``.
        """
        x = jnp.asarray(x)
        mean = self._apply(self.mean_net, x)
        if self.mean_activation == "tanh":
            mean = jnp.tanh(mean)
        log_scale = math.log(self.clip) + jax.nn.log_sigmoid(
            self._apply(self.scale_net, x)
        )
        return mean, log_scale

    def information(self, x: ArrayLike) -> jax.Array:
        """Exact pointwise information ``-sum_j log s_j(x)`` in nats.

        Its mean over a batch drawn from the data is ``I(X; Z)`` (Theorem 2.2).
        Unlike sampling, this needs no minimum batch size.

        Parameters
        ----------
        x
            Batch of examples, shape ``(batch, ...)``.

        Returns
        -------
        jax.Array
            Shape ``(batch,)``.
        """
        _, log_scale = self.encode(x)
        return -jnp.sum(log_scale, axis=-1)

    def noise(self, x: ArrayLike, *, key: jax.Array) -> jax.Array:
        """Echo noise for each example, made of the other members of the batch.

        Parameters
        ----------
        x
            Batch of at least ``num_terms + 1`` examples, shape ``(batch, ...)``.
        key
            PRNG key.

        Returns
        -------
        jax.Array
            Shape ``(batch, latent_dim)``; distributed as the channel output.
        """
        mean, log_scale = self.encode(x)
        return echo_noise(key, mean, log_scale, num_terms=self.num_terms)

    def __call__(self, x: ArrayLike, *, key: jax.Array) -> jax.Array:
        """Encode a batch: ``z = f(x) + s(x) * eps``.

        Parameters
        ----------
        x
            Batch of at least ``num_terms + 1`` examples, shape ``(batch, ...)``.
        key
            PRNG key; a fresh ordering of the batch is drawn for every example.

        Returns
        -------
        jax.Array
            Codes ``z``, shape ``(batch, latent_dim)``.
        """
        mean, log_scale = self.encode(x)
        eps = echo_noise(key, mean, log_scale, num_terms=self.num_terms)
        return mean + jnp.exp(log_scale) * eps
