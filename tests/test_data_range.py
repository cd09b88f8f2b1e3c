"""Data that the run's dtypes would change are refused at every entry point (issue 18).

With ``jax_enable_x64`` off, int64 data become int32 and float64 data float32:
``2**32 + 5`` wrapped to ``5`` silently, and ``1e-50`` became ``0``. Rounding to
float32 is expected and accepted.
"""

import re

import jax
import jax.numpy as jnp
import numpy as np
import numpyro
import numpyro.distributions as dist
import pytest
from hypothesis import given
from hypothesis import strategies as st

import rdppl
from rdppl.program.data import validate_data

X64 = jax.config.jax_enable_x64
needs_32_bit = pytest.mark.skipif(X64, reason="64-bit dtypes hold these values")


@rdppl.model(observed="x")
def poisson(x=None):
    z = numpyro.sample("z", dist.Normal(0.0, 1.0))
    numpyro.sample("x", dist.Poisson(jnp.exp(z)), obs=x)


@rdppl.model(observed="x")
def normal(x=None):
    z = numpyro.sample("z", dist.Normal(0.0, 1.0))
    numpyro.sample("x", dist.Normal(z, 1.0), obs=x)


def encoder(x):
    return jnp.zeros(1), jnp.ones(1)


KEY = jax.random.key(0)
SMALL = {"num_chains": 2, "kernel": rdppl.HMC(num_leapfrog=1)}
ENTRY_POINTS = {
    "rd_curve": lambda model, data: rdppl.rd_curve(
        model, data, rng_key=KEY, schedule=rdppl.linear_schedule(2), **SMALL
    ),
    "bdmc": lambda model, data: rdppl.bdmc(
        model,
        data,
        rng_key=KEY,
        betas=[1.0],
        schedule=rdppl.linear_schedule(2),
        num_examples=2,
        **SMALL,
    ),
    "log_likelihood": lambda model, data: rdppl.log_likelihood(
        model, data, rng_key=KEY, method="ais", num_temperatures=2, **SMALL
    ),
    "log_likelihood_importance": lambda model, data: rdppl.log_likelihood(
        model, data, rng_key=KEY, method="importance", num_samples=2
    ),
    "variational_bounds": lambda model, data: rdppl.variational_bounds(
        model, data, encoder=encoder, rng_key=KEY, num_samples=2
    ),
}

INTEGER_DTYPES = [np.int8, np.int16, np.int32, np.int64]
INTEGER_DTYPES += [np.uint8, np.uint16, np.uint32, np.uint64]


@given(
    dtype=st.sampled_from(INTEGER_DTYPES),
    fraction=st.floats(0.0, 1.0),
    position=st.integers(0, 3),
)
def test_integer_data_kept_exactly_or_refused(dtype, fraction, position):
    limits = np.iinfo(dtype)
    value = int(limits.min + fraction * (int(limits.max) - int(limits.min)))
    value = min(max(value, int(limits.min)), int(limits.max))
    data = np.zeros(4, dtype)
    data[position] = value
    run = np.iinfo(jax.dtypes.canonicalize_dtype(dtype))
    if run.min <= value <= run.max:
        validated = validate_data(data)
        assert validated.dtype == run.dtype
        assert int(validated[position]) == value
        assert np.array_equal(np.asarray(validated, np.int64), data.astype(np.int64))
    else:
        pattern = (
            rf"data must fit the run's integer dtype {run.dtype}.*"
            rf"data\[{position}\] = {value} lies outside \[{run.min}, {run.max}\]"
        )
        with pytest.raises(ValueError, match=pattern):
            validate_data(data)


@needs_32_bit
@given(value=st.integers(2**31, 2**63 - 1) | st.integers(-(2**63), -(2**31) - 1))
def test_python_integers_beyond_int32_are_refused(value):
    with pytest.raises(ValueError, match=rf"data\[1, 0\] = {value} lies outside"):
        validate_data([[0], [value]])


@given(value=st.integers(-(2**31), 2**31 - 1))
def test_python_integers_within_int32_are_kept(value):
    assert int(validate_data([[0], [value]])[1, 0]) == value


@needs_32_bit
@pytest.mark.parametrize("entry", ENTRY_POINTS)
def test_every_entry_point_refuses_wrapping_counts(entry):
    data = np.array([3, 2**32 + 5], np.int64)
    with pytest.raises(
        ValueError, match=re.escape("data[1] = 4294967301 lies outside")
    ):
        ENTRY_POINTS[entry](poisson, data)


@needs_32_bit
@pytest.mark.parametrize("entry", ENTRY_POINTS)
def test_every_entry_point_refuses_values_that_underflow(entry):
    data = np.array([0.5, 1e-50])
    with pytest.raises(ValueError, match=re.escape("data[1] = 1e-50 underflows to 0")):
        ENTRY_POINTS[entry](normal, data)


@needs_32_bit
def test_float32_rounding_and_subnormals_are_accepted():
    data = np.array([[0.1], [1.0 + 1e-12], [1e-40], [0.0], [-3e38]])
    validated = validate_data(data)
    assert validated.dtype == jnp.float32
    np.testing.assert_array_equal(np.asarray(validated), data.astype(np.float32))


# a count of 2**31 - 1 makes HMC diverge; only the stored data matter here
@pytest.mark.filterwarnings("ignore::rdppl.RDWarning")
def test_counts_in_range_are_stored_exactly():
    data = np.array([3, 2**31 - 1], np.int64)
    result = rdppl.rd_curve(
        poisson, data, rng_key=KEY, schedule=rdppl.linear_schedule(2), **SMALL
    )
    np.testing.assert_array_equal(result["observed_data"]["x"].values, data)
