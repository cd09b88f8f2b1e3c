"""Cost of rdppl's AIS per gradient evaluation against a minimal hand-written JAX loop.

Two decoders, each written twice on the same weights and data: as a NumPyro program
run by rdppl, and as a hand-written log prior and log likelihood run by a minimal AIS
loop (plain JAX: one ``lax.scan`` over temperatures, ``vmap`` over examples and
chains, hand-written leapfrog HMC with a Metropolis-Hastings accept, fixed step size,
``log w -= dbeta * d(z)``). Both do ``num_leapfrog + 1`` gradient evaluations per chain
and temperature (one at the new temperature, then the leapfrog steps), in float32.

Timed, after one warm-up call of each (compilation excluded), interleaved over
repeats in rotating order:

- ``baseline``: the minimal loop (prior draw, all temperatures, final weights, and the
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
  step-size run, then the formal run: twice the gradient evaluations).

Reported: median seconds per call, microseconds per gradient evaluation of one chain,
and the ratio to the minimal loop as the median of per-round ratios, for wall-clock
time and for process CPU time (the steadier one on a shared machine).

Run ``python benchmarks/ais_overhead.py`` (or ``nox -s benchmark``); ``--quick`` for a
short check, ``--json PATH`` to write the numbers.
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
from collections.abc import Callable
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

LATENT, HIDDEN_1, HIDDEN_2, OBSERVED = 10, 64, 256, 64
SIGMA = {"linear": 1.0, "mlp": 0.1}
HALF_LOG_2PI = 0.5 * math.log(2.0 * math.pi)

Terms = Callable[[jax.Array, jax.Array, dict], tuple[jax.Array, jax.Array]]


# --------------------------------------------------------------------------------------
# The two decoders, as NumPyro programs (for rdppl) and by hand (for the baseline)
# --------------------------------------------------------------------------------------
def decoder_mean(kind: str, params: dict, z: jax.Array) -> jax.Array:
    """Decoder output ``f(z)`` of one latent vector (shared by both versions)."""
    if kind == "linear":
        return params["W"] @ z + params["b"]
    h = jnp.tanh(params["W1"] @ z + params["b1"])
    h = jnp.tanh(params["W2"] @ h + params["b2"])
    return params["W3"] @ h + params["b3"]


def numpyro_program(kind: str) -> rdppl.Model:
    """The decoder as a NumPyro program for one example; weights are an argument."""
    sigma = SIGMA[kind]

    def program(params, x=None):
        z = numpyro.sample("z", dist.Normal(0.0, 1.0).expand([LATENT]).to_event(1))
        mean = decoder_mean(kind, params, z)
        numpyro.sample("x", dist.Normal(mean, sigma).to_event(1), obs=x)

    program.__name__ = f"{kind}_decoder"
    return rdppl.model(program, observed="x")


def hand_written_terms(kind: str) -> Terms:
    """Log prior and ``nll`` distortion of one chain, without NumPyro."""
    sigma = SIGMA[kind]
    constant = OBSERVED * (HALF_LOG_2PI + math.log(sigma))

    def terms(z: jax.Array, x: jax.Array, params: dict):
        log_prior = -0.5 * jnp.dot(z, z) - LATENT * HALF_LOG_2PI
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
        return jax.random.normal(rng_key, (LATENT,))


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


def make_case(kind: str, rng: np.random.Generator, num_examples: int):
    """Random fixed weights and data simulated from the model (float32)."""
    if kind == "linear":
        params = {
            "W": rng.normal(size=(OBSERVED, LATENT)) / math.sqrt(LATENT),
            "b": rng.normal(size=OBSERVED) * 0.1,
        }
    else:
        sizes = [(HIDDEN_1, LATENT), (HIDDEN_2, HIDDEN_1), (OBSERVED, HIDDEN_2)]
        params = {}
        for i, (fan_out, fan_in) in enumerate(sizes, start=1):
            params[f"W{i}"] = rng.normal(size=(fan_out, fan_in)) / math.sqrt(fan_in)
            params[f"b{i}"] = rng.normal(size=fan_out) * 0.1
    params = {k: jnp.asarray(v, jnp.float32) for k, v in params.items()}
    z = rng.normal(size=(num_examples, LATENT)).astype(np.float32)
    mean = np.asarray(jax.vmap(lambda u: decoder_mean(kind, params, u))(z))
    noise = rng.normal(size=mean.shape) * SIGMA[kind]
    return params, jnp.asarray(mean + noise, jnp.float32)


# --------------------------------------------------------------------------------------
# The minimal AIS loop
# --------------------------------------------------------------------------------------
class BaselineResult(NamedTuple):
    log_weight: jax.Array  # (examples, chains) after the last temperature
    log_z: jax.Array  # (temperatures, examples), estimate before each move
    distortion: jax.Array  # (temperatures, examples)


def make_baseline(terms: Terms, num_leapfrog: int, num_chains: int):
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
        z = jax.random.normal(key_init, (num_examples, num_chains, LATENT))
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
        return BaselineResult(log_weight, log_z, distortion)

    return run


# --------------------------------------------------------------------------------------
# Timing
# --------------------------------------------------------------------------------------
class Timings(NamedTuple):
    """Per-round wall-clock and process CPU seconds of each timed function."""

    wall: dict[str, list[float]]
    cpu: dict[str, list[float]]


def time_interleaved(functions: dict[str, Callable[[], Any]], repeats: int) -> Timings:
    """Warm each function up once, then time ``repeats`` rounds in rotating order.

    Every round calls every function once (the first one of a round rotates), so
    each round gives one paired ratio per function against the baseline, measured
    under the same background load. The process CPU time (all threads) is recorded
    beside the wall-clock time: on a shared machine it is the steadier of the two.
    """
    for function in functions.values():
        jax.block_until_ready(function())
    names = list(functions)
    wall: dict[str, list[float]] = {name: [] for name in names}
    cpu: dict[str, list[float]] = {name: [] for name in names}
    for repeat in range(repeats):
        shift = repeat % len(names)
        for name in names[shift:] + names[:shift]:
            start_wall, start_cpu = time.perf_counter(), time.process_time()
            jax.block_until_ready(functions[name]())
            wall[name].append(time.perf_counter() - start_wall)
            cpu[name].append(time.process_time() - start_cpu)
    return Timings(wall, cpu)


def paired_ratios(times: dict[str, list[float]]) -> dict[str, float]:
    """Median over rounds of each function's time divided by the baseline's."""
    return {
        name: statistics.median(
            value / base for value, base in zip(values, times["baseline"], strict=True)
        )
        for name, values in times.items()
        if name != "baseline"
    }


def run_case(kind: str, args: argparse.Namespace) -> dict[str, Any]:
    rng = np.random.default_rng(args.seed)
    params, data = make_case(kind, rng, args.examples)
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
    baseline = make_baseline(hand_written_terms(kind), args.leapfrog, args.chains)
    betas_device = jnp.asarray(betas, jnp.float32)
    step_size = jnp.asarray(args.step_size, jnp.float32)
    key = jax.random.key(args.seed)

    def run_baseline():
        return baseline(key, data, betas_device, step_size, params)

    def run_formal():
        run = protocol.forward(
            spec,
            kernel,
            rng_key=key,
            data=data,
            betas=betas,
            num_chains=args.chains,
            execution=execution,
        ).run
        return run

    def run_formal_progress():
        return protocol.forward(
            spec,
            kernel,
            rng_key=key,
            data=data,
            betas=betas,
            num_chains=args.chains,
            execution=execution._replace(progress=True),
        ).run

    def run_engine():
        run = protocol.forward(
            hand_spec,
            kernel,
            rng_key=key,
            data=data,
            betas=betas,
            num_chains=args.chains,
            execution=execution,
        ).run
        return run

    def run_rd_curve(kernel_used):
        return lambda: rdppl.rd_curve(
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

    functions = {"baseline": run_baseline, "formal": run_formal}
    if not args.skip_progress:
        functions["formal_progress"] = run_formal_progress
    if not args.skip_engine:
        functions["engine"] = run_engine
    if not args.skip_rd_curve:
        functions["rd_curve"] = run_rd_curve(kernel)
        functions["rd_curve_adaptive"] = run_rd_curve(adaptive_kernel)
    timings = time_interleaved(functions, args.repeats)
    medians = {name: statistics.median(v) for name, v in timings.wall.items()}

    per_run = args.temperatures * (args.leapfrog + 1) * args.chains * args.examples
    formal = run_formal()
    if formal.num_gradient_evaluations != per_run:
        raise RuntimeError(
            f"rdppl counted {formal.num_gradient_evaluations} gradient evaluations, "
            f"the benchmark assumes {per_run}"
        )
    # Both loops estimate log p(x) (beta_max = 1) or log Z_beta_max: a sanity check.
    check = baseline(key, data, betas_device, step_size, params)
    baseline_log_z = np.asarray(
        logsumexp(check.log_weight, axis=-1) - math.log(args.chains)
    )
    rdppl_log_z = np.asarray(
        logsumexp(jnp.asarray(formal.final_log_weight), axis=-1) - math.log(args.chains)
    )
    result = {
        "case": kind,
        "seconds": medians,
        "cpu_seconds": {name: statistics.median(v) for name, v in timings.cpu.items()},
        "ratio": paired_ratios(timings.wall),
        "cpu_ratio": paired_ratios(timings.cpu),
        "gradient_evaluations_per_run": per_run,
        "microseconds_per_gradient_evaluation": {
            clock: {
                name: 1e6 * statistics.median(times[name]) / per_run
                for name in ("baseline", "formal")
            }
            for clock, times in timings._asdict().items()
        },
        "rounds": timings._asdict(),
        "mean_log_z": {
            "minimal": float(np.mean(baseline_log_z)),
            "rdppl": float(np.mean(rdppl_log_z)),
        },
    }
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


def environment() -> dict[str, Any]:
    devices = jax.devices()
    return {
        "date": datetime.date.today().isoformat(),
        "jax": jax.__version__,
        "numpyro": numpyro.__version__,
        "rdppl": rdppl.__version__,
        "backend": jax.default_backend(),
        "devices": [str(device) for device in devices],
        "cpu_count": os.cpu_count(),
        "python": platform.python_version(),
        "platform": platform.platform(),
        "x64": bool(jax.config.read("jax_enable_x64")),
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
    if "rd_curve" in results[0]["seconds"]:
        print("\nwhole rd_curve call (seconds, and ratio to the minimal loop)")
        header = (
            f"{'case':<7} {'clock':<5} {'adapt_step_size=False':>22} "
            f"{'default (adaptive)':>22}"
        )
        print(header)
        print("-" * len(header))
        for r in results:
            for clock, seconds_key, ratio_key in CLOCKS:
                cells = [
                    f"{r[seconds_key][name]:.3f} s ({r[ratio_key][name]:.2f}x)"
                    for name in ("rd_curve", "rd_curve_adaptive")
                ]
                print(f"{r['case']:<7} {clock:<5} {cells[0]:>22} {cells[1]:>22}")
    print("\nmean log Z at beta_max (sanity check: both loops estimate the same):")
    for r in results:
        values = ", ".join(f"{k} {v:.3f}" for k, v in r["mean_log_z"].items())
        print(f"  {r['case']:<7} {values}")


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--examples", type=int, default=10, help="examples (10)")
    parser.add_argument(
        "--skip-progress", action="store_true", help="skip the progress-bar timing"
    )
    parser.add_argument("--chains", type=int, default=16, help="chains per example")
    parser.add_argument("--leapfrog", type=int, default=20, help="leapfrog steps")
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
    parser.add_argument(
        "--cases", nargs="+", choices=("linear", "mlp"), default=["linear", "mlp"]
    )
    parser.add_argument(
        "--quick",
        action="store_true",
        help="a short check: 200 temperatures and 3 repeats unless given",
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
    parser.add_argument("--json", metavar="PATH", help="write the numbers as JSON")
    args = parser.parse_args(argv)
    if args.temperatures is None:
        args.temperatures = 200 if args.quick else 2000
    if args.repeats is None:
        args.repeats = 3 if args.quick else 5
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
        print(f"timing {kind} ...", flush=True)
        results.append(run_case(kind, args))
    print_table(results, args)
    if args.json:
        payload = {"environment": env, "settings": vars(args), "results": results}
        with open(args.json, "w") as file:
            json.dump(payload, file, indent=2)
        print(f"\nwrote {args.json}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
