"""Bad input that used to pass silently, or fail without naming the argument.

Every case fails eagerly, before anything is compiled (issue 12).
"""

import re

import jax
import jax.numpy as jnp
import numpy as np
import numpyro
import numpyro.distributions as dist
import pytest

import rdppl


@rdppl.model(observed="x", reconstruction="x_hat")
def linear(x=None):
    z = numpyro.sample("z", dist.Normal(0.0, 1.0).expand([2]).to_event(1))
    x_hat = numpyro.deterministic("x_hat", 2.0 * z)
    numpyro.sample("x", dist.Normal(x_hat, 0.5).to_event(1), obs=x)


@rdppl.model(observed="x")
def poisson(x=None):
    z = numpyro.sample("z", dist.Normal(0.0, 1.0))
    numpyro.sample("x", dist.Poisson(jnp.exp(z)), obs=x)


@rdppl.model(observed="x")
def bernoulli(x=None):
    z = numpyro.sample("z", dist.Normal(0.0, 1.0).expand([2]).to_event(1))
    numpyro.sample("x", dist.Bernoulli(logits=z).to_event(1), obs=x)


@rdppl.model(observed="x")
def uniform_up_to_latent(x=None):
    z = numpyro.sample("z", dist.LogNormal(0.0, 1.0))
    numpyro.sample("x", dist.Uniform(0.0, z), obs=x)


DATA = np.zeros((2, 2))


def call(model=linear, data=DATA, **overrides):
    arguments = {
        "rng_key": jax.random.key(0),
        "schedule": rdppl.linear_schedule(2),
        "num_chains": 2,
        "kernel": rdppl.HMC(num_leapfrog=1),
    }
    arguments.update(overrides)
    return rdppl.rd_curve(model, data, **arguments)


@pytest.mark.parametrize("num_chains", [None, float("nan"), 2.5, True, np.ones(2)])
def test_num_chains_not_a_positive_integer(num_chains):
    with pytest.raises(
        ValueError,
        match=re.escape(f"num_chains must be a positive integer, got {num_chains!r}"),
    ):
        call(num_chains=num_chains)


def test_numpy_generator_as_rng_key():
    with pytest.raises(
        TypeError,
        match=r"rng_key must be a JAX key, got a NumPy Generator .*"
        r"rng_key=jax\.random\.key\(seed\)",
    ):
        call(rng_key=np.random.default_rng(0))


@pytest.mark.parametrize(
    ("data", "error", "pattern"),
    [
        ([[1.0, 2.0], [3.0]], ValueError, "data must be a rectangular array"),
        ("abc", TypeError, "data must be numeric, got the string 'abc'"),
        (np.ones((3, 2), complex), TypeError, "data must be real, got dtype complex"),
        (
            np.array([[1.0, None], [2.0, 3.0]], dtype=object),
            TypeError,
            "data must be numeric, got dtype object",
        ),
    ],
)
def test_data_not_a_real_array(data, error, pattern):
    with pytest.raises(error, match=re.escape(pattern)):
        call(data=data)


def test_data_overflowing_the_run_dtype():
    data = np.array([[1.0, 2.0], [1e39, 0.0]])
    if jnp.result_type(float) == jnp.float64:
        pytest.skip("1e39 is finite in float64")
    with pytest.raises(
        ValueError,
        match=re.escape(
            "data must be finite in the run's float dtype float32, but "
            "data[1, 0] = 1e+39 overflows to inf"
        ),
    ):
        call(data=data)


@pytest.mark.parametrize(
    ("model", "data", "pattern"),
    [
        (
            poisson,
            [1.0, 2.5, 0.0],
            "data[1] = 2.5 is outside the support of observed "
            "site 'x' (Poisson with support IntegerNonnegative",
        ),
        (
            poisson,
            [1.0, 0.0, -3.0],
            "data[2] = -3.0 is outside the support of observed site 'x' (Poisson",
        ),
        (
            bernoulli,
            [[0.0, 1.0], [1.0, 2.0]],
            "data[1] = [1. 2.] is outside the support of observed site 'x' (Bernoulli",
        ),
        (bernoulli, [[0.5, 1.0]], "data[0] = [0.5 1. ] is outside"),
    ],
)
def test_data_outside_the_observed_support(model, data, pattern):
    with pytest.raises(ValueError, match=re.escape(pattern)):
        call(model, np.asarray(data))


