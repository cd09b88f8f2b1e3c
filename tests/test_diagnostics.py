"""Pareto k-hat, the run checks that warn (RDWarning), and rdppl.summary."""

import warnings

import jax
import jax.numpy as jnp
import numpy as np
import numpyro
import numpyro.distributions as dist
import pytest
import xarray as xr
from scipy import stats

import rdppl
from rdppl import diagnostics
from rdppl.numerics.diagnostics import khat_tail_length, pareto_khat

# --- Pareto k-hat -----------------------------------------------------------------


def reference_khat(log_weights):
    """PSIS k-hat of one row, written out in NumPy from Zhang & Stephens (2009)."""
    n_all = len(log_weights)
    tail = khat_tail_length(n_all)
    x = np.sort(np.asarray(log_weights, np.float64) - np.max(log_weights))
    cutoff = np.exp(x[n_all - tail - 1])
    y = np.exp(x[n_all - tail :]) - cutoff
    n = len(y)
    if y[int(n / 4 + 0.5) - 1] <= y[0]:
        return np.nan
    m = 30 + int(np.sqrt(n))
    b = 1 - np.sqrt(m / (np.arange(1, m + 1) - 0.5))
    b = b / (3 * y[int(n / 4 + 0.5) - 1]) + 1 / y[-1]
    k = np.array([np.mean(np.log1p(-bj * y)) for bj in b])
    profile = n * (np.log(-b / k) - k - 1)
    weight = 1 / np.array([np.sum(np.exp(profile - p)) for p in profile])
    weight[weight < 10 * np.finfo(float).eps] = 0
    weight /= weight.sum()
    k_post = np.mean(np.log1p(-np.sum(b * weight) * y))
    return (n * k_post + 10 * 0.5) / (n + 10)


@pytest.mark.parametrize("num_chains", [30, 64, 225, 400])
def test_pareto_khat_matches_a_numpy_reference(num_chains):
    rng = np.random.default_rng(num_chains)
    log_weights = rng.standard_t(3, size=(5, num_chains)) * rng.uniform(
        0.2, 3.0, size=(5, 1)
    )
    with jax.enable_x64(True):
        khat = np.asarray(pareto_khat(jnp.asarray(log_weights)))
    expected = np.array([reference_khat(row) for row in log_weights])
    np.testing.assert_allclose(khat, expected, rtol=1e-9, atol=1e-12)
    # float32, the default precision of a run
    np.testing.assert_allclose(
        np.asarray(pareto_khat(log_weights.astype(np.float32))), expected, atol=2e-3
    )


def test_pareto_khat_matches_arviz_stats():
    array_stats = pytest.importorskip("arviz_stats.base").array_stats
    rng = np.random.default_rng(7)
    log_weights = rng.normal(size=(4, 100)) * 2.0
    with jax.enable_x64(True):
        khat = np.asarray(pareto_khat(jnp.asarray(log_weights), axis=-1))
    # psislw takes log-likelihoods: the weights are exp(-argument)
    expected = [array_stats.psislw(-row, r_eff=1.0)[1] for row in log_weights]
    np.testing.assert_allclose(khat, expected, rtol=1e-9)


@pytest.mark.parametrize("shape", [0.2, 0.6, 1.0])
def test_pareto_khat_recovers_a_generalized_pareto_shape(shape):
    # weights with a generalized Pareto tail of shape k: k-hat estimates k
    rng = np.random.default_rng(0)
    weights = stats.genpareto.rvs(shape, size=(20, 4000), random_state=rng)
    khat = np.asarray(pareto_khat(np.log(weights)))
    # 20 independent fits of 189 tail points each: their mean within 0.1 of k
    assert abs(np.mean(khat) - shape) < 0.1


def test_pareto_khat_axis_and_degenerate_cases():
    rng = np.random.default_rng(1)
    log_weights = rng.normal(size=(40, 3))
    np.testing.assert_allclose(
        pareto_khat(log_weights, axis=0), pareto_khat(log_weights.T), rtol=1e-6
    )
    assert np.isnan(pareto_khat(np.zeros(16)))  # too few chains for a tail fit
    assert np.isnan(pareto_khat(np.zeros(50)))  # equal weights: no tail
    assert np.isnan(pareto_khat(np.full(50, -np.inf)))  # every weight zero
    dead = rng.normal(size=50)
    dead[:5] = -np.inf  # zero weights are allowed
    assert np.isfinite(pareto_khat(dead))
    assert pareto_khat(np.zeros((2, 3, 40)), axis=1).shape == (2, 40)


