"""rdppl against BlackJAX's own tempered SMC, at equal gradient evaluations.

Problems (``benchmarks/_peer_problems.py``; float32 data drawn from each model with a
fixed seed, 8 examples by default, exact ``log Z_beta`` at every beta):
``linear10`` (linear Gaussian 10 -> 64, unit noise, beta to 50), ``linear50``
(50 -> 784, beta to 1), ``illcond20`` (20 -> 100, cond(W) = 1e3, beta to 1) and
``tanh2`` (2 latents -> 32 pixels through ``tanh(A z + c)``, noise 0.3, beta to 10;
exact by 2-D quadrature). Prior ``N(0, I)`` on unconstrained ``z``; ``nll``
distortion, i.e. ``log Z_beta = log E_prior[p(x|z)^beta]``.

Methods, all with an identity mass matrix and (unless a configuration or variant
says otherwise) HMC of 10 leapfrog steps, all at (at most) the same gradient
evaluations per example:

- rdppl: ``rd_curve`` with each configuration of ``CONFIGS`` (extra keyword
  arguments; ``default`` is rd_curve's defaults, its default kernel included:
  Hamiltonian AIS with one leapfrog step and momentum persistence 0.9, a small
  preliminary run that adapts the step sizes, then the reported run replays them
  frozen, on a re-tuned schedule with resampling; ``hmc10`` the same with HMC of 10
  leapfrog steps, the previous default). The schedule family is ``--schedule``
  (sigmoid, radius 4, by default) and ``K`` the largest number of temperatures whose
  cost fits the budget: two probe runs (K = 2 and 4; they also compile) give the
  cost per temperature, and the real run's ``num_gradient_evaluations`` attribute
  is checked against the budget (K lowered and the run repeated if above).
- ``tempered``: ``blackjax.smc.tempered`` on the same schedule family, one HMC step
  per temperature (systematic resampling at every temperature, as BlackJAX does),
  ``K`` filling the budget; the step size, shared by all particles, starts at 0.1
  and after each temperature is multiplied by ``exp(mean acceptance - 0.65)``
  (clipped to [1e-4, 1]): rdppl's preliminary-run rule without its smoothing.
- ``adaptive-ess{0.5,0.75,0.9}``: ``blackjax.smc.adaptive_tempered`` (next beta by
  bisection on the ESS of the incremental weights) with ``n`` HMC steps per
  temperature: a pilot run with ``n = 1`` (its own seed, not counted) measures the
  number of temperatures T and ``n`` is chosen to fill the budget; if the measured
  cost is off (above 1.05 x budget or below 0.85 x budget) ``n`` is rescaled and the
  runs repeated (at most three tries). The same step-size rule.
- ``waste-free-P4``: ``blackjax.smc.waste_free`` on the fixed schedule: at each
  temperature ``M = chains`` resampled particles each run ``P - 1 = 3`` HMC steps and
  all ``N = M P`` states are kept; ``K`` fills the budget.
- ``waste-free-adaptive-ess0.5``: waste-free with adaptive tempering, ``M =
  chains``, ``P`` chosen like ``n`` above (pilot with ``P = 2``).
- ``-L1`` and ``-L3`` variants: the same with HMC of 1 (MALA) or 3 leapfrog steps,
  so more temperatures or MCMC steps fit the budget (``tempered-L1``,
  ``tempered-L3``, ``adaptive-ess0.5-L1``, ``adaptive-ess0.9-L3``,
  ``waste-free-P4-L3``).

"chains" is the number of parallel Markov chains per temperature: AIS chains for
rdppl, particles for tempered SMC, ``M`` for waste-free SMC (which keeps ``M P``
particles). Only variants whose measured cost is at most 1.05 x budget compete for
"best SMC"; every variant is written to the JSON file.

Gradient evaluations. rdppl: its ``num_gradient_evaluations`` attribute (the
preliminary run included). BlackJAX: counted inside the run from the kernels' info:
at every temperature BlackJAX re-initialises an HMC state per updated particle
(``hmc.init``: one value-and-gradient each) and each HMC step costs
``info.num_integration_steps`` (velocity Verlet reuses the last gradient), so a
temperature costs ``rows + sum(num_integration_steps)`` of ``update_info``: ``N (1 +
n L)`` for take-last updates and ``M (1 + (P - 1) L)`` for waste-free ones. The
weights and the ESS bisection evaluate the log-likelihood without gradients and are
not counted. ``--check-counts`` verifies these counts, and rdppl's attribute,
against a counter: the latent passes through an identity with a custom VJP whose
backward pass calls ``jax.debug.callback``, so each reverse-mode gradient of the
log density adds one (a single example, so no vmapped ``while`` executes masked
work); it exits with status 1 if a BlackJAX count differs, and prints rdppl's.
Adaptive runs are vmapped over examples: examples that reach beta_max stop
counting, but the vmapped loop keeps computing (masked) until the slowest one,
which the wall time includes.

Metrics per cell (problem, chains, budget) and method, over examples x seeds: the
error ``log Zhat - log Z`` at beta_max (mean +- standard error, RMSE); the worst
``|mean error|`` along beta (every beta of the run's schedule; where schedules differ
between runs (rdppl's tuned schedule, adaptive tempering) each run's error is
interpolated linearly onto the union of the betas visited); gradient evaluations per
example (mean over examples and seeds); wall time, the fastest seed: for BlackJAX
the compiled function alone (compiled ahead of time, compile time recorded
separately), for rdppl the whole ``rd_curve`` call (two AIS runs, the result built)
after the probe runs compiled it.

Run: ``python benchmarks/peers.py`` runs the issue's cells plus ``tanh2`` (linear10
16 chains at 2e4 and 5e5, 64 chains at 1e5; linear50 16 chains at 1e5 and 5e5;
illcond20 64 chains at 2e4 and 1e5; tanh2 16 chains at 2e4 and 1e5), 8 examples x 2
seeds: about 25 minutes on 2 CPU cores (estimated from single cells: linear10 at 2e4
1.5 minutes, linear50 at 1e5 4 minutes, illcond20 and tanh2 at 2e4 1 minute each;
linear50 at 5e5 extrapolated to about 8). ``--quick``: linear10, 16 chains, 2e4,
in about 1.5 minutes. ``--problems``, ``--budgets``, ``--chains`` (any given: all their
combinations), ``--seeds``, ``--examples``, ``--rdppl-configs``,
``--smc-variants``, ``--schedule``. Results go to ``benchmarks/results/peers.json``
(cells of earlier runs that were not rerun are kept) and a markdown table is
printed.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import math
import os
import sys
import time
import warnings
import zlib
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
import numpyro
import numpyro.distributions as dist
from blackjax.mcmc import hmc
from blackjax.smc import adaptive_tempered, resampling, tempered
from blackjax.smc.base import update_and_take_last
from blackjax.smc.waste_free import waste_free_smc

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)

from _peer_problems import PROBLEMS, Problem, gaussian_log_likelihood  # noqa: E402

import rdppl  # noqa: E402

NUM_LEAPFROG = 10
TARGET_ACCEPTANCE = 0.65
ADAPTATION_RATE = 1.0  # log step size change per unit of acceptance error
INITIAL_STEP_SIZE = 0.1
STEP_SIZE_BOUNDS = (1e-4, 1.0)
SLACK = 1.05  # a variant competes if its cost is at most SLACK x budget
UNDERFILL = 0.85  # adaptive variants below UNDERFILL x budget are refitted
FIXED_BUFFER = 8192  # padded schedule length of the fixed-schedule SMC (one compile)
ADAPTIVE_BUFFER = 4096  # most temperatures of an adaptive run
PILOT_SEED = 1000

WIDE = (1e-4, 2.0)  # preconditioned step sizes are O(1)
# rdppl configurations: extra rd_curve keyword arguments, or a function of the
# number of chains returning them (the kernel defaults to HMC(num_leapfrog=10)
# unless a configuration gives one)
CONFIGS: dict[str, Any] = {
    # rd_curve's defaults, its default kernel included (the others: HMC with 10
    # leapfrog steps unless they say otherwise)
    "default": {"kernel": None},
    "hmc10": {},
    "default-untuned": {"kernel": None, "tune_schedule": False},
    "default-preliminary2": {"kernel": None, "preliminary_chains": 2},
    "default-p0.8": {"kernel": rdppl.HMC(num_leapfrog=1, persistence=0.8)},
    "plain-ais": {"tune_schedule": False, "resample_threshold": 0.0},
    "full-preliminary": lambda chains: {"preliminary_chains": chains},
    "quarter-preliminary": lambda chains: {"preliminary_chains": max(2, chains // 4)},
    "eighth-preliminary": lambda chains: {"preliminary_chains": max(2, chains // 8)},
    "quarter-resample-always": lambda chains: {
        "preliminary_chains": max(2, chains // 4),
        "resample_threshold": 1.0,
    },
    "eighth-resample-always": lambda chains: {
        "preliminary_chains": max(2, chains // 8),
        "resample_threshold": 1.0,
    },
    "sixteenth-resample-always": lambda chains: {
        "preliminary_chains": max(2, -(-chains // 16)),
        "resample_threshold": 1.0,
    },
    "two-resample-always": lambda chains: {
        "preliminary_chains": 2,
        "resample_threshold": 1.0,
    },
    "two-resample-always-diagonal": lambda chains: {
        "preliminary_chains": 2,
        "resample_threshold": 1.0,
        "kernel": rdppl.HMC(
            num_leapfrog=NUM_LEAPFROG, mass_matrix="diagonal", step_size_bounds=WIDE
        ),
    },
    "eighth-resample-always-dense": lambda chains: {
        "preliminary_chains": max(2, chains // 8),
        "resample_threshold": 1.0,
        "kernel": rdppl.HMC(
            num_leapfrog=NUM_LEAPFROG, mass_matrix="dense", step_size_bounds=WIDE
        ),
    },
    "two-resample-always-L5": lambda chains: {
        "preliminary_chains": 2,
        "resample_threshold": 1.0,
        "kernel": rdppl.HMC(num_leapfrog=5),
    },
    "two-resample-always-L3": lambda chains: {
        "preliminary_chains": 2,
        "resample_threshold": 1.0,
        "kernel": rdppl.HMC(num_leapfrog=3),
    },
    "quarter-resample-always-untuned": lambda chains: {
        "preliminary_chains": max(2, chains // 4),
        "resample_threshold": 1.0,
        "tune_schedule": False,
    },
}

# Hamiltonian AIS settings measured on the way to the default (docs/benchmarks.md):
# (leapfrog steps, persistence, target acceptance, mass matrix)
HAIS_SETTINGS = [
    (1, 0.8, 0.65, "identity"),
    (1, 0.9, 0.65, "identity"),
    (1, 0.95, 0.65, "identity"),
    (1, 0.97, 0.65, "identity"),
    (1, 0.9, 0.8, "identity"),
    (1, 0.9, 0.85, "identity"),
    (1, 0.9, 0.9, "identity"),
    (1, 0.95, 0.9, "identity"),
    (1, 0.98, 0.9, "identity"),
    (1, 0.95, 0.8, "identity"),
    (1, 0.99, 0.95, "identity"),
    (1, 0.9, 0.65, "diagonal"),
    (1, 0.9, 0.65, "dense"),
    (2, 0.9, 0.65, "identity"),
    (2, 0.95, 0.85, "identity"),
    (3, 0.8, 0.65, "identity"),
    (4, 0.5, 0.65, "identity"),
    (5, 0.5, 0.65, "identity"),
]


def _hais_name(leapfrog, persistence, acceptance, mass):
    name = f"hais-L{leapfrog}-p{persistence}"
    if acceptance != 0.65:
        name += f"-a{acceptance}"
    return name if mass == "identity" else f"{name}-{mass}"


CONFIGS.update(
    {
        _hais_name(*setting): {
            "kernel": rdppl.HMC(
                num_leapfrog=setting[0],
                persistence=setting[1],
                target_acceptance=setting[2],
                mass_matrix=setting[3],
                step_size_bounds=WIDE if setting[3] != "identity" else (1e-4, 0.5),
            )
        }
        for setting in HAIS_SETTINGS
    }
)

# uncorrected Hamiltonian AIS (no Metropolis test, the energy error in the weight)
# (persistence, target acceptance)
UNCORRECTED_SETTINGS = [
    (0.9, 0.9),
    (0.95, 0.9),
    (0.98, 0.9),
    (0.95, 0.95),
    (0.99, 0.95),
]
CONFIGS.update(
    {
        f"uhais-p{p}-a{a}": {
            "kernel": rdppl.HMC(
                num_leapfrog=1,
                persistence=p,
                target_acceptance=a,
                metropolis=False,
                step_size_bounds=(1e-4, 0.5),
            )
        }
        for p, a in UNCORRECTED_SETTINGS
    }
)

# Neal's non-reversible acceptance: (persistence, target acceptance, drift)
DRIFT_SETTINGS = [
    (0.9, 0.65, 0.02),
    (0.9, 0.65, 0.05),
    (0.9, 0.65, 0.1),
    (0.9, 0.65, 0.2),
    (0.95, 0.65, 0.05),
    (0.95, 0.8, 0.05),
]
CONFIGS.update(
    {
        f"nhais-p{p}-a{a}-d{d}": {
            "kernel": rdppl.HMC(
                num_leapfrog=1, persistence=p, target_acceptance=a, acceptance_drift=d
            )
        }
        for p, a, d in DRIFT_SETTINGS
    }
)

SCHEDULES = {
    "sigmoid": lambda k, beta_max: rdppl.sigmoid_schedule(
        k, beta_max=beta_max, radius=4
    ),
    "sigmoid10": lambda k, beta_max: rdppl.sigmoid_schedule(
        k, beta_max=beta_max, radius=10
    ),
    "geometric": lambda k, beta_max: rdppl.geometric_schedule(
        k, beta_max=beta_max, beta_min=1e-4 * beta_max
    ),
    "linear": lambda k, beta_max: rdppl.linear_schedule(k, beta_max=beta_max),
}


@dataclasses.dataclass(frozen=True)
class Variant:
    """A BlackJAX tempered SMC variant.

    ``waste_free``: 0 for BlackJAX's default update (resample N, run ``n`` steps,
    keep the last); otherwise waste-free with ``M = chains`` resampled particles and
    ``P = waste_free`` (fixed schedule) or ``P`` fitted to the budget (adaptive).
    """

    adaptive: bool
    target_ess: float = 0.5
    waste_free: int = 0
    num_leapfrog: int = NUM_LEAPFROG


SMC_VARIANTS = {
    "tempered": Variant(adaptive=False),
    "adaptive-ess0.5": Variant(adaptive=True, target_ess=0.5),
    "adaptive-ess0.75": Variant(adaptive=True, target_ess=0.75),
    "adaptive-ess0.9": Variant(adaptive=True, target_ess=0.9),
    "waste-free-P4": Variant(adaptive=False, waste_free=4),
    "waste-free-adaptive-ess0.5": Variant(adaptive=True, target_ess=0.5, waste_free=1),
    # fewer leapfrog steps, more temperatures (HMC with 1 step is MALA)
    "tempered-L1": Variant(adaptive=False, num_leapfrog=1),
    "tempered-L3": Variant(adaptive=False, num_leapfrog=3),
    "adaptive-ess0.5-L1": Variant(adaptive=True, target_ess=0.5, num_leapfrog=1),
    "adaptive-ess0.9-L3": Variant(adaptive=True, target_ess=0.9, num_leapfrog=3),
    "waste-free-P4-L3": Variant(adaptive=False, waste_free=4, num_leapfrog=3),
}

# the cells (problem, chains, budget per example), plus the nonlinear model
DEFAULT_GRID = [
    ("linear10", 16, 20_000),
    ("linear10", 64, 100_000),
    ("linear10", 16, 500_000),
    ("linear50", 16, 100_000),
    ("linear50", 16, 500_000),
    ("illcond20", 64, 20_000),
    ("illcond20", 64, 100_000),
    ("tanh2", 16, 20_000),
    ("tanh2", 16, 100_000),
]


# --------------------------------------------------------------------------- rdppl


def _config(name: str, chains: int) -> dict[str, Any]:
    """The rd_curve keyword arguments of configuration ``name`` at ``chains``."""
    config = CONFIGS[name]
    return config(chains) if callable(config) else dict(config)


def rdppl_run(problem, schedule, chains, seed, options):
    """One rd_curve call: (betas, errors (examples, betas), cost/example, wall)."""
    kwargs = {"kernel": rdppl.HMC(num_leapfrog=NUM_LEAPFROG), **options}
    start = time.perf_counter()
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        tree = rdppl.rd_curve(
            problem.model,
            problem.x,
            rng_key=jax.random.key(seed),
            schedule=schedule,
            num_chains=chains,
            model_args=problem.model_args,
            **kwargs,
        )
    wall = time.perf_counter() - start
    curve = tree["rate_distortion"]
    betas = np.asarray(curve["beta"].values, np.float64)
    log_z = np.asarray(curve["log_z"].values, np.float64)
    errors = np.stack(
        [log_z[e] - problem.exact(e, betas) for e in range(len(problem.x))]
    )
    cost = int(tree.attrs["num_gradient_evaluations"]) / len(problem.x)
    messages = sorted({str(w.message).split("\n")[0][:160] for w in caught})
    return betas, errors, cost, wall, messages


def run_rdppl(problem, chains, budget, seeds, options, schedule_family):
    """rdppl at the largest K that fits the budget, one run per seed."""
    schedule = SCHEDULES[schedule_family]
    probe = {
        k: rdppl_run(problem, schedule(k, problem.beta_max), chains, 0, options)[2]
        for k in (2, 4)
    }
    slope = (probe[4] - probe[2]) / 2
    intercept = probe[2] - 2 * slope
    k = int((budget - intercept) // slope)
    if k < 2:
        return {"feasible": False, "reason": f"K = {k} < 2 fits the budget"}
    while True:
        runs = [
            rdppl_run(problem, schedule(k, problem.beta_max), chains, seed, options)
            for seed in seeds
        ]
        cost = max(r[2] for r in runs)
        if cost <= budget or k <= 2:
            break
        k -= max(1, math.ceil((cost - budget) / slope))
    summary = summarise(
        [(r[0], e) for r in runs for e in r[1]],
        [r[2] for r in runs],
        [r[3] for r in runs],
        budget,
    )
    summary.update(
        num_temperatures=k,
        cost_per_temperature=slope,
        warnings=sorted({m for r in runs for m in r[4]}),
    )
    return summary


# -------------------------------------------------------------------------- BlackJAX


_HMC_KERNEL = hmc.build_kernel()


def _hmc_step(num_leapfrog):
    def step(rng_key, state, logdensity_fn, step_size, inverse_mass_matrix):
        return _HMC_KERNEL(
            rng_key, state, logdensity_fn, step_size, inverse_mass_matrix, num_leapfrog
        )

    return step


def _densities(problem, params, x, scale, counter=None):
    """Log prior and ``scale`` x log-likelihood of one example (JAX)."""

    def log_prior(z):
        return -0.5 * jnp.sum(z**2) - 0.5 * z.shape[-1] * math.log(2 * math.pi)

    def log_likelihood(z):
        if counter is not None:
            z = counter(z)
        return scale * gaussian_log_likelihood(x, problem.decode(params, z), params[2])

    return log_prior, log_likelihood


def _mcmc_parameters(step_size, dim):
    # leading axis of length 1: shared by all particles
    return {
        "step_size": step_size[None],
        "inverse_mass_matrix": jnp.ones((1, dim), step_size.dtype),
    }


def _adapt(step_size, info):
    """Multiply the step size by exp(rate (mean acceptance - target)), clipped."""
    acceptance = jnp.mean(info.update_info.acceptance_rate)
    acceptance = jnp.where(jnp.isfinite(acceptance), acceptance, 0.0)
    new = step_size * jnp.exp(ADAPTATION_RATE * (acceptance - TARGET_ACCEPTANCE))
    return jnp.clip(new, *STEP_SIZE_BOUNDS).astype(step_size.dtype), acceptance


def _gradients(info):
    """Gradient evaluations of one temperature, from the kernels' info."""
    update = info.update_info
    rows = update.acceptance_rate.shape[0]  # one hmc.init per updated particle
    return rows + jnp.sum(update.num_integration_steps).astype(jnp.int32)


