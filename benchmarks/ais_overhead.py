"""Cost of rdppl's AIS per gradient evaluation against a minimal hand-written JAX loop.

Decoders, each written twice on the same weights and data: as a NumPyro program run
by rdppl, and as a hand-written log prior and log likelihood run by a minimal AIS
loop (plain JAX: one ``lax.scan`` over temperatures, ``vmap`` over examples and
chains, hand-written leapfrog HMC with a Metropolis-Hastings accept, fixed step size,
``log w -= dbeta * d(z)``), in float32. The minimal loop does ``num_leapfrog + 1``
gradient evaluations per chain and temperature (one at the new temperature, then the
leapfrog steps); rdppl's HMC keeps the gradient from the end of each trajectory, so it
does one per chain at the start and ``num_leapfrog`` per temperature. Ratios are per
gradient evaluation, each call's own count.
Every decoder has a ``N(0, I)`` prior and a Gaussian likelihood, ``nll`` distortion:

- ``linear``: 10 latents -> 64 pixels, unit noise;
- ``mlp``: 10 -> 64 -> 256 -> 64, tanh hidden layers, noise 0.1;
- ``gan100`` (the issue's "Deep-GAN100", Huang et al.'s MNIST GAN shape): 100 ->
  1024 -> 1024 -> 1024 -> 784, tanh hidden layers, sigmoid output, noise 0.1;
- ``dcgan`` (DCGAN-shaped, CIFAR-10's 32x32x3): 100 -> linear -> 4x4xC (relu) ->
  transposed convolutions (4x4 kernels, stride 2, ``jax.lax.conv_transpose``) to
  8x8x(C/2) (relu), 16x16x(C/4) (relu), 32x32x3 (tanh), flattened to 3072 pixels,
  noise 0.1; ``C = --conv-channels`` (128 by default; 256 is the usual DCGAN width).

Size presets (``--decoders``; any flag given explicitly wins): ``small`` (the
default: linear and mlp, 10 examples x 16 chains, 20 leapfrog steps, 2000
temperatures), ``field`` (gan100 and dcgan at the issue's size, 50 examples x 40
chains x 20 leapfrog steps, 4 temperatures, 2 repeats: about 15 minutes for gan100
and over an hour for dcgan on 2 CPU cores, see docs/benchmarks.md) and ``reduced``
(gan100 and dcgan, 10 examples x 8 chains x 20 leapfrog steps, 4 temperatures, 3
repeats: about 10 minutes).

Timed, after one warm-up call of each (compilation excluded), interleaved over
repeats in rotating order:

- ``baseline``: the minimal loop (prior draw, all temperatures, final chains, and the
  per-temperature ``log Z`` and distortion estimates that make the RD curve);
- ``formal``: rdppl's formal run, ``protocol.forward`` with a non-adapting kernel (prior
  draw, ``run_path`` with frozen step sizes, results copied to the host);
- ``engine``: the same formal run on the hand-written density (a ``TracedModel`` built
  from functions), to separate rdppl's engine from the density NumPyro writes;
- ``formal_progress``: the formal run with its progress bar on (written to
  ``os.devnull``): the host callback every 16 temperatures must cost nothing
  measurable;
- ``rd_curve``: the whole public call with ``HMC(adapt_step_size=False)``;
- ``rd_curve_adaptive``: the whole public call with the default protocol (a preliminary
  run of a sixteenth of the chains rounded up, at least 2, then the formal run).

Reported: median seconds per call, microseconds per gradient evaluation of one chain,
and the ratio to the minimal loop as the median of per-round ratios, for wall-clock
time and for process CPU time (the steadier one on a shared machine); the ratio per
gradient evaluation divides by each call's own count (the preliminary run's
included). ``--cold`` also times each function's first call after
``jax.clear_caches()`` (compilation included, as in a fresh process);
``--profile`` splits one cold and one warm ``rd_curve`` call (default protocol) into
its parts (``benchmarks/_overhead_profile.py``). ``--first-calls-only`` times just the
first calls of the minimal loop and of the default ``rd_curve`` (the whole call at
many temperatures, without warm rounds), with the seconds each spent compiling
(JAX's compilation events) and the ratio per gradient evaluation of the rest.

Run ``python benchmarks/ais_overhead.py`` (or ``nox -s benchmark``); ``--quick`` for a
short check, ``--decoders field --cold --profile`` for the field-size decoders,
``--json PATH`` to write the numbers.
"""

from __future__ import annotations

import argparse
import datetime
import functools
import json
import math
import os
import platform
import statistics
import sys
import time
from collections.abc import Callable, Sequence
from typing import Any, NamedTuple

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
import numpyro
import numpyro.distributions as dist
from jax.scipy.special import logsumexp

import rdppl
from rdppl import analytic
from rdppl.program.decorator import TracedModel
from rdppl.program.tracing import trace_model
from rdppl.sampler import protocol, runner, segments

