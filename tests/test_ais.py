"""The AIS engine: bookkeeping, equivalences, recompilation, dtypes, step sizes."""

import collections
import dataclasses

import equinox as eqx
import jax
import jax.monitoring
import jax.numpy as jnp
import numpy as np
import numpyro
import numpyro.distributions as dist

import rdppl
from rdppl.numerics.estimators import log_mean_exp
from rdppl.program.tracing import trace_model
from rdppl.sampler import ais, protocol, records, runner

TINY = {
    "schedule": rdppl.sigmoid_schedule(6, beta_max=3.0),
    "num_chains": 3,
    "kernel": rdppl.HMC(num_leapfrog=3),
}
VARIABLES = {
    "rate_distortion": ["rate", "distortion", "log_z"],
    "sample_stats": [
        "acceptance_rate",
        "step_size",
        "importance_ess",
        "pareto_khat",
        "num_divergent",
        "num_nonfinite",
    ],
}


def assert_trees_equal(a, b, rtol=0.0, atol=0.0):
    for group, names in VARIABLES.items():
        for name in names:
            np.testing.assert_allclose(
                a[group][name].values,
                b[group][name].values,
                rtol=rtol,
                atol=atol,
                err_msg=f"{group}/{name}",
            )


def segment(spec, kernel, state, betas, keys, data, step_sizes=None):
    """The caller-written loop of BlackJAX style: ``lax.scan`` over ``ais`` steps.

    ``vmap`` over examples; step ``j`` uses key ``fold_in(key, j)`` as rdppl's
    runner does. Adapts with the kernel's ``(init, update)`` pair when no step sizes
    are given. Returns the final state, the infos and the step sizes used.
    """
    step = ais.build_kernel(spec, kernel)
    adaptation = kernel.step_size_adaptation()
    steps = len(betas) - 1
    adapt = step_sizes is None
    if adapt:
        step_sizes = jnp.ones((steps, data.shape[0]))
    inputs = (
        jnp.asarray(betas[:-1], jnp.float32),
        jnp.asarray(betas[1:], jnp.float32),
        jnp.asarray(step_sizes, jnp.float32),
        jnp.arange(steps),
    )

    # kernels with their own integrator hand each chain's evaluation on
    cached = kernel.caches_gradients

    def one_example(
        state, adapted, cache, replay, key, example, beta_prev, beta_new, j
    ):
        size = adapted.step_size if adapt else replay
        state, info, *handed_on = step(
            jax.random.fold_in(key, j),
            state,
            example,
            beta_prev,
            beta_new,
            size,
            jnp.ones(1),
            **({"cache": cache} if cached else {}),
        )
        if adapt:
            adapted = adaptation.update(adapted, info.acceptance_rate)
        return (state, adapted, handed_on[0] if cached else cache), (info, size)

    def body(carry, step_inputs):
        beta_prev, beta_new, replay, j = step_inputs
        return jax.vmap(one_example, in_axes=(0, 0, 0, 0, 0, 0, None, None, None))(
            *carry, replay, keys, data, beta_prev, beta_new, j
        )

    adapted = jax.vmap(adaptation.init)(jnp.full(data.shape[0], kernel.step_size))
    cache = ()
    if cached:
        cache = jax.vmap(
            lambda chains, x: jax.vmap(lambda u: ais.evaluate(spec, u, x))(
                chains.position
            )
        )(state, data)
    (state, _, _), (infos, sizes) = eqx.filter_jit(
        lambda carry, inputs: jax.lax.scan(body, carry, inputs)
    )((state, adapted, cache), inputs)
    return state, (infos, sizes)


def finish(spec, state, beta_prev, beta_new, data):
    """Final absolute log weights, the absolute log Z at ``beta_prev``, estimates."""
    final, last = jax.vmap(lambda s, x: ais.finish(spec, s, x, beta_prev, beta_new))(
        state, data
    )
    log_z = absolute_log_z(last.log_z, state)
    return records.absolute_log_weight(final), log_z, last


