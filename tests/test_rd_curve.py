"""``rd_curve`` against exact curves: closed forms, quadrature, and properties.

Tolerances come from the Monte Carlo error of each run. Every example is an
independent AIS run, so for a quantity ``q`` (log Z, distortion or rate) the
differences ``q_hat - q_exact`` over ``E`` examples give a mean whose standard error
is their sample standard deviation over ``sqrt(E)``. A test allows ``NUM_SIGMA``
standard errors plus an allowance for the estimator's finite-chain bias:

* ``log Z_hat = log mean(w)`` with ``E[mean(w)] = Z``: by the delta method
  ``E[log Z_hat] - log Z ~ -Var(log Z_hat) / 2`` (and it is never positive in
  expectation, so the upper side gets no allowance).
* ``D_hat`` is a self-normalised importance-sampling mean. Its bias is
  ``-Cov(w, w (d - D)) / M`` for normalised weights, which by Cauchy-Schwarz is at
  most ``sqrt(M / ESS - 1) / sqrt(M)`` times its standard deviation, i.e. below
  ``sd(D_hat) / sqrt(ESS)``, with ESS the run's own effective sample size.
* ``R_hat = -beta D_hat - log Z_hat`` inherits ``beta`` times the first plus the
  second.

The standard deviations are estimated from the spread over examples (which also
absorbs example-to-example differences in bias, so it errs on the generous side).
"""

import warnings

import jax
import jax.numpy as jnp
import numpy as np
import numpyro
import numpyro.distributions as dist
import pytest
from hypothesis import example, given
from hypothesis import strategies as st
from scipy import stats
from scipy.integrate import simpson

import rdppl
from rdppl.numerics.analytic import linear_gaussian_rd

# Comparisons per test are a handful of temperatures times three quantities; with
# standard errors estimated from 32 examples (Student t, 31 degrees of freedom),
# |t| > 5 has probability 2e-5 per comparison.
NUM_SIGMA = 5.0
NUM_EXAMPLES = 32
NUM_CHAINS = 32
NUM_TEMPERATURES = 512
KERNEL = rdppl.HMC(num_leapfrog=10)


def linear_model(W, b, sigma, x=None):
    z = numpyro.sample("z", dist.Normal(0.0, 1.0).expand([W.shape[1]]).to_event(1))
    x_hat = numpyro.deterministic("x_hat", W @ z + b)
    numpyro.sample("x", dist.Normal(x_hat, sigma).to_event(1), obs=x)


# W, b and sigma are arguments, so every model of one shape shares one compilation
LINEAR = rdppl.model(linear_model, observed="x", reconstruction="x_hat")


def linear_problem(latent_dim, observed_dim, sigma, seed):
    rng = np.random.default_rng(seed)
    W = rng.normal(size=(observed_dim, latent_dim)) / np.sqrt(latent_dim)
    b = rng.normal(size=observed_dim)
    z = rng.normal(size=(NUM_EXAMPLES, latent_dim))
    x = z @ W.T + b + sigma * rng.normal(size=(NUM_EXAMPLES, observed_dim))
    return W, b, x


def run_linear(W, b, sigma, x, betas, distortion, seed, kernel=KERNEL, chains=None):
    return rdppl.rd_curve(
        LINEAR,
        x,
        rng_key=jax.random.key(seed),
        schedule=betas,
        num_chains=chains or NUM_CHAINS,
        distortion=distortion,
        kernel=kernel,
        model_args=(W, b, np.asarray(sigma)),
    )


def used_betas(tree):
    """The schedule the reported run used (tuned by default)."""
    return tree["rate_distortion"]["beta"].values


def mean_and_error(difference):
    """Mean over examples (axis 0) and its standard error."""
    count = difference.shape[0]
    return difference.mean(0), difference.std(0, ddof=1) / np.sqrt(count)