LATENT, HIDDEN_1, HIDDEN_2, OBSERVED = 10, 64, 256, 64  # the small decoders
HALF_LOG_2PI = 0.5 * math.log(2.0 * math.pi)
CONV_CHANNELS = 128  # dcgan's channels at 4x4 (--conv-channels)


class Decoder(NamedTuple):
    """A decoder's sizes and observation noise (``x | z ~ N(f(z), sigma^2 I)``)."""

    latent: int
    observed: int
    sigma: float
    description: str


DECODERS = {
    "linear": Decoder(LATENT, OBSERVED, 1.0, "10 -> 64, linear"),
    "mlp": Decoder(LATENT, OBSERVED, 0.1, "10 -> 64 -> 256 -> 64, tanh hidden"),
    "gan100": Decoder(
        100, 784, 0.1, "100 -> 1024 -> 1024 -> 1024 -> 784, tanh hidden, sigmoid out"
    ),
    "dcgan": Decoder(
        100, 3072, 0.1, "100 -> 4x4xC -> 8x8xC/2 -> 16x16xC/4 -> 32x32x3, conv"
    ),
}
FIELD_DECODERS = ("gan100", "dcgan")
# the dense layers of the MLP decoders: (fan_out, fan_in), hidden activation tanh
DENSE_LAYERS = {
    "mlp": [(HIDDEN_1, LATENT), (HIDDEN_2, HIDDEN_1), (OBSERVED, HIDDEN_2)],
    "gan100": [(1024, 100), (1024, 1024), (1024, 1024), (784, 1024)],
}
SIGMA = {kind: decoder.sigma for kind, decoder in DECODERS.items()}

Terms = Callable[[jax.Array, jax.Array, dict], tuple[jax.Array, jax.Array]]


# --------------------------------------------------------------------------------------
# The decoders, as NumPyro programs (for rdppl) and by hand (for the baseline)
# --------------------------------------------------------------------------------------
def decoder_mean(kind: str, params: dict, z: jax.Array) -> jax.Array:
    """Decoder output ``f(z)`` of one latent vector (shared by both versions)."""
    if kind == "linear":
        return params["W"] @ z + params["b"]
    if kind == "dcgan":
        return conv_decoder_mean(params, z)
    h = z
    layers = len(DENSE_LAYERS[kind])
    for i in range(1, layers + 1):
        h = params[f"W{i}"] @ h + params[f"b{i}"]
        if i < layers:
            h = jnp.tanh(h)
    return jax.nn.sigmoid(h) if kind == "gan100" else h


def conv_decoder_mean(params: dict, z: jax.Array) -> jax.Array:
    """The DCGAN-shaped decoder: linear to 4x4xC, three transposed convolutions."""
    channels = params["b0"].shape[0] // 16
    h = jax.nn.relu(params["W0"] @ z + params["b0"]).reshape(1, 4, 4, channels)
    for i in range(1, 4):
        h = jax.lax.conv_transpose(
            h,
            params[f"K{i}"],
            strides=(2, 2),
            padding="SAME",
            dimension_numbers=("NHWC", "HWIO", "NHWC"),
        )
        h = h + params[f"b{i}"]
        h = jax.nn.relu(h) if i < 3 else jnp.tanh(h)
    return h.reshape(-1)  # 32 x 32 x 3 = 3072


def numpyro_program(kind: str) -> rdppl.Model:
    """The decoder as a NumPyro program for one example; weights are an argument."""
    decoder = DECODERS[kind]

    def program(params, x=None):
        z = numpyro.sample(
            "z", dist.Normal(0.0, 1.0).expand([decoder.latent]).to_event(1)
        )
        mean = decoder_mean(kind, params, z)
        numpyro.sample("x", dist.Normal(mean, decoder.sigma).to_event(1), obs=x)

    program.__name__ = f"{kind}_decoder"
    return rdppl.model(program, observed="x")


def hand_written_terms(kind: str) -> Terms:
    """Log prior and ``nll`` distortion of one chain, without NumPyro."""
    decoder = DECODERS[kind]
    sigma = decoder.sigma
    constant = decoder.observed * (HALF_LOG_2PI + math.log(sigma))
    prior_constant = decoder.latent * HALF_LOG_2PI

    def terms(z: jax.Array, x: jax.Array, params: dict):
        log_prior = -0.5 * jnp.dot(z, z) - prior_constant
        residual = (x - decoder_mean(kind, params, z)) / sigma
        distortion = 0.5 * jnp.dot(residual, residual) + constant
        return log_prior, distortion

    return terms


class HandWritten(eqx.Module):
    """The hand-written density and prior draw, as functions of ``(u, x)``."""

    kind: str = eqx.field(static=True)
    params: dict

    def log_terms(self, position, example):
        return hand_written_terms(self.kind)(position, example, self.params)

    def initial(self, rng_key, example):
        return jax.random.normal(rng_key, (DECODERS[self.kind].latent,))


