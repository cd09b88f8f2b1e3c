"""The Echo channel: Lemma 2.1, Theorem 2.2, truncation, sampling and gradients."""

import math

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st
from jax.test_util import check_grads
from scipy import linalg, stats

from rdppl.encoders.echo import EchoChannel, _echo_indices, echo_clip, echo_noise

EPS32 = float(np.finfo(np.float32).eps)


def constant_net(in_size, values):
    """A Linear layer that ignores its input and returns ``values``."""
    layer = eqx.nn.Linear(in_size, len(values), key=jax.random.key(0))
    layer = eqx.tree_at(lambda m: m.weight, layer, jnp.zeros_like(layer.weight))
    return eqx.tree_at(lambda m: m.bias, layer, jnp.asarray(values, jnp.float32))


def linear_net(matrix):
    """A bias-free Linear layer with the given weight matrix."""
    matrix = jnp.asarray(matrix, jnp.float32)
    layer = eqx.nn.Linear(
        matrix.shape[1], matrix.shape[0], use_bias=False, key=jax.random.key(0)
    )
    return eqx.tree_at(lambda m: m.weight, layer, matrix)


def logit(p):
    return math.log(p) - math.log1p(-p)


def constant_scale_channel(in_size, scales, *, num_terms, clip, mean_net=None):
    """Echo channel with s(x) = scales exactly and an identity-activation mean."""
    pre = [logit(s / clip) for s in scales]
    mean_net = (
        linear_net(np.eye(len(scales), in_size)) if mean_net is None else mean_net
    )
    return EchoChannel(
        mean_net,
        constant_net(in_size, pre),
        latent_dim=len(scales),
        num_terms=num_terms,
        clip=clip,
        mean_activation="identity",
    )


# --- truncation and the rate floor -------------------------------------------------


@given(
    num_terms=st.integers(min_value=1, max_value=500),
    dtype=st.sampled_from(["float32", "float64"]),
)
def test_echo_clip_is_largest_factor_with_remainder_below_epsilon(num_terms, dtype):
    c = echo_clip(num_terms, dtype=dtype)
    eps = float(np.finfo(dtype).eps)
    log_remainder = num_terms * math.log(c) - math.log1p(-c)
    assert 0.0 < c < 1.0
    assert log_remainder <= math.log(eps) + 1e-12
    # Any larger factor (by more than rounding) breaks the bound.
    larger = c * (1 + 1e-9)
    assert num_terms * math.log(larger) - math.log1p(-larger) > math.log(eps)


def test_echo_clip_matches_reference_setting():
    # Brekelmans et al.'s code uses c = 0.8359 for T = 100 terms, a remainder of
    # 1e-7; float32's epsilon (1.19e-7) allows slightly more.
    c = echo_clip(100, dtype="float32")
    assert c == pytest.approx(0.8373, abs=1e-4)
    # A wider mean range needs a smaller factor.
    assert echo_clip(100, dtype="float32", max_mean=4.0) < echo_clip(
        100, dtype="float32"
    )


def test_truncation_error_is_the_dropped_noise_of_saturated_inputs():
    # At Brekelmans et al.'s setting (c = 0.8359, T = 100) the channel states a
    # remainder bound c^T / (1 - c) of 1e-7. With saturated networks (tanh mean = 1,
    # scale = c) the bound is attained: the terms a T-term series drops, measured in
    # float64 against a 4T-term series on the same orderings, sum to
    # c^T (1 - c^(3T)) / (1 - c), which equals the bound to float64 precision.
    clip, num_terms, longer_terms = 0.8359, 100, 400
    with jax.enable_x64(True):
        saturated = eqx.nn.Lambda(lambda x: jnp.full((1,), 40.0, x.dtype))

        def channel(terms):
            return EchoChannel(
                saturated, saturated, latent_dim=1, num_terms=terms, clip=clip
            )

        short, long = channel(num_terms), channel(longer_terms)
        x = jnp.zeros((longer_terms + 1, 1), jnp.float64)
        key = jax.random.key(2)
        # The same key draws the same orderings; the short series is a prefix.
        dropped = np.asarray(long.noise(x, key=key) - short.noise(x, key=key))
    assert short.truncation_error == pytest.approx(1e-7, rel=0.02)
    assert dropped.dtype == np.float64
    # Rounding: each series sums at most 400 terms of size <= 1, to about 1 / (1 - c).
    rounding = 2 * longer_terms * np.finfo(np.float64).eps / (1 - clip)
    np.testing.assert_allclose(dropped, short.truncation_error, rtol=0, atol=rounding)
    assert bool(np.all(dropped <= short.truncation_error + rounding))