def _initial_state(key, num_particles, dim, dtype):
    particles = jax.random.normal(key, (num_particles, dim), dtype)
    weights = jnp.full((num_particles,), 1.0 / num_particles, dtype)
    return tempered.TemperedSMCState(particles, weights, jnp.zeros((), dtype))


def _strategy(num_particles, waste_free):
    if waste_free:
        return waste_free_smc(num_particles, waste_free)
    return update_and_take_last


def fixed_smc(
    key,
    x,
    betas,
    num_steps,
    params,
    *,
    problem,
    num_particles,
    num_mcmc,
    waste_free,
    num_leapfrog=NUM_LEAPFROG,
    counter=None,
):
    """Tempered SMC of one example on ``betas[:num_steps + 1]`` (padded)."""
    dim, dtype = problem.latent_dim, x.dtype
    log_prior, log_likelihood = _densities(problem, params, x, 1.0, counter)
    kernel = tempered.build_kernel(
        log_prior,
        log_likelihood,
        _hmc_step(num_leapfrog),
        hmc.init,
        resampling.systematic,
        _strategy(num_particles, waste_free),
    )
    init_key, key = jax.random.split(key)
    mcmc_steps = None if waste_free else num_mcmc

    def body(i, carry):
        state, step_size, key, increments, acceptance, gradients = carry
        key, step_key = jax.random.split(key)
        state, info = kernel(
            step_key, state, mcmc_steps, betas[i], _mcmc_parameters(step_size, dim)
        )
        step_size, accepted = _adapt(step_size, info)
        return (
            state,
            step_size,
            key,
            increments.at[i].set(info.log_likelihood_increment),
            acceptance.at[i].set(accepted),
            gradients + _gradients(info),
        )

    zeros = jnp.zeros(betas.shape, dtype)
    carry = (
        _initial_state(init_key, num_particles, dim, dtype),
        jnp.asarray(INITIAL_STEP_SIZE, dtype),
        key,
        zeros,
        zeros,
        jnp.zeros((), jnp.int32),
    )
    carry = jax.lax.fori_loop(1, num_steps + 1, body, carry)
    return {"increments": carry[3], "acceptance": carry[4], "gradients": carry[5]}


