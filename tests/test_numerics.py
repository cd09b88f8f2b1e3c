"""float32 runs at large inverse temperatures (docs/math.md §2.4).

Log weights grow like ``beta * d`` (1e6 nats here). Kept as one float32 number, they
lose their differences when normalised (``exp(lw - logsumexp(lw))`` has relative error
``eps * |lw|``), and the weighted distortion, the rate and the ESS go wrong. rdppl
keeps the factor common to an example's chains apart as a compensated sum and adds it
in float64 on the host, so float32 runs match the closed form as float64 runs do, up
to where float32 can still evaluate ``beta * d`` itself (``beta * eps * |d| << 1``).
"""

import jax
import numpy as np
import numpyro
import numpyro.distributions as dist
import pytest
from test_rd_curve import assert_matches_exact

import rdppl
from rdppl.numerics.analytic import linear_gaussian_rd

LATENT, OBSERVED, SIGMA, EXAMPLES = 2, 8, 0.5, 32


def linear(W, b, x=None):
    z = numpyro.sample("z", dist.Normal(0.0, 1.0).expand([LATENT]).to_event(1))
    x_hat = numpyro.deterministic("x_hat", W @ z + b)
    numpyro.sample("x", dist.Normal(x_hat, SIGMA).to_event(1), obs=x)


MODEL = rdppl.model(linear, observed="x", reconstruction="x_hat")


@pytest.mark.parametrize("distortion", ["squared_error", "nll"])
def test_float32_matches_the_closed_form_up_to_beta_1e6(distortion):
    rng = np.random.default_rng(3)
    W = rng.normal(size=(OBSERVED, LATENT))
    b = rng.normal(size=OBSERVED)
    z = rng.normal(size=(EXAMPLES, LATENT))
    x = z @ W.T + b + SIGMA * rng.normal(size=(EXAMPLES, OBSERVED))
    betas = rdppl.geometric_schedule(1000, beta_max=1e6, beta_min=1e-3)
    tree = rdppl.rd_curve(
        MODEL,
        x,
        rng_key=jax.random.key(4),
        schedule=betas,
        num_chains=16,
        distortion=distortion,
        kernel=rdppl.HMC(num_leapfrog=10),
        model_args=(W, b),
    )
    assert tree["rate_distortion"]["log_z"].dtype == np.float64
    betas = tree["rate_distortion"]["beta"].values  # the default tuned schedule
    columns = [int(np.argmin(np.abs(betas - v))) for v in (1e2, 1e4, 1e6)]
    exact = linear_gaussian_rd(W, b, SIGMA, x, betas[columns], distortion=distortion)
    # |log Z| reaches about 1e6 nats here: float32 keeps no digit after the point
    assert np.max(np.abs(exact.log_z)) > 1e5
    tolerance = assert_matches_exact(tree, exact._asdict(), columns, label=distortion)
    # not vacuous: the error bars are a nat or so (they are 1e5 nats wide when the
    # float32 rounding of the weights reaches the rate)
    assert np.all(tolerance["log_z"] < 1.5), tolerance["log_z"]
    assert np.all(tolerance["rate"] < 3.0), tolerance["rate"]
    ess = tree["sample_stats"]["importance_ess"].values[:, columns]
    assert np.all(ess >= 1.0) and np.all(ess <= 16.0 + 1e-3)


@pytest.mark.parametrize("distortion", ["nll", "squared_error"])
def test_partition_function_estimate_is_unbiased(distortion):
    """``E[Zhat] = Z``: the mean of ``Zhat / Z`` over independent runs is 1.

    Every example is an independent AIS run (the same observation repeated), so the
    ratios are i.i.d.; their mean is compared with 1 within 5 standard errors. A
    wrong weight update, an offset added twice or a frozen quantity leaking from the
    preliminary run biases it (log Zhat alone is biased low by design).
    """
    W = np.array([[1.5]])
    b = np.zeros(1)
    x = np.full((1024, 1), 2.5)
    betas = rdppl.linear_schedule(32, beta_max=4.0)
    tree = rdppl.rd_curve(
        rdppl.model(
            lambda x=None: linear_1d(W, b, x), observed="x", reconstruction="x_hat"
        ),
        x,
        rng_key=jax.random.key(5),
        schedule=betas,
        num_chains=8,
        distortion=distortion,
        kernel=rdppl.HMC(num_leapfrog=3),
    )
    used = tree["rate_distortion"]["beta"].values  # the default tuned schedule
    exact = linear_gaussian_rd(W, b, SIGMA, x, used, distortion=distortion)
    ratio = np.exp(tree["rate_distortion"]["log_z"].values - exact.log_z)
    mean = ratio.mean(0)
    error = ratio.std(0, ddof=1) / np.sqrt(ratio.shape[0])
    assert np.all(np.abs(mean - 1.0) < 5 * error + 1e-6), (mean, error)
    # and the runs are not exact importance sampling in disguise: Zhat varies
    assert np.all(error[1:] > 1e-4)


def linear_1d(W, b, x):
    z = numpyro.sample("z", dist.Normal(0.0, 1.0).expand([1]).to_event(1))
    x_hat = numpyro.deterministic("x_hat", W @ z + b)
    numpyro.sample("x", dist.Normal(x_hat, SIGMA).to_event(1), obs=x)


