"""Kernels leave a known Gaussian invariant; step-size adaptation rules."""

import functools

import blackjax
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from rdppl import HMC, NUTS, BlackJAXKernel
from rdppl.sampler.adaptation import StepSizeState
from rdppl.sampler.kernels import TransitionInfo


def adapt_step_size(kernel, step_size, running, acceptance):
    """One update of the kernel's preliminary-run adaptation pair."""
    adaptation = kernel.step_size_adaptation()
    state = adaptation.update(
        StepSizeState(jnp.asarray(step_size), jnp.asarray(running)),
        jnp.asarray(acceptance),
    )
    return state.step_size, state.running_acceptance


MEAN = np.array([1.0, -2.0])
COVARIANCE = np.array([[1.0, 0.6], [0.6, 0.5]])
PRECISION = np.linalg.inv(COVARIANCE)


def gaussian_logdensity(u):
    r = u - MEAN
    return -0.5 * r @ (PRECISION @ r)


def run_chains(kernel, rng_key, start, num_steps, step_size, inverse_mass_matrix=None):
    """``num_steps`` transitions of every chain, recomputing value and gradient."""
    final, _, info = run_chains_with_momentum(
        kernel,
        rng_key,
        start,
        num_steps,
        step_size,
        jnp.ones(1) if inverse_mass_matrix is None else inverse_mass_matrix,
    )
    return final, info


@functools.partial(jax.jit, static_argnums=(0, 3))
def run_chains_with_momentum(
    kernel, rng_key, start, num_steps, step_size, inverse_mass_matrix
):
    """Transitions carrying each chain's whitened momentum (drawn N(0, I) first)."""

    def one_chain(key, position):
        def step(carry, key):
            u, p = carry
            value, grad = jax.value_and_grad(gaussian_logdensity)(u)
            u, p, info = kernel.transition(
                key,
                u,
                p,
                value,
                grad,
                gaussian_logdensity,
                step_size,
                inverse_mass_matrix,
            )
            return (u, p), info

        momentum_key, key = jax.random.split(key)
        momentum = jax.random.normal(momentum_key, position.shape, position.dtype)
        (u, p), info = jax.lax.scan(
            step, (position, momentum), jax.random.split(key, num_steps)
        )
        return u, p, info

    keys = jax.random.split(rng_key, start.shape[0])
    return jax.vmap(one_chain)(keys, start)


def exact_samples(num, seed):
    rng = np.random.default_rng(seed)
    samples = rng.multivariate_normal(MEAN, COVARIANCE, size=num)
    return samples.astype(jnp.result_type(float))  # float64 under x64


def assert_gaussian_moments(samples, num_sigma=5.0):
    """Mean and covariance of N exact draws within ``num_sigma`` standard errors."""
    samples = np.asarray(samples, dtype=np.float64)
    n = samples.shape[0]
    mean_error = np.sqrt(np.diag(COVARIANCE) / n)
    assert np.all(np.abs(samples.mean(0) - MEAN) < num_sigma * mean_error)
    centred = samples - MEAN
    for i in range(2):
        for j in range(2):
            products = centred[:, i] * centred[:, j]
            # standard error of a second moment: sd(products) / sqrt(n)
            error = np.sqrt(
                (COVARIANCE[i, i] * COVARIANCE[j, j] + COVARIANCE[i, j] ** 2) / n
            )
            assert abs(products.mean() - COVARIANCE[i, j]) < num_sigma * error, (i, j)


# one compiled shape per kernel: (chains, steps) = (4000, 20) for HMC
HMC_CHAINS, HMC_STEPS = 4000, 20


@pytest.mark.parametrize(
    ("kernel", "num_chains", "num_steps", "step_size"),
    [
        (HMC(num_leapfrog=10), HMC_CHAINS, HMC_STEPS, 0.25),
        (NUTS(max_num_doublings=5), 2000, 8, 0.3),
        (
            BlackJAXKernel(
                step=blackjax.mcmc.mala.build_kernel(), init=blackjax.mcmc.mala.init
            ),
            2000,
            100,
            0.1,
        ),
    ],
    ids=["HMC", "NUTS", "MALA"],
)
def test_kernel_leaves_gaussian_invariant(kernel, num_chains, num_steps, step_size):
    start = exact_samples(num_chains, seed=0)
    final, info = run_chains(kernel, jax.random.key(1), start, num_steps, step_size)
    assert isinstance(info, TransitionInfo)
    # chains started exact must still be exact after many transitions ...
    assert_gaussian_moments(final)
    # ... and must actually have moved (a kernel that never moves is trivially
    # invariant): high acceptance and little memory of the start
    assert float(np.mean(info.acceptance_rate)) > 0.6
    for i in range(2):
        assert abs(np.corrcoef(start[:, i], final[:, i])[0, 1]) < 0.3
    assert not np.any(info.is_divergent)
    steps = np.asarray(info.num_gradient_evaluations)
    if isinstance(kernel, HMC):
        assert np.all(steps == kernel.num_leapfrog)
    elif isinstance(kernel, BlackJAXKernel):
        assert np.all(steps == 1)
    else:
        # NUTS reports its own trajectory length, which varies between transitions
        assert np.all(steps >= 1) and np.all(steps <= 2**kernel.max_num_doublings - 1)
        assert len(np.unique(steps)) > 1