def test_support_check_covers_every_example():
    data = np.zeros(10_000)
    data[9_876] = 0.5
    with pytest.raises(ValueError, match=re.escape("data[9876] = 0.5 is outside")):
        call(poisson, data)


def test_latent_dependent_support_is_not_checked():
    # Uniform(0, z): whether 5.0 is possible depends on z, so no eager error; the
    # failure (if any) comes from tracing the schedule, not the support check
    from rdppl.program.prepare import validate_observed_support

    validate_observed_support(
        uniform_up_to_latent, jnp.asarray([0.5, 5.0]), observed="x"
    )


@pytest.mark.parametrize(
    ("reconstruction", "pattern"),
    [
        (
            "x",
            "reconstruction site 'x' is the observed site; it must be a "
            "numpyro.deterministic site computed from the latents",
        ),
        (
            "z",
            "reconstruction site 'z' is a sample site (a latent); it must be a "
            "numpyro.deterministic site computed from the latents",
        ),
    ],
)
def test_reconstruction_not_a_deterministic_site(reconstruction, pattern):
    with pytest.raises(ValueError, match=re.escape(pattern)):
        call(reconstruction=reconstruction, distortion="squared_error")


def test_deterministic_named_like_a_sample_site():
    @rdppl.model(observed="x")
    def duplicate(x=None):
        z = numpyro.sample("z", dist.Normal(0.0, 1.0))
        numpyro.deterministic("z", 2.0 * z)
        numpyro.sample("x", dist.Normal(z, 1.0), obs=x)

    with pytest.raises(
        ValueError, match=r"two sites of the model share a name .*`z` duplicated"
    ):
        call(duplicate, np.zeros(2))


def test_schedule_entry_overflowing_the_run_dtype():
    if jnp.result_type(float) == jnp.float64:
        pytest.skip("1e300 is finite in float64")
    with pytest.raises(
        ValueError,
        match=re.escape(
            "schedule[2] = 1e+300 is too large for the run's float dtype float32: "
            "inverse temperatures must not exceed 1.84e+19"
        ),
    ):
        call(schedule=np.array([0.0, 1.0, 1e300]))
    # finite in float32, but beta * distortion overflows (NaN rate, -inf log Z)
    with pytest.raises(ValueError, match=re.escape("schedule[3] = 1e+38 is too")):
        call(schedule=np.array([0.0, 1.0, 1e10, 1e38]))


@pytest.mark.parametrize(
    ("schedule", "pattern"),
    [
        ("linear", "schedule must be an array of inverse temperatures, got the string"),
        (["0", "1"], "schedule must be an array of real numbers, got dtype <U1"),
        ([0.0, 1.0 + 1.0j], "schedule must be an array of real numbers, got dtype"),
        ([0.0, None], "schedule must be an array of real numbers, got dtype object"),
        ([False, True], "schedule must be an array of real numbers, got dtype bool"),
    ],
)
def test_schedule_not_real_numbers(schedule, pattern):
    with pytest.raises(TypeError, match=re.escape(pattern)):
        call(schedule=schedule)


def test_ragged_schedule():
    with pytest.raises(ValueError, match="schedule must be a 1-D array of numbers"):
        call(schedule=[[0.0, 1.0], [2.0]])