def hand_written_target(kind, params, traced):
    """A TracedModel built from functions: rdppl's engine on the hand-written density.

    Running rdppl's engine (``protocol.forward``) on it instead of on the traced
    NumPyro program separates the cost of the engine from the cost of the density as
    NumPyro writes it.
    """
    functions = HandWritten(kind, params)
    return TracedModel(
        log_terms=functions.log_terms,
        initial=functions.initial,
        constrain=traced.constrain,
        simulator=None,
        structure=traced.structure,
    )


def make_params(
    kind: str, rng: np.random.Generator, conv_channels: int = CONV_CHANNELS
) -> dict:
    """Random fixed weights (float32): ``N(0, 1/fan_in)``, biases ``N(0, 0.01)``."""
    params: dict[str, Any] = {}
    if kind == "linear":
        params = {
            "W": rng.normal(size=(OBSERVED, LATENT)) / math.sqrt(LATENT),
            "b": rng.normal(size=OBSERVED) * 0.1,
        }
    elif kind == "dcgan":
        c = conv_channels
        params["W0"] = rng.normal(size=(16 * c, 100)) / math.sqrt(100)
        params["b0"] = rng.normal(size=16 * c) * 0.1
        for i, (c_in, c_out) in enumerate([(c, c // 2), (c // 2, c // 4), (c // 4, 3)]):
            # a stride-2 transposed 4x4 convolution sums 4 taps per input channel
            params[f"K{i + 1}"] = rng.normal(size=(4, 4, c_in, c_out)) / math.sqrt(
                4 * c_in
            )
            params[f"b{i + 1}"] = rng.normal(size=c_out) * 0.1
    else:
        for i, (fan_out, fan_in) in enumerate(DENSE_LAYERS[kind], start=1):
            params[f"W{i}"] = rng.normal(size=(fan_out, fan_in)) / math.sqrt(fan_in)
            params[f"b{i}"] = rng.normal(size=fan_out) * 0.1
    return {k: jnp.asarray(v, jnp.float32) for k, v in params.items()}


def make_case(
    kind: str,
    rng: np.random.Generator,
    num_examples: int,
    conv_channels: int = CONV_CHANNELS,
):
    """Random fixed weights and data simulated from the model (float32)."""
    params = make_params(kind, rng, conv_channels)
    decoder = DECODERS[kind]
    z = rng.normal(size=(num_examples, decoder.latent)).astype(np.float32)
    mean = np.asarray(jax.jit(jax.vmap(lambda u: decoder_mean(kind, params, u)))(z))
    noise = rng.normal(size=mean.shape) * decoder.sigma
    return params, jnp.asarray(mean + noise, jnp.float32)


# --------------------------------------------------------------------------------------
# The minimal AIS loop
# --------------------------------------------------------------------------------------
class BaselineResult(NamedTuple):
    position: jax.Array  # (examples, chains, latent) after the last move
    log_weight: jax.Array  # (examples, chains) after the last temperature
    log_z: jax.Array  # (temperatures, examples), estimate before each move
    distortion: jax.Array  # (temperatures, examples)


def make_baseline(terms: Terms, num_leapfrog: int, num_chains: int, latent: int):
    """A jitted minimal AIS run: ``run(key, data, betas, step_size, params)``."""

    def tempered(z, x, beta, params):
        log_prior, distortion = terms(z, x, params)
        return log_prior - beta * distortion

    value_and_grad = jax.value_and_grad(tempered)

    def hmc(key, z, logp, grad, x, beta, step_size, params):
        key_momentum, key_accept = jax.random.split(key)
        p0 = jax.random.normal(key_momentum, z.shape, z.dtype)

        def leapfrog(_, state):
            q, p, _, g = state
            p = p + 0.5 * step_size * g
            q = q + step_size * p
            value, g = value_and_grad(q, x, beta, params)
            p = p + 0.5 * step_size * g
            return q, p, value, g

        q, p, new_logp, new_grad = jax.lax.fori_loop(
            0, num_leapfrog, leapfrog, (z, p0, logp, grad)
        )
        log_accept = new_logp - 0.5 * jnp.dot(p, p) - (logp - 0.5 * jnp.dot(p0, p0))
        log_accept = jnp.where(jnp.isnan(log_accept), -jnp.inf, log_accept)
        accept = jnp.log(jax.random.uniform(key_accept)) < log_accept
        return jnp.where(accept, q, z)

    def chain_step(key, z, log_weight, x, beta_prev, beta_new, step_size, params):
        (log_prior, distortion), pullback = jax.vjp(lambda u: terms(u, x, params), z)
        (grad,) = pullback((jnp.ones_like(log_prior), -beta_new * jnp.ones(())))
        log_weight = log_weight - (beta_new - beta_prev) * distortion
        logp = log_prior - beta_new * distortion
        z = hmc(key, z, logp, grad, x, beta_new, step_size, params)
        return z, log_weight, distortion

    def example_step(keys, z, log_weight, x, beta_prev, beta_new, step_size, params):
        z, new_log_weight, distortion = jax.vmap(
            chain_step, in_axes=(0, 0, 0, None, None, None, None, None)
        )(keys, z, log_weight, x, beta_prev, beta_new, step_size, params)
        normalised = jax.nn.softmax(log_weight)
        estimates = (
            logsumexp(log_weight) - math.log(num_chains),
            jnp.sum(normalised * distortion),
        )
        return z, new_log_weight, estimates

    @jax.jit
    def run(key, data, betas, step_size, params):
        num_examples = data.shape[0]
        key_init, key_run = jax.random.split(key)
        z = jax.random.normal(key_init, (num_examples, num_chains, latent))
        log_weight = jnp.zeros((num_examples, num_chains))
        keys = jax.random.split(key_run, betas.shape[0] - 1)

        def step(carry, inputs):
            z, log_weight = carry
            key, beta_prev, beta_new = inputs
            chain_keys = jax.random.split(key, (num_examples, num_chains))
            z, log_weight, estimates = jax.vmap(
                example_step, in_axes=(0, 0, 0, 0, None, None, None, None)
            )(chain_keys, z, log_weight, data, beta_prev, beta_new, step_size, params)
            return (z, log_weight), estimates

        (z, log_weight), (log_z, distortion) = jax.lax.scan(
            step, (z, log_weight), (keys, betas[:-1], betas[1:])
        )
        # the final positions are returned (as rdppl returns them): otherwise XLA may
        # drop the last move as dead code (it does when the scan has one step)
        return BaselineResult(z, log_weight, log_z, distortion)

    return run


# --------------------------------------------------------------------------------------
# Timing
# --------------------------------------------------------------------------------------
class Timings(NamedTuple):
    """Per-round wall-clock and process CPU seconds of each timed function."""

    wall: dict[str, list[float]]
    cpu: dict[str, list[float]]
    last: dict[str, Any] | None = None  # each function's last return value


class CompileWatch:
    """Seconds JAX spends compiling while ``on`` (a ``jax.monitoring`` listener)."""

    EVENTS = (
        "/jax/core/compile/jaxpr_trace_duration",
        "/jax/core/compile/jaxpr_to_mlir_module_duration",
        "/jax/core/compile/backend_compile_duration",
    )

    def __init__(self) -> None:
        self.seconds, self.on = 0.0, False
        jax.monitoring.register_event_duration_secs_listener(self.listen)

    def listen(self, event: str, seconds: float, **_: Any) -> None:
        if self.on and event in self.EVENTS:
            self.seconds += seconds


def time_interleaved(
    functions: dict[str, Callable[[], Any]],
    repeats: int,
    warm: Sequence[str] = (),
    watch: CompileWatch | None = None,
) -> Timings:
    """Warm each function up once, then time ``repeats`` rounds in rotating order.

    Every round calls every function once (the first one of a round rotates), so
    each round gives one paired ratio per function against the baseline, measured
    under the same background load. The process CPU time (all threads) is recorded
    beside the wall-clock time: on a shared machine it is the steadier of the two.
    Functions named in ``warm`` are already compiled and are not warmed up again;
    ``watch`` counts the compilation during the timed rounds (there should be none).
    """
    for name, function in functions.items():
        if name not in warm:
            jax.block_until_ready(function())
    if watch is not None:
        watch.on = True
    names = list(functions)
    wall: dict[str, list[float]] = {name: [] for name in names}
    cpu: dict[str, list[float]] = {name: [] for name in names}
    last = {}
    for repeat in range(repeats):
        shift = repeat % len(names)
        for name in names[shift:] + names[:shift]:
            start_wall, start_cpu = time.perf_counter(), time.process_time()
            last[name] = jax.block_until_ready(functions[name]())
            wall[name].append(time.perf_counter() - start_wall)
            cpu[name].append(time.process_time() - start_cpu)
            print(
                f"  round {repeat + 1}: {name} {wall[name][-1]:.3f} s wall, "
                f"{cpu[name][-1]:.3f} s CPU",
                flush=True,
            )
    if watch is not None:
        watch.on = False
    return Timings(wall, cpu, last)


def time_cold(
    functions: dict[str, Callable[[], Any]],
    names: Sequence[str],
    profile: bool,
    compiling: dict[str, float] | None = None,
) -> tuple[Timings, dict[str, Any] | None]:
    """The first call of each of ``names`` after ``jax.clear_caches()``.

    Clearing JAX's caches makes a call compile everything it runs, as the first call
    in a fresh process does (the import and backend start-up excepted, which both
    sides pay alike). With ``profile`` the call of ``rd_curve_adaptive`` is also
    split into its parts (``_overhead_profile.profile_call``). ``compiling``, if
    given, receives the seconds each call spent tracing, lowering and compiling
    (JAX's compilation events).
    """
    wall: dict[str, list[float]] = {}
    cpu: dict[str, list[float]] = {}
    profiled = None
    watch = CompileWatch() if compiling is not None else None
    for name in names:
        jax.clear_caches()
        if watch is not None:
            watch.seconds, watch.on = 0.0, True
        start_wall, start_cpu = time.perf_counter(), time.process_time()
        if profile and name == "rd_curve_adaptive":
            from _overhead_profile import profile_call

            profiled = profile_call(functions[name], cold=False)
        else:
            jax.block_until_ready(functions[name]())
        wall[name] = [time.perf_counter() - start_wall]
        cpu[name] = [time.process_time() - start_cpu]
        compiled = ""
        if watch is not None and compiling is not None:
            watch.on = False
            compiling[name] = watch.seconds
            compiled = f", {watch.seconds:.3f} s of it compiling"
        print(
            f"  first call: {name} {wall[name][0]:.3f} s wall, {cpu[name][0]:.3f} s "
            f"CPU (compilation included{compiled})",
            flush=True,
        )
    return Timings(wall, cpu), profiled


def paired_ratios(times: dict[str, list[float]]) -> dict[str, float]:
    """Median over rounds of each function's time divided by the baseline's."""
    return {
        name: statistics.median(
            value / base for value, base in zip(values, times["baseline"], strict=True)
        )
        for name, values in times.items()
        if name != "baseline"
    }


def per_gradient(ratios: dict[str, float], gradients: dict[str, int]) -> dict:
    """Ratios of time per gradient evaluation (each call's own count)."""
    return {
        name: ratio * gradients["baseline"] / gradients[name]
        for name, ratio in ratios.items()
    }


# timed from scratch with --cold, in this order: the minimal loop and the public call
COLD_NAMES = ("baseline", "rd_curve", "rd_curve_adaptive")
PRESETS = {
    # name: cases, examples, chains, leapfrog, temperatures, repeats, skip_progress
    "small": (["linear", "mlp"], 10, 16, 20, 2000, 5, False),
    "field": (list(FIELD_DECODERS), 50, 40, 20, 4, 2, True),
    "reduced": (list(FIELD_DECODERS), 10, 8, 20, 4, 3, True),
}


def run_case(kind: str, args: argparse.Namespace) -> dict[str, Any]:
    rng = np.random.default_rng(args.seed)
    params, data = make_case(kind, rng, args.examples, args.conv_channels)
    decoder = DECODERS[kind]
    betas = rdppl.sigmoid_schedule(args.temperatures, beta_max=args.beta_max)
    kernel = rdppl.HMC(
        num_leapfrog=args.leapfrog, step_size=args.step_size, adapt_step_size=False
    )
    adaptive_kernel = rdppl.HMC(num_leapfrog=args.leapfrog, step_size=args.step_size)
    model = numpyro_program(kind)
    model_args = (params,)
    spec = trace_model(model, data[0], model_args=model_args)
    hand_spec = hand_written_target(kind, params, spec)
    execution = runner.Execution(chunk_size=args.chunk_size)
    baseline = make_baseline(
        hand_written_terms(kind), args.leapfrog, args.chains, decoder.latent
    )
    betas_device = jnp.asarray(betas, jnp.float32)
    step_size = jnp.asarray(args.step_size, jnp.float32)
    key = jax.random.key(args.seed)
    per_run = args.temperatures * (args.leapfrog + 1) * args.chains * args.examples
    # rdppl's HMC keeps the gradient at the end of each trajectory: one evaluation
    # per chain at the start, then num_leapfrog per temperature
    rdppl_per_run = (
        (args.temperatures * args.leapfrog + 1) * args.chains * args.examples
    )
    gradients = {"baseline": per_run}

    def run_baseline():
        return baseline(key, data, betas_device, step_size, params)

    def forward(target, progress=False):
        def call():
            return protocol.forward(
                target,
                kernel,
                rng_key=key,
                data=data,
                betas=betas,
                num_chains=args.chains,
                execution=execution._replace(progress=progress),
            ).run

        return call

    def run_rd_curve(name, kernel_used):
        def call():
            tree = rdppl.rd_curve(
                model,
                data,
                rng_key=key,
                schedule=betas,
                num_chains=args.chains,
                distortion="nll",
                kernel=kernel_used,
                model_args=model_args,
                chunk_size=args.chunk_size,
            )
            gradients[name] = int(tree.attrs["num_gradient_evaluations"])
            return tree

        return call

    functions = {"baseline": run_baseline, "formal": forward(spec)}
    if not args.skip_progress:
        functions["formal_progress"] = forward(spec, progress=True)
    if not args.skip_engine:
        functions["engine"] = forward(hand_spec)
    if not args.skip_rd_curve:
        functions["rd_curve"] = run_rd_curve("rd_curve", kernel)
        functions["rd_curve_adaptive"] = run_rd_curve(
            "rd_curve_adaptive", adaptive_kernel
        )
    if args.first_calls_only:
        return first_calls(
            kind,
            {
                "baseline": run_baseline,
                "rd_curve_adaptive": functions["rd_curve_adaptive"],
            },
            gradients,
        )
    if args.only:
        functions = {n: f for n, f in functions.items() if n in args.only}
        functions["baseline"] = run_baseline
        functions["formal"] = forward(spec)  # the gradient count is checked on it
    for name in functions:
        gradients.setdefault(name, per_run if name == "baseline" else rdppl_per_run)
    cold = profiles = None
    if args.cold or args.profile:
        # the whole public call and the minimal loop, each compiled from scratch; the
        # last one stays compiled, the others are warmed up again below
        cold_names = [n for n in COLD_NAMES if n in functions]
        if not args.cold:
            cold_names = [n for n in cold_names if n == "rd_curve_adaptive"]
        cold, profiled = time_cold(functions, cold_names, args.profile)
        if profiled is not None:
            profiles = {"cold": profiled}
        warm = cold_names[-1:]
    else:
        warm = []
    watch = CompileWatch()
    timings = time_interleaved(functions, args.repeats, warm=warm, watch=watch)
    medians = {name: statistics.median(v) for name, v in timings.wall.items()}

    formal = timings.last["formal"]
    if formal.num_gradient_evaluations != rdppl_per_run:
        raise RuntimeError(
            f"rdppl counted {formal.num_gradient_evaluations} gradient evaluations, "
            f"the benchmark assumes {rdppl_per_run}"
        )
    # Both loops estimate log p(x) (beta_max = 1) or log Z_beta_max: a sanity check.
    check = timings.last["baseline"]
    baseline_log_z = np.asarray(
        logsumexp(check.log_weight, axis=-1) - math.log(args.chains)
    )
    rdppl_log_z = np.asarray(
        logsumexp(jnp.asarray(formal.final_log_weight), axis=-1) - math.log(args.chains)
    )
    clocks = {"wall": timings.wall, "cpu": timings.cpu}
    result = {
        "case": kind,
        "decoder": decoder._asdict(),
        "seconds": medians,
        "cpu_seconds": {name: statistics.median(v) for name, v in timings.cpu.items()},
        "ratio": paired_ratios(timings.wall),
        "cpu_ratio": paired_ratios(timings.cpu),
        "gradient_evaluations_per_run": per_run,
        "gradient_evaluations": dict(gradients),
        "ratio_per_gradient": {
            clock: per_gradient(paired_ratios(times), gradients)
            for clock, times in clocks.items()
        },
        "microseconds_per_gradient_evaluation": {
            clock: {
                name: 1e6 * statistics.median(times[name]) / gradients[name]
                for name in times
            }
            for clock, times in clocks.items()
        },
        "rounds": clocks,
        "mean_log_z": {
            "minimal": float(np.mean(baseline_log_z)),
            "rdppl": float(np.mean(rdppl_log_z)),
        },
    }
    result["compile_seconds_in_timed_rounds"] = watch.seconds
    if cold is not None and "baseline" in cold.wall:
        cold_wall = {name: values[0] for name, values in cold.wall.items()}
        cold_ratio = paired_ratios(cold.wall)
        result["cold"] = {
            "seconds": cold_wall,
            "cpu_seconds": {name: values[0] for name, values in cold.cpu.items()},
            "ratio": cold_ratio,
            "ratio_per_gradient": per_gradient(cold_ratio, gradients),
            "compile_seconds": {
                name: cold_wall[name] - medians[name] for name in cold_wall
            },
        }
    if profiles is not None:
        from _overhead_profile import profile_call

        profiles["warm"] = profile_call(functions["rd_curve_adaptive"], cold=False)
        result["profile"] = profiles
    if kind == "linear":
        exact = analytic.linear_gaussian_rd(
            np.asarray(params["W"]),
            np.asarray(params["b"]),
            SIGMA[kind],
            np.asarray(data),
            np.array([args.beta_max]),
        )
        result["mean_log_z"]["exact"] = float(np.mean(exact.log_z))
    return result


def first_calls(
    kind: str, functions: dict[str, Callable[[], Any]], gradients: dict[str, int]
) -> dict[str, Any]:
    """The first call of each function (compilation included), and its ratio per
    gradient evaluation to the minimal loop's first call, wall-clock and CPU.

    Also split: the seconds each call spent compiling (JAX's compilation events,
    wall-clock), and the ratio per gradient evaluation of the rest (wall-clock less
    compilation), which is what a warm call costs."""
    compiling: dict[str, float] = {}
    cold, _ = time_cold(functions, list(functions), profile=False, compiling=compiling)
    ratios = {
        clock: per_gradient(paired_ratios(times), gradients)
        for clock, times in (("wall", cold.wall), ("cpu", cold.cpu))
    }
    running = {name: [cold.wall[name][0] - compiling[name]] for name in cold.wall}
    ratios["wall_less_compilation"] = per_gradient(paired_ratios(running), gradients)
    print(f"  {kind}: whole first call per gradient evaluation: {ratios}")
    return {
        "case": kind,
        "first_calls_only": True,
        "seconds": {name: values[0] for name, values in cold.wall.items()},
        "cpu_seconds": {name: values[0] for name, values in cold.cpu.items()},
        "compile_seconds": compiling,
        "gradient_evaluations": dict(gradients),
        "ratio_per_gradient": ratios,
    }


def environment() -> dict[str, Any]:
    devices = jax.devices()
    return {
        "date": datetime.date.today().isoformat(),
        "jax": jax.__version__,
        "numpyro": numpyro.__version__,
        "rdppl": rdppl.__version__,
        "backend": jax.default_backend(),
        "devices": [str(device) for device in devices],
        "device_kind": devices[0].device_kind,
        "cpu_count": os.cpu_count(),
        "python": platform.python_version(),
        "platform": platform.platform(),
        "x64": bool(jnp.result_type(float) == jnp.float64),
    }


CLOCKS = (("wall", "seconds", "ratio"), ("CPU", "cpu_seconds", "cpu_ratio"))


def print_table(results: list[dict[str, Any]], args: argparse.Namespace) -> None:
    print(
        f"\n{args.examples} examples x {args.chains} chains, {args.leapfrog} leapfrog "
        f"steps, {args.temperatures} temperatures (sigmoid, beta_max={args.beta_max}); "
        f"median of {args.repeats} interleaved repeats; ratios are medians of "
        "per-round ratios to the minimal loop; wall-clock and process CPU time"
    )
    engine = "engine" in results[0]["ratio"]
    header = (
        f"{'case':<7} {'clock':<5} {'minimal s':>9} {'rdppl s':>8} "
        f"{'minimal us/grad':>15} {'rdppl us/grad':>13} {'ratio':>6}"
    )
    if engine:
        header += f" {'engine ratio':>12}"
    print("\nformal run (rdppl: protocol.forward with HMC(adapt_step_size=False))")
    print(header)
    print("-" * len(header))
    for r in results:
        for clock, seconds_key, ratio_key in CLOCKS:
            seconds, ratio = r[seconds_key], r[ratio_key]
            micro = r["microseconds_per_gradient_evaluation"][clock.lower()]
            line = (
                f"{r['case']:<7} {clock:<5} {seconds['baseline']:>9.3f} "
                f"{seconds['formal']:>8.3f} {micro['baseline']:>15.4f} "
                f"{micro['formal']:>13.4f} {ratio['formal']:>6.2f}"
            )
            if engine:
                line += f" {ratio['engine']:>12.2f}"
            print(line)
    if engine:
        print(
            "engine: rdppl's protocol.forward on the hand-written density instead of "
            "the NumPyro program"
        )
    if "formal_progress" in results[0]["seconds"]:
        print("\nprogress bar on (host callback every 16 temperatures), formal run:")
        for r in results:
            for clock, _, ratio_key in CLOCKS:
                with_bar = r[ratio_key]["formal_progress"]
                without = r[ratio_key]["formal"]
                print(
                    f"  {r['case']:<7} {clock:<5} ratio {with_bar:.3f} with the bar, "
                    f"{without:.3f} without ({with_bar / without - 1:+.1%})"
                )
    whole = [n for n in ("rd_curve", "rd_curve_adaptive") if n in results[0]["seconds"]]
    if whole:
        print(
            "\nwhole rd_curve call (seconds, ratio to the minimal loop per call, and "
            "[per gradient evaluation])"
        )
        titles = {
            "rd_curve": "adapt_step_size=False",
            "rd_curve_adaptive": "default (adaptive)",
        }
        header = f"{'case':<7} {'clock':<5}" + "".join(
            f" {titles[name]:>30}" for name in whole
        )
        print(header)
        print("-" * len(header))
        for r in results:
            for clock, seconds_key, ratio_key in CLOCKS:
                per_grad = r["ratio_per_gradient"][clock.lower()]
                cells = [
                    f"{r[seconds_key][name]:.3f} s ({r[ratio_key][name]:.2f}x) "
                    f"[{per_grad[name]:.2f}x]"
                    for name in whole
                ]
                print(
                    f"{r['case']:<7} {clock:<5}" + "".join(f" {c:>30}" for c in cells)
                )
    if "cold" in results[0]:
        print(
            "\nfirst call after jax.clear_caches() (compilation included): seconds, "
            "ratio per call [per gradient evaluation], compilation estimate (cold - "
            "warm median)"
        )
        for r in results:
            cold = r["cold"]
            for name, seconds in cold["seconds"].items():
                ratio = ""
                if name != "baseline":
                    per_grad = cold["ratio_per_gradient"][name]
                    ratio = f"{cold['ratio'][name]:.2f}x [{per_grad:.2f}x]"
                print(
                    f"  {r['case']:<7} {name:<18} {seconds:8.2f} s {ratio:>16} "
                    f"compile ~{cold['compile_seconds'][name]:.2f} s"
                )
    for r in results:
        if "profile" in r:
            from _overhead_profile import print_profile

            print(f"\n{r['case']}: where one rd_curve call (default protocol) goes")
            print_profile(r["profile"])
    print(
        "\nJAX compilation during the timed rounds (should be 0): "
        + ", ".join(
            f"{r['case']} {r['compile_seconds_in_timed_rounds']:.2f} s" for r in results
        )
    )
    print("\nmean log Z at beta_max (sanity check: both loops estimate the same):")
    for r in results:
        values = ", ".join(f"{k} {v:.3f}" for k, v in r["mean_log_z"].items())
        print(f"  {r['case']:<7} {values}")


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--decoders",
        choices=tuple(PRESETS),
        default="small",
        help="size preset: small (linear, mlp; the default), field (gan100, dcgan at "
        "50 examples x 40 chains x 20 leapfrog, 4 temperatures) or reduced (gan100, "
        "dcgan at 10 x 8 x 20, 4 temperatures); explicit flags override it",
    )
    parser.add_argument("--examples", type=int, default=None, help="examples")
    parser.add_argument(
        "--skip-progress",
        action="store_true",
        default=None,
        help="skip the progress-bar timing",
    )
    parser.add_argument("--chains", type=int, default=None, help="chains per example")
    parser.add_argument("--leapfrog", type=int, default=None, help="leapfrog steps")
    parser.add_argument(
        "--temperatures", type=int, default=None, help="2000 (200 with --quick)"
    )
    parser.add_argument(
        "--repeats", type=int, default=None, help="timed rounds: 5 (3 with --quick)"
    )
    parser.add_argument(
        "--beta-max", type=float, default=1.0, help="last inverse temperature"
    )
    parser.add_argument(
        "--step-size", type=float, default=0.05, help="fixed HMC step size"
    )
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument(
        "--chunk-size",
        type=int,
        default=None,
        help="rdppl's chunk_size (temperatures per compiled segment; default rdppl's)",
    )
    parser.add_argument("--cases", nargs="+", choices=tuple(DECODERS), default=None)
    parser.add_argument(
        "--conv-channels",
        type=int,
        default=CONV_CHANNELS,
        help=f"dcgan's channels at 4x4 (a multiple of 4; {CONV_CHANNELS})",
    )
    parser.add_argument(
        "--quick",
        action="store_true",
        help="a short check: 200 temperatures and 3 repeats unless given (small "
        "preset)",
    )
    parser.add_argument(
        "--skip-rd-curve",
        action="store_true",
        help="time only the baseline and rdppl's formal run",
    )
    parser.add_argument(
        "--skip-engine",
        action="store_true",
        help="do not time rdppl's engine on the hand-written density",
    )
    parser.add_argument(
        "--cold",
        action="store_true",
        help="also time each function's first call after jax.clear_caches()",
    )
    parser.add_argument(
        "--first-calls-only",
        action="store_true",
        help="time only the first call of the minimal loop and of the default "
        "rd_curve (after jax.clear_caches()): the whole call at many temperatures "
        "without the warm rounds",
    )
    parser.add_argument(
        "--profile",
        action="store_true",
        help="split one cold and one warm rd_curve call (default protocol) into parts",
    )
    parser.add_argument(
        "--only",
        nargs="+",
        choices=("engine", "formal_progress", "rd_curve", "rd_curve_adaptive"),
        help="time only these besides the minimal loop and the formal run",
    )
    parser.add_argument("--json", metavar="PATH", help="write the numbers as JSON")
    args = parser.parse_args(argv)
    cases, examples, chains, leapfrog, temperatures, repeats, skip_progress = PRESETS[
        args.decoders
    ]
    if args.quick and args.decoders == "small":
        temperatures, repeats = 200, 3
    for name, value in [
        ("cases", cases),
        ("examples", examples),
        ("chains", chains),
        ("leapfrog", leapfrog),
        ("temperatures", temperatures),
        ("repeats", repeats),
        ("skip_progress", skip_progress),
    ]:
        if getattr(args, name) is None:
            setattr(args, name, value)
    if args.conv_channels < 4 or args.conv_channels % 4:
        parser.error("--conv-channels must be a positive multiple of 4")
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    env = environment()
    print(
        f"JAX {env['jax']} on backend {env['backend']} ({', '.join(env['devices'])}), "
        f"{env['cpu_count']} CPUs, x64={env['x64']}"
    )
    # progress bars are timed as if on a terminal, drawn into os.devnull
    sink = open(os.devnull, "w")  # noqa: SIM115 - open for the whole run
    segments.interactive = lambda: True
    runner.tqdm = functools.partial(runner.tqdm, file=sink)
    results = []
    for kind in args.cases:
        print(f"timing {kind} ({DECODERS[kind].description}) ...", flush=True)
        results.append(run_case(kind, args))
        if args.json:  # after every case, so a run cut short keeps the finished ones
            payload = {"environment": env, "settings": vars(args), "results": results}
            with open(args.json, "w") as file:
                json.dump(payload, file, indent=2)
    if not args.first_calls_only:
        print_table(results, args)
    if args.json:
        print(f"\nwrote {args.json}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