def absolute_log_z(relative, offsets):
    """A recorded ``log_z`` plus the offset it is relative to (float64)."""
    return (
        np.asarray(relative, np.float64)
        + np.asarray(offsets.log_offset, np.float64)
        + np.asarray(offsets.log_offset_error, np.float64)
    )


def test_weight_bookkeeping_when_chains_do_not_move(linear_gaussian):
    """With every proposal rejected, AIS is importance sampling from the prior.

    The chains stay at their prior draws ``z_0``, so the log weights telescope to
    ``-beta_k d(x, z_0)`` and every recorded estimate has a closed form. This pins
    down the order of operations: estimates at ``beta_prev`` use the weights before
    the increment ``(beta_new - beta_prev) d``.
    """
    model, _, _, _, data = linear_gaussian
    data = jnp.asarray(data, jnp.float32)
    spec = trace_model(model, data[0])
    betas = rdppl.linear_schedule(4, beta_max=2.0)
    state = protocol.init_from_prior(spec, jax.random.key(0), data, 5)
    # a huge frozen step size: every leapfrog trajectory is rejected
    replay = np.full((4, data.shape[0]), 1e4)
    keys = jax.random.split(jax.random.key(1), data.shape[0])
    new_state, (records, step_sizes) = segment(
        spec, rdppl.HMC(num_leapfrog=2), state, betas, keys, data, replay
    )
    np.testing.assert_array_equal(new_state.position, state.position)
    assert np.all(np.asarray(records.acceptance_rate) == 0)
    np.testing.assert_array_equal(step_sizes, replay)
    final_log_weight, last_log_z, last = finish(
        spec, new_state, jnp.float32(2.0), jnp.float32(2.0), data
    )
    distortion = jax.vmap(
        jax.vmap(lambda u, x: spec.log_prior_and_distortion(u, x)[1], (0, None))
    )(state.position, data)  # (examples, chains)
    log_z = np.concatenate([absolute_log_z(records.log_z, records), last_log_z[None]])
    estimated = np.concatenate([records.distortion, last.distortion[None]])
    for k, beta in enumerate(betas):
        log_weight = -beta * distortion
        np.testing.assert_allclose(log_z[k], log_mean_exp(log_weight), rtol=1e-5)
        weights = jax.nn.softmax(log_weight, axis=-1)
        np.testing.assert_allclose(
            estimated[k], jnp.sum(weights * distortion, -1), rtol=1e-5
        )
    np.testing.assert_allclose(final_log_weight, -2.0 * distortion, rtol=1e-5)


def test_jit_equals_no_jit(linear_gaussian):
    model, _, _, _, data = linear_gaussian
    settings = {
        "schedule": rdppl.linear_schedule(2, beta_max=2.0),
        "num_chains": 2,
        "kernel": rdppl.HMC(num_leapfrog=2),
        "chunk_size": 2,
    }
    jitted = rdppl.rd_curve(model, data[:2], rng_key=jax.random.key(3), **settings)
    with jax.disable_jit():
        eager = rdppl.rd_curve(model, data[:2], rng_key=jax.random.key(3), **settings)
    # the same float32 operations, fused differently: agreement to rounding
    assert_trees_equal(jitted, eager, rtol=1e-4, atol=1e-5)


def test_results_do_not_depend_on_chunk_size(linear_gaussian):
    model, _, _, _, data = linear_gaussian
    whole = rdppl.rd_curve(model, data, rng_key=jax.random.key(4), **TINY)
    # segments of 4 and 2 (padded to 4) temperatures: keys come from each step's
    # global index, and the carry (positions, weights, adapted step size and
    # running acceptance) crosses segment boundaries
    chunked = rdppl.rd_curve(
        model, data, rng_key=jax.random.key(4), chunk_size=4, **TINY
    )
    assert_trees_equal(whole, chunked)
    assert (
        whole.attrs["num_gradient_evaluations"]
        == (chunked.attrs["num_gradient_evaluations"])
    )