def assert_matches_exact(tree, exact, columns, *, label=""):
    """Compare log Z, distortion and rate at schedule ``columns`` with ``exact``.

    ``exact`` maps "log_z", "distortion", "rate" to ``(examples, columns)`` arrays.
    """
    curve = tree["rate_distortion"]
    betas = curve["beta"].values[columns]
    ess = tree["sample_stats"]["importance_ess"].values[:, columns]
    diff = {
        name: curve[name].values[:, columns] - exact[name]
        for name in ("log_z", "distortion", "rate")
    }
    spread = {name: d.std(0, ddof=1) for name, d in diff.items()}
    allowance = {
        "log_z": 0.5 * spread["log_z"] ** 2,
        "distortion": spread["distortion"] * np.sqrt(np.mean(1.0 / ess, axis=0)),
    }
    allowance["rate"] = betas * allowance["distortion"] + allowance["log_z"]
    for name, d in diff.items():
        mean, error = mean_and_error(d)
        tolerance = NUM_SIGMA * error + allowance[name]
        assert np.all(np.abs(mean) <= tolerance), (
            f"{label} {name}: mean error {mean} exceeds {tolerance} at betas {betas}"
        )
    # log Z_hat is a stochastic lower bound: no bias allowance above
    mean, error = mean_and_error(diff["log_z"])
    assert np.all(mean <= NUM_SIGMA * error), f"{label} log Z above exact: {mean}"
    return {
        name: NUM_SIGMA * mean_and_error(d)[1] + allowance[name]
        for name, d in diff.items()
    }


def check_columns(num_temperatures, count=6):
    """A few temperatures spread over the schedule (the last included)."""
    return np.unique(np.linspace(0, num_temperatures, count + 1).astype(int)[1:])


# squared_error is always covered (the generated examples draw it only by chance)
@example(
    latent_dim=2,
    observed_dim=4,
    sigma=0.5,
    beta_max=10.0,
    distortion="squared_error",
    seed=1,
)
@given(
    latent_dim=st.sampled_from([1, 2, 3]),
    observed_dim=st.sampled_from([2, 4]),
    sigma=st.floats(0.3, 1.0),
    beta_max=st.floats(1.0, 20.0),
    distortion=st.sampled_from(["nll", "squared_error"]),
    seed=st.integers(0, 2**16),
)
def test_linear_gaussian_curve(
    latent_dim, observed_dim, sigma, beta_max, distortion, seed
):
    W, b, x = linear_problem(latent_dim, observed_dim, sigma, seed)
    betas = rdppl.sigmoid_schedule(NUM_TEMPERATURES, beta_max=beta_max)
    tree = run_linear(W, b, sigma, x, betas, distortion, seed)
    columns = check_columns(NUM_TEMPERATURES)
    exact = linear_gaussian_rd(
        W, b, sigma, x, used_betas(tree)[columns], distortion=distortion
    )
    tolerance = assert_matches_exact(tree, exact._asdict(), columns, label=distortion)
    # not vacuous: the Monte Carlo error of log Z is small in absolute terms
    assert np.all(tolerance["log_z"] < 0.5)


@pytest.mark.slow
def test_linear_gaussian_curve_with_nuts():
    W, b, x = linear_problem(2, 4, 0.5, seed=11)
    betas = rdppl.sigmoid_schedule(128, beta_max=10.0)
    tree = run_linear(W, b, 0.5, x, betas, "nll", 11, kernel=rdppl.NUTS(), chains=16)
    columns = check_columns(128)
    exact = linear_gaussian_rd(W, b, 0.5, x, used_betas(tree)[columns])
    assert_matches_exact(tree, exact._asdict(), columns, label="NUTS")


def test_linear_gaussian_curve_with_a_blackjax_mala_kernel():
    """Any BlackJAX kernel plugs into AIS: MALA, one gradient per transition."""
    import blackjax

    mala = rdppl.BlackJAXKernel(
        step=blackjax.mcmc.mala.build_kernel(),
        init=blackjax.mcmc.mala.init,
        target_acceptance=0.57,
    )
    W, b, x = linear_problem(2, 4, 0.5, seed=12)
    betas = rdppl.sigmoid_schedule(NUM_TEMPERATURES, beta_max=5.0)
    tree = run_linear(W, b, 0.5, x, betas, "nll", 12, kernel=mala)
    columns = check_columns(NUM_TEMPERATURES)
    exact = linear_gaussian_rd(W, b, 0.5, x, used_betas(tree)[columns])
    tolerance = assert_matches_exact(tree, exact._asdict(), columns, label="MALA")
    assert np.all(tolerance["log_z"] < 0.5)
    # one gradient per move plus the one at each new temperature
    chains = NUM_CHAINS + tree.attrs["preliminary_chains"]
    steps = NUM_TEMPERATURES * NUM_EXAMPLES * chains
    assert tree.attrs["num_gradient_evaluations"] == 2 * steps
    assert np.nanmean(tree["sample_stats"]["acceptance_rate"].values) > 0.3