def adaptive_smc(
    key,
    x,
    target_ess,
    max_steps,
    params,
    *,
    problem,
    num_particles,
    num_mcmc,
    waste_free,
    num_leapfrog=NUM_LEAPFROG,
    counter=None,
):
    """Adaptive tempered SMC of one example; ``lambda = beta / beta_max``."""
    dim, dtype = problem.latent_dim, x.dtype
    log_prior, log_likelihood = _densities(
        problem, params, x, problem.beta_max, counter
    )
    kernel = adaptive_tempered.build_kernel(
        log_prior,
        log_likelihood,
        _hmc_step(num_leapfrog),
        hmc.init,
        resampling.systematic,
        target_ess,
        update_strategy=_strategy(num_particles, waste_free),
    )
    init_key, key = jax.random.split(key)
    mcmc_steps = None if waste_free else num_mcmc

    def cond(carry):
        i, state = carry[0], carry[1]
        return (state.tempering_param < 1.0) & (i < max_steps)

    def body(carry):
        i, state, step_size, key, lambdas, increments, gradients = carry
        key, step_key = jax.random.split(key)
        state, info = kernel(
            step_key, state, mcmc_steps, _mcmc_parameters(step_size, dim)
        )
        step_size, _ = _adapt(step_size, info)
        return (
            i + 1,
            state,
            step_size,
            key,
            lambdas.at[i].set(state.tempering_param),
            increments.at[i].set(info.log_likelihood_increment),
            gradients + _gradients(info),
        )

    zeros = jnp.zeros((ADAPTIVE_BUFFER,), dtype)
    carry = (
        jnp.zeros((), jnp.int32),
        _initial_state(init_key, num_particles, dim, dtype),
        jnp.asarray(INITIAL_STEP_SIZE, dtype),
        key,
        zeros,
        zeros,
        jnp.zeros((), jnp.int32),
    )
    i, state, _, _, lambdas, increments, gradients = jax.lax.while_loop(
        cond, body, carry
    )
    return {
        "num_steps": i,
        "lambdas": lambdas,
        "increments": increments,
        "gradients": gradients,
        "finished": state.tempering_param >= 1.0,
    }


