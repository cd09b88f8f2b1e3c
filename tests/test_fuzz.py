"""Fuzz the public API with bad input (issue 12).

Every call must either succeed with finite results or raise ``ValueError`` or
``TypeError`` whose message names the argument (or site) at fault: never another
exception type from deep inside JAX, NumPyro, BlackJAX or h5py, never a silent NaN.

JAX compiles once per shape and static setting, so the runs that succeed share one
small model, one data shape, a 3-step schedule, 2 chains and ``HMC(num_leapfrog=1)``;
most generated inputs fail in validation before anything compiles. The default
Hypothesis profile keeps this file fast; ``nox -s slow`` runs the thorough one.
"""

import math
import os

import jax
import jax.numpy as jnp
import numpy as np
import numpyro
import numpyro.distributions as dist
import pytest
import xarray as xr
from hypothesis import given
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

import rdppl

pytestmark = [
    # tiny runs may legitimately be flagged as unhealthy
    pytest.mark.filterwarnings("ignore::rdppl.RDWarning"),
    # users run NumPyro under JAX's standard dtype promotion
    pytest.mark.numpyro_promotion,
]


@rdppl.model(observed="x", reconstruction="x_hat")
def linear(x=None):
    z = numpyro.sample("z", dist.Normal(0.0, 1.0).expand([2]).to_event(1))
    x_hat = numpyro.deterministic("x_hat", 2.0 * z)
    numpyro.sample("x", dist.Normal(x_hat, 0.5).to_event(1), obs=x)


@rdppl.model(observed="x")
def bernoulli(x=None):
    z = numpyro.sample("z", dist.Normal(0.0, 1.0).expand([2]).to_event(1))
    numpyro.sample("x", dist.Bernoulli(logits=z).to_event(1), obs=x)


DATA = np.zeros((2, 2))
SCHEDULE = rdppl.linear_schedule(3)
KERNEL = rdppl.HMC(num_leapfrog=1)


def encoder(x):
    return jnp.zeros(2), jnp.ones(2)


def run_settings(**overrides):
    arguments = {
        "rng_key": jax.random.key(0),
        "schedule": SCHEDULE,
        "num_chains": 2,
        "kernel": KERNEL,
    }
    arguments.update(overrides)
    return arguments


def finite_or_clear_error(call, names):
    """The call's result, or ``None`` after a clear ``ValueError``/``TypeError``.

    Any other exception propagates (and fails the test); the error message must
    contain one of ``names``.
    """
    try:
        result = call()
    except (ValueError, TypeError) as error:
        message = str(error)
        assert any(name in message for name in names), (
            f"{type(error).__name__} names none of {names}: {message}"
        )
        return None
    assert_finite(result)
    return result


def assert_finite(result):
    """No NaN or infinity among the estimates of a result tree or array."""
    if isinstance(result, xr.DataTree):
        for node in result.subtree:
            if node.name == "sample_stats":
                # diagnostics are NaN where undefined (no transition at beta = 0,
                # Pareto k-hat of 2 chains); the estimates below must be finite
                continue
            for name, variable in node.ds.data_vars.items():
                # Pareto k-hat is NaN where undefined (too few chains), by design
                if variable.dtype.kind == "f" and "pareto_khat" not in name:
                    values = np.asarray(variable.values)
                    assert np.all(np.isfinite(values)), f"{node.path}/{name}: {values}"
    else:
        values = np.asarray(result)
        if values.dtype.kind == "f":
            assert np.all(np.isfinite(values)), values


# -- strategies -------------------------------------------------------------------

NON_FINITE = [math.nan, math.inf, -math.inf]

#: values of the wrong type for almost any argument
junk = st.sampled_from(
    [
        None,
        True,
        "abc",
        "",
        b"1",
        1 + 2j,
        [1, [2]],
        {"a": 1},
        object(),
        np.random.default_rng(0),
        jnp.ones(3),
        np.array(["a", "b"]),
        *NON_FINITE,
    ]
)