def exact_by_quadrature(log_prior, distortion, x, betas, grid):
    """Exact log Z, D and R, ``(examples, betas)``, of a one-dimensional model.

    Simpson's rule (scipy.integrate) on a fine grid of the latent itself:
    ``log Z = log int p(z) exp(-beta d(x, z)) dz`` and ``D = E_pi[d]``.
    ``distortion(x_i, grid)`` is ``d(x_i, z)`` on the grid; the grid may be
    non-uniform.
    """
    log_p = log_prior(grid)
    log_z = np.empty((len(x), len(betas)))
    value = np.empty_like(log_z)
    for i, observation in enumerate(x):
        d = distortion(observation, grid)
        log_f = log_p[None, :] - betas[:, None] * d[None, :]
        top = np.max(log_f, axis=1, keepdims=True)
        f = np.exp(log_f - top)
        mass = simpson(f, x=grid, axis=1)
        log_z[i] = top[:, 0] + np.log(mass)
        value[i] = simpson(np.where(f > 0, f * d, 0.0), x=grid, axis=1) / mass
    return {"log_z": log_z, "distortion": value, "rate": -betas * value - log_z}


def normal_logpdf(x, loc, scale):
    return -0.5 * ((x - loc) / scale) ** 2 - np.log(scale) - 0.5 * np.log(2 * np.pi)


def test_quadrature_matches_closed_form():
    """The quadrature used below, checked on a one-dimensional linear Gaussian."""
    W, b, sigma = np.array([[1.3]]), np.array([0.2]), 0.3
    x = np.array([[-1.0], [0.4], [2.5]])
    betas = np.array([0.0, 0.1, 1.0, 4.0])
    exact = linear_gaussian_rd(W, b, sigma, x, betas)

    def nll(observation, z):
        return -normal_logpdf(observation[0], 1.3 * z + 0.2, sigma)

    grid = np.linspace(-9, 9, 200_001)
    quadrature = exact_by_quadrature(
        lambda z: normal_logpdf(z, 0, 1), nll, x, betas, grid
    )
    for name in ("log_z", "distortion", "rate"):
        np.testing.assert_allclose(
            quadrature[name], getattr(exact, name), rtol=1e-8, atol=1e-8
        )


@rdppl.model(observed="x")
def wiggly(x=None):
    z = numpyro.sample("z", dist.Normal(0.0, 1.0))
    numpyro.sample("x", dist.Normal(jnp.sin(2.0 * z) + z, 0.3), obs=x)


# A preliminary run of 4 of the 32 chains can leave one example's step sizes too
# large where its chains split between modes of unequal width: the diagnostic says
# so (docs/benchmarks.md, "Against BlackJAX's tempered SMC"), and the estimates
# still match quadrature.
@pytest.mark.filterwarnings("ignore:rd_curve. acceptance rate far below")
def test_nonlinear_model_against_quadrature():
    # x = sin(2z) + z is not monotone in z: tempered posteriors can be bimodal
    rng = np.random.default_rng(3)
    z = rng.normal(size=NUM_EXAMPLES)
    x = np.sin(2 * z) + z + 0.3 * rng.normal(size=NUM_EXAMPLES)
    betas = rdppl.sigmoid_schedule(NUM_TEMPERATURES, beta_max=4.0)
    # The narrow modes make some examples' transitions divergent: over three random
    # streams the worst of the 32 examples had 6%, 13% and 22% of its transitions
    # divergent (the warning's threshold is 17.5%). The warning is right to be
    # given; what this test checks is the estimates against quadrature.
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", ".*divergent transitions", rdppl.RDWarning)
        tree = rdppl.rd_curve(
            wiggly,
            x,
            rng_key=jax.random.key(3),
            schedule=betas,
            num_chains=NUM_CHAINS,
            kernel=KERNEL,
        )
    columns = check_columns(NUM_TEMPERATURES)

    def nll(observation, z):
        return -normal_logpdf(observation, np.sin(2 * z) + z, 0.3)

    grid = np.linspace(-9, 9, 200_001)
    log_prior = lambda z: normal_logpdf(z, 0.0, 1.0)  # noqa: E731
    exact = exact_by_quadrature(log_prior, nll, x, used_betas(tree)[columns], grid)
    assert_matches_exact(tree, exact, columns, label="sin(2z) + z")


@rdppl.model(observed="x")
def gamma_scale(x=None):
    scale = numpyro.sample("scale", dist.Gamma(2.0, 2.0))
    numpyro.sample("x", dist.Normal(0.0, scale).expand([3]).to_event(1), obs=x)