def test_leapfrog_energy_error_is_second_order():
    """Rejection comes from the leapfrog energy error, which is O(step^2).

    ``1 - acceptance = 1 - min(1, exp(-dH))`` is about ``max(dH, 0)``, so halving
    the step size at a fixed trajectory length divides the mean rejection by about
    four (a first-order or wrong integrator gives two, a kernel that ignores its
    step size gives one).
    """
    start = exact_samples(HMC_CHAINS, seed=4)
    rejection = []
    for step_size, num_leapfrog in [(0.1, 10), (0.05, 20)]:
        _, info = run_chains(
            HMC(num_leapfrog=num_leapfrog),
            jax.random.key(5),
            start,
            HMC_STEPS,
            step_size,
        )
        rejection.append(float(np.mean(1.0 - np.asarray(info.acceptance_rate))))
    assert 0 < rejection[1] < 1e-3
    assert 3.0 < rejection[0] / rejection[1] < 5.5


def test_huge_steps_diverge_and_are_rejected():
    start = exact_samples(HMC_CHAINS, seed=6)
    final, info = run_chains(
        HMC(num_leapfrog=10), jax.random.key(7), start, HMC_STEPS, 50.0
    )
    assert np.all(np.asarray(info.is_divergent))
    np.testing.assert_array_equal(final, start)


@pytest.mark.parametrize(
    ("running", "acceptance", "rate"),
    [
        (0.7, 1.0, 1.0),  # smoothed rate 0.73 > 0.65: grows by exp(0.08)
        (0.6, 0.6, 1.0),  # smoothed rate 0.60 < 0.65: shrinks by exp(-0.05)
        (0.9, 0.5, 2.0),  # 0.86 > 0.65: the smoothed rate decides, not the latest
        (0.9, 0.0, 2.0),  # a collapse (0 < 0.81) acts at once
        (0.5, 1.0, 0.5),  # 0.55 < 0.65 although the latest transition accepted
        (0.65, 0.65, 1.0),  # at the target the step size stays put
    ],
)
def test_adapt_step_size_rule(running, acceptance, rate):
    kernel = HMC(target_acceptance=0.65, acceptance_smoothing=0.9, adaptation_rate=rate)
    new_step, new_running = adapt_step_size(
        kernel, jnp.asarray(0.1), jnp.asarray(running), jnp.asarray(acceptance)
    )
    smoothed = 0.9 * running + 0.1 * acceptance
    np.testing.assert_allclose(new_running, smoothed, rtol=1e-6)
    np.testing.assert_allclose(
        new_step, 0.1 * np.exp(rate * (min(smoothed, acceptance) - 0.65)), rtol=1e-5
    )


def test_adapt_step_size_clips_and_uses_kernel_settings():
    kernel = HMC(step_size_bounds=(1e-4, 0.5))
    up, _ = adapt_step_size(kernel, jnp.asarray(0.499), jnp.asarray(1.0), 1.0)
    down, _ = adapt_step_size(kernel, jnp.asarray(1.01e-4), jnp.asarray(0.0), 0.0)
    np.testing.assert_allclose(up, 0.5, rtol=1e-6)
    np.testing.assert_allclose(down, 1e-4, rtol=1e-6)
    nuts = NUTS(acceptance_smoothing=0.0)
    assert nuts.target_acceptance == 0.8
    grown, running = adapt_step_size(nuts, jnp.asarray(0.1), jnp.asarray(0.0), 0.9)
    np.testing.assert_allclose(running, 0.9, rtol=1e-6)
    np.testing.assert_allclose(grown, 0.1 * np.exp(0.1), rtol=1e-5)
    # vectorised over examples
    steps, _ = adapt_step_size(
        kernel, jnp.array([0.1, 0.1]), jnp.array([0.9, 0.0]), jnp.array([1.0, 0.0])
    )
    np.testing.assert_allclose(
        steps, [0.1 * np.exp(0.91 - 0.65), 0.1 * np.exp(-0.65)], rtol=1e-5
    )