#: numbers that are wrong for a count, a probability or a positive setting
bad_numbers = st.one_of(
    st.integers(-(2**70), 0),
    st.floats(allow_nan=True, allow_infinity=True).filter(
        lambda v: not (v > 0 and v == int(v) if math.isfinite(v) else False)
    ),
    st.sampled_from([0.5, 2.5, np.float32(-1.0), np.int64(-3)]),
)

shapes = st.sampled_from([(2, 2), (2, 3), (2,), (0, 2), (2, 2, 1), (), (1, 2)])
dtypes = st.sampled_from(
    [np.float64, np.float32, np.float16, np.int64, np.bool_, np.complex64]
)
data_arrays = st.tuples(shapes, dtypes).flatmap(
    lambda spec: hnp.arrays(
        spec[1],
        spec[0],
        elements=(
            st.floats(width=8 * np.dtype(spec[1]).itemsize)
            if np.dtype(spec[1]).kind == "f"
            else None
        ),
    )
)
bad_data = st.one_of(
    data_arrays,
    junk,
    st.sampled_from(
        [
            [[1.0, 2.0], [1.0]],
            [[None, 1.0], [1.0, 2.0]],
            [["a", "b"], ["c", "d"]],
            np.full((2, 2), 1e39),
            np.full((2, 2), 1e30),
            np.array([[1.0, 2.0], [np.nan, 0.0]]),
        ]
    ),
)

schedules = st.one_of(
    st.lists(st.floats(allow_nan=True, allow_infinity=True), min_size=4, max_size=4),
    st.lists(st.floats(0, 1e40), min_size=4, max_size=4).map(sorted),
    st.lists(st.floats(0, 10), min_size=0, max_size=2),
    junk,
    st.sampled_from(
        [
            [0.0, 1e-46, 1e-45, 1.0],
            [0.0, 1.0, 1.0 + 1e-9, 2.0],
            [[0.0, 1.0], [0.5, 2.0]],
            ["0", "0.5", "1", "2"],
            [0.0, 1.0, 1e30, 1e38],
            [0.0, -1.0, 1.0, 2.0],
            np.array([0, 1, 2, 3]),
        ]
    ),
)


# -- rd_curve ---------------------------------------------------------------------


@given(data=bad_data)
def test_rd_curve_data(data):
    finite_or_clear_error(
        lambda: rdppl.rd_curve(linear, data, **run_settings()),
        ["data", "example", "observed site 'x'"],
    )


@given(schedule=schedules)
def test_rd_curve_schedule(schedule):
    finite_or_clear_error(
        lambda: rdppl.rd_curve(linear, DATA, **run_settings(schedule=schedule)),
        ["schedule"],
    )


SETTINGS = {
    "num_chains": st.one_of(bad_numbers, junk, st.just(2.0)),
    "rng_key": st.one_of(
        junk,
        bad_numbers,
        st.sampled_from(
            [
                np.zeros(2, np.uint32),
                np.zeros(3, np.uint32),
                np.zeros(2, np.float32),
                jax.random.split(jax.random.key(0), 2),
                jax.random.PRNGKey(1),
            ]
        ),
    ),
    "chunk_size": st.one_of(bad_numbers, junk),
    "batch_size": st.one_of(bad_numbers, junk),
    "distortion": st.one_of(
        junk, st.text(max_size=5), st.sampled_from([lambda x, x_hat: x - x_hat])
    ),
    "reconstruction": st.one_of(
        st.text(max_size=3), st.sampled_from([1, ["x_hat"], "x", "z"])
    ),
    "observed": st.one_of(st.text(max_size=3), st.sampled_from([1, ["x"], "z"])),
    "kernel": st.one_of(junk, st.sampled_from([rdppl.HMC, "HMC", {"step_size": 1}])),
    "tune_schedule": st.one_of(junk, st.sampled_from([1, 0, "yes"])),
    "resample_threshold": st.one_of(bad_numbers, junk, st.just(1.5)),
    "posterior_betas": st.one_of(
        junk, st.lists(st.floats(allow_nan=True), max_size=3), st.just([1e6])
    ),
    "model_args": st.sampled_from([(1,), "abc", (None, None)]),
    "model_kwargs": st.sampled_from([{"x": 1}, {"y": 1}, ["a"], "abc"]),
}