def test_constrained_latent_against_quadrature():
    """AIS runs in log-scale space; quadrature integrates over the scale itself.

    Agreement requires the log-Jacobian of the exp bijection in the prior term.
    """
    rng = np.random.default_rng(4)
    scale = rng.gamma(2.0, 0.5, size=NUM_EXAMPLES)
    x = scale[:, None] * rng.normal(size=(NUM_EXAMPLES, 3))
    betas = rdppl.sigmoid_schedule(NUM_TEMPERATURES, beta_max=3.0)
    tree = rdppl.rd_curve(
        gamma_scale,
        x,
        rng_key=jax.random.key(4),
        schedule=betas,
        num_chains=NUM_CHAINS,
        kernel=KERNEL,
    )
    columns = check_columns(NUM_TEMPERATURES)

    def log_prior(s):
        return stats.gamma.logpdf(s, 2.0, scale=0.5)

    def nll(observation, s):
        return -np.sum(normal_logpdf(observation[:, None], 0.0, s[None, :]), axis=0)

    # a grid of scale values (denser near 0, where the mass is); the integral is
    # over the scale itself, with no change of variables
    grid = np.geomspace(1e-4, 60.0, 200_001)
    exact = exact_by_quadrature(log_prior, nll, x, used_betas(tree)[columns], grid)
    assert_matches_exact(tree, exact, columns, label="Gamma scale")


@pytest.fixture(scope="module")
def linear_run():
    """One linear Gaussian run (k=2 -> n=4, nll) with its exact curve."""
    sigma = 0.5
    W, b, x = linear_problem(2, 4, sigma, seed=21)
    betas = rdppl.sigmoid_schedule(NUM_TEMPERATURES, beta_max=10.0)
    tree = run_linear(W, b, sigma, x, betas, "nll", seed=21)
    exact = linear_gaussian_rd(W, b, sigma, x, used_betas(tree))
    return tree, exact, (W, b, sigma, x, betas)


def test_log_z_identity_holds_to_rounding(linear_run):
    tree, _, _ = linear_run
    curve = tree["rate_distortion"]
    beta = curve["beta"].values
    log_z, distortion, rate = (curve[n].values for n in ("log_z", "distortion", "rate"))
    assert log_z.dtype == distortion.dtype == rate.dtype == np.float64
    scale = np.abs(beta * distortion) + np.abs(log_z)
    np.testing.assert_allclose(
        log_z,
        -beta * distortion - rate,
        rtol=0,
        atol=4 * np.finfo(float).eps * scale.max(),
    )


def test_log_z_is_a_lower_bound_in_expectation(linear_run):
    tree, exact, _ = linear_run
    mean, error = mean_and_error(tree["rate_distortion"]["log_z"].values - exact.log_z)
    assert np.all(mean <= NUM_SIGMA * error)
    # at beta = 0 every weight is one: log Z_0 = 0 exactly
    np.testing.assert_array_equal(tree["rate_distortion"]["log_z"].values[:, 0], 0.0)


def test_rate_is_non_negative_within_error(linear_run):
    tree, _, _ = linear_run
    rate = tree["rate_distortion"]["rate"].values
    mean, error = mean_and_error(rate)
    assert np.all(mean >= -NUM_SIGMA * error)
    np.testing.assert_array_equal(rate[:, 0], 0.0)
    # the curve starts at R = 0 and rises: clearly positive at beta_max
    assert mean[-1] > NUM_SIGMA * error[-1]


def test_distortion_decreases_within_error(linear_run):
    tree, exact, _ = linear_run
    distortion = tree["rate_distortion"]["distortion"].values
    columns = np.concatenate([[0], check_columns(NUM_TEMPERATURES, count=8)])
    steps = np.diff(distortion[:, columns], axis=1)
    mean, error = mean_and_error(steps)
    assert np.all(mean <= NUM_SIGMA * error)
    # and it does decrease, as the exact curve does
    total_mean, total_error = mean_and_error(distortion[:, 0] - distortion[:, -1])
    assert total_mean > NUM_SIGMA * total_error
    assert np.all(np.diff(exact.distortion, axis=1) < 0)


def test_plain_callable_gives_the_same_curve(linear_run):
    tree, _, (W, b, sigma, x, betas) = linear_run
    plain = rdppl.rd_curve(
        linear_model,
        x,
        rng_key=jax.random.key(21),
        schedule=betas,
        num_chains=NUM_CHAINS,
        kernel=KERNEL,
        observed="x",
        reconstruction="x_hat",
        model_args=(W, b, np.asarray(sigma)),
    )
    for name in ("log_z", "distortion", "rate"):
        np.testing.assert_array_equal(
            plain["rate_distortion"][name].values, tree["rate_distortion"][name].values
        )


