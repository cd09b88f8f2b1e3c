"""Log-likelihood estimators against the closed-form marginal of a linear Gaussian.

``log p(x) = log N(x; b, W W^T + sigma^2 I)`` is exact. Estimator orderings are checked
on the mean over examples, with the standard error across examples (independent runs)
as the Monte Carlo error; an encoder equal to the exact posterior makes IWAE and
AIS-from-the-encoder exact, so those are checked to float32 round-off.
"""

import jax
import jax.numpy as jnp
import numpy as np
import numpyro
import numpyro.distributions as dist
import pytest
from conftest import make_linear_gaussian, simulate_linear_gaussian
from scipy import stats

import rdppl
from rdppl import analytic

EPS32 = float(np.finfo(np.float32).eps)
# One-sided t quantile for means over 16-64 examples (P(t_15 > 4) = 6e-4).
Z_ONE_SIDED = 4.0
NUM_EXAMPLES = 16


def standard_error(values):
    return np.std(values, ddof=1) / np.sqrt(len(values))


def round_off(exact, num_terms=30):
    """float32 round-off of a log weight: a sum of ``num_terms`` terms (n + 2k < 30
    for one importance weight, plus one per temperature for AIS), each of magnitude
    at most about ``1 + |log p(x)|`` and rounded within a few (here 4) ulp. Measured
    errors are about 1 ulp of ``|log p(x)|`` in total."""
    return 4 * num_terms * EPS32 * (1.0 + np.abs(exact))


# --- SIS <= AIS <= exact --------------------------------------------------------------


@pytest.fixture(scope="module")
def sharp_linear_gaussian():
    """4 latents, 12 observations, sigma = 0.3: the posterior is far narrower than the
    prior, so 16 prior samples (SIS) are poor while AIS is close to exact."""
    sigma = 0.3
    model, W, b = make_linear_gaussian(4, 12, sigma, seed=2)
    # SIS errors are heavy-tailed (a few examples lose tens of nats), so 64 examples
    # keep the standard error of the mean difference well below the difference.
    data = simulate_linear_gaussian(W, b, sigma, 64, seed=3)
    exact = analytic.linear_gaussian_log_marginal(W, b, sigma, data)
    return model, data, exact


def test_importance_sampling_below_ais_below_exact(sharp_linear_gaussian):
    model, data, exact = sharp_linear_gaussian
    num_temperatures, num_chains, num_leapfrog = 100, 16, 10
    sis = rdppl.log_likelihood(
        model, data, rng_key=jax.random.key(0), method="importance", num_samples=16
    )
    ais = rdppl.log_likelihood(
        model,
        data,
        rng_key=jax.random.key(1),
        method="ais",
        num_temperatures=num_temperatures,
        num_chains=num_chains,
        kernel=rdppl.HMC(num_leapfrog=num_leapfrog),
    )
    sis_estimate = sis["log_marginal_likelihood"]["log_marginal_likelihood"].values
    ais_estimate = ais["log_marginal_likelihood"]["log_marginal_likelihood"].values
    assert sis["log_marginal_likelihood"]["log_marginal_likelihood"].dims == (
        "example",
    )
    allowance = round_off(exact, 30 + num_temperatures).mean()
    # Both are stochastic lower bounds ...
    for estimate in (sis_estimate, ais_estimate):
        error = estimate - exact
        assert error.mean() <= Z_ONE_SIDED * standard_error(error) + allowance
    # ... and AIS is significantly tighter than importance sampling from the prior.
    difference = sis_estimate - ais_estimate
    assert difference.mean() < -Z_ONE_SIDED * standard_error(difference)
    # Costs: prior samples for SIS; preliminary + formal HMC runs for AIS.
    assert sis.attrs["num_log_density_evaluations"] == 16 * len(data)
    assert sis.attrs["num_gradient_evaluations"] == 0
    per_chain = len(data) * (num_temperatures * num_leapfrog + 1)
    preliminary = ais.attrs["preliminary_chains"]
    assert (
        ais.attrs["num_gradient_evaluations"] == (num_chains + preliminary) * per_chain
    )
    assert ais.attrs["method"] == "ais"
    ess = ais["log_marginal_likelihood"]["importance_ess"].values
    assert np.all((ess >= 1 - 1e-4) & (ess <= num_chains + 1e-3))