@pytest.mark.parametrize("bad", [0, -3, 2.5, True])
def test_echo_clip_rejects_bad_num_terms(bad):
    with pytest.raises(ValueError, match="num_terms"):
        echo_clip(bad)


def test_default_clip_rate_floor_and_truncation_error():
    k1, k2, k3 = jax.random.split(jax.random.key(1), 3)
    channel = EchoChannel(
        eqx.nn.MLP(3, 4, 8, 1, key=k1),
        eqx.nn.MLP(3, 4, 8, 1, key=k2),
        latent_dim=4,
        num_terms=20,
    )
    assert channel.clip == echo_clip(20)
    assert channel.rate_floor == pytest.approx(-4 * math.log(channel.clip), rel=1e-12)
    assert channel.truncation_error <= EPS32
    # The information can approach but never cross the floor, even for inputs that
    # saturate the scale network.
    x = 50.0 * jax.random.normal(k3, (64, 3))
    information = channel.information(x)
    assert information.shape == (64,)
    assert bool(jnp.all(information >= channel.rate_floor - 1e-5))


def test_series_is_the_geometric_sum_for_saturated_inputs():
    # With f = 1 and s = c everywhere, each example's noise is sum_{l<T} c^l.
    clip, num_terms = 0.9, 12
    mean = jnp.ones((16, 3))
    log_scale = jnp.full((16, 3), math.log(clip))
    eps = echo_noise(jax.random.key(0), mean, log_scale, num_terms=num_terms)
    expected = (1 - clip**num_terms) / (1 - clip)
    np.testing.assert_allclose(eps, expected, rtol=1e-5)
    # The neglected terms of a longer series stay within the reported bound.
    longer = echo_noise(jax.random.key(0), mean, log_scale, num_terms=15)
    channel_bound = clip**num_terms / (1 - clip)
    assert bool(jnp.all(jnp.abs(longer - eps) <= channel_bound))


# --- sampling ----------------------------------------------------------------------


def test_noise_indices_are_other_members_without_replacement():
    indices = np.asarray(_echo_indices(jax.random.key(3), 10, 7))
    assert indices.shape == (10, 7)
    for row, draw in enumerate(indices):
        assert len(set(draw.tolist())) == 7
        assert row not in draw
        assert draw.min() >= 0 and draw.max() < 10
    other = np.asarray(_echo_indices(jax.random.key(4), 10, 7))
    assert not np.array_equal(indices, other)
    # Each row is drawn independently, not one shared ordering.
    assert len({tuple(sorted(r)) for r in indices.tolist()}) > 1


def test_batch_smaller_than_num_terms_plus_one_is_an_error():
    channel = constant_scale_channel(2, [0.5, 0.5], num_terms=8, clip=0.9)
    x = jnp.ones((8, 2))
    with pytest.raises(ValueError, match="at least 9 examples"):
        channel(x, key=jax.random.key(0))
    # The information needs no noise, so any batch works.
    np.testing.assert_allclose(channel.information(x), -2 * math.log(0.5), rtol=1e-6)


@pytest.mark.parametrize(
    "kwargs, match",
    [
        ({"clip": 1.0}, "clip"),
        ({"clip": 0.0}, "clip"),
        ({"num_terms": 0}, "num_terms"),
        ({"mean_activation": "relu"}, "mean_activation"),
        ({"latent_dim": 0}, "latent_dim"),
    ],
)
def test_invalid_hyperparameters_are_rejected(kwargs, match):
    settings = {"latent_dim": 2, "num_terms": 4, "clip": 0.5, **kwargs}
    with pytest.raises(ValueError, match=match):
        EchoChannel(linear_net(np.eye(2)), linear_net(np.eye(2)), **settings)


def test_network_output_size_must_match_latent_dim():
    channel = EchoChannel(
        linear_net(np.eye(3)), linear_net(np.eye(3)), latent_dim=2, num_terms=4
    )
    with pytest.raises(ValueError, match="latent_dim"):
        channel.information(jnp.ones((6, 3)))