def test_vmapped_equals_looped_over_examples(linear_gaussian):
    """Batched examples and a Python loop over single examples, with the same keys.

    Tested at the level of ``ais.build_kernel``: ``rd_curve`` derives each example's
    keys by splitting one key into ``num_examples`` pieces, so a one-example call of
    ``rd_curve`` does not in general receive the keys of example ``i`` of a batch.
    """
    model, _, _, _, data = linear_gaussian
    data = jnp.asarray(data, jnp.float32)
    spec = trace_model(model, data[0])
    kernel = rdppl.HMC(num_leapfrog=3)
    betas = rdppl.sigmoid_schedule(5, beta_max=3.0)
    state = protocol.init_from_prior(spec, jax.random.key(5), data, 4)
    keys = jax.random.split(jax.random.key(6), data.shape[0])

    def run(state, keys, data):
        state, records = segment(spec, kernel, state, betas, keys, data)
        last = jnp.float32(betas[-1])
        return state, (records, finish(spec, state, last, last, data))

    def close(got, want):
        np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-6)

    batched_state, (batched_records, batched_final) = run(state, keys, data)
    for i in range(data.shape[0]):
        one = slice(i, i + 1)
        single_state, (single_records, single_final) = run(
            jax.tree.map(lambda a, one=one: a[one], state), keys[one], data[one]
        )
        # carry and finish: example axis first; scan records: (steps, examples)
        jax.tree.map(
            close,
            (single_state, single_final),
            jax.tree.map(lambda a, one=one: a[one], (batched_state, batched_final)),
        )
        jax.tree.map(
            close,
            single_records,
            jax.tree.map(lambda a, one=one: a[:, one], batched_records),
        )


@dataclasses.dataclass(frozen=True)
class CountingHMC(rdppl.HMC):
    """HMC that counts how often its transition is traced (Python runs only then)."""

    traces = collections.Counter()

    def transition(self, *args, **kwargs):
        CountingHMC.traces[self.num_leapfrog] += 1
        return super().transition(*args, **kwargs)

    def cached_transition(self, *args, **kwargs):
        CountingHMC.traces[self.num_leapfrog] += 1
        return super().cached_transition(*args, **kwargs)


class CompileEvents:
    """Count JAX tracing and backend compilation events (jax.monitoring)."""

    NAMES = (
        "/jax/core/compile/jaxpr_trace_duration",
        "/jax/core/compile/backend_compile_duration",
    )

    def __init__(self, names=NAMES):
        self.names = names

    def __enter__(self):
        self.count = 0
        jax.monitoring.register_event_duration_secs_listener(self.listen)
        return self

    def listen(self, name, duration, **kwargs):
        if name in self.names:
            self.count += 1

    def __exit__(self, *exc):
        jax.monitoring.unregister_event_duration_listener(self.listen)


def test_no_retrace_on_new_data_of_the_same_shape():
    def linear(W, x=None, *, noise=0.5):
        z = numpyro.sample("z", dist.Normal(0.0, 1.0).expand([2]).to_event(1))
        numpyro.sample("x", dist.Normal(W @ z, noise).to_event(1), obs=x)

    model = rdppl.model(linear, observed="x")
    kernel = CountingHMC(num_leapfrog=7)  # num_leapfrog keys this test's counter
    rng = np.random.default_rng(0)

    def call(seed, num_temperatures):
        return rdppl.rd_curve(
            model,
            rng.normal(size=(2, 3)),
            rng_key=jax.random.key(seed),
            schedule=rdppl.linear_schedule(num_temperatures, beta_max=2.0),
            num_chains=3,
            kernel=kernel,
            model_args=(rng.normal(size=(3, 2)),),
            model_kwargs={"noise": np.asarray(rng.uniform(0.3, 1.0))},
        )

    call(0, 5)
    traced = CountingHMC.traces[7]
    assert traced > 0
    # new data, new model arguments and a new key: nothing is compiled, and the AIS
    # loop is not traced again (the up-front abstract check of the program,
    # tracing.trace_model, traces its prior draw and site values: cheap, no compile)
    with CompileEvents(names=("/jax/core/compile/backend_compile_duration",)) as events:
        second = call(1, 5)
    assert events.count == 0
    assert CountingHMC.traces[7] == traced
    assert np.all(np.isfinite(second["rate_distortion"]["log_z"].values))
    # a different schedule length reuses the AIS loop too (segments are padded to
    # one length); only trivial host-side slicing may compile
    call(2, 9)
    assert CountingHMC.traces[7] == traced


