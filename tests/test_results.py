"""The result tree: groups, variables, dims, attributes, cost, netCDF round trip."""

import json

import jax
import numpy as np
import pytest
import xarray as xr

import rdppl
from rdppl import results
from rdppl.results import netcdf_attrs

NUM_TEMPERATURES, NUM_CHAINS, NUM_LEAPFROG = 6, 3, 3
SCHEDULE = rdppl.sigmoid_schedule(NUM_TEMPERATURES, beta_max=3.0)
CURVE = ["rate", "distortion", "log_z"]
STATS = [
    "acceptance_rate",
    "step_size",
    "importance_ess",
    "pareto_khat",
    "distortion_variance",
    "resampled",
    "num_divergent",
    "num_nonfinite",
]


@pytest.fixture(scope="module")
def tree(linear_gaussian):
    model, _, _, _, data = linear_gaussian
    return rdppl.rd_curve(
        model,
        data,
        rng_key=jax.random.key(0),
        schedule=SCHEDULE,
        num_chains=NUM_CHAINS,
        kernel=rdppl.HMC(num_leapfrog=NUM_LEAPFROG),
    )


def test_groups_variables_and_dims(tree, linear_gaussian):
    data = linear_gaussian[4]
    assert isinstance(tree, xr.DataTree)
    assert set(tree.children) == {"rate_distortion", "sample_stats", "observed_data"}
    for group, names in [("rate_distortion", CURVE), ("sample_stats", STATS)]:
        dataset = tree[group]
        assert sorted(dataset.data_vars) == sorted(names)
        for name in names:
            assert dataset[name].dims == ("example", "beta")
            assert dataset[name].shape == (3, NUM_TEMPERATURES + 1)
        np.testing.assert_array_equal(dataset["example"].values, np.arange(3))
        # the default tuned schedule: as many temperatures, from 0 to the last
        beta = dataset["beta"].values
        assert beta[0] == 0.0 and beta[-1] == SCHEDULE[-1]
        assert np.all(np.diff(beta) > 0)
    assert tree["rate_distortion"].attrs["units"] == "nats"
    observed = tree["observed_data"]["x"]
    assert observed.dims == ("example", "x_dim_0")
    np.testing.assert_allclose(observed.values, data, rtol=1e-6)


def test_every_output_is_finite(tree):
    for name in CURVE:
        assert np.all(np.isfinite(tree["rate_distortion"][name].values)), name
    stats = tree["sample_stats"]
    for name in [
        "importance_ess",
        "distortion_variance",
        "num_divergent",
        "num_nonfinite",
    ]:
        assert np.all(np.isfinite(stats[name].values)), name
    assert np.all(stats["distortion_variance"].values >= 0)
    # no transition happens at beta_0: its kernel diagnostics are NaN by design
    for name in ["acceptance_rate", "step_size"]:
        values = stats[name].values
        assert np.all(np.isnan(values[:, 0])), name
        assert np.all(np.isfinite(values[:, 1:])), name
    acceptance = stats["acceptance_rate"].values[:, 1:]
    assert np.all((acceptance >= 0) & (acceptance <= 1))
    ess = stats["importance_ess"].values
    assert np.all((ess >= 1 - 1e-4) & (ess <= NUM_CHAINS + 1e-4))
    assert stats["num_divergent"].dtype.kind == "i"
    assert stats["num_nonfinite"].dtype.kind == "i"
    np.testing.assert_array_equal(stats["num_nonfinite"].values, 0)


def test_attributes_record_settings_and_cost(tree):
    attrs = tree.attrs
    per_chain = 3 * (NUM_TEMPERATURES * NUM_LEAPFROG + 1)
    # each HMC transition: one gradient per leapfrog step (the evaluation at its end
    # serves the next temperature), and the chains' first evaluation, for every
    # example and chain, in the preliminary run (2 of the 3 chains, the default's
    # least) and the formal run
    assert attrs["preliminary_chains"] == 2
    assert attrs["preliminary_gradient_evaluations"] == 2 * per_chain
    assert attrs["num_gradient_evaluations"] == (2 + NUM_CHAINS) * per_chain
    assert attrs["num_chains"] == NUM_CHAINS
    assert attrs["num_temperatures"] == NUM_TEMPERATURES
    assert attrs["beta_max"] == 3.0
    assert attrs["distortion"] == "nll"
    assert attrs["observed_site"] == "x"
    assert attrs["reconstruction_site"] == "x_hat"
    assert json.loads(attrs["latent_sites"]) == ["z"]
    assert attrs["num_latent_dimensions"] == 2
    assert attrs["kernel"] == repr(rdppl.HMC(num_leapfrog=NUM_LEAPFROG))
    key_data = jax.random.key_data(jax.random.key(0))
    assert json.loads(attrs["rng_key"]) == [int(v) for v in np.ravel(key_data)]
    assert attrs["wall_time_seconds"] > 0
    assert attrs["rdppl_version"] == rdppl.__version__
    assert attrs["jax_version"] == jax.__version__


