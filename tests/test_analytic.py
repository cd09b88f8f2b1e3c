"""The closed-form linear Gaussian curve against independent dense computations."""

import re

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st
from scipy.stats import multivariate_normal

from rdppl.numerics.analytic import linear_gaussian_log_marginal, linear_gaussian_rd

DISTORTIONS = ["nll", "squared_error"]


def random_problem(n, k, seed, num_examples=3):
    rng = np.random.default_rng(seed)
    W = rng.normal(size=(n, k))
    b = rng.normal(size=n)
    sigma = float(rng.uniform(0.3, 2.0))
    x = rng.normal(size=(num_examples, n)) * 2.0
    return W, b, sigma, x


def dense_rd(W, b, sigma, x, beta, distortion):
    """docs/math.md §8 with an explicit inverse of Lambda (no SVD)."""
    n, k = W.shape
    if distortion == "nll":
        scale, constant = 1.0 / (2.0 * sigma**2), 0.5 * n * np.log(2 * np.pi * sigma**2)
    else:
        scale, constant = 1.0, 0.0
    precision = np.eye(k) + 2.0 * beta * scale * W.T @ W
    covariance = np.linalg.inv(precision)
    rates, distortions, log_zs = [], [], []
    for example in x:
        r = example - b
        mu = covariance @ (2.0 * beta * scale * W.T @ r)
        rate = 0.5 * (
            np.trace(covariance) + mu @ mu - k + np.linalg.slogdet(precision)[1]
        )
        residual = r - W @ mu
        distortion_value = (
            scale * (residual @ residual + np.trace(W @ covariance @ W.T)) + constant
        )
        # log Z by completing the square in the Gaussian integral, not via -bD - R:
        # Z = exp(-beta c) int N(z; 0, I) exp(-beta s ||r - W z||^2) dz
        h = 2.0 * beta * scale * W.T @ r
        log_z = (
            -beta * constant
            - beta * scale * r @ r
            + 0.5 * h @ covariance @ h
            - 0.5 * np.linalg.slogdet(precision)[1]
        )
        rates.append(rate)
        distortions.append(distortion_value)
        log_zs.append(log_z)
    return np.array(rates), np.array(distortions), np.array(log_zs)


@pytest.mark.parametrize("distortion", DISTORTIONS)
@pytest.mark.parametrize(("n", "k"), [(2, 5), (5, 2), (3, 3), (1, 4), (4, 1)])
@pytest.mark.parametrize("seed", [0, 1])
def test_matches_dense_computation(n, k, seed, distortion):
    W, b, sigma, x = random_problem(n, k, seed)
    betas = np.array([0.0, 0.01, 0.3, 1.0, 4.0, 50.0])
    curve = linear_gaussian_rd(W, b, sigma, x, betas, distortion=distortion)
    assert curve.rate.shape == curve.distortion.shape == curve.log_z.shape == (3, 6)
    for j, beta in enumerate(betas):
        rate, distortion_value, log_z = dense_rd(W, b, sigma, x, beta, distortion)
        np.testing.assert_allclose(curve.rate[:, j], rate, rtol=1e-9, atol=1e-9)
        np.testing.assert_allclose(
            curve.distortion[:, j], distortion_value, rtol=1e-9, atol=1e-9
        )
        np.testing.assert_allclose(curve.log_z[:, j], log_z, rtol=1e-9, atol=1e-9)


@given(
    n=st.integers(1, 6),
    k=st.integers(1, 6),
    seed=st.integers(0, 2**32 - 1),
    distortion=st.sampled_from(DISTORTIONS),
    beta=st.floats(1e-3, 1e3),
)
def test_matches_dense_computation_property(n, k, seed, distortion, beta):
    W, b, sigma, x = random_problem(n, k, seed)
    curve = linear_gaussian_rd(W, b, sigma, x, [beta], distortion=distortion)
    rate, distortion_value, log_z = dense_rd(W, b, sigma, x, beta, distortion)
    np.testing.assert_allclose(curve.rate[:, 0], rate, rtol=1e-8, atol=1e-8)
    np.testing.assert_allclose(
        curve.distortion[:, 0], distortion_value, rtol=1e-8, atol=1e-8
    )
    np.testing.assert_allclose(curve.log_z[:, 0], log_z, rtol=1e-8, atol=1e-6)