# --- warnings from runs ------------------------------------------------------------


def _run(model, data, **kwargs):
    settings = dict(
        rng_key=jax.random.key(0),
        schedule=rdppl.sigmoid_schedule(40, beta_max=4.0),
        num_chains=32,
        kernel=rdppl.HMC(num_leapfrog=8),
    )
    return rdppl.rd_curve(model, data, **(settings | kwargs))


def test_a_healthy_run_warns_nothing(linear_gaussian):
    model, _, _, _, data = linear_gaussian
    with warnings.catch_warnings():
        warnings.simplefilter("error", rdppl.RDWarning)
        result = _run(model, data)  # the defaults: tuned schedule, resampling
        plain = _run(model, data, resample_threshold=0)
    # without resampling, k-hat is recorded at every temperature after the first
    # (32 chains: a 6-weight fit); resampled chains tie (equal weights, duplicated
    # chains that have not moved apart), where the fit is undefined (NaN)
    khat = plain["sample_stats"]["pareto_khat"].values[:, 1:]
    assert np.all(np.isfinite(khat)) and np.median(khat) < 0.5
    resampled = result["sample_stats"]["resampled"].values
    assert np.all(np.isnan(result["sample_stats"]["pareto_khat"].values[resampled]))
    assert diagnostics.check_result(plain) == []
    assert diagnostics.check_result(result) == []


@rdppl.model(observed="x")
def _log_of_data(x=None):
    z = numpyro.sample("z", dist.Normal(0.0, 1.0))
    # log(x[0]) is NaN for x[0] < 0: every chain of such an example is lost
    numpyro.sample(
        "x", dist.Normal(z + jnp.log(x[0]), 1.0).expand([2]).to_event(1), obs=x
    )


def test_examples_whose_chains_all_fail_warn():
    data = np.array([[1.0, 0.5], [-1.0, 0.2], [2.0, 0.0]])
    with pytest.warns(rdppl.RDWarning) as caught:
        _run(_log_of_data, data, num_chains=8)
    messages = [str(w.message) for w in caught]
    assert any(
        "every chain's density became non-finite for example 1 at beta in [0, 4]" in m
        for m in messages
    ), messages
    assert len(messages) <= 4  # a few lines, never one per temperature


@rdppl.model(observed="x")
def _sharp(x=None):
    z = numpyro.sample("z", dist.Normal(0.0, 1.0).expand([3]).to_event(1))
    numpyro.sample("x", dist.Normal(z, 0.02).to_event(1), obs=x)


def test_degenerate_weights_warn_khat_and_ess():
    # three temperatures from the prior to a posterior 50 times narrower
    data = np.array([[1.0, -0.5, 0.3], [0.2, 0.1, -0.4]])
    with pytest.warns(rdppl.RDWarning) as caught:
        result = _run(
            _sharp,
            data,
            schedule=rdppl.linear_schedule(3, beta_max=1.0),
            num_chains=100,
        )
    messages = [str(w.message) for w in caught]
    assert any(
        "Pareto k-hat of the importance weights exceeds 0.7" in m for m in messages
    )
    assert any("importance ESS below 5 (5% of 100 chains" in m for m in messages)
    assert any("examples 0, 1" in m for m in messages)
    assert np.nanmax(result["sample_stats"]["pareto_khat"].values) > 0.7


def test_divergences_and_low_acceptance_warn(linear_gaussian):
    model, _, _, _, data = linear_gaussian
    kernel = rdppl.HMC(num_leapfrog=5, step_size=20.0, adapt_step_size=False)
    with pytest.warns(rdppl.RDWarning) as caught:
        _run(model, data, kernel=kernel, num_chains=4)
    messages = [str(w.message) for w in caught]
    assert any("divergent transitions (up to 100.0%)" in m for m in messages)
    assert any("acceptance rate far below its target 0.65" in m for m in messages)
    assert all("examples 0, 1, 2 at beta in" in m for m in messages)


# --- the checks on hand-made groups -------------------------------------------