@given(
    st.sampled_from(sorted(SETTINGS)).flatmap(
        lambda name: st.tuples(st.just(name), SETTINGS[name])
    )
)
def test_rd_curve_settings(setting):
    name, value = setting
    names = [name]
    if name == "distortion":
        names += ["reconstruction", "scalar"]
    if name in ("model_args", "model_kwargs"):
        names += ["program", "model", "x"]
    if name == "reconstruction":
        names += ["distortion"]
    finite_or_clear_error(
        lambda: (
            rdppl.rd_curve(
                linear,
                DATA,
                **run_settings(**{name: value}),
                distortion="squared_error",
            )
            if name == "reconstruction"
            else rdppl.rd_curve(linear, DATA, **run_settings(**{name: value}))
        ),
        names,
    )


# -- other entry points -----------------------------------------------------------


@given(
    st.sampled_from(["method", "num_temperatures", "num_samples", "encoder"]).flatmap(
        lambda name: st.tuples(
            st.just(name),
            {
                "method": st.one_of(junk, st.text(max_size=4)),
                "num_temperatures": st.one_of(bad_numbers, junk),
                "num_samples": st.one_of(bad_numbers, junk, st.just(1)),
                "encoder": st.one_of(
                    junk,
                    st.sampled_from(
                        [
                            lambda x: (jnp.zeros(3), jnp.ones(3)),
                            lambda x: (jnp.zeros(2), -jnp.ones(2)),
                            lambda x: (jnp.full(2, jnp.nan), jnp.ones(2)),
                            lambda x: (jnp.zeros(2), jnp.full(2, jnp.inf)),
                            lambda x: jnp.zeros(2),
                        ]
                    ),
                ),
            }[name],
        )
    )
)
def test_log_likelihood(setting):
    name, value = setting
    method = "iwae" if name == "encoder" else "importance"
    overrides = {"method": method, name: value}
    if name == "encoder":
        overrides["num_samples"] = 4
    finite_or_clear_error(
        lambda: rdppl.log_likelihood(
            linear,
            DATA,
            rng_key=jax.random.key(0),
            num_chains=2,
            kernel=KERNEL,
            **overrides,
        ),
        [name, "scale", "loc"] if name == "encoder" else [name],
    )


@given(
    betas=st.one_of(
        junk,
        st.lists(st.floats(allow_nan=True, allow_infinity=True), max_size=3),
        st.sampled_from([[1.0], "1.0", [[1.0]], [], [3.0, 1.0], [-1.0], [0.0]]),
    )
)
def test_bdmc_betas(betas):
    finite_or_clear_error(
        lambda: rdppl.bdmc(
            linear,
            rng_key=jax.random.key(0),
            betas=betas,
            schedule=SCHEDULE,
            num_examples=2,
            num_chains=2,
            kernel=KERNEL,
        ),
        ["betas", "beta*"],
    )


@given(num_examples=st.one_of(bad_numbers, junk), data=st.one_of(junk, data_arrays))
def test_bdmc_counts_and_template(num_examples, data):
    finite_or_clear_error(
        lambda: rdppl.bdmc(
            linear,
            data,
            rng_key=jax.random.key(0),
            betas=[1.0],
            schedule=SCHEDULE,
            num_examples=num_examples,
            num_chains=2,
            kernel=KERNEL,
        ),
        ["data", "num_examples", "example", "observed site"],
    )


