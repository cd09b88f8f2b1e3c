"""BDMC: sandwich bounds on simulated data, reverse AIS, validation, results.

Exact answers come from the linear Gaussian decoder (``rdppl.analytic``): on data
simulated at ``beta*`` the exact ``log Z_beta*(x)`` is known, so both stochastic bounds
can be checked against it. Tolerances are Monte Carlo standard errors across simulated
examples (each example's bounds are independent of the others'), times a quantile that
keeps the family of one-sided checks below about 1e-3 false alarms, plus a float32
round-off allowance; they are never tuned constants.
"""

import math

import jax
import jax.numpy as jnp
import numpy as np
import numpyro
import numpyro.distributions as dist
import pytest
import xarray as xr
from conftest import make_linear_gaussian, simulate_linear_gaussian
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy.special import logsumexp

import rdppl
from rdppl import analytic, estimators
from rdppl.bdmc import simulate, truncate_schedule, validate_bdmc_betas
from rdppl.program.tracing import prior_predictive_example, trace_model
from rdppl.sampler import protocol, records

# One-sided t quantile for a mean of 16 examples: P(t_15 > 4) = 6e-4, so even the
# thorough profile (about 160 such checks) expects well under one false alarm.
Z_ONE_SIDED = 4.0
# Stochastic bounds: P(lower > log Z + b) < exp(-b) and P(upper < log Z - b) < exp(-b)
# (Markov's inequality on Zhat and 1/Zhat), with no Monte Carlo error estimate needed.
# A union over at most ~3000 example-level checks at 1e-3 total gives this b.
MARKOV_SLACK = math.log(3000 / 1e-3)
EPS32 = float(np.finfo(np.float32).eps)
NUM_EXAMPLES = 16
# Few temperatures (loose bounds: the sandwich must hold all the same) and many (the
# gap test compares the two).
FEW, MANY = 10, 200
NUM_CHAINS = 16
OBSERVED_DIM = 4


@rdppl.model(observed="x", reconstruction="x_hat")
def linear_model(W, b, sigma, x=None):
    """``N(0, I) -> N(W z + b, sigma^2 I)``; parameters are traced arguments.

    Passing ``W``, ``b`` and ``sigma`` as ``model_args`` (instead of closing over them,
    as ``conftest.make_linear_gaussian`` does) lets every Hypothesis example of one
    shape reuse the same compiled code.
    """
    z = numpyro.sample("z", dist.Normal(0, 1).expand([W.shape[1]]).to_event(1))
    x_hat = numpyro.deterministic("x_hat", W @ z + b)
    numpyro.sample("x", dist.Normal(x_hat, sigma).to_event(1), obs=x)


def random_parameters(latent_dim, sigma, seed):
    """float32 parameters (the values the model sees) of a random linear decoder."""
    rng = np.random.default_rng(seed)
    W = (rng.normal(size=(OBSERVED_DIM, latent_dim)) / np.sqrt(latent_dim)).astype(
        np.float32
    )
    b = rng.normal(size=OBSERVED_DIM).astype(np.float32)
    return W, b, np.float32(sigma)


def float32_allowance(exact, num_temperatures):
    """Round-off of a float32 AIS log weight: a sum of one increment per temperature
    (plus ~30 for the densities), each within a few (4) ulp of ``1 + |log Z|``."""
    return 4 * (num_temperatures + 30) * EPS32 * (1.0 + np.abs(exact))


def run_bdmc(W, b, sigma, beta, num_temperatures, distortion, seed, **kwargs):
    """BDMC at one ``beta*`` over a sigmoid schedule ending at ``beta*`` (so every
    run takes exactly ``num_temperatures`` steps), and the exact ``log Z`` on the
    simulated data."""
    result = rdppl.bdmc(
        linear_model,
        rng_key=jax.random.key(seed),
        betas=[beta],
        schedule=rdppl.sigmoid_schedule(num_temperatures, beta_max=beta),
        num_examples=kwargs.pop("num_examples", NUM_EXAMPLES),
        num_chains=kwargs.pop("num_chains", NUM_CHAINS),
        distortion=distortion,
        kernel=kwargs.pop("kernel", rdppl.HMC(num_leapfrog=10)),
        model_args=(W, b, sigma),
        **kwargs,
    )
    x = result["observed_data"]["x"].values[:, 0]
    exact = analytic.linear_gaussian_rd(
        W.astype(np.float64),
        b.astype(np.float64),
        float(sigma),
        x,
        [beta],
        distortion=distortion,
    ).log_z[:, 0]
    bounds = result["bdmc"].to_dataset().isel(beta=0)
    return result, bounds["lower"].values, bounds["upper"].values, exact