def test_nuts_cost_lies_between_its_bounds(linear_gaussian):
    model, _, _, _, data = linear_gaussian
    doublings = 3
    tree = rdppl.rd_curve(
        model,
        data[:2],
        rng_key=jax.random.key(1),
        schedule=SCHEDULE,
        num_chains=NUM_CHAINS,
        kernel=rdppl.NUTS(max_num_doublings=doublings),
    )
    transitions = 2 * 2 * NUM_CHAINS * NUM_TEMPERATURES  # both runs
    # one gradient per transition plus a trajectory of 1 .. 2^d - 1 steps
    cost = tree.attrs["num_gradient_evaluations"]
    assert 2 * transitions <= cost <= 2**doublings * transitions
    assert np.all(np.isfinite(tree["rate_distortion"]["log_z"].values))


def test_divergences_are_counted(linear_gaussian):
    model, _, _, _, data = linear_gaussian
    # a fixed, absurd step size: every transition of every chain diverges
    kernel = rdppl.HMC(num_leapfrog=NUM_LEAPFROG, step_size=50.0, adapt_step_size=False)
    with pytest.warns(rdppl.RDWarning) as caught:
        tree = rdppl.rd_curve(
            model,
            data,
            rng_key=jax.random.key(2),
            schedule=SCHEDULE,
            num_chains=NUM_CHAINS,
            kernel=kernel,
        )
    messages = [str(w.message) for w in caught]
    assert any("divergent transitions" in m for m in messages)
    assert any("acceptance rate far below" in m for m in messages)
    stats = tree["sample_stats"]
    np.testing.assert_array_equal(stats["num_divergent"].values[:, 0], 0)
    np.testing.assert_array_equal(stats["num_divergent"].values[:, 1:], NUM_CHAINS)
    np.testing.assert_array_equal(stats["acceptance_rate"].values[:, 1:], 0.0)
    np.testing.assert_allclose(stats["step_size"].values[:, 1:], 50.0)
    # the chains stay at their prior draws: still a valid (importance) estimate
    for name in CURVE:
        assert np.all(np.isfinite(tree["rate_distortion"][name].values)), name
    per_run = 3 * NUM_CHAINS * (NUM_TEMPERATURES * NUM_LEAPFROG + 1)
    assert tree.attrs["preliminary_gradient_evaluations"] == 0
    assert tree.attrs["num_gradient_evaluations"] == per_run


def test_legacy_key_and_progress_bar_give_the_same_run(
    tree, linear_gaussian, capsys, monkeypatch
):
    model, _, _, _, data = linear_gaussian
    monkeypatch.setattr(rdppl.sampler.segments, "interactive", lambda: True)
    again = rdppl.rd_curve(
        model,
        data,
        rng_key=jax.random.PRNGKey(0),  # raw uint32 key: same bits as key(0)
        schedule=SCHEDULE,
        num_chains=NUM_CHAINS,
        kernel=rdppl.HMC(num_leapfrog=NUM_LEAPFROG),
        progress=True,
    )
    assert "reported run" in capsys.readouterr().err
    assert again.attrs["rng_key"] == tree.attrs["rng_key"]
    for group, names in [("rate_distortion", CURVE), ("sample_stats", STATS)]:
        for name in names:
            np.testing.assert_array_equal(again[group][name], tree[group][name])


def test_netcdf_round_trip(tree, tmp_path):
    path = tmp_path / "curve.nc"
    rdppl.to_netcdf(tree, path)
    loaded = rdppl.from_netcdf(path)
    assert set(loaded.children) == set(tree.children)
    assert dict(loaded.attrs) == dict(tree.attrs)
    for group in tree.children:
        xr.testing.assert_identical(
            loaded[group].to_dataset(), tree[group].to_dataset()
        )
        for name, variable in tree[group].data_vars.items():
            assert loaded[group][name].dtype == variable.dtype