@given(
    st.sampled_from(["num_samples", "encoder", "data_entropy", "data"]).flatmap(
        lambda name: st.tuples(
            st.just(name),
            {
                "num_samples": st.one_of(bad_numbers, junk, st.just(1)),
                "encoder": st.one_of(
                    junk,
                    st.sampled_from(
                        [
                            lambda x: (jnp.zeros(3), jnp.ones(3)),
                            lambda x: (jnp.zeros(2), jnp.zeros(2)),
                            lambda x: (jnp.full(2, jnp.nan), jnp.ones(2)),
                            lambda x: (jnp.zeros(2), jnp.full(2, jnp.inf)),
                            lambda x: (jnp.zeros(2),),
                        ]
                    ),
                ),
                "data_entropy": st.one_of(junk, bad_numbers, st.just("exact")),
                "data": bad_data,
            }[name],
        )
    )
)
def test_variational_bounds(setting):
    name, value = setting
    arguments = {
        "data": DATA,
        "encoder": encoder,
        "rng_key": jax.random.key(0),
        "num_samples": 4,
    }
    arguments[name] = value
    finite_or_clear_error(
        lambda: rdppl.variational_bounds(linear, **arguments),
        {
            "num_samples": ["num_samples"],
            "encoder": ["encoder"],
            "data_entropy": ["data_entropy"],
            "data": ["data", "example", "observed site 'x'"],
        }[name],
    )


@given(data=st.sampled_from([np.full((2, 2), 0.5), np.full((2, 2), 2.0), [[0, -1]]]))
def test_out_of_support_data_everywhere(data):
    # the same support check at every entry point that takes data
    calls = [
        lambda: rdppl.rd_curve(bernoulli, data, **run_settings()),
        lambda: rdppl.log_likelihood(
            bernoulli, data, rng_key=jax.random.key(0), method="importance"
        ),
        lambda: rdppl.variational_bounds(
            bernoulli, data, encoder=encoder, rng_key=jax.random.key(0)
        ),
    ]
    for call in calls:
        with pytest.raises(ValueError, match="outside the support of observed site"):
            call()


@given(
    observed=st.one_of(junk, st.text(max_size=3)),
    reconstruction=st.one_of(junk, st.text(max_size=3)),
    example=st.one_of(junk, data_arrays),
)
def test_model_and_trace_model(observed, reconstruction, example):
    def program(x=None):
        z = numpyro.sample("z", dist.Normal(0.0, 1.0).expand([2]).to_event(1))
        numpyro.deterministic("x_hat", z)
        numpyro.sample("x", dist.Normal(z, 1.0).to_event(1), obs=x)

    decorated = finite_or_clear_error(
        lambda: rdppl.model(program, observed=observed, reconstruction=reconstruction),
        ["observed", "reconstruction"],
    )
    if decorated is None:
        return
    finite_or_clear_error(
        lambda: rdppl.trace_model(decorated, example),
        ["example", "observed site", "reconstruction site", "data", "sample site"],
    )


# -- schedules and kernels --------------------------------------------------------

SCHEDULE_ARGUMENTS = {
    "num_temperatures": st.one_of(bad_numbers, junk),
    "beta_max": st.one_of(bad_numbers, junk, st.just(1e300)),
    "beta_min": st.one_of(bad_numbers, junk, st.just(5.0)),
    "radius": st.one_of(bad_numbers, junk, st.just(1e6)),
}
FACTORIES = {
    "linear_schedule": (rdppl.linear_schedule, ["beta_max"]),
    "geometric_schedule": (rdppl.geometric_schedule, ["beta_max", "beta_min"]),
    "sigmoid_schedule": (rdppl.sigmoid_schedule, ["beta_max", "radius"]),
}


@given(
    factory=st.sampled_from(sorted(FACTORIES)),
    argument=st.sampled_from(sorted(SCHEDULE_ARGUMENTS)).flatmap(
        lambda name: st.tuples(st.just(name), SCHEDULE_ARGUMENTS[name])
    ),
)
def test_schedule_functions(factory, argument):
    function, keywords = FACTORIES[factory]
    name, value = argument
    if name == "num_temperatures":
        call = lambda: function(value)  # noqa: E731
    elif name in keywords:
        call = lambda: function(4, **{name: value})  # noqa: E731
    else:
        return
    betas = finite_or_clear_error(call, [name])
    if betas is not None:
        rdppl.validate_schedule(betas)