@pytest.mark.parametrize(
    ("factory", "kwargs", "error", "pattern"),
    [
        (rdppl.HMC, {"step_size": float("inf")}, ValueError, "step_size must be fin"),
        (rdppl.HMC, {"step_size": float("nan")}, ValueError, "step_size must be pos"),
        (rdppl.HMC, {"step_size": "0.1"}, TypeError, "step_size must be a number"),
        (
            rdppl.HMC,
            {"divergence_threshold": -1},
            ValueError,
            "divergence_threshold must be positive, got -1",
        ),
        (
            rdppl.NUTS,
            {"divergence_threshold": float("inf")},
            ValueError,
            "divergence_threshold must be finite",
        ),
        (rdppl.HMC, {"num_leapfrog": True}, ValueError, "num_leapfrog must be a pos"),
        (rdppl.NUTS, {"max_num_doublings": 2.0}, ValueError, "max_num_doublings"),
        (rdppl.HMC, {"target_acceptance": "x"}, TypeError, "target_acceptance must"),
        (rdppl.HMC, {"target_acceptance": float("nan")}, ValueError, "got nan"),
        (rdppl.HMC, {"step_size_bounds": "ab"}, TypeError, "step_size_bounds must"),
        (rdppl.HMC, {"step_size_bounds": (1, 2, 3)}, TypeError, "a pair (low, high)"),
        (rdppl.HMC, {"step_size_bounds": (1e-3, np.inf)}, ValueError, "high < inf"),
        (rdppl.HMC, {"acceptance_smoothing": "0.5"}, TypeError, "acceptance_smoo"),
        (rdppl.HMC, {"persistence": 1.0}, ValueError, "persistence must lie in [0, 1)"),
        (rdppl.HMC, {"persistence": -0.5}, ValueError, "got -0.5"),
        (rdppl.HMC, {"step_size_jitter": 1.0}, ValueError, "step_size_jitter must"),
        (rdppl.HMC, {"mass_matrix": "full"}, ValueError, "mass_matrix must be one of"),
        (rdppl.HMC, {"mass_matrix": ["dense"]}, ValueError, "mass_matrix must be"),
        (rdppl.HMC, {"mass_matrix_smoothing": 1.0}, ValueError, "mass_matrix_smoo"),
        (rdppl.HMC, {"adaptation_rate": 0.0}, ValueError, "adaptation_rate must be"),
        (rdppl.HMC, {"adapt_step_size": 1}, TypeError, "adapt_step_size must be"),
    ],
)
def test_kernel_settings_refused_at_construction(factory, kwargs, error, pattern):
    with pytest.raises(error, match=re.escape(pattern)):
        factory(**kwargs)


def test_step_size_bounds_list_becomes_a_hashable_tuple():
    kernel = rdppl.HMC(step_size_bounds=[1e-3, 0.1])
    assert kernel.step_size_bounds == (1e-3, 0.1)
    hash(kernel)  # a static argument of compiled code


def test_blackjax_kernel_parameters_must_be_hashable_pairs():
    import blackjax

    def make(parameters):
        return rdppl.BlackJAXKernel(
            step=blackjax.mcmc.mala.build_kernel(),
            init=blackjax.mcmc.mala.init,
            parameters_=parameters,
        )

    with pytest.raises(TypeError, match="parameters_ must be a tuple of"):
        make({"a": 1})
    with pytest.raises(TypeError, match="parameters_ value of 'a' must be hashable"):
        make((("a", [1, 2]),))


@pytest.mark.numpyro_promotion
def test_variational_bounds_checks_the_observed_support():
    def encoder(x):
        return jnp.zeros(2), jnp.ones(2)

    with pytest.raises(
        ValueError,
        match=re.escape(
            "data[0] = [0.3 0.3] is outside the support of observed site 'x' "
            "(BernoulliLogits"
        ),
    ):
        rdppl.variational_bounds(
            bernoulli,
            np.full((2, 2), 0.3),
            encoder=encoder,
            rng_key=jax.random.key(0),
        )


# -- errors JAX raises while tracing the user's program --------------------------


@rdppl.model(observed="x")
def python_if_on_a_latent(x=None):
    z = numpyro.sample("z", dist.Normal(0.0, 1.0))
    if z > 0:
        z = 2.0 * z
    numpyro.sample("x", dist.Normal(z, 1.0), obs=x)


@rdppl.model(observed="x")
def numpy_on_a_latent(x=None):
    z = numpyro.sample("z", dist.Normal(0.0, 1.0))
    numpyro.sample("x", dist.Normal(np.asarray(z), 1.0), obs=x)


@rdppl.model(observed="x")
def latent_as_an_index(x=None):
    z = numpyro.sample("z", dist.Normal(0.0, 1.0))
    numpyro.sample("x", dist.Normal(jnp.arange(3.0)[int(z)], 1.0), obs=x)


@rdppl.model(observed="x")
def python_if_on_the_data(x=None):
    z = numpyro.sample("z", dist.Normal(0.0, 1.0))
    scale = 1.0 if x > 0 else 2.0
    numpyro.sample("x", dist.Normal(z, scale), obs=x)


@rdppl.model(observed="x")
def size_from_an_argument(x=None, size=2):
    z = numpyro.sample("z", dist.Normal(0.0, 1.0).expand([size]).to_event(1))
    numpyro.sample("x", dist.Normal(z, 1.0).to_event(1), obs=x)