_COMPILED: dict[tuple, tuple[Any, float]] = {}


def _compiled(problem, variant, num_particles, num_mcmc, args):
    """The vmapped (over examples), ahead-of-time compiled SMC and compile time."""
    key = (problem.name, variant, num_particles, num_mcmc, args[1].shape, args[2].shape)
    if key not in _COMPILED:
        one = adaptive_smc if variant.adaptive else fixed_smc

        def run(keys, x, schedule_or_ess, limit, params):
            def single(k, xi):
                return one(
                    k,
                    xi,
                    schedule_or_ess,
                    limit,
                    params,
                    problem=problem,
                    num_particles=num_particles,
                    num_mcmc=num_mcmc,
                    waste_free=num_mcmc if variant.waste_free else 0,
                    num_leapfrog=variant.num_leapfrog,
                )

            return jax.vmap(single)(keys, x)

        start = time.perf_counter()
        compiled = jax.jit(run).lower(*args).compile()
        _COMPILED[key] = (compiled, time.perf_counter() - start)
    return _COMPILED[key]


def _seed_keys(seed, name, num_examples):
    key = jax.random.fold_in(jax.random.key(seed), zlib.crc32(name.encode()))
    return jax.random.split(key, num_examples)


def _per_temperature(variant, chains, mcmc):
    """Gradient evaluations of one temperature and the particle count."""
    if variant.waste_free:  # mcmc = P, M = chains
        return chains * (1 + (mcmc - 1) * variant.num_leapfrog), chains * mcmc
    return chains * (1 + mcmc * variant.num_leapfrog), chains