def standard_error(values):
    return np.std(values, ddof=1) / np.sqrt(len(values))


def assert_sandwich(lower, upper, exact, num_temperatures):
    """``E[lower] <= log Z <= E[upper]`` within Monte Carlo error, per example mean."""
    allowance = float32_allowance(exact, num_temperatures).mean()
    below, above = lower - exact, upper - exact
    assert below.mean() <= Z_ONE_SIDED * standard_error(below) + allowance
    assert above.mean() >= -Z_ONE_SIDED * standard_error(above) - allowance
    # Example by example, the distribution-free tail bounds of stochastic bounds.
    assert np.all(below <= MARKOV_SLACK)
    assert np.all(above >= -MARKOV_SLACK)
    assert np.all(np.isfinite(lower)) and np.all(np.isfinite(upper))


# --- the sandwich on random linear Gaussian models ----------------------------------


@given(
    latent_dim=st.sampled_from([1, 3]),
    sigma=st.floats(0.3, 1.5),
    beta=st.sampled_from([0.3, 1.0, 3.0]),
    seed=st.integers(0, 2**16),
)
def test_sandwich_nll(latent_dim, sigma, beta, seed):
    # Gaussian observation: data can be simulated at any beta* (noise sigma/sqrt(beta)).
    W, b, sigma = random_parameters(latent_dim, sigma, seed)
    result, lower, upper, exact = run_bdmc(W, b, sigma, beta, FEW, "nll", seed)
    assert_sandwich(lower, upper, exact, FEW)
    assert result["bdmc"]["num_temperatures"].values.tolist() == [[FEW]] * NUM_EXAMPLES


@given(
    latent_dim=st.sampled_from([1, 3]),
    beta=st.sampled_from([0.5, 5.0, 50.0]),
    seed=st.integers(0, 2**16),
)
def test_sandwich_squared_error(latent_dim, beta, seed):
    W, b, sigma = random_parameters(latent_dim, 1.0, seed)
    _, lower, upper, exact = run_bdmc(W, b, sigma, beta, FEW, "squared_error", seed)
    assert_sandwich(lower, upper, exact, FEW)


SANDWICH_OPTIONS = {
    # bdmc's default kernel: Hamiltonian AIS, one leapfrog step, evaluations handed on
    "default kernel": {"kernel": None},
    "diagonal": {"kernel": rdppl.HMC(num_leapfrog=5, mass_matrix="diagonal")},
    "dense": {"kernel": rdppl.HMC(num_leapfrog=5, mass_matrix="dense")},
    "hais": {
        "kernel": rdppl.HMC(
            num_leapfrog=3,
            mass_matrix="diagonal",
            persistence=0.8,
            step_size_jitter=0.3,
        )
    },
    "tuned schedule": {"tune_schedule": True},
    "resampling": {"resample_threshold": 0.7},
}