def log_of_shifted(x, x_hat):
    """Distortion (x - x_hat)^2 where the reconstruction log(z - shift) is NaN for
    z < shift and -inf at z = shift: infinite distortion on part of the space."""
    return jnp.sum((x - x_hat) ** 2)


def shifted_log(shift, x=None):
    z = numpyro.sample("z", dist.Normal(0.0, 1.0))
    numpyro.deterministic("x_hat", jnp.log(z - shift))
    numpyro.sample("x", dist.Normal(0.0, 1.0), obs=x)


SHIFTED = rdppl.model(shifted_log, observed="x", reconstruction="x_hat")


def run_shifted(x, betas, shift, seed):
    return rdppl.rd_curve(
        SHIFTED,
        x,
        rng_key=jax.random.key(seed),
        schedule=betas,
        num_chains=NUM_CHAINS,
        distortion=log_of_shifted,
        kernel=rdppl.HMC(num_leapfrog=5),
        model_args=(np.asarray(shift),),
        resample_threshold=0,  # dead chains stay dead: what these tests check
        # as many preliminary chains: with 70% dead chains and no resampling, a
        # small preliminary run may have none alive to adapt from
        preliminary_chains=NUM_CHAINS,
    )


def test_nonfinite_distortion_is_counted_and_weighted_zero():
    """Chains where d is not finite get zero weight and are counted.

    For beta > 0 that is exact: exp(-beta d) = 0 where d = +inf, so the curve is
    that of the prior restricted to z > shift, which quadrature gives.
    """
    rng = np.random.default_rng(5)
    x = rng.normal(size=NUM_EXAMPLES)
    betas = rdppl.sigmoid_schedule(NUM_TEMPERATURES, beta_max=2.0)
    tree = run_shifted(x, betas, 0.0, seed=5)
    nonfinite = tree["sample_stats"]["num_nonfinite"].values
    assert np.all(nonfinite > 0) and np.all(nonfinite < NUM_CHAINS)
    # dead chains stay dead: kernels reject moves into the non-finite region
    assert np.all(nonfinite == nonfinite[:, :1])
    ess = tree["sample_stats"]["importance_ess"].values
    assert np.all(ess <= NUM_CHAINS - nonfinite + 1e-3)
    for group in ("rate_distortion",):
        for name, values in tree[group].data_vars.items():
            assert np.all(np.isfinite(values.values)), name
    columns = check_columns(NUM_TEMPERATURES)

    def squared(observation, z):
        return (observation - np.log(z)) ** 2

    # the prior restricted to z > 0 (unnormalised), on a grid of z > 0
    grid = np.geomspace(1e-12, 9.0, 200_001)
    log_prior = lambda z: normal_logpdf(z, 0.0, 1.0)  # noqa: E731
    exact = exact_by_quadrature(log_prior, squared, x, used_betas(tree)[columns], grid)
    assert_matches_exact(tree, exact, columns, label="non-finite region")


def test_step_size_adaptation_ignores_zero_weight_chains():
    """Chains with zero weight must not drive the step size.

    With z ~ N(0, 1) and d infinite for z < 0.5, about 70% of the chains are
    stuck (zero weight, never accepted). If they count in the acceptance rate that
    drives adaptation, the mean is at most ~0.3 < 0.65 whatever the step size, so
    the step size shrinks by 0.98 at every transition (towards the lower bound);
    the live chains, alone, are easy to sample and allow larger steps.
    """
    rng = np.random.default_rng(6)
    x = rng.normal(size=NUM_EXAMPLES)
    betas = rdppl.linear_schedule(NUM_TEMPERATURES, beta_max=0.1)
    tree = run_shifted(x, betas, 0.5, seed=6)
    stats_ = tree["sample_stats"]
    # P(z < 0.5) = 0.69: about 22 of the 32 chains of each example are stuck (the
    # mean over 32 examples has a standard deviation of about 0.5 chain; a single
    # example falls to 10 with probability under 1e-5)
    nonfinite = stats_["num_nonfinite"].values
    assert np.mean(nonfinite) > 0.6 * NUM_CHAINS
    assert np.all(nonfinite > NUM_CHAINS // 3)
    step_size = stats_["step_size"].values[:, 1:]
    grew = np.any(step_size[:, 1:] > step_size[:, :-1], axis=1)
    assert np.all(grew), "the step size only ever shrank"
    # the recorded acceptance rate is that of the chains that matter
    assert np.mean(stats_["acceptance_rate"].values[:, 1:]) > 0.5
