"""ArviZ reads rdppl results, and its posterior summaries are the weighted ones.

Runs with whatever ArviZ pip gives: arviz 1.x (arviz-base / arviz-stats /
arviz-plots) reads the ``DataTree`` directly; arviz 0.x (Python 3.11 wheels) through
``InferenceData.from_datatree``. Skipped where arviz is not installed.
"""

import warnings

import jax
import numpy as np
import pytest
from conftest import make_linear_gaussian, simulate_linear_gaussian

import rdppl

with warnings.catch_warnings():  # arviz 0.x announces its refactor on import
    warnings.simplefilter("ignore", FutureWarning)
    az = pytest.importorskip("arviz")

LEGACY = int(az.__version__.split(".")[0]) < 1
LATENT, OBSERVED, SIGMA, CHAINS = 2, 6, 0.5, 256
BETAS = [0.5, 1.0]
SAMPLE_DIMS = ["chain", "draw"]


def as_arviz(tree):
    """What this arviz reads: the tree itself (1.x) or an InferenceData (0.x)."""
    return az.InferenceData.from_datatree(tree) if LEGACY else tree


def exact_posterior(W, b, x, beta):
    """Mean and covariance of ``pi_beta(z | x)`` of the linear Gaussian decoder."""
    precision = np.eye(W.shape[1]) + beta * W.T @ W / SIGMA**2
    covariance = np.linalg.inv(precision)
    mean = (covariance @ (beta * W.T @ (x - b).T / SIGMA**2)).T
    return mean, covariance


@pytest.fixture(scope="module")
def problem():
    model, W, b = make_linear_gaussian(LATENT, OBSERVED, SIGMA, seed=4)
    data = simulate_linear_gaussian(W, b, SIGMA, 3, seed=5)
    result = rdppl.rd_curve(
        model,
        data,
        rng_key=jax.random.key(0),
        schedule=rdppl.sigmoid_schedule(100, beta_max=1.0),
        num_chains=CHAINS,
        kernel=rdppl.HMC(num_leapfrog=10, target_acceptance=0.8),
        posterior_betas=BETAS,
    )
    return result, W, b, data


def test_summary_means_are_the_exact_posterior_means(problem):
    result, W, b, data = problem
    table = az.summary(as_arviz(result), var_names=["z"], kind="stats", round_to="none")
    # rows "z[example, beta, z_dim_0]" in C order
    means = np.asarray(table["mean"], np.float64).reshape(3, len(BETAS), LATENT)
    draws = result["posterior"]["z"].values[0]  # (draw, example, beta, z_dim_0)
    np.testing.assert_allclose(means, draws.mean(0), rtol=1e-5, atol=1e-6)
    ess = result["sample_stats"]["importance_ess"].sel(beta=BETAS).values
    for j, beta in enumerate(BETAS):
        mean, covariance = exact_posterior(W, b, data, beta)
        # the Monte Carlo standard error of a weighted mean is sd / sqrt(ESS);
        # systematic resampling adds at most as much again: 4 such errors
        error = np.sqrt(np.diag(covariance))[None, :] / np.sqrt(ess[:, j, None])
        np.testing.assert_array_less(np.abs(means[:, j] - mean), 4 * np.sqrt(2) * error)


def test_weighted_posterior_agrees_with_the_draws(problem):
    result, *_ = problem
    weighted = result["weighted_posterior"]
    weighted_mean = (weighted["z"] * weighted["weight"]).sum("ais_chain")
    draws_mean = result["posterior"]["z"].mean(SAMPLE_DIMS)
    variance = (weighted["weight"] * (weighted["z"] - weighted_mean) ** 2).sum(
        "ais_chain"
    )
    ess = result["sample_stats"]["importance_ess"].sel(beta=BETAS)
    # systematic resampling adds at most the weighted estimate's own error
    bound = 4 * np.sqrt(variance / ess)
    assert bool((np.abs(draws_mean - weighted_mean) < bound).all())


def test_ess_rhat_mcse_run(problem):
    result, *_ = problem
    data = as_arviz(result)
    ess = az.ess(data)
    values = np.asarray(ess["z"].values)
    assert values.shape[-3:] == (3, len(BETAS), LATENT)
    # duplicated draws come in runs, so ArviZ's ESS sees them: at most the draws
    assert np.all((values > 1) & (values <= 1.1 * CHAINS))
    rhat = az.rhat(data)  # one pool of draws: NaN, or near 1 where computed
    assert np.asarray(rhat["z"].values).shape == values.shape
    az.mcse(data)


def test_extract(problem):
    result, *_ = problem
    if LEGACY:
        extracted = az.extract(as_arviz(result))
    else:
        extracted = az.extract(result, group="posterior", sample_dims=SAMPLE_DIMS)
    assert extracted["z"].sizes["sample"] == CHAINS
    np.testing.assert_allclose(
        extracted["z"].mean("sample").values,
        result["posterior"]["z"].mean(SAMPLE_DIMS).values,
        rtol=1e-6,
    )


# arviz 0.x (Python 3.11) calls a matplotlib API that 3.11 deprecates: theirs, not ours
@pytest.mark.filterwarnings("ignore::matplotlib.MatplotlibDeprecationWarning")
def test_plot_trace_of_one_example(problem):
    matplotlib = pytest.importorskip("matplotlib")
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    result, *_ = problem
    one = result["posterior"].to_dataset().sel(example=0, beta=1.0)
    if LEGACY:
        axes = az.plot_trace(az.InferenceData(posterior=one), var_names=["z"])
        assert np.size(axes) == 2
    else:
        import xarray as xr

        tree = xr.DataTree.from_dict({"posterior": one})
        plot = az.plot_trace(
            tree, var_names=["z"], backend="matplotlib", sample_dims=SAMPLE_DIMS
        )
        assert plot is not None
    plt.close("all")