def _tree(num_examples=3, num_betas=101, num_chains=16, **changes):
    """A healthy-looking rd_curve tree whose sample_stats ``changes`` modify."""
    betas = np.linspace(0.0, 2.0, num_betas)
    shape = (num_examples, num_betas)
    variables = {
        "acceptance_rate": np.full(shape, 0.65),
        "step_size": np.tile(np.linspace(0.1, 0.3, num_betas), (num_examples, 1)),
        "importance_ess": np.full(shape, 0.8 * num_chains),
        "pareto_khat": np.full(shape, 0.2),
        "num_divergent": np.zeros(shape, np.int32),
        "num_nonfinite": np.zeros(shape, np.int32),
    }
    variables["acceptance_rate"][:, 0] = np.nan
    variables["step_size"][:, 0] = np.nan
    for name, change in changes.items():
        change(variables[name])
    stats = xr.Dataset(
        {name: (("example", "beta"), v) for name, v in variables.items()},
        coords={"example": np.arange(num_examples), "beta": betas},
        attrs={
            "target_acceptance": 0.65,
            "adapt_step_size": 1,
            "initial_step_size": 0.05,
            "step_size_min": 1e-4,
            "step_size_max": 0.5,
        },
    )
    tree = xr.DataTree.from_dict({"/sample_stats": stats}, name="rd_curve")
    tree.attrs["num_chains"] = num_chains
    return tree


def _messages(tree):
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        returned = diagnostics.check_result(tree)
    assert [str(w.message) for w in caught] == returned
    assert all(issubclass(w.category, rdppl.RDWarning) for w in caught)
    return returned


def test_hand_made_healthy_tree_warns_nothing():
    assert _messages(_tree()) == []


def test_khat_warning_names_examples_and_betas():
    def high(values):
        values[1, 40:61] = 1.2

    # with 16 chains the fit uses 3 weights: recorded, never warned
    assert _messages(_tree(pareto_khat=high)) == []
    # with 100 chains (20 tail weights) above 0.7 + 1.7 / sqrt(20) = 1.08
    (message,) = _messages(_tree(num_chains=100, pareto_khat=high))
    assert (
        "up to 1.20, above 1.08 with its error) for example 1 at beta in [0.8, 1.2]"
        in (message)
    )

    def moderate(values):
        values[1, 40:61] = 0.9

    # 0.9 is within the error of a 20-weight fit, not of a 300-weight one
    assert _messages(_tree(num_chains=100, pareto_khat=moderate)) == []
    (message,) = _messages(_tree(num_chains=10000, pareto_khat=moderate))
    assert "above 0.80 with its error" in message

    def lone(values):
        values[1, 40] = np.inf

    assert _messages(_tree(num_chains=100, pareto_khat=lone)) == []


def test_ess_threshold_scales_with_the_chains():
    def low(values):
        values[2, -5:] = 1.2

    # 1.2 of 32 chains is below 5% of them; of 16 chains it is not
    (message,) = _messages(_tree(num_chains=32, importance_ess=low))
    assert (
        "importance ESS below 1.6 (5% of 32 chains; lowest 1.2) for example 2"
        in message
    )
    assert _messages(_tree(num_chains=16, importance_ess=low)) == []


def test_acceptance_noise_at_a_few_temperatures_does_not_warn():
    def dips(values):
        values[:, 10] = 0.0
        values[:, 50:52] = 0.05

    assert _messages(_tree(acceptance_rate=dips)) == []

    def collapse(values):
        values[0, 30:60] = 0.05

    (message,) = _messages(_tree(acceptance_rate=collapse))
    assert "acceptance rate far below its target 0.65" in message
    assert "example 0 at beta in" in message


def test_divergence_fraction_per_example():
    def some(values):
        values[0, 1:] = 4  # 4 of 16 chains at every transition: 25%
        values[1, 1:] = 2  # 12.5%: below half the rejections the target allows
        values[2, 5] = 3

    (message,) = _messages(_tree(num_divergent=some))
    assert (
        "more than 17.5% divergent transitions (up to 25.0%) for example 0 " in message
    )


def test_step_size_that_never_adapted():
    def stuck(values):
        values[2, 1:] = 0.05  # the initial step size throughout

    (message,) = _messages(_tree(step_size=stuck))
    assert "step size never adapted (it stayed at its initial value" in message
    assert "example 2 " in message

    def nan(values):
        values[1, 20:] = np.nan

    (message,) = _messages(_tree(step_size=nan))
    assert "step size became non-finite for example 1 at beta in [0.4, 2]" in message