def test_preliminary_and_formal_runs_share_one_compilation():
    def traces_of_a_run(kernel):
        # fresh program: nothing is cached for it yet
        def scalar(x=None):
            z = numpyro.sample("z", dist.Normal(0.0, 1.0))
            numpyro.sample("x", dist.Normal(z, 1.0), obs=x)

        rdppl.rd_curve(
            scalar,
            np.zeros(2),
            rng_key=jax.random.key(0),
            schedule=[0.0, 0.5, 1.0],
            num_chains=2,
            kernel=kernel,
            observed="x",
        )
        return CountingHMC.traces[kernel.num_leapfrog]

    adapted = traces_of_a_run(CountingHMC(num_leapfrog=8))
    fixed = traces_of_a_run(CountingHMC(num_leapfrog=9, adapt_step_size=False))
    assert adapted == fixed > 0


def test_float64_inside_enable_x64():
    # W is passed as an argument, not closed over: a NumPy constant captured by a
    # function compiled with x64 off is reused with the wrong dtype inside
    # jax.enable_x64 (a known limitation of JAX's x64 context manager).
    def linear(W, x=None):
        z = numpyro.sample("z", dist.Normal(0.0, 1.0).expand([2]).to_event(1))
        numpyro.sample("x", dist.Normal(W @ z, 0.5).to_event(1), obs=x)

    rng = np.random.default_rng(1)
    with jax.enable_x64(True):
        tree = rdppl.rd_curve(
            linear,
            rng.normal(size=(2, 3)),
            rng_key=jax.random.key(0),
            schedule=rdppl.linear_schedule(4),
            num_chains=3,
            kernel=rdppl.HMC(num_leapfrog=3),
            observed="x",
            model_args=(rng.normal(size=(3, 2)),),
        )
    for group in ["rate_distortion", "sample_stats"]:
        for name in VARIABLES[group]:
            if not name.startswith("num_"):
                assert tree[group][name].dtype == np.float64, (group, name)
    assert tree["observed_data"]["x"].dtype == np.float64
    assert np.all(np.isfinite(tree["rate_distortion"]["log_z"].values))


def test_step_size_protocol(linear_gaussian):
    """Preliminary run adapts and records; the formal run replays the record."""
    model, _, _, _, data = linear_gaussian
    data = jnp.asarray(data, jnp.float32)
    spec = trace_model(model, data[0])
    kernel = rdppl.HMC(num_leapfrog=3, step_size=0.3)
    betas = rdppl.sigmoid_schedule(6, beta_max=3.0)
    run, _, tuning, preliminary_cost, _ = protocol.forward(
        spec, kernel, rng_key=jax.random.key(7), data=data, betas=betas, num_chains=3
    )
    step_sizes = tuning.step_size
    assert step_sizes.shape == (6, 3)
    assert tuning.inverse_mass_matrix.shape == (6, 3, 1)
    np.testing.assert_array_equal(run.step_size[:, 1:], step_sizes.T)
    assert np.all(np.isnan(run.step_size[:, 0]))
    # the recorded sizes start at the kernel's and follow the proportional rule
    np.testing.assert_allclose(step_sizes[0], 0.3, rtol=1e-6)
    ratios = np.log(step_sizes[1:] / step_sizes[:-1])
    assert np.all(np.abs(ratios) <= kernel.adaptation_rate * 0.65 + 1e-5)
    assert np.any(ratios != 0)
    # 3 leapfrog steps per transition, and the chains' first evaluation
    cost = data.shape[0] * 3 * (6 * 3 + 1)
    assert preliminary_cost == run.num_gradient_evaluations == cost

    # replaying arbitrary step sizes records them unchanged and does not adapt
    replay = np.linspace(0.05, 0.2, 18).reshape(6, 3)
    state = protocol.init_from_prior(spec, jax.random.key(8), data, 3)
    replayed = runner.run_path(
        spec,
        kernel,
        state,
        betas,
        final_beta=float(betas[-1]),
        replay=records.Tuning(replay, np.ones((6, 3, 1))),
        rng_key=jax.random.key(9),
        data=data,
    )
    np.testing.assert_allclose(replayed.step_size[:, 1:], replay.T, rtol=1e-6)

    # without adaptation there is no preliminary run and the step size is fixed
    fixed = rdppl.HMC(num_leapfrog=3, step_size=0.2, adapt_step_size=False)
    run, _, _, preliminary_cost, _ = protocol.forward(
        spec, fixed, rng_key=jax.random.key(7), data=data, betas=betas, num_chains=3
    )
    assert preliminary_cost == 0
    np.testing.assert_allclose(run.step_size[:, 1:], 0.2, rtol=1e-6)