# --- an encoder equal to the exact posterior ------------------------------------------

LATENT, OBSERVED, SIGMA = 3, 6, 0.5


def orthogonal_linear_gaussian():
    """W with orthogonal columns: W^T W is diagonal, so the exact posterior
    ``N(mu(x), (I + W^T W / sigma^2)^-1)`` is a diagonal Gaussian."""
    rng = np.random.default_rng(4)
    q, _ = np.linalg.qr(rng.normal(size=(OBSERVED, LATENT)))
    column_scales = np.array([0.5, 1.5, 3.0])
    W = (q * column_scales).astype(np.float32)
    b = rng.normal(size=OBSERVED).astype(np.float32)

    @rdppl.model(observed="x")
    def orthogonal(x=None):
        z = numpyro.sample("z", dist.Normal(0, 1).expand([LATENT]).to_event(1))
        numpyro.sample("x", dist.Normal(W @ z + b, SIGMA).to_event(1), obs=x)

    precision = (1.0 + column_scales**2 / SIGMA**2).astype(np.float32)

    def exact_posterior(x):
        loc = (W.T @ (x - b)) / SIGMA**2 / precision
        return loc, 1.0 / jnp.sqrt(precision)

    return orthogonal, W, b, exact_posterior


@pytest.fixture(scope="module")
def exact_encoder_case():
    model, W, b, encoder = orthogonal_linear_gaussian()
    np.testing.assert_allclose(W.T @ W, np.diag(np.diag(W.T @ W)), atol=1e-6)
    data = simulate_linear_gaussian(W, b, SIGMA, NUM_EXAMPLES, seed=5)
    exact = analytic.linear_gaussian_log_marginal(W, b, SIGMA, data)
    return model, data, exact, encoder


def test_iwae_with_exact_posterior_is_exact(exact_encoder_case):
    # p(x, z) / e(z | x) = p(x) for every z: every weight equals p(x). 1500 samples
    # span two batches of 1024 (the second partly masked), so the count is checked too.
    model, data, exact, encoder = exact_encoder_case
    estimates = []
    for seed in (0, 1):
        result = rdppl.log_likelihood(
            model,
            data,
            rng_key=jax.random.key(seed),
            method="iwae",
            encoder=encoder,
            num_samples=1500,
        )
        estimate = result["log_marginal_likelihood"]["log_marginal_likelihood"].values
        np.testing.assert_allclose(estimate, exact, rtol=0, atol=round_off(exact).max())
        ess = result["log_marginal_likelihood"]["importance_ess"].values
        np.testing.assert_allclose(ess, 1500, rtol=1e-4)
        assert result.attrs["num_log_density_evaluations"] == 1500 * NUM_EXAMPLES
        estimates.append(estimate)
    # Zero variance: another seed gives the same numbers (up to round-off).
    np.testing.assert_allclose(*estimates, rtol=0, atol=round_off(exact).max())


def test_ais_from_exact_posterior_is_exact(exact_encoder_case):
    # f_beta = e^(1-beta) p(x, z)^beta = e(z | x) p(x)^beta: every weight increment is
    # the same constant, so log Zhat = log p(x) whatever the chains do.
    model, data, exact, encoder = exact_encoder_case
    result = rdppl.log_likelihood(
        model,
        data,
        rng_key=jax.random.key(2),
        method="ais_encoder",
        encoder=encoder,
        num_temperatures=5,
        num_chains=8,
        kernel=rdppl.HMC(num_leapfrog=5),
    )
    estimate = result["log_marginal_likelihood"]["log_marginal_likelihood"].values
    np.testing.assert_allclose(estimate, exact, rtol=0, atol=round_off(exact).max())
    ess = result["log_marginal_likelihood"]["importance_ess"].values
    np.testing.assert_allclose(ess, 8, rtol=1e-4)
    assert result.attrs["method"] == "ais_encoder"