def test_jit_vmap_and_fresh_noise_per_key():
    k1, k2, k3 = jax.random.split(jax.random.key(5), 3)
    channel = EchoChannel(
        eqx.nn.MLP(3, 2, 8, 1, key=k1),
        eqx.nn.MLP(3, 2, 8, 1, key=k2),
        latent_dim=2,
        num_terms=9,
    )
    x = jax.random.normal(k3, (12, 3))
    key = jax.random.key(6)
    eager = channel(x, key=key)
    jitted = eqx.filter_jit(lambda c, x, key: c(x, key=key))(channel, x, key)
    np.testing.assert_allclose(eager, jitted, rtol=1e-5, atol=1e-6)
    keys = jax.random.split(key, 4)
    many = jax.vmap(lambda k: channel(x, key=k))(keys)
    assert many.shape == (4, 12, 2)
    np.testing.assert_allclose(many[0], channel(x, key=keys[0]), rtol=1e-5, atol=1e-6)
    # A new key is a new permutation of the batch, hence new noise.
    assert not np.allclose(many[0], many[1])
    # The tanh mean is bounded, so |z| <= (1 + c * sum c^l) < 1 / (1 - c).
    assert bool(jnp.all(jnp.abs(many) < 1.0 / (1.0 - channel.clip)))


# --- Lemma 2.1: the noise has the distribution of the channel output --------------


def non_gaussian_source(rng_key, shape):
    """Exponential first coordinate, a bimodal mixture second coordinate."""
    k1, k2, k3 = jax.random.split(rng_key, 3)
    first = jax.random.exponential(k1, shape)
    sign = jnp.where(jax.random.bernoulli(k2, 0.3, shape), 2.0, -1.0)
    second = sign + 0.3 * jax.random.normal(k3, shape)
    return jnp.stack([first, second], axis=-1)


def test_lemma_2_1_noise_and_output_have_the_same_distribution():
    batch, num_terms, num_batches = 32, 31, 3000
    k1, k2, k3, k4, k5, k6 = jax.random.split(jax.random.key(7), 6)
    channel = EchoChannel(
        eqx.nn.MLP(2, 2, 16, 1, key=k1),
        eqx.nn.MLP(2, 2, 16, 1, key=k2),
        latent_dim=2,
        num_terms=num_terms,
    )

    @jax.jit
    def first_of_each_batch(xs, keys):
        # One code per independent batch, so that the samples are i.i.d.
        z = jax.vmap(lambda x, k: channel(x, key=k)[0])(xs, keys)
        eps = jax.vmap(lambda x, k: channel.noise(x, key=k)[0])(xs, keys)
        signal = jax.vmap(lambda x: channel.encode(x)[0][0])(xs)
        return z, eps, signal

    xs = non_gaussian_source(k3, (num_batches, batch))
    z, _, signal = first_of_each_batch(xs, jax.random.split(k4, num_batches))
    # Noise from an independent set of batches.
    xs_other = non_gaussian_source(k5, (num_batches, batch))
    _, eps, _ = first_of_each_batch(xs_other, jax.random.split(k6, num_batches))
    z, eps, signal = map(np.asarray, (z, eps, signal))
    alpha = 0.01 / 2  # Bonferroni over the two dimensions
    for dim in range(2):
        assert stats.ks_2samp(z[:, dim], eps[:, dim]).pvalue > alpha
        # The test has power: the noiseless signal f(x) is clearly different,
        assert stats.ks_2samp(z[:, dim], signal[:, dim]).pvalue < 1e-6
        # and so is a Gaussian with the same mean and variance as the noise.
        gaussian = np.random.default_rng(dim).normal(
            eps[:, dim].mean(), eps[:, dim].std(), size=num_batches
        )
        assert stats.ks_2samp(eps[:, dim], gaussian).pvalue < alpha / 10


# --- Theorem 2.2: exact information ------------------------------------------------


@given(
    scales=st.lists(st.floats(min_value=0.05, max_value=0.85), min_size=3, max_size=3),
    source=st.sampled_from(["exponential", "mixture", "uniform"]),
)
def test_constant_scale_gives_information_minus_log_s_for_any_source(scales, source):
    key = jax.random.key(8)
    x = {
        "exponential": lambda: jax.random.exponential(key, (40, 3)),
        "mixture": lambda: jnp.sign(jax.random.normal(key, (40, 3))) * 3.0,
        "uniform": lambda: jax.random.uniform(key, (40, 3), minval=-5, maxval=5),
    }[source]()
    channel = constant_scale_channel(3, scales, num_terms=30, clip=0.9)
    expected = -sum(math.log(s) for s in scales)
    np.testing.assert_allclose(channel.information(x), expected, rtol=1e-5)
    assert float(jnp.mean(channel.information(x))) == pytest.approx(expected, rel=1e-5)


