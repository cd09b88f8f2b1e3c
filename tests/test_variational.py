"""Gaussian encoders and Alemi et al.'s bounds against linear-Gaussian closed forms."""

import math

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
import numpyro
import numpyro.distributions as dist
import pytest
from hypothesis import given
from hypothesis import strategies as st

import rdppl
from rdppl.program.decoders import decoder_model
from rdppl.variational import (
    GaussianEncoder,
    empirical_entropy,
    gaussian_rate,
    variational_bounds,
)

# Data x ~ N(0, SIGMA_X) in 3 dimensions; encoder e(z|x) = N(A x, diag(ENC_SCALE^2))
# in 2 dimensions; decoder d(x|z) = N(W z + B, SIGMA^2 I).
SIGMA_X = np.array([[1.0, 0.4, 0.0], [0.4, 1.5, -0.3], [0.0, -0.3, 0.8]])
A = np.array([[0.8, -0.2, 0.1], [0.1, 0.6, -0.5]])
ENC_SCALE = np.array([0.6, 0.9])
W = np.array([[0.9, 0.1], [-0.2, 1.1], [0.3, -0.6]])
B = np.array([0.1, -0.2, 0.05])
SIGMA = 0.7


def linear(weight, bias):
    weight = jnp.asarray(weight, jnp.float32)
    layer = eqx.nn.Linear(weight.shape[1], weight.shape[0], key=jax.random.key(0))
    layer = eqx.tree_at(lambda m: m.weight, layer, weight)
    return eqx.tree_at(lambda m: m.bias, layer, jnp.asarray(bias, jnp.float32))


def linear_gaussian_encoder():
    inverse_softplus = np.log(np.expm1(ENC_SCALE))
    return GaussianEncoder(
        linear(A, np.zeros(2)),
        linear(np.zeros((2, 3)), inverse_softplus),
        latent_dim=2,
    )


def closed_forms():
    """H, D, I, R (nats) for the linear-Gaussian data, encoder and decoder."""
    n, k = W.shape
    enc_cov = np.diag(ENC_SCALE**2)
    signal = A @ SIGMA_X @ A.T
    rate = 0.5 * (np.trace(enc_cov) + np.trace(signal) - k - np.log(ENC_SCALE**2).sum())
    residual = np.eye(n) - W @ A
    squared_error = (
        np.trace(residual @ SIGMA_X @ residual.T) + B @ B + np.trace(W @ enc_cov @ W.T)
    )
    distortion = squared_error / (2 * SIGMA**2) + 0.5 * n * np.log(2 * np.pi * SIGMA**2)
    information = 0.5 * (
        np.linalg.slogdet(signal + enc_cov)[1] - np.log(ENC_SCALE**2).sum()
    )
    entropy = 0.5 * np.linalg.slogdet(2 * np.pi * np.e * SIGMA_X)[1]
    return entropy, distortion, information, rate


def test_alemi_bounds_on_linear_gaussian_match_closed_forms():
    entropy, distortion, information, rate = closed_forms()
    # The closed forms themselves satisfy H - D <= I <= R, with room to spare.
    assert entropy - distortion < information - 0.1
    assert information < rate - 0.1

    num_examples = 4000
    rng = np.random.default_rng(0)
    data = rng.multivariate_normal(np.zeros(3), SIGMA_X, size=num_examples)
    tree = variational_bounds(
        decoder_model(linear(W, B), latent_dim=2, likelihood="gaussian", scale=SIGMA),
        data,
        encoder=linear_gaussian_encoder(),
        rng_key=jax.random.key(1),
        num_samples=8,
        data_entropy=float(entropy),
    )
    bounds = tree["variational_bounds"]
    assert bounds["rate"].shape == bounds["distortion"].shape == (num_examples,)
    assert bounds["rate"].dims == ("example",)
    # the prior is N(0, I): the rate is the closed-form KL, without Monte Carlo error
    np.testing.assert_array_equal(bounds["rate_standard_error"], 0.0)
    # Each estimate is a mean over i.i.d. examples: compare within 4 standard errors.
    for name, exact in (("rate", rate), ("distortion", distortion)):
        estimate = bounds[name].values
        standard_error = estimate.std(ddof=1) / math.sqrt(num_examples)
        assert abs(estimate.mean() - exact) < 4 * standard_error
    np.testing.assert_allclose(
        bounds["elbo"], -(bounds["rate"] + bounds["distortion"]), rtol=1e-6
    )
    attrs = tree.attrs
    assert attrs["information_upper"] == pytest.approx(float(bounds["rate"].mean()))
    assert attrs["data_entropy"] == pytest.approx(entropy)
    assert attrs["information_lower"] == pytest.approx(
        entropy - float(bounds["distortion"].mean()), rel=1e-6
    )
    assert attrs["information_lower"] <= information <= attrs["information_upper"]
    # The per-example Monte Carlo error is reported and consistent with the spread.
    assert bool(np.all(bounds["distortion_standard_error"] > 0))