def test_netcdf_attrs_are_storable():
    converted = netcdf_attrs(
        {
            "flag": True,
            "nothing": None,
            "count": np.int64(3),
            "ratio": 0.5,
            "name": "x",
            "sites": ["z", "w"],
            "nested": {"a": (1, 2)},
            "kernel": rdppl.HMC(num_leapfrog=2),
        }
    )
    assert converted["flag"] == 1 and converted["nothing"] == "none"
    assert converted["count"] == 3 and converted["ratio"] == 0.5
    assert json.loads(converted["sites"]) == ["z", "w"]
    assert json.loads(converted["nested"]) == {"a": [1, 2]}
    assert converted["kernel"] == str(rdppl.HMC(num_leapfrog=2))


def test_groups_without_sample_dimensions_declare_none(tree):
    # arviz-base 1.x records sample_dims=[] by default, which ArviZ then reads as
    # "no sample dimensions" wherever the group is used
    for group in tree.children:
        assert "sample_dims" not in tree[group].attrs, group
    with pytest.raises(ValueError, match=r"sample_dims \['chain'\] name \['chain'\]"):
        results.make_group({"a": np.zeros((2, 3))}, sample_dims=("chain",))
    group = results.make_group(
        {"a": np.zeros((2, 3))}, dims={"a": ("chain", "draw")}, sample_dims=["chain"]
    )
    assert group.attrs["sample_dims"] == ["chain"]


def test_variables_have_long_names_and_units(tree):
    curve, stats = tree["rate_distortion"], tree["sample_stats"]
    for name in CURVE:
        assert curve[name].attrs["units"] == "nats", name
        assert curve[name].attrs["long_name"], name
    assert curve["log_z"].attrs["long_name"] == "log partition function log Z"
    for name in STATS:
        assert {"long_name", "units"} <= set(stats[name].attrs), name
    assert stats["acceptance_rate"].attrs["units"] == "1"
    assert stats["importance_ess"].attrs["units"] == "chains"
    assert stats["distortion_variance"].attrs["units"] == "nats^2"
    for group in tree.children:
        if "beta" in tree[group].coords:
            assert tree[group]["beta"].attrs["long_name"] == "inverse temperature beta"
    assert tree["observed_data"]["x"].attrs == {}  # the user's site: no guess


def test_plots_label_themselves(tree):
    matplotlib = pytest.importorskip("matplotlib")
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    figure, axes = plt.subplots()
    tree["rate_distortion"]["rate"].mean("example").plot(ax=axes)
    assert axes.get_ylabel() == "rate [nats]"
    assert axes.get_xlabel() == "inverse temperature beta"
    plt.close(figure)


@pytest.mark.parametrize(
    ("distortion", "units", "variance_units"),
    [
        ("nll", "nats", "nats^2"),
        ("squared_error", "squared data units", None),
        ("my_distortion", None, None),
    ],
)
def test_distortion_units_follow_the_distortion(distortion, units, variance_units):
    values = np.ones((2, 3))
    group = results.curve_group(
        {"distortion": values, "distortion_variance": values}, [0.0, 1.0, 2.0]
    )
    tree = results.make_tree(
        {"sample_stats": group, "rate_distortion": group},
        attrs={"distortion": distortion},
    )
    assert tree["rate_distortion"]["distortion"].attrs.get("units") == units
    assert tree["rate_distortion"]["distortion"].attrs["long_name"] == "distortion"
    variance = tree["sample_stats"]["distortion_variance"].attrs
    assert variance.get("units") == variance_units
    assert group["distortion"].attrs == {}  # labelled copies


def test_labels_keep_what_a_group_sets_and_skip_user_sites():
    values = np.ones((2, 3))
    group = results.curve_group({"rate": values, "gap": values}, [0.0, 1.0, 2.0])
    group["rate"].attrs["units"] = "bits"
    labelled = results.label_groups(
        {"bdmc": group, "posterior": group}, distortion="nll"
    )
    assert labelled["bdmc"]["rate"].attrs == {"units": "bits", "long_name": "rate"}
    assert labelled["bdmc"]["gap"].attrs["units"] == "nats"
    assert labelled["posterior"]["rate"].attrs == {"units": "bits"}  # a site
    assert labelled["posterior"]["beta"].attrs["long_name"]
