"""rdppl on an accelerator: cost per gradient evaluation and an MNIST-shape curve.

Meant for a machine lent for a few minutes (one GPU, no internet): everything runs
from this repository (``python benchmarks/gpu.py``, or with ``PYTHONPATH=.`` if rdppl
is not installed), in under 10 minutes by default (``--budget`` seconds, 540), and
writes a JSON file (``--out``, default ``benchmarks/results/gpu.json``) with the
device's name (``jax.devices()[0].device_kind``), rewritten after every part so that
a run cut short keeps what it measured. Nothing runs it by default (no nox session,
no test); ``--quick`` checks it on a CPU in a few minutes.

Parts:

1. **Cost per gradient evaluation** of rdppl against the minimal hand-written JAX AIS
   loop of ``benchmarks/ais_overhead.py``, for its two field-size decoders at the
   field's size (50 examples x 40 chains x 20 leapfrog steps, float32, ``nll``):
   ``gan100`` (100 -> 1024 -> 1024 -> 1024 -> 784, tanh hidden, sigmoid output) and
   ``dcgan`` (100 -> 4x4x256 -> 8x8x128 -> 16x16x64 -> 32x32x3 transposed
   convolutions, DCGAN's CIFAR-10 width; ``--conv-channels``). The number of
   temperatures ``K`` is chosen from two probe calls of the minimal loop so that one
   call takes about ``--call-seconds``. Timed: the minimal loop, ``rd_curve`` with
   ``HMC(adapt_step_size=False)`` and ``rd_curve`` with the default protocol
   (preliminary run of 3 chains, then 40), each first after ``jax.clear_caches()``
   (compilation included; the default call split into its parts by
   ``benchmarks/_overhead_profile.py``), then in ``--repeats`` interleaved warm
   rounds. Reported: seconds, microseconds per gradient evaluation (rdppl's own
   count, preliminary run included) and ratios to the minimal loop.
2. **An MNIST-shape curve**: ``rd_curve`` (default protocol, sigmoid schedule to
   ``beta = 1``, ``nll``) of the gan100 decoder with random weights on 784-pixel data
   simulated from it (``--curve-examples`` 100 examples, ``--curve-chains`` 16
   chains), certified by BDMC at ``beta* = 1`` on 16 simulated examples. Two probe
   calls at small ``K`` give the cost per temperature; ``K`` is then the largest
   round number that fits the remaining budget (``--curve-temperatures`` fixes it).
   Reported: ``K``, wall time, gradient evaluations, mean ``log p(x)`` estimate, the
   BDMC gap (mean and standard error over examples), the smallest importance ESS,
   the largest Pareto k-hat, the mean acceptance rate.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import statistics
import sys
import time
import traceback
import warnings
from typing import Any

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
sys.path.insert(1, os.path.dirname(HERE))  # rdppl from this checkout if not installed
DEFAULT_OUT = os.path.join(HERE, "results", "gpu.json")
NEEDED = ("jax", "numpyro", "blackjax", "equinox", "optax", "xarray", "tqdm")


def missing_packages() -> list[str]:
    """rdppl's run-time dependencies that this Python cannot import."""
    import importlib.util

    return [name for name in NEEDED if importlib.util.find_spec(name) is None]


if __name__ == "__main__" and missing_packages():  # say so in the JSON, then stop
    out = sys.argv[sys.argv.index("--out") + 1] if "--out" in sys.argv else DEFAULT_OUT
    os.makedirs(os.path.dirname(os.path.abspath(out)), exist_ok=True)
    with open(out, "w") as file:
        json.dump({"errors": [f"missing packages: {missing_packages()}"]}, file)
    sys.exit(f"benchmarks/gpu.py: missing packages {missing_packages()}")

import jax  # noqa: E402
import jax.numpy as jnp  # noqa: E402
import numpy as np  # noqa: E402
from ais_overhead import (  # noqa: E402
    COLD_NAMES,
    DECODERS,
    CompileWatch,
    environment,
    hand_written_terms,
    make_baseline,
    make_case,
    numpyro_program,
    paired_ratios,
    per_gradient,
    time_cold,
    time_interleaved,
)

import rdppl  # noqa: E402


class Clock:
    """Seconds since the start, and what is left of the budget."""

    def __init__(self, budget: float) -> None:
        self.start, self.budget = time.perf_counter(), budget

    def elapsed(self) -> float:
        return time.perf_counter() - self.start

    def left(self) -> float:
        return self.budget - self.elapsed()


def write(payload: dict[str, Any], path: str) -> None:
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    with open(path + ".tmp", "w") as file:
        json.dump(payload, file, indent=1)
    os.replace(path + ".tmp", path)