def test_adaptation_responds_to_the_first_transition(linear_gaussian):
    """An easy target (acceptance ~1) grows the step size from the first update.

    The reference implementation (Wu et al.; Huang et al., App. C.3) starts the
    running acceptance average at the target rate, so the first transition's
    acceptance decides the first update. Starting it at 0 instead shrinks the step
    size for the first ~10 transitions whatever the acceptance.
    """
    model, _, _, _, data = linear_gaussian
    spec = trace_model(model, data[0])
    kernel = rdppl.HMC(num_leapfrog=3, step_size=0.01)
    betas = rdppl.linear_schedule(6, beta_max=1e-3)  # nearly the prior
    forward = protocol.forward(
        spec,
        kernel,
        rng_key=jax.random.key(10),
        data=jnp.asarray(data, jnp.float32),
        betas=betas,
        num_chains=3,
    )
    run, step_sizes = forward.run, forward.tuning.step_size
    assert np.all(run.acceptance_rate[:, 1:] > 0.99)
    acceptance = run.acceptance_rate[:, 1]
    running = 0.9 * 0.65 + 0.1 * acceptance
    np.testing.assert_allclose(step_sizes[1], 0.01 * np.exp(running - 0.65), rtol=1e-5)


def test_segmented_runner_equals_a_hand_written_loop(linear_gaussian):
    """The runner (segments, padding, devices) is the plain BlackJAX-style loop."""
    model, _, _, _, data = linear_gaussian
    data = jnp.asarray(data, jnp.float32)
    spec = trace_model(model, data[0])
    kernel = rdppl.HMC(num_leapfrog=3, step_size=0.2)
    betas = rdppl.sigmoid_schedule(7, beta_max=3.0)
    state = protocol.init_from_prior(spec, jax.random.key(11), data, 4)
    run = runner.run_path(
        spec,
        kernel,
        state,
        betas,
        final_beta=float(betas[-1]),
        replay=None,
        rng_key=jax.random.key(12),
        data=data,
        execution=runner.Execution(chunk_size=3),
    )
    keys = jax.random.split(jax.random.key(12), data.shape[0])
    final_state, (infos, sizes) = segment(spec, kernel, state, betas, keys, data)
    last_beta = jnp.float32(betas[-1])
    final_log_weight, last_log_z, _ = finish(
        spec, final_state, last_beta, last_beta, data
    )
    np.testing.assert_allclose(run.step_size[:, 1:], np.asarray(sizes).T, rtol=1e-6)
    np.testing.assert_allclose(
        run.log_z,
        np.concatenate([absolute_log_z(infos.log_z, infos), last_log_z[None]]).T,
        rtol=1e-5,
    )
    np.testing.assert_allclose(run.final_log_weight, final_log_weight, rtol=1e-5)