@pytest.mark.parametrize(
    ("model", "data", "kwargs", "jax_error", "pattern"),
    [
        (
            python_if_on_a_latent,
            np.zeros(2),
            {},
            jax.errors.TracerBoolConversionError,
            r"in python_if_on_a_latent, the last site reached was 'z'.*"
            r"use jnp.where or jax.lax.cond",
        ),
        (
            numpy_on_a_latent,
            np.zeros(2),
            {},
            jax.errors.TracerArrayConversionError,
            r"use jax.numpy \(jnp\) rather than NumPy",
        ),
        (
            latent_as_an_index,
            np.zeros(2),
            {},
            jax.errors.ConcretizationTypeError,
            r"the program is traced by JAX",
        ),
        (
            python_if_on_the_data,
            np.zeros(2),
            {},
            jax.errors.TracerBoolConversionError,
            r"a latent \(or the data\) is an abstract value",
        ),
        (
            size_from_an_argument,
            np.zeros((2, 2)),
            {"model_kwargs": {"size": jnp.asarray(2)}},
            TypeError,
            r"pass shapes and sizes as static Python ints in model_args or "
            r"model_kwargs, not as arrays",
        ),
    ],
)
def test_tracing_errors_say_what_rdppl_was_doing(
    model, data, kwargs, jax_error, pattern
):
    with pytest.raises(rdppl.ModelTraceError) as caught:
        call(model, data, **kwargs)
    message = str(caught.value)
    assert "the model failed while rdppl was tracing the program for one example" in (
        message
    )
    assert re.search(pattern, message, flags=re.DOTALL), message
    # the original error is chained, and both TypeError and ValueError catch it
    assert isinstance(caught.value.__cause__, jax_error)
    assert isinstance(caught.value, TypeError)
    assert isinstance(caught.value, ValueError)


def test_model_written_for_a_batch():
    W = np.ones((2, 3))

    @rdppl.model(observed="x")
    def batched(x=None):
        z = numpyro.sample("z", dist.Normal(0.0, 1.0).expand([5, 2]).to_event(2))
        numpyro.sample("x", dist.Normal(z @ W, 1.0).to_event(1), obs=x)

    with pytest.raises(ValueError, match="write the model for ONE example"):
        call(batched, np.zeros((4, 3)))


def test_model_written_for_a_batch_fails_inside():
    W = np.ones((3, 2))

    @rdppl.model(observed="x")
    def batched(x=None):
        z = numpyro.sample(
            "z", dist.Normal(0.0, 1.0).expand([x.shape[0], 2]).to_event(2)
        )
        numpyro.sample("x", dist.Normal(W @ z, 1.0).to_event(2), obs=x)

    with pytest.raises(rdppl.ModelTraceError) as caught:
        call(batched, np.zeros((4, 3)))
    message = str(caught.value)
    assert "running the program eagerly on the first example" in message
    assert "in batched, the last site reached was 'z'" in message
    assert "write the model for ONE example (one example has shape (3,))" in message
    assert isinstance(caught.value.__cause__, TypeError)


# -- found by the fuzz suite (tests/test_fuzz.py) ---------------------------------


def test_data_overflowing_the_log_density():
    # finite in float32 and inside the support, but (x - x_hat)**2 overflows:
    # every AIS weight would be -inf and the curve NaN
    if jnp.result_type(float) == jnp.float64:
        pytest.skip("1e30 squared is finite in float64")
    with pytest.raises(
        ValueError,
        match=re.escape(
            "data[1] = [1.e+30 0.e+00] gives observed site 'x' a log density of -inf"
        ),
    ):
        call(data=np.array([[0.0, 0.0], [1e30, 0.0]]))


@pytest.mark.parametrize(
    ("betas", "error", "pattern"),
    [
        ("1.0", TypeError, "betas must be a number or a non-empty 1-D list"),
        (["abc"], TypeError, "betas must be a number or a non-empty 1-D list"),
        ([1.0 + 1.0j], TypeError, "(dtype complex128)"),
        ([[1.0]], ValueError, "(shape (1, 1))"),
    ],
)
def test_bdmc_betas_not_numbers(betas, error, pattern):
    with pytest.raises(error, match=re.escape(pattern)):
        rdppl.bdmc(
            linear,
            DATA,
            rng_key=jax.random.key(0),
            betas=betas,
            schedule=rdppl.linear_schedule(2),
            num_examples=2,
            num_chains=2,
        )