UNBIASED_OPTIONS = {
    # rd_curve's defaults: Hamiltonian AIS with one leapfrog step, its evaluation
    # handed on between temperatures, a preliminary run of 2 chains
    "defaults": {},
    "plain hmc, gradients handed on": ({"kernel": rdppl.HMC(num_leapfrog=3)}),
    "diagonal": ({"kernel": rdppl.HMC(num_leapfrog=3, mass_matrix="diagonal")}),
    "dense": ({"kernel": rdppl.HMC(num_leapfrog=3, mass_matrix="dense")}),
    "hais": (
        {
            "kernel": rdppl.HMC(
                num_leapfrog=2,
                mass_matrix="diagonal",
                persistence=0.8,
                step_size_jitter=0.3,
            )
        }
    ),
    # Neal's carried acceptance level (rejections in runs)
    "acceptance drift": (
        {"kernel": rdppl.HMC(num_leapfrog=1, persistence=0.9, acceptance_drift=0.05)}
    ),
    "acceptance drift diagonal resampling": (
        {
            "kernel": rdppl.HMC(
                num_leapfrog=2,
                persistence=0.8,
                acceptance_drift=0.3,
                mass_matrix="diagonal",
            ),
            "resample_threshold": 1.0,
        }
    ),
    # no Metropolis test: the energy error goes into the weight
    "uncorrected hais": (
        {
            "kernel": rdppl.HMC(
                num_leapfrog=1, persistence=0.9, metropolis=False, step_size=0.3
            )
        }
    ),
    "tuned schedule": ({"kernel": rdppl.HMC(num_leapfrog=3), "tune_schedule": True}),
    "nuts dense": ({"kernel": rdppl.NUTS(max_num_doublings=3, mass_matrix="dense")}),
    # threshold 1: resample whenever the weights are not all equal
    "resampling": ({"kernel": rdppl.HMC(num_leapfrog=3), "resample_threshold": 1.0}),
    # a preliminary run of 2 chains (its tuning looked ahead, the default)
    "preliminary chains": (
        {"kernel": rdppl.HMC(num_leapfrog=3), "preliminary_chains": 2}
    ),
    # the curve kept at 5 of 17 temperatures: the reported run replays the
    # preliminary run's settings per block of 4 transitions
    "curve points": (
        {
            "kernel": rdppl.HMC(num_leapfrog=3, mass_matrix="diagonal"),
            "num_curve_points": 5,
        }
    ),
    "curve points tuned resampling": (
        {
            "kernel": rdppl.HMC(num_leapfrog=3),
            "tune_schedule": True,
            "resample_threshold": 1.0,
            "num_curve_points": 6,
        }
    ),
    "resampling hais tuned": (
        {
            "kernel": rdppl.HMC(
                num_leapfrog=2,
                mass_matrix="diagonal",
                persistence=0.8,
                step_size_jitter=0.3,
            ),
            "tune_schedule": True,
            "resample_threshold": 0.9,
        }
    ),
}


@pytest.mark.parametrize("option", list(UNBIASED_OPTIONS))
def test_every_option_keeps_the_estimate_unbiased(option):
    """``E[Zhat] = Z`` with each preconditioning / momentum / schedule option.

    A 2-latent linear Gaussian model with correlated posterior (so a dense mass
    matrix differs from a diagonal one), 1024 independent examples. A mass matrix or
    schedule leaking from the reported run, a wrong HAIS momentum flip or a weight
    missing the momentum would bias the mean of ``Zhat / Z``.
    """
    W = np.array([[1.5, 1.0], [0.5, -1.0]])
    b = np.zeros(2)
    x = np.tile(np.array([[2.0, -1.0]]), (1024, 1))
    betas = rdppl.linear_schedule(16, beta_max=3.0)

    def linear_2d(x=None):
        z = numpyro.sample("z", dist.Normal(0.0, 1.0).expand([2]).to_event(1))
        x_hat = numpyro.deterministic("x_hat", W @ z + b)
        numpyro.sample("x", dist.Normal(x_hat, SIGMA).to_event(1), obs=x)

    tree = rdppl.rd_curve(
        rdppl.model(linear_2d, observed="x", reconstruction="x_hat"),
        x,
        rng_key=jax.random.key(7),
        schedule=betas,
        num_chains=4,
        **UNBIASED_OPTIONS[option],
    )
    used = tree["rate_distortion"]["beta"].values
    exact = linear_gaussian_rd(W, b, SIGMA, x, used)
    ratio = np.exp(tree["rate_distortion"]["log_z"].values - exact.log_z)
    mean = ratio.mean(0)
    error = ratio.std(0, ddof=1) / np.sqrt(ratio.shape[0])
    assert np.all(np.abs(mean - 1.0) < 5 * error + 1e-6), (mean, error)
    assert np.all(error[1:] > 1e-4)
    if "resampling" in option:
        resampled = tree["sample_stats"]["resampled"].values
        assert resampled[:, 0].sum() == 0 and resampled.mean() > 0.1
    if option == "tuned schedule":
        assert not np.allclose(used, betas)
        assert used[0] == 0.0 and used[-1] == betas[-1]