def test_all_chains_nonfinite():
    def lost(values):
        values[0, 70:] = 16

    (message,) = _messages(_tree(num_nonfinite=lost))
    assert "every chain's density became non-finite for example 0" in message


def test_warnings_survive_a_file_round_trip(tmp_path):
    def spike(values):
        values[1, 40:61] = 1.2

    tree = _tree(num_chains=100, pareto_khat=spike)
    rdppl.to_netcdf(tree, tmp_path / "t.nc")
    messages = _messages(tree)
    assert len(messages) == 1
    assert _messages(rdppl.from_netcdf(tmp_path / "t.nc")) == messages


# --- summary -------------------------------------------------------------------


@pytest.fixture(scope="module")
def healthy(linear_gaussian):
    model, _, _, _, data = linear_gaussian
    return _run(model, data)


def test_summary_rows_and_values(healthy):
    table = rdppl.summary(healthy, betas=[1.0, 4.0])
    curve = table["rate_distortion"]
    np.testing.assert_allclose(
        curve["beta"].values,
        healthy["rate_distortion"]["beta"].sel(beta=[1.0, 4.0], method="nearest"),
    )
    rate = healthy["rate_distortion"]["rate"].sel(beta=curve["beta"].values).values
    np.testing.assert_allclose(curve["rate"].values, rate.mean(0), rtol=1e-6)
    np.testing.assert_allclose(
        curve["rate_se"].values, rate.std(0, ddof=1) / np.sqrt(3), rtol=1e-6
    )
    ess = healthy["sample_stats"]["importance_ess"].sel(beta=curve["beta"].values)
    np.testing.assert_allclose(curve["importance_ess_min"], ess.min("example"))
    error = np.sqrt(np.maximum(32 / ess.values - 1, 0) / 32)
    np.testing.assert_allclose(
        curve["log_z_mcse"].values,
        np.sqrt((error**2).sum(0)) / 3,
        rtol=1e-5,
    )
    assert set(curve.data_vars) >= {"pareto_khat_max", "acceptance_rate", "log_z_se"}


def test_summary_default_rows_and_text(healthy):
    table = rdppl.summary(healthy)
    betas = table["rate_distortion"]["beta"].values
    assert len(betas) == 5 and betas[-1] == 4.0  # 1.0 is not on this grid
    grid = healthy["rate_distortion"]["beta"].values
    np.testing.assert_array_equal(betas, grid[[8, 16, 24, 32, 40]])
    text = str(table)
    assert text.startswith("rd_curve: 3 examples, 32 chains, 40 temperatures")
    assert "rate_distortion" in text and "pareto_khat_max" in text
    assert repr(table) == text
    assert len(text.splitlines()) == 3 + 1 + len(betas)


def test_summary_of_log_likelihood_and_bdmc(linear_gaussian):
    model, _, _, _, data = linear_gaussian
    estimate = rdppl.log_likelihood(
        model,
        data,
        rng_key=jax.random.key(1),
        num_temperatures=30,
        num_chains=8,
        kernel=rdppl.HMC(num_leapfrog=8),
    )
    table = rdppl.summary(estimate)["log_marginal_likelihood"]
    values = estimate["log_marginal_likelihood"]["log_marginal_likelihood"].values
    np.testing.assert_allclose(table["log_marginal_likelihood"], values.mean(), 1e-6)
    assert "log_marginal_likelihood" in str(rdppl.summary(estimate))
    certificate = rdppl.bdmc(
        model,
        data,
        rng_key=jax.random.key(2),
        betas=[1.0],
        schedule=rdppl.sigmoid_schedule(20, beta_max=1.0),
        num_examples=4,
        num_chains=4,
        kernel=rdppl.HMC(num_leapfrog=4),
    )
    bounds = rdppl.summary(certificate)["bdmc"]
    np.testing.assert_allclose(
        bounds["gap"], certificate["bdmc"]["gap"].mean("example"), rtol=1e-6
    )
    with pytest.raises(ValueError, match="summary needs a result of rd_curve"):
        rdppl.summary(xr.DataTree())