def timed(function) -> float:
    start = time.perf_counter()
    jax.block_until_ready(function())
    return time.perf_counter() - start


# --------------------------------------------------------------------------------------
# Part 1: cost per gradient evaluation
# --------------------------------------------------------------------------------------
def cost_case(kind: str, args: argparse.Namespace, clock: Clock) -> dict[str, Any]:
    """The minimal loop against rd_curve (fixed step size, default protocol)."""
    rng = np.random.default_rng(args.seed)
    params, data = make_case(kind, rng, args.examples, args.conv_channels)
    decoder = DECODERS[kind]
    baseline = make_baseline(
        hand_written_terms(kind), args.leapfrog, args.chains, decoder.latent
    )
    key = jax.random.key(args.seed)
    step_size = jnp.asarray(args.step_size, jnp.float32)

    def baseline_call(betas):
        betas_device = jnp.asarray(betas, jnp.float32)
        return lambda: baseline(key, data, betas_device, step_size, params)

    # K such that one call of the minimal loop takes about --call-seconds
    if args.temperatures:
        temperatures = args.temperatures
    else:
        probe = rdppl.sigmoid_schedule(8)
        timed(baseline_call(probe))  # compiles
        per_temperature = timed(baseline_call(probe)) / 8
        temperatures = int(
            min(max(args.call_seconds / per_temperature, 8), args.max_temperatures)
        )
    betas = rdppl.sigmoid_schedule(temperatures)
    model = numpyro_program(kind)
    per_run = temperatures * (args.leapfrog + 1) * args.chains * args.examples
    gradients = {"baseline": per_run}

    def rd_curve(name, kernel):
        def call():
            tree = rdppl.rd_curve(
                model,
                data,
                rng_key=key,
                schedule=betas,
                num_chains=args.chains,
                kernel=kernel,
                model_args=(params,),
            )
            gradients[name] = int(tree.attrs["num_gradient_evaluations"])
            return tree

        return call

    functions = {
        "baseline": baseline_call(betas),
        "rd_curve": rd_curve(
            "rd_curve",
            rdppl.HMC(
                num_leapfrog=args.leapfrog,
                step_size=args.step_size,
                adapt_step_size=False,
            ),
        ),
        "rd_curve_adaptive": rd_curve(
            "rd_curve_adaptive",
            rdppl.HMC(num_leapfrog=args.leapfrog, step_size=args.step_size),
        ),
    }
    cold, profile = time_cold(functions, COLD_NAMES, profile=True)
    # the rounds must leave time for the curve: fewer when the budget runs short
    slowest = max(v[0] for v in cold.wall.values())
    round_seconds = sum(v[0] for v in cold.wall.values()) - 2 * slowest / 3
    repeats = args.repeats
    while repeats > 1 and repeats * round_seconds > clock.left() - args.curve_reserve:
        repeats -= 1
    watch = CompileWatch()
    timings = time_interleaved(
        functions, repeats, warm=["rd_curve_adaptive"], watch=watch
    )
    cold_wall = {name: values[0] for name, values in cold.wall.items()}
    cold_ratio = paired_ratios(cold.wall)
    warm_ratio = paired_ratios(timings.wall)
    return {
        "case": kind,
        "decoder": decoder._asdict(),
        "conv_channels": args.conv_channels if kind == "dcgan" else None,
        "examples": args.examples,
        "chains": args.chains,
        "leapfrog": args.leapfrog,
        "temperatures": temperatures,
        "repeats": repeats,
        "gradient_evaluations": dict(gradients),
        "seconds": {n: statistics.median(v) for n, v in timings.wall.items()},
        "microseconds_per_gradient_evaluation": {
            n: 1e6 * statistics.median(v) / gradients[n]
            for n, v in timings.wall.items()
        },
        "ratio": warm_ratio,
        "ratio_per_gradient": per_gradient(warm_ratio, gradients),
        "cold": {
            "seconds": cold_wall,
            "ratio": cold_ratio,
            "ratio_per_gradient": per_gradient(cold_ratio, gradients),
            "compile_seconds_estimate": {
                n: cold_wall[n] - statistics.median(timings.wall[n]) for n in cold_wall
            },
        },
        "profile_cold_rd_curve_adaptive": profile,
        "compile_seconds_in_timed_rounds": watch.seconds,
        "rounds": timings.wall,
    }


# --------------------------------------------------------------------------------------
# Part 2: an MNIST-shape curve with its BDMC gap
# --------------------------------------------------------------------------------------
def curve_call(model, params, data, args, temperatures):
    return lambda: rdppl.rd_curve(
        model,
        data,
        rng_key=jax.random.key(args.seed + 1),
        schedule=rdppl.sigmoid_schedule(temperatures),
        num_chains=args.curve_chains,
        model_args=(params,),
        bdmc_betas=[1.0],
        bdmc_num_examples=args.bdmc_examples,
    )