@given(
    loc=st.lists(st.floats(-3, 3), min_size=4, max_size=4),
    scale=st.lists(st.floats(0.05, 4.0), min_size=4, max_size=4),
)
def test_gaussian_rate_is_the_kl_to_the_standard_normal(loc, scale):
    loc, scale = np.array(loc), np.array(scale)
    expected = 0.5 * np.sum(scale**2 + loc**2 - 1 - 2 * np.log(scale))
    assert float(gaussian_rate(loc, scale)) == pytest.approx(
        expected, rel=1e-4, abs=1e-5
    )
    assert float(gaussian_rate(np.zeros(4), np.ones(4))) == 0.0


@given(counts=st.lists(st.integers(1, 6), min_size=1, max_size=8))
def test_empirical_entropy_of_rows(counts):
    # Distinct binary rows repeated `count` times, in a shuffled order.
    rows = [
        np.array([(i >> bit) & 1 for bit in range(3)], dtype=float)
        for i in range(len(counts))
    ]
    data = np.concatenate(
        [np.tile(row, (count, 1)) for row, count in zip(rows, counts, strict=True)]
    )
    data = np.random.default_rng(0).permutation(data)
    p = np.array(counts) / sum(counts)
    assert empirical_entropy(data) == pytest.approx(-np.sum(p * np.log(p)))
    assert empirical_entropy(data) <= math.log(len(data)) + 1e-12


def test_empirical_entropy_gives_the_lower_bound_for_discrete_data():
    data = (np.random.default_rng(2).random((50, 3)) > 0.5).astype(float)
    model = decoder_model(linear(np.ones((3, 2)), np.zeros(3)), latent_dim=2)
    tree = variational_bounds(
        model,
        data,
        encoder=linear_gaussian_encoder(),
        rng_key=jax.random.key(3),
        data_entropy="empirical",
    )
    distortion = tree["variational_bounds"]["distortion"]
    assert tree.attrs["data_entropy"] == pytest.approx(empirical_entropy(data))
    assert tree.attrs["information_lower"] == pytest.approx(
        empirical_entropy(data) - float(distortion.mean()), rel=1e-6
    )
    no_entropy = variational_bounds(
        model, data, encoder=linear_gaussian_encoder(), rng_key=jax.random.key(3)
    )
    assert no_entropy.attrs["information_lower"] == "none"
    np.testing.assert_allclose(
        no_entropy["variational_bounds"]["distortion"], distortion
    )


def test_encoder_is_jittable_and_validates_shapes():
    encoder = linear_gaussian_encoder()
    x = jnp.array([0.3, -1.0, 2.0])
    loc, scale = eqx.filter_jit(encoder)(x)
    np.testing.assert_allclose(loc, A @ np.asarray(x), rtol=1e-5)
    np.testing.assert_allclose(scale, ENC_SCALE, rtol=1e-5)
    wrong = GaussianEncoder(
        linear(A, np.zeros(2)), linear(A, np.zeros(2)), latent_dim=3
    )
    with pytest.raises(ValueError, match="latent_dim"):
        wrong(x)
    with pytest.raises(ValueError, match="latent_dim"):
        GaussianEncoder(linear(A, np.zeros(2)), linear(A, np.zeros(2)), latent_dim=0)


@pytest.mark.parametrize(
    "kwargs, match",
    [
        ({"num_samples": 1}, "num_samples"),
        ({"data_entropy": "exact"}, "data_entropy"),
        ({"data": np.full((4, 3), np.nan)}, "finite"),
        ({"encoder": lambda x: (jnp.zeros(3), jnp.ones(3))}, r"loc must have shape"),
    ],
)
def test_variational_bounds_validates_arguments(kwargs, match):
    arguments = {
        "data": np.zeros((4, 3)),
        "rng_key": jax.random.key(0),
        "encoder": linear_gaussian_encoder(),
        **kwargs,
    }
    data = arguments.pop("data")
    model = decoder_model(linear(W, B), latent_dim=2, likelihood="gaussian")
    with pytest.raises(ValueError, match=match):
        variational_bounds(model, data, **arguments)


def test_monte_carlo_rate_for_any_prior_matches_the_closed_form():
    """A non-standard prior gets the Monte Carlo rate E_e[log e - log p], unbiased."""
    prior_scale = np.array([2.0, 0.5])

    @rdppl.model(observed="x")
    def scaled_prior(x=None):
        z = numpyro.sample("z", dist.Normal(0.0, prior_scale).to_event(1))
        numpyro.sample("x", dist.Normal(W @ z + B, SIGMA).to_event(1), obs=x)

    data = np.random.default_rng(4).multivariate_normal(np.zeros(3), SIGMA_X, 200)
    encoder = linear_gaussian_encoder()
    tree = variational_bounds(
        scaled_prior, data, encoder=encoder, rng_key=jax.random.key(5), num_samples=64
    )
    group = tree["variational_bounds"]
    loc = np.asarray(jax.vmap(encoder)(jnp.asarray(data, jnp.float32))[0])
    # KL(N(loc, s^2) || N(0, p^2)) per coordinate
    exact = np.sum(
        np.log(prior_scale / ENC_SCALE)
        + (ENC_SCALE**2 + loc**2) / (2 * prior_scale**2)
        - 0.5,
        axis=-1,
    )
    error = group["rate_standard_error"].values
    assert np.all(error > 0)
    z_scores = (group["rate"].values - exact) / error
    assert abs(z_scores.mean()) < 4 / math.sqrt(len(z_scores))
    assert 0.7 < z_scores.std() < 1.3