@pytest.mark.parametrize("option", list(SANDWICH_OPTIONS))
@settings(max_examples=max(2, settings.default.max_examples // 3))
@given(
    sigma=st.floats(0.3, 1.5),
    beta=st.sampled_from([0.3, 3.0]),
    seed=st.integers(0, 2**16),
)
def test_sandwich_holds_with_every_option(option, sigma, beta, seed):
    """``E[lower] <= log Z <= E[upper]`` with each preconditioning, momentum, schedule
    and resampling option, on random 3-latent linear Gaussian models."""
    W, b, sigma = random_parameters(3, sigma, seed)
    _, lower, upper, exact = run_bdmc(
        W, b, sigma, beta, FEW, "nll", seed, **SANDWICH_OPTIONS[option]
    )
    assert_sandwich(lower, upper, exact, FEW)


@pytest.mark.parametrize("distortion", ["nll", "squared_error"])
def test_gap_shrinks_with_more_temperatures(distortion):
    # A sharp posterior (beta* = 20 on squared error, sigma = 0.2 and beta* = 1 on the
    # nll) in 3 dimensions: 5 temperatures leave a gap of nats, 200 far less. The
    # gap at few temperatures is heavy-tailed across examples; with 64 examples the
    # difference is about 6 standard errors (gaps of 1.4-1.9 +- 0.2 nats at 5
    # temperatures over the seeds we tried, 0.7-1.1 +- 0.15 at 10).
    sigma, beta = (0.2, 1.0) if distortion == "nll" else (1.0, 20.0)
    W, b, sigma = random_parameters(3, sigma, 7)
    gaps = {}
    few = 5
    for num_temperatures in (few, MANY):
        _, lower, upper, exact = run_bdmc(
            W,
            b,
            sigma,
            beta,
            num_temperatures,
            distortion,
            num_temperatures,
            num_examples=64,
        )
        assert_sandwich(lower, upper, exact, num_temperatures)
        gaps[num_temperatures] = upper - lower
    difference = gaps[few].mean() - gaps[MANY].mean()
    error = np.hypot(standard_error(gaps[few]), standard_error(gaps[MANY]))
    assert difference > Z_ONE_SIDED * error
    # The gap bounds the error of each bound, and is itself >= 0 in expectation.
    assert gaps[MANY].mean() >= -Z_ONE_SIDED * standard_error(gaps[MANY])


# --- one temperature step: the harmonic mean estimator -------------------------------


def nll_by_hand(W, b, sigma, x, z):
    """``-log N(x; W z + b, sigma^2 I)`` in float64; ``z`` has shape (..., k)."""
    residual = x - (z @ W.T.astype(np.float64) + b)
    n = W.shape[0]
    return 0.5 * np.sum(residual**2, axis=-1) / sigma**2 + 0.5 * n * np.log(
        2 * np.pi * sigma**2
    )


def test_reverse_ais_with_one_step_is_the_harmonic_mean_estimator():
    # On the schedule [0, beta*], reverse AIS moves every chain once from z* with a
    # kernel leaving pi_beta* invariant (so the states y_i are posterior samples) and
    # adds beta* d(x, y_i): upper = -log mean_i exp(beta* d(x, y_i)), the harmonic
    # mean estimator of Z (E[1 / L(y)] = 1 / Z under the posterior). Recomputed here
    # in float64 from the chains' final states.
    W, b, sigma = random_parameters(2, 0.5, 3)
    beta = 2.0
    template = jnp.zeros(OBSERVED_DIM)
    spec = trace_model(linear_model, template, model_args=(W, b, sigma))
    data, exact_position, _ = simulate(
        spec, jax.random.key(0), jnp.float32(beta), template, 8
    )
    run = protocol.reverse(
        spec,
        rdppl.HMC(num_leapfrog=10),
        rng_key=jax.random.key(1),
        data=data,
        betas=np.array([0.0, beta]),
        exact_position=exact_position,
        num_chains=NUM_CHAINS,
        tuning=records.Tuning(np.full((1, 8), 0.1), np.ones((1, 8, 1))),
    )
    upper = -np.asarray(estimators.log_mean_exp(jnp.asarray(run.final_log_weight)))
    states = run.final_position.astype(np.float64)
    d = nll_by_hand(W, b, float(sigma), np.asarray(data, np.float64)[:, None], states)
    harmonic_mean = -(logsumexp(beta * d, axis=1) - np.log(NUM_CHAINS))
    # float32 distortions of magnitude |beta d| (a few tens): relative 1e-5 is ~100 ulp.
    np.testing.assert_allclose(upper, harmonic_mean, rtol=1e-5, atol=1e-5)
    # Most chains did move (HMC rejects some proposals), so the check is not about z*
    # alone.
    moved = np.any(states != np.asarray(exact_position)[:, None], axis=-1)
    assert moved.mean() > 0.5


def test_one_step_with_a_frozen_kernel_evaluates_the_exact_sample():
    # With a kernel that barely moves (one leapfrog step of 1e-6) every reverse chain
    # stays at z*, so upper = -beta* d(x, z*): the harmonic mean estimator with the
    # single exact sample. Checked through the public API and the stored z* and x.
    W, b, sigma = random_parameters(2, 0.5, 4)
    beta = 2.0
    frozen = rdppl.HMC(num_leapfrog=1, step_size=1e-6, adapt_step_size=False)
    result = rdppl.bdmc(
        linear_model,
        rng_key=jax.random.key(2),
        betas=[beta],
        schedule=[0.0, beta],
        num_examples=8,
        num_chains=4,
        kernel=frozen,
        model_args=(W, b, sigma),
    )
    z_star = result["true_latents"]["z"].values[:, 0]
    x = result["observed_data"]["x"].values[:, 0]
    expected = -beta * nll_by_hand(W, b, float(sigma), x, z_star)
    upper = result["bdmc"]["upper"].values[:, 0]
    # A move of ~1e-6 changes d by |grad d| * 1e-6 (grad ~ 10 here); float32 ~ 1e-6.
    np.testing.assert_allclose(upper, expected, rtol=1e-5, atol=1e-4)
    # The reverse weights of one example are identical: effective sample size = M.
    np.testing.assert_allclose(result["bdmc"]["reverse_importance_ess"], 4.0, rtol=1e-5)


def test_tiny_beta_bounds_agree():
    # At beta* = 1e-6 (data noise sigma / sqrt(beta*) = 500 sigma) the tempered
    # posterior is nearly the prior: beta* d varies over the prior by ~1e-3 nats while
    # log Z is a few nats. Both bounds are log-mean-exps of -beta* d (forward: prior
    # draws; reverse: one move from z*), so each lies within a few standard deviations
    # of beta* d under the prior of the exact value, and the two agree to ~1e-3 of
    # |log Z|. The standard deviation is estimated from 10^5 prior draws; the reverse
    # chains share their start, so it is not divided by sqrt(M).
    W, b, sigma = random_parameters(2, 0.5, 5)
    beta = 1e-6
    result = rdppl.bdmc(
        linear_model,
        rng_key=jax.random.key(3),
        betas=[beta],
        schedule=rdppl.sigmoid_schedule(10, beta_max=1.0),  # truncated to [0, beta*]
        num_examples=8,
        num_chains=NUM_CHAINS,
        kernel=rdppl.HMC(num_leapfrog=10),
        model_args=(W, b, sigma),
    )
    bounds = result["bdmc"].to_dataset().isel(beta=0)
    assert bounds["num_temperatures"].values.tolist() == [1] * 8
    x = result["observed_data"]["x"].values[:, 0].astype(np.float64)
    exact = analytic.linear_gaussian_rd(W, b, float(sigma), x, [beta]).log_z[:, 0]
    z = np.random.default_rng(0).normal(size=(100_000, 2))
    spread = np.array(
        [np.std(beta * nll_by_hand(W, b, float(sigma), xi, z)) for xi in x]
    )
    tolerance = 6 * spread + float32_allowance(exact, 1)
    lower, upper = bounds["lower"].values, bounds["upper"].values
    assert np.all(np.abs(lower - exact) <= tolerance)
    assert np.all(np.abs(upper - exact) <= tolerance)
    assert np.all(np.abs(upper - lower) <= 2 * tolerance)


# --- schedule truncation --------------------------------------------------------------


def test_truncate_schedule():
    schedule = np.array([0.0, 0.5, 1.0, 2.0])
    np.testing.assert_array_equal(truncate_schedule(schedule, 1.0), [0, 0.5, 1])
    np.testing.assert_array_equal(truncate_schedule(schedule, 1.5), [0, 0.5, 1, 1.5])
    np.testing.assert_array_equal(truncate_schedule(schedule, 0.1), [0, 0.1])
    np.testing.assert_array_equal(truncate_schedule(schedule, 2.0), schedule)


# --- bad input -----------------------------------------------------------------------


@pytest.fixture(scope="module")
def small_linear():
    model, W, b = make_linear_gaussian(2, 3, 0.5)
    return model, W, b


def call_bdmc(model, betas, schedule=(0.0, 0.5, 1.0, 2.0), **kwargs):
    return rdppl.bdmc(
        model,
        rng_key=jax.random.key(0),
        betas=betas,
        schedule=np.asarray(schedule),
        num_examples=2,
        num_chains=2,
        **kwargs,
    )


@pytest.mark.parametrize(
    ("betas", "match"),
    [
        ([3.0], r"beta\* = 3.0 lies outside the schedule, which ends at 2.0"),
        ([0.0], r"beta\* must be finite and positive, got 0.0"),
        ([-1.0], r"beta\* must be finite and positive, got -1.0"),
        ([math.inf], r"beta\* must be finite and positive, got inf"),
        ([1.0, 1.0], r"bdmc betas must be distinct, got \[1.0, 1.0\]"),
        ([], r"non-empty"),
    ],
)
def test_bad_beta_star(small_linear, betas, match):
    with pytest.raises(ValueError, match=match):
        call_bdmc(small_linear[0], betas)


def test_bad_beta_star_in_rd_curve(small_linear):
    model, W, b = small_linear
    data = simulate_linear_gaussian(W, b, 0.5, 2)
    with pytest.raises(ValueError, match=r"beta\* = 5.0 lies outside the schedule"):
        rdppl.rd_curve(
            model,
            data,
            rng_key=jax.random.key(0),
            schedule=rdppl.sigmoid_schedule(5, beta_max=2.0),
            bdmc_betas=[1.0, 5.0],
        )


@pytest.mark.parametrize("count", [0, 2.5])
def test_bad_bdmc_num_examples_in_rd_curve(small_linear, count):
    # Must be refused before any computation, like num_chains (rdppl.bdmc validates
    # num_examples; rd_curve forwarded bdmc_num_examples unchecked: 0 gave an empty
    # certificate, 2.5 a TypeError from inside JAX after the whole curve had run).
    model, W, b = small_linear
    data = simulate_linear_gaussian(W, b, 0.5, 2)
    with pytest.raises(ValueError, match="bdmc_num_examples must be a positive int"):
        rdppl.rd_curve(
            model,
            data,
            rng_key=jax.random.key(0),
            schedule=rdppl.sigmoid_schedule(5, beta_max=2.0),
            num_chains=2,
            bdmc_betas=[1.0],
            bdmc_num_examples=count,
        )


def test_user_distortion_cannot_be_simulated(small_linear):
    def l1(x, x_hat):
        return jnp.sum(jnp.abs(x - x_hat))

    with pytest.raises(ValueError, match="cannot simulate data for a user distortion"):
        call_bdmc(small_linear[0], [1.0], distortion=l1)


@rdppl.model(observed="x")
def bernoulli_decoder(x=None):
    z = numpyro.sample("z", dist.Normal(0, 1).expand([2]).to_event(1))
    logits = jnp.array([[1.0, -1.0], [0.5, 2.0], [-1.0, 0.3]]) @ z
    numpyro.sample("x", dist.Bernoulli(logits=logits).to_event(1), obs=x)


@rdppl.model(observed="x")
def latent_scale(x=None):
    z = numpyro.sample("z", dist.Normal(0, 1).expand([2]).to_event(1))
    numpyro.sample(
        "x", dist.Normal(z[0] * jnp.ones(3), jnp.exp(z[1])).to_event(1), obs=x
    )


@pytest.mark.numpyro_promotion
@pytest.mark.parametrize(
    ("model", "match"),
    [
        (bernoulli_decoder, r"beta\* = \[0.5\] for observation distribution Bernoulli"),
        (latent_scale, r"the scale of observed site 'x' depends on the latents"),
    ],
)
def test_nll_not_simulable_away_from_one(model, match):
    with pytest.raises(ValueError, match=match):
        call_bdmc(model, [0.5, 1.0])
    # At beta* = 1 the data is simply x ~ p(x | z*): accepted.
    template = prior_predictive_example(model)
    structure = trace_model(model, template).structure
    schedule = np.array([0.0, 1.0])
    accepted = validate_bdmc_betas(structure, [1.0], schedule)
    np.testing.assert_array_equal(accepted, [1.0])


# --- results: rd_curve(bdmc_betas=...), cost, netCDF ---------------------------------


def test_rd_curve_attaches_bdmc_and_counts_its_cost(small_linear, tmp_path):
    model, W, b = small_linear
    data = simulate_linear_gaussian(W, b, 0.5, 3)
    schedule = rdppl.sigmoid_schedule(12, beta_max=4.0)
    # bdmc_num_examples = len(data): the BDMC run at beta* = 4 (the whole schedule)
    # reuses the curve's compiled code.
    num_chains, num_leapfrog, bdmc_examples = 4, 3, 3
    result = rdppl.rd_curve(
        model,
        data,
        rng_key=jax.random.key(0),
        schedule=schedule,
        num_chains=num_chains,
        kernel=rdppl.HMC(num_leapfrog=num_leapfrog),
        bdmc_betas=[1.0, 4.0],
        bdmc_num_examples=bdmc_examples,
    )
    assert {"rate_distortion", "bdmc", "bdmc_observed_data"} <= set(result.children)
    bounds = result["bdmc"].to_dataset()
    for name in ("lower", "upper", "gap", "distortion", "num_temperatures"):
        assert bounds[name].dims == ("example", "beta")
        assert bounds[name].shape == (bdmc_examples, 2)
    np.testing.assert_array_equal(bounds["beta"], [1.0, 4.0])
    assert result["bdmc_observed_data"]["x"].dims[:2] == ("example", "beta")
    assert result["bdmc_observed_data"]["x"].shape == (bdmc_examples, 2, 3)
    assert np.all(np.isfinite(bounds["lower"])) and np.all(np.isfinite(bounds["upper"]))
    np.testing.assert_allclose(bounds["gap"], bounds["upper"] - bounds["lower"])
    # Each beta* walks the schedule truncated at beta*.
    steps = bounds["num_temperatures"].values[0]
    expected_steps = [len(truncate_schedule(schedule, beta)) - 1 for beta in (1, 4)]
    np.testing.assert_array_equal(steps, expected_steps)
    # HMC costs num_chains * num_leapfrog gradients per example and step, and each
    # run evaluates its chains once at the start; the curve does a preliminary and a
    # formal run, BDMC a preliminary, a formal and a reverse run at each beta*.
    prelim = result.attrs["preliminary_chains"]
    assert prelim == 2  # a sixteenth of 4 chains, at least 2
    per_chain = len(data) * (12 * num_leapfrog + 1)
    curve_cost = (prelim + num_chains) * per_chain
    bdmc_cost = sum(
        bdmc_examples * (prelim + 2 * num_chains) * (k * num_leapfrog + 1)
        for k in steps
    )
    assert result.attrs["num_gradient_evaluations"] == curve_cost + bdmc_cost
    assert result.attrs["preliminary_gradient_evaluations"] == prelim * per_chain
    # The groups keep their own example and beta coordinates through netCDF.
    rdppl.to_netcdf(result, tmp_path / "curve.nc")
    loaded = rdppl.from_netcdf(tmp_path / "curve.nc")
    for group in ("bdmc", "bdmc_observed_data", "rate_distortion"):
        xr.testing.assert_identical(
            loaded[group].to_dataset(), result[group].to_dataset()
        )


@pytest.mark.parametrize(
    ("distortion", "beta", "noise_variance"),
    [("nll", 0.25, 0.5**2 / 0.25), ("squared_error", 2.0, 0.5 / 2.0)],
)
def test_simulate_draws_exact_pairs_at_beta_star(distortion, beta, noise_variance):
    # z* ~ N(0, I) and x = W z* + b + noise with variance sigma^2 / beta* (nll) or
    # 1 / (2 beta*) (squared_error). Sample moments of 4096 pairs, within 4 standard
    # errors (sd of a sample mean 1/sqrt(N), of a sample variance var * sqrt(2 / N),
    # of a chi-square(k) mean sqrt(2k / N)). The BDMC sandwich itself is insensitive
    # to a slightly wrong simulation: the reverse chain forgets its start over the
    # closely spaced top temperatures of a sigmoid schedule.
    W, b, sigma = random_parameters(3, 0.5, 12)
    spec = trace_model(
        linear_model,
        jnp.zeros(OBSERVED_DIM),
        distortion=distortion,
        model_args=(W, b, sigma),
    )
    data, position, latents = simulate(
        spec, jax.random.key(6), jnp.float32(beta), jnp.zeros(OBSERVED_DIM), 4096
    )
    z = np.asarray(latents["z"], np.float64)
    np.testing.assert_array_equal(position, latents["z"])  # real support: identity
    residual = np.asarray(data, np.float64) - (z @ W.T + b)
    assert abs(np.mean(residual**2) - noise_variance) <= Z_ONE_SIDED * (
        noise_variance * np.sqrt(2 / residual.size)
    )
    assert abs(np.mean(residual)) <= Z_ONE_SIDED * np.sqrt(
        noise_variance / residual.size
    )
    assert np.all(np.abs(z.mean(axis=0)) <= Z_ONE_SIDED / np.sqrt(len(z)))
    assert np.all(np.abs(z.var(axis=0) - 1) <= Z_ONE_SIDED * np.sqrt(2 / len(z)))
    # What BDMC needs: given x, z* is an exact sample of pi_beta*(z | x) = N(mu, L^-1)
    # with L = I + 2 beta* c W^T W, c = 1 / (2 sigma^2) (nll) or 1 (squared error).
    # Then (z* - mu)^T L (z* - mu) is chi-square with k degrees of freedom.
    c = 0.5 / float(sigma) ** 2 if distortion == "nll" else 1.0
    precision = np.eye(3) + 2 * beta * c * W.T @ W
    mu = np.linalg.solve(precision, 2 * beta * c * W.T @ (np.asarray(data) - b).T).T
    quadratic = np.einsum("ei,ij,ej->e", z - mu, precision, z - mu)
    assert abs(quadratic.mean() - 3) <= Z_ONE_SIDED * np.sqrt(2 * 3 / len(z))
    # ... and its components are independent standard normals.
    whitened = (z - mu) @ np.linalg.cholesky(precision)
    assert np.all(np.abs(whitened.mean(axis=0)) <= Z_ONE_SIDED / np.sqrt(len(z)))


@pytest.fixture(scope="module")
def squared_error_bdmc():
    # Shapes of the squared-error sandwich test (3 latents, FEW temperatures to the
    # largest beta*), so the run at beta* = 8 reuses its compiled code.
    W, b, sigma = random_parameters(3, 1.0, 11)
    return rdppl.bdmc(
        linear_model,
        rng_key=jax.random.key(5),
        betas=[2.0, 8.0],
        schedule=rdppl.sigmoid_schedule(FEW, beta_max=8.0),
        num_examples=NUM_EXAMPLES,
        num_chains=NUM_CHAINS,
        distortion="squared_error",
        kernel=rdppl.HMC(num_leapfrog=10),
        model_args=(W, b, sigma),
    )


def test_bdmc_result_round_trips_through_netcdf(squared_error_bdmc, tmp_path):
    result = squared_error_bdmc
    assert set(result.children) == {"bdmc", "observed_data", "true_latents"}
    assert result["bdmc"]["gap"].dims == ("example", "beta")
    assert result["true_latents"]["z"].dims == ("example", "beta", "z_dim_0")
    path = tmp_path / "bdmc.nc"
    rdppl.to_netcdf(result, path)
    loaded = rdppl.from_netcdf(path)
    assert set(loaded.children) == set(result.children)
    for group in result.children:
        xr.testing.assert_identical(
            loaded[group].to_dataset(), result[group].to_dataset()
        )
    assert loaded.attrs.keys() == result.attrs.keys()
    for key, value in result.attrs.items():
        np.testing.assert_array_equal(loaded.attrs[key], value)