def round_down(value: float) -> int:
    """``value`` rounded down to two significant digits (at least 1)."""
    if value < 10:
        return max(int(value), 1)
    scale = 10 ** (int(math.log10(value)) - 1)
    return int(value // scale * scale)


def mnist_curve(args: argparse.Namespace, clock: Clock) -> dict[str, Any]:
    rng = np.random.default_rng(args.seed + 1)
    params, data = make_case("gan100", rng, args.curve_examples)
    model = numpyro_program("gan100")
    probes = {}
    if args.curve_temperatures:
        temperatures = args.curve_temperatures
    else:
        small, large = args.curve_probe, 2 * args.curve_probe
        first = timed(curve_call(model, params, data, args, small))  # compiles
        probes[small] = timed(curve_call(model, params, data, args, small))
        probes[large] = timed(curve_call(model, params, data, args, large))
        # the difference of two calls; at least half the larger call's average (a
        # noisy difference must not promise more temperatures than fit)
        per_temperature = max(
            (probes[large] - probes[small]) / (large - small),
            0.5 * probes[large] / large,
        )
        fixed = max(probes[small] - small * per_temperature, 0.0)
        available = clock.left() - args.safety - fixed
        temperatures = round_down(
            min(max(available / per_temperature, small), args.max_curve_temperatures)
        )
        probes = {
            "first_call_seconds": first,
            "seconds": {str(k): v for k, v in probes.items()},
            "seconds_per_temperature": per_temperature,
            "fixed_seconds": fixed,
        }
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        start = time.perf_counter()
        tree = curve_call(model, params, data, args, temperatures)()
        seconds = time.perf_counter() - start
    curve = tree["rate_distortion"]
    stats = tree["sample_stats"]
    gap = tree["bdmc"]["gap"].sel(beta=1.0)
    beta = curve["beta"].values
    at = {
        f"{b:g}": {
            "rate": float(curve["rate"].sel(beta=b, method="nearest").mean()),
            "distortion": float(
                curve["distortion"].sel(beta=b, method="nearest").mean()
            ),
        }
        for b in (0.01, 0.1, 0.5, 1.0)
    }
    gradients = int(tree.attrs["num_gradient_evaluations"])
    return {
        "examples": args.curve_examples,
        "chains": args.curve_chains,
        "leapfrog": 20,
        "bdmc_examples": args.bdmc_examples,
        "temperatures": temperatures,
        "probes": probes,
        "seconds": seconds,
        "gradient_evaluations": gradients,
        "microseconds_per_gradient_evaluation": 1e6 * seconds / gradients,
        "mean_log_likelihood": float(curve["log_z"].isel(beta=-1).mean()),
        "curve_at_beta": at,
        "num_betas": int(beta.size),
        "bdmc_gap_mean": float(gap.mean()),
        "bdmc_gap_standard_error": float(gap.std() / math.sqrt(gap.size)),
        "min_importance_ess": float(stats["importance_ess"].min()),
        "max_pareto_khat": float(stats["pareto_khat"].max()),
        "mean_acceptance_rate": float(stats["acceptance_rate"].mean()),
        "warnings": [str(w.message)[:300] for w in caught],
    }


# --------------------------------------------------------------------------------------
def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", default=DEFAULT_OUT, help="the JSON file to write")
    parser.add_argument(
        "--budget", type=float, default=540.0, help="seconds in all (540)"
    )
    parser.add_argument(
        "--quick",
        action="store_true",
        help="a check on a CPU in a few minutes: small sizes and budget",
    )
    parser.add_argument("--parts", nargs="+", choices=("cost", "curve"), default=None)
    parser.add_argument("--cases", nargs="+", choices=("gan100", "dcgan"))
    parser.add_argument("--examples", type=int, help="part 1 examples (50)")
    parser.add_argument("--chains", type=int, help="part 1 chains (40)")
    parser.add_argument("--leapfrog", type=int, default=20)
    parser.add_argument("--step-size", type=float, default=0.05)
    parser.add_argument("--conv-channels", type=int, help="dcgan's width (256)")
    parser.add_argument("--temperatures", type=int, help="part 1 K (from a probe)")
    parser.add_argument(
        "--call-seconds", type=float, help="part 1: one call's target seconds (4)"
    )
    parser.add_argument("--max-temperatures", type=int, default=2000)
    parser.add_argument("--repeats", type=int, help="part 1 warm rounds (3)")
    parser.add_argument("--curve-examples", type=int, help="part 2 examples (100)")
    parser.add_argument("--curve-chains", type=int, help="part 2 chains (16)")
    parser.add_argument("--bdmc-examples", type=int, help="BDMC examples (16)")
    parser.add_argument("--curve-temperatures", type=int, help="part 2 K (fit)")
    parser.add_argument("--curve-probe", type=int, help="part 2 probe K (50)")
    parser.add_argument(
        "--max-curve-temperatures", type=int, help="part 2 K at most (100000)"
    )
    parser.add_argument(
        "--curve-reserve",
        type=float,
        help="seconds kept for part 2 when part 1 chooses its rounds (240)",
    )
    parser.add_argument(
        "--safety", type=float, help="seconds left unused at the end (30)"
    )
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    full = {
        "parts": ["cost", "curve"],
        "cases": ["gan100", "dcgan"],
        "examples": 50,
        "chains": 40,
        "conv_channels": 256,
        "call_seconds": 4.0,
        "repeats": 3,
        "curve_examples": 100,
        "curve_chains": 16,
        "bdmc_examples": 16,
        "curve_probe": 50,
        "curve_reserve": 240.0,
        "safety": 30.0,
        "max_curve_temperatures": 100_000,
    }
    quick = dict(  # ais_overhead.py's reduced size; dcgan narrower
        full,
        examples=10,
        chains=8,
        conv_channels=32,
        temperatures=4,
        repeats=2,
        curve_examples=8,
        curve_chains=8,
        bdmc_examples=4,
        curve_probe=8,
        curve_reserve=60.0,
        safety=10.0,
        max_curve_temperatures=200,
    )
    defaults = quick if args.quick else full
    for name, value in defaults.items():
        if getattr(args, name, None) is None:
            setattr(args, name, value)
    if args.quick and args.budget == 540.0:
        args.budget = 300.0
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    clock = Clock(args.budget)
    env = environment()
    print(
        f"{env['device_kind']} ({env['backend']}), JAX {env['jax']}, NumPyro "
        f"{env['numpyro']}, rdppl {env['rdppl']}; budget {args.budget:.0f} s",
        flush=True,
    )
    payload: dict[str, Any] = {
        "environment": env,
        "device_kind": env["device_kind"],
        "settings": vars(args),
        "cost": [],
        "curve": None,
        "errors": [],
    }
    write(payload, args.out)
    if "cost" in args.parts:
        for kind in args.cases:
            if clock.left() < args.curve_reserve / 2:
                payload["errors"].append(f"cost {kind}: skipped, out of time")
                continue
            print(f"cost per gradient evaluation: {kind} ...", flush=True)
            try:
                with warnings.catch_warnings():
                    warnings.simplefilter("ignore")
                    row = cost_case(kind, args, clock)
            except Exception:  # keep what the other parts measure
                payload["errors"].append(f"cost {kind}: {traceback.format_exc()}")
                print(payload["errors"][-1], flush=True)
            else:
                payload["cost"].append(row)
                print(
                    f"  K={row['temperatures']}: us/grad "
                    + ", ".join(
                        f"{n} {v:.3f}"
                        for n, v in row["microseconds_per_gradient_evaluation"].items()
                    )
                    + "; warm ratio per grad "
                    + ", ".join(
                        f"{n} {v:.3f}" for n, v in row["ratio_per_gradient"].items()
                    )
                    + "; cold ratio per grad "
                    + ", ".join(
                        f"{n} {v:.3f}"
                        for n, v in row["cold"]["ratio_per_gradient"].items()
                    )
                    + f" ({clock.elapsed():.0f} s elapsed)",
                    flush=True,
                )
            payload["elapsed_seconds"] = clock.elapsed()
            write(payload, args.out)
    if "curve" in args.parts:
        print("MNIST-shape curve with BDMC ...", flush=True)
        try:
            payload["curve"] = mnist_curve(args, clock)
        except Exception:
            payload["errors"].append(f"curve: {traceback.format_exc()}")
            print(payload["errors"][-1], flush=True)
        else:
            c = payload["curve"]
            print(
                f"  K={c['temperatures']}, {c['seconds']:.1f} s, "
                f"{c['gradient_evaluations']:.3g} gradient evaluations "
                f"({c['microseconds_per_gradient_evaluation']:.3f} us each); "
                f"mean log p(x) {c['mean_log_likelihood']:.2f}, BDMC gap "
                f"{c['bdmc_gap_mean']:.2f} +- {c['bdmc_gap_standard_error']:.2f}",
                flush=True,
            )
    payload["elapsed_seconds"] = clock.elapsed()
    write(payload, args.out)
    print(f"wrote {args.out} after {clock.elapsed():.0f} s", flush=True)
    return 0 if not payload["errors"] else 1


if __name__ == "__main__":
    sys.exit(main())