def smc_once(problem, name, variant, chains, mcmc, seed, schedule=None, limit=None):
    """One vmapped SMC run: per-example (betas, errors), costs, wall, compile."""
    cost_per_temperature, num_particles = _per_temperature(variant, chains, mcmc)
    keys = _seed_keys(seed, name, len(problem.x))
    params = tuple(jnp.asarray(a) for a in problem.model_args)
    x = jnp.asarray(problem.x)
    if variant.adaptive:
        args = (keys, x, jnp.float32(variant.target_ess), jnp.int32(limit), params)
    else:
        num_steps = len(schedule) - 1
        padded = np.full(max(FIXED_BUFFER, num_steps + 1), schedule[-1], np.float32)
        padded[: num_steps + 1] = schedule
        args = (keys, x, jnp.asarray(padded), jnp.int32(num_steps), params)
    compiled, compile_time = _compiled(problem, variant, num_particles, mcmc, args)
    start = time.perf_counter()
    out = jax.device_get(jax.block_until_ready(compiled(*args)))
    wall = time.perf_counter() - start
    curves, finished = [], []
    for e in range(len(problem.x)):
        if variant.adaptive:
            n = int(out["num_steps"][e])
            lam = np.asarray(out["lambdas"][e, :n], np.float64)
            betas = np.concatenate([[0.0], lam * problem.beta_max])
            increments = np.asarray(out["increments"][e, :n], np.float64)
            finished.append(bool(out["finished"][e]))
        else:
            betas = np.asarray(padded[: num_steps + 1], np.float64)
            increments = np.asarray(out["increments"][e, 1 : num_steps + 1], np.float64)
            finished.append(True)
        log_z = np.concatenate([[0.0], np.cumsum(increments)])
        curves.append((betas, log_z - problem.exact(e, betas)))
    gradients = np.asarray(out["gradients"], np.float64)
    return {
        "curves": curves,
        "cost": float(gradients.mean()),
        "cost_max": float(gradients.max()),
        "finished": all(finished),
        "wall": wall,
        "compile": compile_time,
        "cost_per_temperature": cost_per_temperature,
        "num_particles": num_particles,
    }