def test_adaptation_settles_within_tens_of_transitions():
    """From 100x too small a step size, the rule reaches the target quickly."""
    kernel = HMC(num_leapfrog=5, step_size_bounds=(1e-4, 5.0))
    adaptation = kernel.step_size_adaptation()
    state = adaptation.init(jnp.asarray(0.005))
    start = exact_samples(256, seed=3)
    steps = []
    for i in range(60):
        _, info = run_chains(kernel, jax.random.key(i), start, 1, state.step_size)
        state = adaptation.update(state, jnp.mean(info.acceptance_rate))
        steps.append(float(state.step_size))
    assert steps[30] > 0.05  # > 10x in thirty transitions
    # and it has settled: the running acceptance sits at the target
    running = float(state.running_acceptance)
    assert abs(running - 0.65) < 0.1, (running, steps[-5:])


def assert_extended_target_exact(start, final, momentum, info):
    """Positions and whitened momenta exact and independent, and the chains moved."""
    num_chains = len(start)
    assert_gaussian_moments(final)
    momentum = np.asarray(momentum, np.float64)
    error = 5.0 / np.sqrt(num_chains)
    assert np.all(np.abs(momentum.mean(0)) < error)
    np.testing.assert_allclose(
        np.cov(momentum.T), np.eye(2), atol=5 * np.sqrt(2 / num_chains)
    )
    joint = np.corrcoef(np.concatenate([np.asarray(final), momentum], axis=1).T)
    assert np.all(np.abs(joint[:2, 2:]) < error), joint
    assert float(np.mean(info.acceptance_rate)) > 0.5
    for i in range(2):
        assert abs(np.corrcoef(start[:, i], final[:, i])[0, 1]) < 0.5


@pytest.mark.parametrize(
    ("kernel", "inverse_mass_matrix"),
    [
        (HMC(num_leapfrog=5, persistence=0.9, step_size_jitter=0.3), None),
        (
            HMC(num_leapfrog=3, persistence=0.5, mass_matrix="diagonal"),
            np.diag(COVARIANCE),
        ),
        (HMC(num_leapfrog=4, persistence=0.8, mass_matrix="dense"), COVARIANCE),
        (HMC(num_leapfrog=4, mass_matrix="dense", step_size_jitter=0.5), COVARIANCE),
        (NUTS(mass_matrix="diagonal"), np.diag(COVARIANCE)),
    ],
    ids=["HAIS", "HAIS-diagonal", "HAIS-dense", "HMC-dense-jitter", "NUTS-diagonal"],
)
def test_momentum_carrying_transition_leaves_extended_target_invariant(
    kernel, inverse_mass_matrix
):
    """Exact positions with standard-normal whitened momenta stay so, jointly.

    A wrong momentum flip, refresh or whitening shows in the momentum's moments or
    in its correlation with the position, even where the position alone looks
    right.
    """
    num_chains = 2000
    start = exact_samples(num_chains, seed=10)
    imm = (
        jnp.ones(1)
        if inverse_mass_matrix is None
        else jnp.asarray(inverse_mass_matrix, jnp.result_type(float))
    )
    final, momentum, info = run_chains_with_momentum(
        kernel, jax.random.key(11), start, 15, 0.3, imm
    )
    assert_extended_target_exact(start, final, momentum, info)


def test_blackjax_kernel_counts_its_declared_cost_and_validates():
    mala = BlackJAXKernel(
        step=blackjax.mcmc.mala.build_kernel(),
        init=blackjax.mcmc.mala.init,
        gradient_evaluations_per_step=2,
    )
    start = exact_samples(8, seed=9)
    _, info = run_chains(mala, jax.random.key(2), start, 3, 0.1)
    assert np.all(np.asarray(info.num_gradient_evaluations) == 2)
    with pytest.raises(TypeError, match="step must be a BlackJAX step function"):
        BlackJAXKernel(step="mala", init=blackjax.mcmc.mala.init)


TEMPERATURE = 2.0  # log p(u) - beta d(u) is the Gaussian above at this beta


def tempered_terms(u):
    """A standard normal prior and a distortion that make the Gaussian above."""
    log_prior = -0.5 * u @ u
    return log_prior, (log_prior - gaussian_logdensity(u)) / TEMPERATURE


def evaluate_terms(u):
    from rdppl.sampler.ais import Evaluation

    log_prior, prior_grad = jax.value_and_grad(lambda v: tempered_terms(v)[0])(u)
    distortion, distortion_grad = jax.value_and_grad(lambda v: tempered_terms(v)[1])(u)
    return Evaluation(log_prior, distortion, prior_grad, distortion_grad)