def test_gaussian_source_with_linear_mean_matches_gaussian_channel():
    # x ~ N(0, Sigma), f(x) = A x, s constant: the Echo noise is Gaussian with the
    # covariance V solving V = A Sigma A^T + S V S, and the channel is a Gaussian
    # channel whose information 0.5 log det Cov(z) - 0.5 log det Cov(S eps) must be
    # -sum log s (Theorem 2.2).
    scales = np.array([0.5, 0.7])
    A = np.array([[1.0, 0.5], [-0.3, 0.8]])
    Sigma = np.array([[1.0, 0.6], [0.6, 2.0]])
    batch, num_terms, num_batches = 32, 31, 3000
    channel = constant_scale_channel(
        2, scales, num_terms=num_terms, clip=0.95, mean_net=linear_net(A)
    )
    V = linalg.solve_discrete_lyapunov(np.diag(scales), A @ Sigma @ A.T)
    chol = np.linalg.cholesky(Sigma)
    k1, k2, k3, k4 = jax.random.split(jax.random.key(9), 4)

    def first_outputs(data_key, sample_key):
        xs = jax.random.normal(data_key, (num_batches, batch, 2)) @ chol.T
        keys = jax.random.split(sample_key, num_batches)
        z = jax.vmap(lambda x, k: channel(x, key=k)[0])(xs, keys)
        return np.asarray(z, dtype=np.float64)

    z = first_outputs(k1, k2)
    eps = np.asarray(
        jax.vmap(lambda x, k: channel.noise(x, key=k)[0])(
            jax.random.normal(k3, (num_batches, batch, 2)) @ chol.T,
            jax.random.split(k4, num_batches),
        ),
        dtype=np.float64,
    )
    for sample in (z, eps):
        empirical = np.cov(sample, rowvar=False)
        # Standard error of a sample covariance of Gaussian data.
        se = np.sqrt((np.outer(np.diag(V), np.diag(V)) + V**2) / num_batches)
        assert np.all(np.abs(empirical - V) < 4 * se)
    S = np.diag(scales)
    gaussian_channel = 0.5 * (
        np.linalg.slogdet(np.cov(z, rowvar=False))[1]
        - np.linalg.slogdet(S @ np.cov(eps, rowvar=False) @ S)[1]
    )
    # log det of a sample covariance has variance ~ 2 d / n; two independent terms.
    se = math.sqrt(2 * (2 * 2 / num_batches)) / 2
    exact = float(jnp.mean(channel.information(jnp.zeros((4, 2)))))
    assert exact == pytest.approx(-np.log(scales).sum(), rel=1e-6)
    assert abs(gaussian_channel - exact) < 4 * se


# --- gradients flow through the noise ----------------------------------------------


def test_gradients_flow_through_the_noise():
    # f(x) = a x and constant s: z_i = a (x_i + s sum_l s^l x_{j_l}), so dz_i/da =
    # z_i / a. Stopping the gradient at the noise would give x_i instead.
    a, s = 1.7, 0.6
    channel = constant_scale_channel(
        1, [s], num_terms=15, clip=0.9, mean_net=linear_net([[a]])
    )
    x = jax.random.normal(jax.random.key(10), (16, 1))
    key = jax.random.key(11)
    z = channel(x, key=key)
    grads = eqx.filter_grad(lambda c: jnp.sum(c(x, key=key)))(channel)
    expected = float(jnp.sum(z)) / a
    assert float(grads.mean_net.weight[0, 0]) == pytest.approx(expected, rel=1e-4)
    assert not math.isclose(expected, float(jnp.sum(x)), rel_tol=1e-2)
    # The noise of example 0 depends on the other examples' inputs.
    jac = jax.jacobian(lambda x: channel(x, key=key)[0, 0])(x)
    assert int(jnp.sum(jac[1:] != 0)) == 15


def test_gradients_match_finite_differences():
    k1, k2, k3 = jax.random.split(jax.random.key(12), 3)
    channel = EchoChannel(
        eqx.nn.MLP(2, 2, 4, 1, key=k1),
        eqx.nn.MLP(2, 2, 4, 1, key=k2),
        latent_dim=2,
        num_terms=5,
    )
    x = jax.random.normal(k3, (6, 2))
    key = jax.random.key(13)
    weights = jnp.linspace(-1.0, 1.0, 12).reshape(6, 2)

    def objective(mean_bias, scale_bias):
        c = eqx.tree_at(lambda c: c.mean_net.layers[-1].bias, channel, mean_bias)
        c = eqx.tree_at(lambda c: c.scale_net.layers[-1].bias, c, scale_bias)
        return jnp.sum(weights * c(x, key=key)) + jnp.sum(c.information(x))

    args = (channel.mean_net.layers[-1].bias, channel.scale_net.layers[-1].bias)
    check_grads(objective, args, order=1, modes=["rev"], atol=2e-2, rtol=2e-2)