def _fit(variant, chains, per_temperature, smallest):
    """Largest n (or P) whose cost per temperature is at most ``per_temperature``."""
    steps = int((per_temperature / chains - 1) // variant.num_leapfrog)
    return max(smallest, steps + (1 if variant.waste_free else 0))


def run_smc(problem, name, variant, chains, budget, seeds, schedule_family):
    """One BlackJAX variant at the budget, one run per seed."""
    schedule = SCHEDULES[schedule_family]
    notes: dict[str, Any] = {}
    if not variant.adaptive:
        mcmc = variant.waste_free or 1
        per_temperature, _ = _per_temperature(variant, chains, mcmc)
        k = int(budget // per_temperature)
        if k < 2:
            return {"feasible": False, "reason": f"K = {k} < 2 fits the budget"}
        betas = schedule(k, problem.beta_max)
        runs = [
            smc_once(problem, name, variant, chains, mcmc, s, schedule=betas)
            for s in seeds
        ]
        notes.update(num_temperatures=k)
    else:
        smallest = 2 if variant.waste_free else 1
        per_temperature, _ = _per_temperature(variant, chains, smallest)
        limit = min(ADAPTIVE_BUFFER, math.ceil(2 * SLACK * budget / per_temperature))
        pilot = smc_once(
            problem, name, variant, chains, smallest, PILOT_SEED, None, limit
        )
        temperatures = np.mean([len(b) - 1 for b, _ in pilot["curves"]])
        notes.update(pilot_temperatures=float(temperatures), pilot_cost=pilot["cost"])
        if not pilot["finished"] or pilot["cost"] > SLACK * budget:
            return {
                "feasible": False,
                "reason": f"the pilot with {'P' if variant.waste_free else 'n'} = "
                f"{smallest} costs {pilot['cost']:.0f} per example"
                + ("" if pilot["finished"] else " and did not reach beta_max"),
                **notes,
            }
        mcmc = _fit(variant, chains, budget / temperatures, smallest)
        attempts: list[tuple[int, float, list]] = []
        for _ in range(3):
            per_temperature, _ = _per_temperature(variant, chains, mcmc)
            limit = min(
                ADAPTIVE_BUFFER, math.ceil(2 * SLACK * budget / per_temperature)
            )
            runs = [
                smc_once(problem, name, variant, chains, mcmc, s, None, limit)
                for s in seeds
            ]
            cost = float(np.mean([r["cost"] for r in runs]))
            done = all(r["finished"] for r in runs)
            attempts.append((mcmc, cost if done else math.inf, runs))
            if done and UNDERFILL * budget <= cost <= SLACK * budget:
                break
            # the cost per temperature scales the cost about linearly
            new = _fit(variant, chains, per_temperature * budget / cost, smallest)
            if cost > SLACK * budget:
                new = min(new, mcmc - 1)
            elif new <= mcmc:
                break
            if new < smallest:
                break
            mcmc = new
        fitting = [a for a in attempts if a[1] <= SLACK * budget]
        mcmc, _, runs = max(fitting, key=lambda a: a[1]) if fitting else attempts[-1]
        notes.update(tries=[(a[0], a[1]) for a in attempts])
        if not all(r["finished"] for r in runs):
            return {"feasible": False, "reason": "did not reach beta_max", **notes}
    summary = summarise(
        [c for r in runs for c in r["curves"]],
        [r["cost"] for r in runs],
        [r["wall"] for r in runs],
        budget,
    )
    summary.update(
        notes,
        mcmc_steps_per_temperature=mcmc,
        num_particles=runs[0]["num_particles"],
        cost_max=max(r["cost_max"] for r in runs),
        compile_seconds=runs[0]["compile"],
    )
    return summary


# --------------------------------------------------------------------------- metrics


def summarise(curves, costs, walls, budget):
    """Error at beta_max and along beta over (betas, errors) curves."""
    at_max = np.array([errors[-1] for _, errors in curves])
    n = at_max.size
    first = curves[0][0]
    if all(len(b) == len(first) and np.array_equal(b, first) for b, _ in curves):
        grid, mean_curve = first, np.mean([e for _, e in curves], axis=0)
    else:
        grid = np.unique(np.concatenate([b for b, _ in curves]))
        mean_curve = np.mean([np.interp(grid, b, e) for b, e in curves], axis=0)
    cost = float(np.mean(costs))
    return {
        "feasible": True,
        "within_budget": cost <= SLACK * budget,
        "mean_error": float(at_max.mean()),
        "standard_error": float(at_max.std(ddof=1) / np.sqrt(n)) if n > 1 else None,
        "rmse": float(np.sqrt(np.mean(at_max**2))),
        "worst_mean_error_along_beta": float(np.abs(mean_curve).max()),
        "beta_of_worst": float(grid[np.argmax(np.abs(mean_curve))]),
        "errors_at_beta_max": at_max.tolist(),
        "gradient_evaluations_per_example": cost,
        "wall_seconds": float(np.min(walls)),
        "wall_seconds_per_seed": [float(w) for w in walls],
    }


# --------------------------------------------------------------- gradient counting


def check_gradient_counts() -> bool:
    """Count gradients with a custom-VJP callback and compare (one example)."""
    total = [0]

    def add(ones):
        total[0] += int(np.size(ones))

    @jax.custom_vjp
    def counted(z):
        return z

    def forward(z):
        return z, None

    def backward(_, g):
        jax.debug.callback(add, jnp.sum(g) * 0.0 + 1.0)
        return (g,)

    counted.defvjp(forward, backward)

    def measure(fn, *args):
        total[0] = 0
        out = jax.block_until_ready(jax.jit(fn)(*args))
        jax.effects_barrier()
        return out, total[0]

    problem = PROBLEMS["linear10"](2)
    params = tuple(jnp.asarray(a) for a in problem.model_args)
    x = jnp.asarray(problem.x[0])
    key = jax.random.key(0)
    betas = jnp.asarray(rdppl.sigmoid_schedule(5, beta_max=50.0), jnp.float32)
    ok = True
    cases = [
        ("tempered N=8 n=1", False, 8, 1, 0, NUM_LEAPFROG),
        ("tempered N=8 n=3", False, 8, 3, 0, NUM_LEAPFROG),
        ("tempered N=8 n=2 L=1", False, 8, 2, 0, 1),
        ("waste-free M=4 P=4", False, 16, 4, 4, NUM_LEAPFROG),
        ("waste-free M=4 P=4 L=3", False, 16, 4, 4, 3),
        ("adaptive ESS 0.5 N=8 n=2", True, 8, 2, 0, NUM_LEAPFROG),
        ("waste-free adaptive M=4 P=3", True, 12, 3, 3, NUM_LEAPFROG),
    ]
    print("gradient evaluations: formula / kernels' info / counting callback")
    for label, adaptive, particles, mcmc, waste_free, leapfrog in cases:
        options = dict(
            problem=problem,
            num_particles=particles,
            num_mcmc=mcmc,
            waste_free=waste_free,
            num_leapfrog=leapfrog,
            counter=counted,
        )
        if adaptive:

            def fn(k, options=options):
                return adaptive_smc(k, x, 0.5, 200, params, **options)
        else:

            def fn(k, options=options):
                return fixed_smc(k, x, betas, 5, params, **options)

        out, counted_total = measure(fn, key)
        steps = int(out["num_steps"]) if adaptive else 5
        if waste_free:
            formula = steps * (particles // waste_free) * (1 + (mcmc - 1) * leapfrog)
        else:
            formula = steps * particles * (1 + mcmc * leapfrog)
        info = int(out["gradients"])
        good = formula == info == counted_total
        ok &= good
        print(
            f"  {label:30s} {formula} / {info} / {counted_total} "
            + ("ok" if good else "MISMATCH")
        )

    @rdppl.model(observed="x", reconstruction="x_hat")
    def counted_linear(W, b, sigma, x=None):
        z = numpyro.sample("z", dist.Normal(0.0, 1.0).expand([W.shape[1]]).to_event(1))
        x_hat = numpyro.deterministic("x_hat", W @ counted(z) + b)
        numpyro.sample("x", dist.Normal(x_hat, sigma).to_event(1), obs=x)

    for label, options in (
        ("rdppl default", CONFIGS["default"]),
        ("rdppl hmc10", CONFIGS["hmc10"]),
        ("rdppl plain-ais", CONFIGS["plain-ais"]),
    ):
        total[0] = 0
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            tree = rdppl.rd_curve(
                counted_linear,
                problem.x[:1],
                rng_key=key,
                schedule=rdppl.sigmoid_schedule(5, beta_max=50.0),
                num_chains=8,
                model_args=problem.model_args,
                **{"kernel": rdppl.HMC(num_leapfrog=NUM_LEAPFROG), **options},
            )
        jax.effects_barrier()
        attr = int(tree.attrs["num_gradient_evaluations"])
        print(
            f"  {label:30s} attribute {attr} / counting callback {total[0]}"
            f" ({'equal' if attr == total[0] else 'differ'})"
        )
    return ok


# ---------------------------------------------------------------------------- main


def fmt(row):
    if row is None or not row.get("feasible"):
        return "n/a"
    se = row["standard_error"]
    se = "n/a" if se is None else f"{se:.2g}"
    return f"{row['rmse']:.3g} ({row['mean_error']:+.3g} +- {se})"


def best_smc(methods):
    candidates = [
        (name, row)
        for name, row in methods.items()
        if name.startswith("smc:") and row.get("feasible") and row["within_budget"]
    ]
    if not candidates:
        return None, None
    return min(candidates, key=lambda item: item[1]["rmse"])


def table(cells) -> str:
    lines = [
        "| problem | chains | budget | rdppl config: RMSE (mean +- se) | best SMC: "
        "RMSE (mean +- se) | worst mean error along beta, rdppl / SMC | "
        "gradients per example, rdppl / SMC | wall, rdppl / SMC |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for cell in cells:
        name, smc = best_smc(cell["methods"])
        for config, row in cell["methods"].items():
            if not config.startswith("rdppl:"):
                continue
            feasible = row.get("feasible") and smc is not None
            worst = (
                f"{row['worst_mean_error_along_beta']:.3g} / "
                f"{smc['worst_mean_error_along_beta']:.3g}"
                if feasible
                else "n/a"
            )
            cost = (
                f"{row['gradient_evaluations_per_example']:.3g} / "
                f"{smc['gradient_evaluations_per_example']:.3g}"
                if feasible
                else "n/a"
            )
            wall = (
                f"{row['wall_seconds'] / smc['wall_seconds']:.2g}"
                if feasible
                else "n/a"
            )
            lines.append(
                f"| {cell['problem']} | {cell['chains']} | {cell['budget']:.0e} | "
                f"{config[6:]}: {fmt(row)} | {name[4:] if name else 'none'}: "
                f"{fmt(smc)} | {worst} | {cost} | {wall} |"
            )
    return "\n".join(lines)


def detail(cell) -> str:
    lines = [
        f"{cell['problem']}, {cell['chains']} chains, budget {cell['budget']:.0e}:"
    ]
    for name, row in cell["methods"].items():
        if not row.get("feasible"):
            lines.append(f"  {name:34s} infeasible: {row.get('reason')}")
            continue
        extra = ""
        if "num_temperatures" in row:
            extra += f" K={row['num_temperatures']}"
        if "mcmc_steps_per_temperature" in row:
            extra += f" n/P={row['mcmc_steps_per_temperature']}"
        lines.append(
            f"  {name:34s} {fmt(row):28s} "
            f"worst {row['worst_mean_error_along_beta']:.3g}"
            f" cost {row['gradient_evaluations_per_example']:.4g}"
            f"{'' if row['within_budget'] else ' OVER'} wall {row['wall_seconds']:.2f}s"
            + extra
        )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--problems", default=None, help=",".join(PROBLEMS))
    parser.add_argument("--budgets", default=None, help="per example, e.g. 2e4,1e5")
    parser.add_argument("--chains", default=None, help="e.g. 16,64")
    parser.add_argument("--seeds", type=int, default=2)
    parser.add_argument("--examples", type=int, default=8)
    parser.add_argument("--rdppl-configs", default="default", help=",".join(CONFIGS))
    parser.add_argument(
        "--smc-variants", default=",".join(SMC_VARIANTS), help=",".join(SMC_VARIANTS)
    )
    parser.add_argument("--schedule", default="sigmoid", choices=sorted(SCHEDULES))
    parser.add_argument("--check-counts", action="store_true")
    parser.add_argument("--output", default=os.path.join(HERE, "results", "peers.json"))
    args = parser.parse_args(argv)
    if args.check_counts:
        return 0 if check_gradient_counts() else 1
    if args.quick:
        grid = [("linear10", 16, 20_000)]
    else:
        grid = DEFAULT_GRID
    if args.problems or args.budgets or args.chains:
        problems = (args.problems or "linear10").split(",")
        budgets = [int(float(b)) for b in (args.budgets or "2e4").split(",")]
        chains = [int(c) for c in (args.chains or "16").split(",")]
        grid = [(p, c, b) for p in problems for c in chains for b in budgets]
    configs = args.rdppl_configs.split(",")
    variants = [v for v in args.smc_variants.split(",") if v]
    for name in configs:
        if name not in CONFIGS:
            parser.error(f"unknown rdppl configuration {name!r}")
    for name in variants:
        if name not in SMC_VARIANTS:
            parser.error(f"unknown SMC variant {name!r}")
    seeds = list(range(1, args.seeds + 1))
    built: dict[str, Problem] = {}
    cells = []
    start = time.perf_counter()
    for problem_name, chains, budget in grid:
        if problem_name not in built:
            built[problem_name] = PROBLEMS[problem_name](args.examples)
        problem = built[problem_name]
        methods: dict[str, Any] = {}
        for config in configs:
            methods[f"rdppl:{config}"] = run_rdppl(
                problem, chains, budget, seeds, _config(config, chains), args.schedule
            )
        for variant in variants:
            methods[f"smc:{variant}"] = run_smc(
                problem, variant, SMC_VARIANTS[variant], chains, budget, seeds,
                args.schedule,
            )  # fmt: skip
        cell = {
            "problem": problem_name,
            "description": problem.description,
            "chains": chains,
            "budget": budget,
            "schedule": args.schedule,
            "num_examples": args.examples,
            "seeds": seeds,
            "methods": methods,
        }
        cells.append(cell)
        print(detail(cell), f"[{time.perf_counter() - start:.0f} s]", flush=True)
        # free the cell's compiled programs: kept, they fill the process's memory
        # mappings and rdppl's guard would clear (and recompile) at every call
        _COMPILED.clear()
        jax.clear_caches()
    print()
    print(table(cells))
    print(f"\ntotal wall time {time.perf_counter() - start:.0f} s")
    os.makedirs(os.path.dirname(args.output), exist_ok=True)
    previous = []
    if os.path.exists(args.output):
        with open(args.output) as handle:
            previous = json.load(handle).get("cells", [])
    rerun = {(c["problem"], c["chains"], c["budget"], c["schedule"]) for c in cells}
    kept = [
        c
        for c in previous
        if (c["problem"], c["chains"], c["budget"], c["schedule"]) not in rerun
    ]
    versions = {
        "rdppl": rdppl.__version__,
        "jax": jax.__version__,
        "blackjax": __import__("blackjax").__version__,
    }
    with open(args.output, "w") as handle:
        json.dump({"versions": versions, "cells": kept + cells}, handle, indent=1)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