def test_bdmc_beta_that_is_zero_in_the_run_dtype():
    if jnp.result_type(float) == jnp.float64:
        pytest.skip("3.7e-249 is positive in float64")
    with pytest.raises(ValueError, match=r"beta\* must be positive in the run's"):
        rdppl.bdmc(
            linear,
            DATA,
            rng_key=jax.random.key(0),
            betas=[3.7e-249],
            schedule=rdppl.linear_schedule(2),
            num_examples=2,
            num_chains=2,
        )


def test_posterior_betas_strings_in_a_list():
    with pytest.raises(TypeError, match="posterior_betas must be a number or a"):
        call(posterior_betas=["1.0"])
    with pytest.raises(ValueError, match="posterior_betas must be finite numbers"):
        call(posterior_betas=[np.nan])


@pytest.mark.parametrize(
    ("arguments", "error", "pattern"),
    [
        ({"model_args": "abc"}, TypeError, "model_args"),
        ({"model_args": (1, 2, 3)}, TypeError, "do not fit the program's signature"),
        ({"model_kwargs": ["a"]}, TypeError, "model_kwargs must be a dict"),
        ({"model_kwargs": {"y": 1}}, TypeError, "do not fit the program's signature"),
    ],
)
def test_model_arguments_that_do_not_fit(arguments, error, pattern):
    with pytest.raises(error, match=re.escape(pattern)):
        call(**arguments)


@pytest.mark.parametrize("num_chains", [[1, [2]], (2,), {"a": 1}])
def test_counts_that_are_containers(num_chains):
    with pytest.raises(ValueError, match="num_chains must be a positive integer"):
        call(num_chains=num_chains)


@pytest.mark.parametrize(
    ("loc", "scale", "pattern"),
    [
        (jnp.full(2, jnp.nan), jnp.ones(2), "encoder loc must be finite"),
        (jnp.zeros(2), jnp.full(2, jnp.inf), "encoder scale must be finite"),
    ],
)
def test_encoder_with_non_finite_output(loc, scale, pattern):
    with pytest.raises(ValueError, match=pattern):
        rdppl.variational_bounds(
            linear, DATA, encoder=lambda x: (loc, scale), rng_key=jax.random.key(0)
        )


@pytest.mark.parametrize(
    ("call_schedule", "error", "pattern"),
    [
        (lambda: rdppl.linear_schedule(None), ValueError, "num_temperatures must"),
        (lambda: rdppl.linear_schedule("4"), ValueError, "num_temperatures must"),
        (lambda: rdppl.linear_schedule(np.nan), ValueError, "num_temperatures must"),
        (lambda: rdppl.linear_schedule(4, beta_max="1"), TypeError, "beta_max must"),
        (lambda: rdppl.linear_schedule(4, beta_max=1e300), ValueError, "beta_max"),
        (
            lambda: rdppl.geometric_schedule(4, beta_min=None),
            TypeError,
            "beta_min must be a real number",
        ),
        (lambda: rdppl.sigmoid_schedule(4, radius=1e6), ValueError, "radius=1000000"),
        (lambda: rdppl.sigmoid_schedule(4, radius=1e-102), ValueError, "radius=1e-102"),
    ],
)
def test_schedule_function_arguments(call_schedule, error, pattern):
    with pytest.raises(error, match=re.escape(pattern)):
        call_schedule()


def test_model_that_reads_x_when_rdppl_simulates():
    @rdppl.model(observed="x")
    def reads_x(x=None):
        z = numpyro.sample("z", dist.Normal(0.0, 1.0).expand([x.shape[0]]).to_event(1))
        numpyro.sample("x", dist.Normal(z, 1.0).to_event(1), obs=x)

    with pytest.raises(
        ValueError,
        match=r"it probably reads its observed argument 'x'\. Pass an example array "
        r"as data=",
    ):
        rdppl.bdmc(
            reads_x,
            rng_key=jax.random.key(0),
            betas=[1.0],
            schedule=rdppl.linear_schedule(2),
            num_examples=2,
            num_chains=2,
        )