@pytest.mark.parametrize(("n", "k"), [(2, 5), (5, 2), (3, 3)])
def test_log_z_at_beta_one_is_log_marginal(n, k):
    W, b, sigma, x = random_problem(n, k, seed=3)
    curve = linear_gaussian_rd(W, b, sigma, x, [1.0])
    marginal = linear_gaussian_log_marginal(W, b, sigma, x)
    expected = multivariate_normal(b, W @ W.T + sigma**2 * np.eye(n)).logpdf(x)
    np.testing.assert_allclose(marginal, expected, rtol=1e-10)
    np.testing.assert_allclose(curve.log_z[:, 0], marginal, rtol=1e-10)
    # Huang Prop. 2c: -(R + D) = log p(x) at beta = 1 with the nll distortion
    np.testing.assert_allclose(
        -(curve.rate[:, 0] + curve.distortion[:, 0]), marginal, rtol=1e-10
    )


@pytest.mark.parametrize("distortion", DISTORTIONS)
@pytest.mark.parametrize(("n", "k"), [(2, 4), (4, 2)])
def test_derivatives(n, k, distortion):
    W, b, sigma, x = random_problem(n, k, seed=5)
    betas = np.array([0.05, 0.5, 2.0, 20.0])
    h = 1e-5 * betas
    up = linear_gaussian_rd(W, b, sigma, x, betas + h, distortion=distortion)
    down = linear_gaussian_rd(W, b, sigma, x, betas - h, distortion=distortion)
    mid = linear_gaussian_rd(W, b, sigma, x, betas, distortion=distortion)
    slope = (up.rate - down.rate) / (up.distortion - down.distortion)
    np.testing.assert_allclose(slope, -np.broadcast_to(betas, slope.shape), rtol=1e-5)
    # d log Z / d beta = -D
    dlogz = (up.log_z - down.log_z) / (2 * h)
    np.testing.assert_allclose(dlogz, -mid.distortion, rtol=1e-6, atol=1e-6)


@pytest.mark.parametrize("distortion", DISTORTIONS)
@pytest.mark.parametrize(("n", "k"), [(2, 5), (5, 2)])
def test_curve_shape(n, k, distortion):
    W, b, sigma, x = random_problem(n, k, seed=7)
    betas = np.concatenate([[0.0], np.geomspace(1e-4, 1e4, 200)])
    curve = linear_gaussian_rd(W, b, sigma, x, betas, distortion=distortion)
    assert np.all(curve.rate >= -1e-12)
    np.testing.assert_allclose(curve.rate[:, 0], 0.0, atol=1e-12)
    np.testing.assert_allclose(curve.log_z[:, 0], 0.0, atol=1e-12)
    assert np.all(np.diff(curve.distortion, axis=1) <= 1e-12)
    assert np.all(np.diff(curve.rate, axis=1) >= -1e-12)
    np.testing.assert_allclose(
        curve.log_z, -betas * curve.distortion - curve.rate, rtol=1e-12, atol=1e-9
    )
    # R(D) is convex: the slope -beta decreases as D decreases, i.e. chords bend up
    D, R = curve.distortion[0], curve.rate[0]
    chord_slopes = np.diff(R) / np.diff(D)
    assert np.all(np.diff(chord_slopes) <= 1e-6 * np.abs(chord_slopes[1:]))


def test_single_example_and_beta_zero_distortion():
    W, b, sigma, x = random_problem(3, 2, seed=9, num_examples=1)
    curve = linear_gaussian_rd(W, b, sigma, x[0], [0.0])
    assert curve.rate.shape == (1, 1)
    # at beta = 0 the channel is the prior: D = E_p(z)[-log N(x; Wz + b, sigma^2 I)]
    r = x[0] - b
    expected = (r @ r + np.sum(W**2)) / (2 * sigma**2) + 1.5 * np.log(
        2 * np.pi * sigma**2
    )
    np.testing.assert_allclose(curve.distortion[0, 0], expected, rtol=1e-12)


@pytest.mark.parametrize(
    ("kwargs", "pattern"),
    [
        ({"W": np.ones(3)}, "W must have shape (n, k), got (3,)"),
        ({"b": np.ones(2)}, "b must have shape (3,), got (2,)"),
        ({"x": np.ones((2, 4))}, "x must have trailing dimension 3, got shape (2, 4)"),
        ({"betas": [0.0, -1.0]}, "betas must be non-negative, got [ 0. -1.]"),
        ({"sigma": 0.0}, "sigma must be positive, got 0.0"),
        ({"distortion": "l1"}, "distortion must be 'nll' or 'squared_error', got 'l1'"),
    ],
)
def test_rejects_bad_input(kwargs, pattern):
    arguments = {
        "W": np.ones((3, 2)),
        "b": np.zeros(3),
        "sigma": 1.0,
        "x": np.zeros((2, 3)),
        "betas": [0.0, 1.0],
    }
    arguments.update(kwargs)
    distortion = arguments.pop("distortion", "nll")
    with pytest.raises(ValueError, match=re.escape(pattern)):
        linear_gaussian_rd(**arguments, distortion=distortion)
