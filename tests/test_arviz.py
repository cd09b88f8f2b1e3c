"""ArviZ reads rdppl results as returned; its posterior summaries are weighted ones.

Runs with whatever ArviZ pip gives: arviz 1.x (arviz-base / arviz-stats /
arviz-plots) reads the ``DataTree`` directly, with no ``sample_dims=`` argument;
arviz 0.x (Python 3.11 wheels) through ``InferenceData.from_datatree``. Skipped
where arviz is not installed. Plots use matplotlib's Agg backend.
"""

import ast
import pathlib
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
ANALYSING = pathlib.Path(__file__).resolve().parents[1] / "docs" / "analysing.md"
arviz_1 = pytest.mark.skipif(LEGACY, reason="arviz 1.x reads the DataTree itself")


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


@pytest.fixture
def agg():
    matplotlib = pytest.importorskip("matplotlib")
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    yield
    plt.close("all")


def test_summary_means_are_the_exact_posterior_means(problem):
    result, W, b, data = problem
    table = az.summary(as_arviz(result), var_names=["z"], kind="stats", round_to="none")
    # rows "z[example, beta, z_dim_0]" in C order
    means = np.asarray(table["mean"], np.float64).reshape(3, len(BETAS), LATENT)
    draws = result["posterior"]["z"].mean(SAMPLE_DIMS).values
    np.testing.assert_allclose(means, draws, rtol=1e-5, atol=1e-6)
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
    # each chain's block of AIS chains has about half the ESS: the mean of the two
    # block estimates has the weighted mean's error; resampling adds at most as much
    bound = 4 * np.sqrt(2 * variance / ess)
    assert bool((np.abs(draws_mean - weighted_mean) < bound).all())


def test_ess_rhat_mcse(problem):
    result, *_ = problem
    data = as_arviz(result)
    assert result["posterior"].sizes["chain"] == 2
    ess = np.asarray(az.ess(data)["z"].values)
    assert ess.shape[-3:] == (3, len(BETAS), LATENT)
    # duplicated draws come in runs, so ArviZ's ESS sees them: about the draws at
    # most (resampled at every temperature the weights are equal, every AIS chain
    # is drawn once, and ESS estimates scatter around the number of draws)
    assert np.all((ess > 1) & (ess <= 1.5 * CHAINS))
    # two independent blocks of AIS chains: on a sound run they agree
    rhat = np.asarray(az.rhat(data)["z"].values)
    assert rhat.shape == ess.shape
    assert np.all(np.isfinite(rhat)) and np.all(rhat < 1.1)
    assert np.all(np.isfinite(np.asarray(az.mcse(data)["z"].values)))


def test_only_the_posterior_declares_sample_dims(problem):
    result, *_ = problem
    for group in result.children:
        attrs = result[group].attrs
        if group == "posterior":
            assert attrs["sample_dims"] == SAMPLE_DIMS
        else:
            assert "sample_dims" not in attrs, group


def test_extract_without_arguments(problem):
    result, *_ = problem
    extracted = az.extract(as_arviz(result))
    assert extracted["z"].sizes["sample"] == CHAINS
    np.testing.assert_allclose(
        extracted["z"].mean("sample").values,
        result["posterior"]["z"].mean(SAMPLE_DIMS).values,
        rtol=1e-6,
    )


def test_extract_after_a_netcdf_round_trip(problem, tmp_path):
    result, *_ = problem
    rdppl.to_netcdf(result, tmp_path / "result.nc")
    loaded = rdppl.from_netcdf(tmp_path / "result.nc")
    assert loaded["posterior"].attrs["sample_dims"] == SAMPLE_DIMS
    assert loaded["rate_distortion"]["rate"].attrs["units"] == "nats"
    extracted = az.extract(as_arviz(loaded))
    assert extracted["z"].sizes["sample"] == CHAINS
    rhat = az.rhat(as_arviz(rdppl.posterior_at(loaded, example=2, beta=0.5)))
    assert np.all(np.isfinite(np.asarray(rhat["z"].values)))


@arviz_1
def test_arviz_reads_the_file_without_rdppl(problem, tmp_path):
    result, *_ = problem
    rdppl.to_netcdf(result, tmp_path / "result.nc")
    assert az.extract(az.from_netcdf(tmp_path / "result.nc"))["z"].sizes["sample"]


PLOTS = ["plot_dist", "plot_forest", "plot_trace_dist", "plot_rank", "plot_trace"]


@arviz_1
@pytest.mark.parametrize("name", PLOTS)
def test_plots_of_a_result_as_returned(problem, agg, name):
    result, *_ = problem
    one = rdppl.posterior_at(result, example=1, beta=1.0)
    for data in (one, result):  # one panel per latent coordinate; or per all of them
        assert getattr(az, name)(data, var_names=["z"]) is not None


# arviz 0.x (Python 3.11) calls a matplotlib API that 3.11 deprecates: theirs, not ours
@pytest.mark.filterwarnings("ignore::matplotlib.MatplotlibDeprecationWarning")
@pytest.mark.skipif(not LEGACY, reason="arviz 0.x's plots")
def test_legacy_plot_trace_of_one_example(problem, agg):
    result, *_ = problem
    one = rdppl.posterior_at(result, example=0, beta=1.0)
    axes = az.plot_trace(az.InferenceData.from_datatree(one), var_names=["z"])
    assert np.shape(axes) == (1, 2)  # compact: both coordinates of z in one row


def _arviz_block():
    """The ArviZ 1.x part of docs/analysing.md: the body of its arviz_plots guard."""
    blocks = ANALYSING.read_text().split("```python\n")[1:]
    for block in (b.split("```")[0] for b in blocks):
        for statement in ast.parse(block).body:
            if isinstance(statement, ast.If) and "arviz_plots" in ast.unparse(
                statement.test
            ):
                return ast.Module(body=statement.body, type_ignores=[])
    raise AssertionError("docs/analysing.md has no ArviZ 1.x block")


@arviz_1
def test_every_arviz_call_in_the_docs_runs_on_a_result_as_returned(problem, agg):
    module = _arviz_block()
    called = {
        node.func.attr
        for node in ast.walk(module)
        if isinstance(node, ast.Call)
        and isinstance(node.func, ast.Attribute)
        and ast.unparse(node.func.value) == "az"
    }
    assert {"extract", "summary", "ess", "rhat", *PLOTS[:4]} <= called
    assert "sample_dims" not in ast.unparse(module)
    result, *_ = problem
    namespace = {"result": result, "rdppl": rdppl, "np": np}
    exec(compile(module, str(ANALYSING), "exec"), namespace)