@given(
    schedule=schedules,
    num_temperatures=st.one_of(st.integers(1, 5), bad_numbers),
)
def test_validate_schedule_and_equal_length_schedule(schedule, num_temperatures):
    betas = finite_or_clear_error(
        lambda: rdppl.validate_schedule(schedule), ["schedule"]
    )
    if betas is None:
        return
    finite_or_clear_error(
        lambda: rdppl.schedules.equal_length_schedule(
            betas, np.ones_like(betas), num_temperatures
        ),
        ["num_temperatures", "betas"],
    )


KERNEL_FIELDS = {
    "step_size": st.one_of(bad_numbers, junk),
    "target_acceptance": st.one_of(bad_numbers, junk, st.just(1.0)),
    "adapt_step_size": st.one_of(junk, st.sampled_from([1, 0, "False"])),
    "step_size_bounds": st.one_of(
        junk,
        st.tuples(bad_numbers, bad_numbers),
        st.sampled_from([(0.5, 0.1), (1e-3,), [1e-3, 0.5], (1e-3, math.inf)]),
    ),
    "acceptance_smoothing": st.one_of(bad_numbers, junk, st.just(1.0)),
    "adaptation_rate": st.one_of(bad_numbers, junk),
    "mass_matrix": st.one_of(junk, st.text(max_size=5)),
    "mass_matrix_smoothing": st.one_of(bad_numbers, junk, st.just(1.0)),
    "num_leapfrog": st.one_of(bad_numbers, junk, st.just(2.0)),
    "divergence_threshold": st.one_of(bad_numbers, junk),
    "persistence": st.one_of(bad_numbers, junk, st.just(1.0)),
    "step_size_jitter": st.one_of(bad_numbers, junk, st.just(1.0)),
    "acceptance_drift": st.one_of(bad_numbers, junk, st.just(1.0)),
    "metropolis": st.one_of(junk, st.sampled_from([1, 0, "False"])),
    "max_num_doublings": st.one_of(bad_numbers, junk, st.just(16)),
}
NUTS_FIELDS = {
    "num_leapfrog",
    "persistence",
    "step_size_jitter",
    "acceptance_drift",
    "metropolis",
}


@given(
    kernel=st.sampled_from(["HMC", "NUTS"]),
    field=st.sampled_from(sorted(KERNEL_FIELDS)).flatmap(
        lambda name: st.tuples(st.just(name), KERNEL_FIELDS[name])
    ),
)
def test_kernel_constructors(kernel, field):
    name, value = field
    factory = getattr(rdppl, kernel)
    if (kernel == "NUTS" and name in NUTS_FIELDS) or (
        kernel == "HMC" and name == "max_num_doublings"
    ):
        with pytest.raises(TypeError, match=name):
            factory(**{name: value})
        return
    built = finite_or_clear_error(lambda: factory(**{name: value}), [name])
    if built is not None:
        hash(built)  # a static argument of compiled code


# -- result files -----------------------------------------------------------------


@pytest.fixture(scope="module")
def small_result():
    return rdppl.rd_curve(linear, DATA, **run_settings())


@given(
    path=st.one_of(
        junk,
        st.sampled_from(["", "missing.nc", "no/such/dir/a.nc", ".", "junk.nc"]),
    )
)
def test_netcdf_paths(path, small_result, tmp_path_factory):
    directory = tmp_path_factory.mktemp("files")
    (directory / "junk.nc").write_bytes(b"not a netCDF file")
    if isinstance(path, str):
        path = os.path.join(directory, path)
    for call in (
        lambda: rdppl.from_netcdf(path),
        lambda: rdppl.to_netcdf(small_result, path),
    ):
        try:
            call()
        except TypeError as error:
            assert "path" in str(error), error  # the argument is named
        except (ValueError, OSError):
            pass  # FileNotFoundError and IsADirectoryError are OSErrors, as in Python


@given(tree=st.one_of(junk, st.just(xr.Dataset()), st.just(xr.DataTree())))
def test_to_netcdf_tree(tree, tmp_path_factory):
    path = tmp_path_factory.mktemp("files") / "out.nc"
    finite_or_clear_error(
        lambda: rdppl.to_netcdf(tree, path), ["DataTree", "tree", "result"]
    )