@functools.partial(jax.jit, static_argnums=(0, 3))
def run_cached_chains(kernel, rng_key, start, num_steps, step_size, imm):
    """Transitions that hand each chain's evaluation on (no re-evaluation)."""

    def one_chain(key, position):
        def step(carry, key):
            u, p, evaluation, level = carry
            u, p, evaluation, info = kernel.cached_transition(
                key,
                u,
                p,
                evaluation,
                evaluate_terms,
                TEMPERATURE,
                step_size,
                imm,
                acceptance_level=level,
            )
            if info.acceptance_level is not None:  # carried on by the kernel
                level = info.acceptance_level
            return (u, p, evaluation, level), info._replace(acceptance_level=level)

        momentum_key, level_key, key = jax.random.split(key, 3)
        momentum = jax.random.normal(momentum_key, position.shape, position.dtype)
        level = jax.random.uniform(level_key, (), position.dtype, -1.0, 1.0)
        (u, p, evaluation, _), info = jax.lax.scan(
            step,
            (position, momentum, evaluate_terms(position), level),
            jax.random.split(key, num_steps),
        )
        return u, p, evaluation, info

    keys = jax.random.split(rng_key, start.shape[0])
    return jax.vmap(one_chain)(keys, start)


@pytest.mark.parametrize(
    ("kernel", "inverse_mass_matrix", "step_size"),
    [
        (HMC(num_leapfrog=10), None, 0.25),
        (HMC(num_leapfrog=1, persistence=0.9), None, 0.3),
        (HMC(num_leapfrog=3, persistence=0.5, mass_matrix="diagonal"), "diag", 0.3),
        (HMC(num_leapfrog=2, persistence=0.8, mass_matrix="dense"), "dense", 0.5),
        (HMC(num_leapfrog=1, persistence=0.9, step_size_jitter=0.3), None, 0.3),
        (HMC(num_leapfrog=1, persistence=0.9, acceptance_drift=0.1), None, 0.5),
        (HMC(num_leapfrog=2, persistence=0.8, acceptance_drift=0.3), "dense", 0.5),
    ],
    ids=[
        "HMC",
        "HAIS-default",
        "HAIS-diagonal",
        "HAIS-dense",
        "HAIS-jitter",
        "HAIS-drift",
        "HAIS-drift-dense",
    ],
)
def test_cached_transition_leaves_extended_target_invariant(
    kernel, inverse_mass_matrix, step_size
):
    """rdppl's own integrator (the gradients of the prior and the distortion kept
    apart and handed on) leaves position and whitened momentum exact, jointly; the
    evaluation it hands on is the one at the chain's final position; a transition
    costs its leapfrog steps only."""
    assert kernel.caches_gradients
    num_chains = 2000
    start = exact_samples(num_chains, seed=20)
    imm = {
        None: jnp.ones(1),
        "diag": jnp.asarray(np.diag(COVARIANCE), jnp.result_type(float)),
        "dense": jnp.asarray(COVARIANCE, jnp.result_type(float)),
    }[inverse_mass_matrix]
    final, momentum, evaluation, info = run_cached_chains(
        kernel, jax.random.key(21), start, 30, step_size, imm
    )
    assert_extended_target_exact(start, final, momentum, info)
    if kernel.acceptance_drift:  # the levels stay uniform on [-1, 1), apart
        level = np.asarray(info.acceptance_level)[:, -1]
        assert np.all((-1 <= level) & (level < 1))
        for probe in (-0.5, 0.0, 0.5):  # CDF within 5 binomial standard errors
            expected = (probe + 1) / 2
            error = np.sqrt(expected * (1 - expected) / len(level))
            assert abs(np.mean(level < probe) - expected) < 5 * error
        # and independent of the position: the same mean on either side of 0
        side = np.asarray(final)[:, 0] > 0
        gap = level[side].mean() - level[~side].mean()
        assert abs(gap) < 5 * np.sqrt(1 / 3 * (1 / side.sum() + 1 / (~side).sum()))
    fresh = jax.vmap(evaluate_terms)(final)
    for handed_on, recomputed in zip(evaluation, fresh, strict=True):
        np.testing.assert_allclose(handed_on, recomputed, rtol=1e-5, atol=1e-5)
    assert np.all(np.asarray(info.num_gradient_evaluations) == kernel.num_leapfrog)
    assert not np.any(info.is_divergent)


def test_kernels_without_their_own_integrator_do_not_cache():
    nuts = NUTS()
    assert not nuts.caches_gradients
    with pytest.raises(NotImplementedError, match="NUTS does not cache"):
        nuts.cached_transition(None, None, None, None, None, 1.0, 0.1, None)


def test_the_preliminary_run_draws_its_metropolis_uniforms_afresh():
    """Acceptances in runs say little about a step size: the tuning kernel has none."""
    kernel = HMC(num_leapfrog=1, persistence=0.9, acceptance_drift=0.1)
    assert kernel.tuning_kernel() == HMC(num_leapfrog=1, persistence=0.9)
    nuts = NUTS()
    assert nuts.tuning_kernel() is nuts