def test_encoder_lives_in_unconstrained_space():
    # A positive latent z ~ LogNormal(m, s) with x ~ N(log z, sigma): in unconstrained
    # space u = log z the prior (Jacobian included) is N(m, s^2) and the posterior is
    # Gaussian, so an encoder returning that posterior over u is exact. An encoder
    # over z itself would not be.
    m, s, sigma = 0.3, 0.8, 0.4

    @rdppl.model(observed="x")
    def log_normal(x=None):
        z = numpyro.sample("z", dist.LogNormal(m, s).expand([2]).to_event(1))
        numpyro.sample("x", dist.Normal(jnp.log(z), sigma).to_event(1), obs=x)

    precision = 1 / s**2 + 1 / sigma**2

    def posterior_over_u(x):
        loc = (m / s**2 + x / sigma**2) / precision
        return loc, jnp.full_like(loc, precision**-0.5)

    data = np.random.default_rng(6).normal(m, np.hypot(s, sigma), size=(8, 2))
    exact = stats.norm.logpdf(data, m, np.hypot(s, sigma)).sum(-1)
    result = rdppl.log_likelihood(
        log_normal,
        data,
        rng_key=jax.random.key(3),
        method="iwae",
        encoder=posterior_over_u,
        num_samples=64,
    )
    estimate = result["log_marginal_likelihood"]["log_marginal_likelihood"].values
    np.testing.assert_allclose(estimate, exact, rtol=0, atol=round_off(exact).max())


# --- bad input -----------------------------------------------------------------------


@pytest.fixture(scope="module")
def small_case():
    model, W, b = make_linear_gaussian(2, 3, 0.5)
    return model, simulate_linear_gaussian(W, b, 0.5, 2)


def call(small_case, **kwargs):
    model, data = small_case
    return rdppl.log_likelihood(model, data, rng_key=jax.random.key(0), **kwargs)


def good_encoder(x):
    return jnp.zeros(2), jnp.ones(2)


@pytest.mark.parametrize(
    ("kwargs", "error", "match"),
    [
        (dict(method="kde"), ValueError, r"method must be one of .* got 'kde'"),
        (dict(method="iwae"), ValueError, r"this method needs encoder="),
        (
            dict(method="ais", encoder=good_encoder),
            ValueError,
            r"method 'ais' does not use an encoder",
        ),
        (
            dict(method="importance", encoder=good_encoder),
            ValueError,
            r"method 'importance' does not use an encoder",
        ),
        (
            dict(method="iwae", encoder=lambda x: (jnp.zeros(3), jnp.ones(3))),
            ValueError,
            r"encoder loc must have shape \(2,\) .* got \(3,\)",
        ),
        (
            dict(method="ais_encoder", encoder=lambda x: (jnp.zeros(2), jnp.ones(1))),
            ValueError,
            r"encoder scale must have shape \(2,\)",
        ),
        (
            dict(method="iwae", encoder=lambda x: (jnp.zeros(2), jnp.array([1.0, 0]))),
            ValueError,
            r"encoder scale must be positive",
        ),
        (
            dict(method="iwae", encoder=lambda x: (jnp.zeros(2), -jnp.ones(2))),
            ValueError,
            r"encoder scale must be positive",
        ),
        (
            dict(method="iwae", encoder=lambda x: jnp.zeros(2)),
            ValueError,
            r"encoder\(x\) must return a pair \(loc, scale\)",
        ),
        (dict(method="iwae", encoder="posterior"), TypeError, r"must be callable"),
        (
            dict(method="ais", schedule=np.linspace(0.0, 2.0, 5)),
            ValueError,
            r"a log-likelihood schedule must end at 1, got schedule\[-1\] = 2.0",
        ),
        (
            dict(method="ais_encoder", encoder=good_encoder, schedule=[0.0, 0.5]),
            ValueError,
            r"must end at 1",
        ),
    ],
)
def test_bad_input(small_case, kwargs, error, match):
    with pytest.raises(error, match=match):
        call(small_case, **kwargs)
