"""Accuracy at the field's sizes: exact log Z and BDMC gaps against temperatures.

Two parts, each against the number of temperatures ``K`` of a sigmoid schedule
(``--radius``, 4) to ``beta = 1`` (so ``log Z`` at its end is ``log p(x)``), float32,
``nll`` distortion, observation noise 0.1, with the default kernel and protocol of
``rd_curve`` and ``bdmc``: Hamiltonian AIS, ``HMC(num_leapfrog=1, persistence=0.9,
acceptance_drift=0.05)``, one gradient evaluation per chain and temperature (plus one
per chain and run), so
20x the ``K`` of the previous default (plain HMC, 20 leapfrog steps: 21; its run is
``results/field_accuracy_hmc20.json``, ``--leapfrog 20`` reruns it) at equal cost;
step sizes, schedule and resampling from a preliminary run of a sixteenth of the
chains (at least 2), replayed.

1. **Closed form** (cases ``linear784``, ``linear3072``): linear Gaussian decoders
   ``z (100) -> x (784)`` and ``z (100) -> x (3072)`` (``thermodynamic_schedule.py``'s
   model: ``W ~ N(0, 1/100)``, ``b ~ N(0, 1)``) on data simulated from them.
   ``rd_curve``'s ``log Z`` at every kept temperature against the closed form
   (``rdppl.analytic``, docs/math.md §8): the error at ``beta_max`` (mean, standard
   error over examples, RMSE), the worst ``|mean error|`` along the curve, gradient
   evaluations per example (preliminary run included), wall time (the first ``K``
   of each decoder includes compilation); ``RMSE = c K^-a`` gives K for 1 nat.
2. **BDMC** (cases ``gan100``, ``dcgan``): gaps at ``beta* = 1`` (``rdppl.bdmc``,
   docs/math.md §4) of the field-size decoders of ``ais_overhead.py`` with random
   weights, on data simulated from them: ``gan100`` (100 -> 1024 -> 1024 -> 1024
   -> 784, tanh, sigmoid output) and ``dcgan`` (100 -> 4x4xC -> 8x8xC/2 ->
   16x16xC/4 -> 32x32x3 transposed convolutions, ``--conv-channels``). Gap mean and
   standard error against ``K`` and gradient evaluations per example (preliminary,
   forward and reverse runs), beside Huang et al. (2020)'s largest gap on GAN
   decoders, 3.7 nats, at 40 chains x 20 leapfrog steps x 1.6e6 temperatures = 1.28e9
   gradient evaluations per example; ``bdmc_gap.py``'s fit gives K for 1 nat.

Run ``python benchmarks/field_accuracy.py`` (not yet timed; the previous default's
run took 21 minutes on 2 shared CPU cores): linear decoders at K = 2000 to 60000
with 8 examples x 16 chains, gan100 at K = 5000 and 20000 with 6 x 16, dcgan with C
= 32 at K = 2000 and 6000 with 4 x 8 (the previous run's gradient evaluations),
records kept at ``--curve-points`` temperatures; ``--quick`` checks the script in
about 1.5 minutes; ``--summarise JSON`` refits and prints an earlier run (of either
kernel). Writes ``--json`` (``results/field_accuracy.json``, after every run).
"""

from __future__ import annotations

import argparse
import json
import math
import os
import resource
import subprocess
import sys
import time
import warnings

import jax
import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)

from ais_overhead import environment, make_params, numpyro_program  # noqa: E402
from bdmc_gap import temperatures_for_one_nat  # noqa: E402
from thermodynamic_schedule import LINEAR, linear_problem  # noqa: E402

import rdppl  # noqa: E402
from rdppl.analytic import linear_gaussian_log_marginal, linear_gaussian_rd  # noqa: E402
from rdppl.sampler.kernels import default_kernel  # noqa: E402

LATENT, SIGMA = 100, 0.1
LINEAR_CASES = {"linear784": 784, "linear3072": 3072}
BDMC_CASES = ("gan100", "dcgan")
HUANG_GAP = 3.724  # nats, largest BDMC gap of Huang et al.'s GANs (docs/math.md §4.3)
HUANG_GRADIENTS = 1.6e6 * 40 * 20  # per example: temperatures x chains x leapfrog
DEFAULT_JSON = os.path.join(HERE, "results", "field_accuracy.json")


def call(function, *args, **kwargs):
    """Run an rdppl call; return its result, wall seconds, load and warnings."""
    load_before = os.getloadavg()[0]
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        start = time.perf_counter()
        tree = function(*args, **kwargs)
        seconds = time.perf_counter() - start
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    messages = sorted({f"{w.category.__name__}: {w.message}"[:300] for w in caught})
    return tree, {
        "wall_seconds": seconds,
        "load_average_before": load_before,
        "load_average_after": os.getloadavg()[0],
        "warnings": messages,
        "peak_rss_mib_so_far": rss,
    }


def git_state() -> dict:
    """The checkout's commit, and whether rdppl/ has uncommitted changes."""

    def git(*command: str) -> str:
        done = subprocess.run(["git", "-C", HERE, *command], capture_output=True)
        return done.stdout.decode().strip()

    library = os.path.join(HERE, os.pardir, "rdppl")
    return {
        "commit": git("rev-parse", "HEAD"),
        "rdppl_modified": bool(git("status", "--porcelain", "--", library)),
    }


def kernel(args: argparse.Namespace) -> rdppl.HMC | None:
    """``None`` (rdppl's default kernel), or plain HMC with ``--leapfrog`` steps."""
    return None if args.leapfrog is None else rdppl.HMC(num_leapfrog=args.leapfrog)


def kept(num_temperatures: int, args: argparse.Namespace) -> int | None:
    """``num_curve_points``: ``--curve-points`` for long schedules, else all."""
    return args.curve_points if num_temperatures >= args.curve_points else None


def run_linear(case, data, num_temperatures, key, args) -> dict:
    """One ``rd_curve`` on a linear decoder, its log Z against the closed form."""
    W, b, x = data
    schedule = rdppl.sigmoid_schedule(
        num_temperatures, beta_max=args.beta_max, radius=args.radius
    )
    tree, timing = call(
        rdppl.rd_curve,
        LINEAR,
        x,
        rng_key=key,
        schedule=schedule,
        num_chains=args.chains,
        model_args=(W, b, np.float32(SIGMA)),
        num_curve_points=kept(num_temperatures, args),
        kernel=kernel(args),
    )
    curve = tree["rate_distortion"]
    betas = curve["beta"].values
    exact = linear_gaussian_rd(W, b, SIGMA, x, betas)
    error = curve["log_z"].values - exact.log_z  # (example, beta)
    at_max = error[:, -1]
    examples = x.shape[0]
    stats = tree["sample_stats"]
    return {
        "case": case,
        "num_temperatures": num_temperatures,
        "num_examples": examples,
        "num_chains": args.chains,
        "num_betas_kept": int(betas.size),
        "log_z_exact_at_beta_max": float(exact.log_z[:, -1].mean()),
        "error_at_beta_max": float(at_max.mean()),
        "error_at_beta_max_standard_error": float(
            at_max.std(ddof=1) / math.sqrt(examples)
        ),
        "rmse_at_beta_max": float(np.sqrt(np.mean(at_max**2))),
        "worst_mean_error": float(np.abs(error.mean(0)).max()),
        "worst_mean_error_beta": float(betas[np.abs(error.mean(0)).argmax()]),
        "errors_at_beta_max": at_max.tolist(),
        "nonfinite": int((~np.isfinite(curve["log_z"].values)).sum()),
        "min_importance_ess": float(stats["importance_ess"].min()),
        "mean_acceptance": float(stats["acceptance_rate"].mean()),
        "gradient_evaluations_per_example": tree.attrs["num_gradient_evaluations"]
        / examples,
        **timing,
    }


def run_bdmc(case, model, params, num_temperatures, key, args) -> dict:
    """One BDMC run at ``beta* = 1`` on data simulated from a field-size decoder."""
    chains = args.dcgan_chains if case == "dcgan" else args.bdmc_chains
    examples = args.dcgan_examples if case == "dcgan" else args.bdmc_examples
    schedule = rdppl.sigmoid_schedule(
        num_temperatures, beta_max=1.0, radius=args.radius
    )
    tree, timing = call(
        rdppl.bdmc,
        model,
        rng_key=key,
        betas=[1.0],
        schedule=schedule,
        num_examples=examples,
        num_chains=chains,
        model_args=(params,),
        num_curve_points=kept(num_temperatures, args),
        kernel=kernel(args),
    )
    bounds = tree["bdmc"].to_dataset().isel(beta=0)
    gap = bounds["gap"].values
    per_example = tree.attrs["num_gradient_evaluations"] / examples
    return {
        "case": case,
        "num_temperatures": num_temperatures,
        "num_examples": examples,
        "num_chains": chains,
        "gap": float(gap.mean()),
        "gap_standard_error": float(gap.std(ddof=1) / math.sqrt(gap.size)),
        "gaps": gap.tolist(),
        "lower": float(bounds["lower"].mean()),
        "upper": float(bounds["upper"].mean()),
        "nonfinite": int((~np.isfinite(gap)).sum()),
        "forward_importance_ess": float(bounds["forward_importance_ess"].mean()),
        "reverse_importance_ess": float(bounds["reverse_importance_ess"].mean()),
        "gradient_evaluations_per_example": per_example,
        "fraction_of_huang_gradients": per_example / HUANG_GRADIENTS,
        **timing,
    }


def interpolated(ks: list[int], values: list[float]) -> float | None:
    """``K`` where ``values`` first cross 1 nat, log-log between measured ``K``."""
    for k0, k1, v0, v1 in zip(ks, ks[1:], values, values[1:], strict=False):
        if v0 >= 1.0 > v1 > 0:
            return float(k0 * (k1 / k0) ** (math.log(v0) / math.log(v0 / v1)))
    return None


def case_fit(rows: list[dict]) -> dict:
    """The ``K`` for 1 nat of one case: RMSE at ``beta_max`` or mean BDMC gap.

    Linear cases: ``RMSE = c K^-a`` by unweighted least squares in log-log over all
    ``K``. BDMC cases: the weighted fit of ``bdmc_gap.py`` over the gaps at least 2
    standard errors above zero. Both also give the first measured ``K`` below 1 nat
    and the log-log interpolation between the measured ``K`` around it.
    """
    rows = sorted(rows, key=lambda r: r["num_temperatures"])
    ks = [r["num_temperatures"] for r in rows]
    linear = "rmse_at_beta_max" in rows[0]
    values = [r["rmse_at_beta_max"] if linear else r["gap"] for r in rows]
    below = [k for k, v in zip(ks, values, strict=True) if v < 1.0]
    fit = {
        "measure": "rmse_at_beta_max" if linear else "gap",
        "gradients_per_temperature": rows[-1]["gradient_evaluations_per_example"]
        / ks[-1],
        "measured_first_k_below_1_nat": below[0] if below else None,
        "interpolated_k_for_1_nat": interpolated(ks, values),
    }
    if not linear:
        return {**fit, **temperatures_for_one_nat(rows)}
    if len(ks) < 2:
        return {**fit, "exponent": None, "temperatures_for_1_nat": None}
    slope, intercept = np.polyfit(np.log(ks), np.log(values), 1)
    if slope >= 0:
        return {**fit, "exponent": None, "temperatures_for_1_nat": None}
    return {
        **fit,
        "exponent": float(-slope),
        "temperatures_for_1_nat": float(math.exp(-intercept / slope)),
        "num_points": len(ks),
    }


def linear_table(rows: list[dict]) -> list[str]:
    lines = [
        "| decoder | K | log Z error at beta_max (mean +- s.e.) | RMSE | worst "
        "\\|mean error\\| along the curve | gradient evaluations / example | min "
        "ESS | acceptance | wall s |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for r in rows:
        lines.append(
            f"| {r['case']} | {r['num_temperatures']} | {r['error_at_beta_max']:+.2f} "
            f"+- {r['error_at_beta_max_standard_error']:.2f} | "
            f"{r['rmse_at_beta_max']:.2f} | {r['worst_mean_error']:.2f} | "
            f"{r['gradient_evaluations_per_example']:.3g} | "
            f"{r['min_importance_ess']:.1f} | {r['mean_acceptance']:.2f} | "
            f"{r['wall_seconds']:.0f} |"
        )
    return lines


def bdmc_table(rows: list[dict]) -> list[str]:
    lines = [
        "| decoder | K | chains | examples | BDMC gap (mean +- s.e.) | lower | upper "
        "| gradient evaluations / example | fraction of Huang's 1.28e9 | wall s |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for r in rows:
        lines.append(
            f"| {r['case']} | {r['num_temperatures']} | {r['num_chains']} | "
            f"{r['num_examples']} | {r['gap']:.2f} +- {r['gap_standard_error']:.2f} "
            f"| {r['lower']:.1f} | {r['upper']:.1f} | "
            f"{r['gradient_evaluations_per_example']:.3g} | "
            f"{r['fraction_of_huang_gradients']:.2e} | {r['wall_seconds']:.0f} |"
        )
    return lines


def verdicts(record: dict) -> list[str]:
    """The K for 1 nat per case, and Huang's 3.7 nats at 1/20 of his gradients."""
    lines = []
    for case, fit in record["fits"].items():
        line = f"- {case}: " + ("RMSE" if case in LINEAR_CASES else "BDMC gap")
        per_k = fit["gradients_per_temperature"]
        if fit.get("exponent") is None:
            line += ", no power-law fit"
        else:
            k = fit["temperatures_for_1_nat"]
            line += (
                f" ~ K^-{fit['exponent']:.2f} ({fit['num_points']} points), 1 nat "
                f"at K ~ {k:,.0f} ({k * per_k:.2g} gradient evaluations / example)"
            )
        if fit["measured_first_k_below_1_nat"]:
            line += f"; below 1 nat at K = {fit['measured_first_k_below_1_nat']}"
        if fit["interpolated_k_for_1_nat"]:
            k = fit["interpolated_k_for_1_nat"]
            line += f", interpolated: K ~ {k:,.0f} ({k * per_k:.2g} gradients)"
        lines.append(line)
    for case in BDMC_CASES:
        rows = [r for r in record["bdmc"] if r["case"] == case]
        met = [r for r in rows if r["gap"] < HUANG_GAP]
        met = [r for r in met if r["fraction_of_huang_gradients"] <= 1 / 20]
        if met:
            best = min(met, key=lambda r: r["gradient_evaluations_per_example"])
            lines.append(
                f"- {case}: gap below Huang's {HUANG_GAP} nats at K = "
                f"{best['num_temperatures']}: {best['gap']:.2f} +- "
                f"{best['gap_standard_error']:.2f} nats with "
                f"{best['fraction_of_huang_gradients']:.1e} of Huang's gradient "
                "evaluations per example"
            )
        elif rows:
            lines.append(f"- {case}: no run with a gap below {HUANG_GAP} nats")
    return lines


def write(record: dict, path: str) -> None:
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    with open(path + ".tmp", "w") as handle:
        json.dump(record, handle, indent=1)
    os.replace(path + ".tmp", path)


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    cases = (*LINEAR_CASES, *BDMC_CASES)
    add, many = parser.add_argument, {"type": int, "nargs": "+"}
    add("--cases", nargs="+", choices=cases, default=list(cases))
    add("--linear-temperatures", **many, default=[2000, 6000, 20000, 60000])
    add("--gan100-temperatures", **many, default=[5000, 20000])
    add("--dcgan-temperatures", **many, default=[2000, 6000])
    add("--examples", type=int, default=8, help="linear: examples")
    add("--chains", type=int, default=16, help="linear: chains")
    add("--bdmc-examples", type=int, default=6, help="gan100")
    add("--bdmc-chains", type=int, default=16, help="gan100")
    add("--dcgan-examples", type=int, default=4)
    add("--dcgan-chains", type=int, default=8)
    add("--conv-channels", type=int, default=32, help="dcgan's C")
    add("--beta-max", type=float, default=1.0, help="linear cases")
    add("--radius", type=float, default=4.0, help="sigmoid radius")
    add("--curve-points", type=int, default=1001, help="num_curve_points at K >= it")
    add("--leapfrog", type=int, help="plain HMC with this many leapfrog steps")
    add("--seed", type=int, default=0)
    add("--json", default=DEFAULT_JSON, help="output JSON path")
    add("--quick", action="store_true", help="a short check: small K and sizes")
    add("--summarise", metavar="JSON", help="refit, rewrite and print an earlier run")
    args = parser.parse_args(argv)
    if args.quick:
        args.linear_temperatures = [300, 1000]
        args.gan100_temperatures, args.dcgan_temperatures = [200, 500], [100, 200]
        args.examples, args.chains = 4, 8
        args.bdmc_examples, args.bdmc_chains = 4, 8
        args.dcgan_examples, args.dcgan_chains, args.conv_channels = 2, 4, 16
    if args.conv_channels < 4 or args.conv_channels % 4:
        parser.error("--conv-channels must be a positive multiple of 4")
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if args.summarise:
        with open(args.summarise) as handle:
            report(json.load(handle), args.summarise)
        return 0
    start = time.perf_counter()
    record = {
        "environment": {**environment(), **rdppl.results.versions(), **git_state()},
        "settings": {
            k: v for k, v in vars(args).items() if k not in ("json", "summarise")
        },
        "kernel": repr(kernel(args) or default_kernel()),
        "huang": {"gap": HUANG_GAP, "gradients_per_example": HUANG_GRADIENTS},
        "linear": [],
        "bdmc": [],
        "fits": {},
        "closed_form_check": {},
    }
    print(
        f"{record['environment']['backend']}, {os.cpu_count()} CPUs, load average "
        f"{os.getloadavg()[0]:.1f}; cases {', '.join(args.cases)}",
        flush=True,
    )
    root = jax.random.key(args.seed)
    for index, case in enumerate(args.cases):
        rng = np.random.default_rng(args.seed + 100 * index)
        if case in LINEAR_CASES:
            size, seed = LINEAR_CASES[case], args.seed + index
            problem = linear_problem(LATENT, size, SIGMA, seed, args.examples)
            # the closed form of the float32 model that rdppl runs
            data = tuple(np.asarray(a, np.float32) for a in problem)
            if args.beta_max == 1.0:
                rd = linear_gaussian_rd(*data[:2], SIGMA, data[2], [1.0]).log_z[:, 0]
                marginal = linear_gaussian_log_marginal(*data[:2], SIGMA, data[2])
                record["closed_form_check"][case] = float(np.abs(rd - marginal).max())
            for k in args.linear_temperatures:
                key = jax.random.fold_in(jax.random.fold_in(root, index), k)
                row = run_linear(case, data, k, key, args)
                record["linear"].append(row)
                print(
                    f"{case} K={k}: error at beta_max {row['error_at_beta_max']:+.3f} "
                    f"+- {row['error_at_beta_max_standard_error']:.3f}, RMSE "
                    f"{row['rmse_at_beta_max']:.3f}, worst "
                    f"{row['worst_mean_error']:.3f}; {row['wall_seconds']:.0f} s, "
                    f"{len(row['warnings'])} warnings",
                    flush=True,
                )
                write(record, args.json)
        else:
            params = make_params(case, rng, args.conv_channels)
            model = numpyro_program(case)
            for k in getattr(args, f"{case}_temperatures"):
                key = jax.random.fold_in(jax.random.fold_in(root, index), k)
                row = run_bdmc(case, model, params, k, key, args)
                record["bdmc"].append(row)
                print(
                    f"{case} K={k}: gap {row['gap']:.3f} +- "
                    f"{row['gap_standard_error']:.3f}, "
                    f"{row['gradient_evaluations_per_example']:.3g} gradients per "
                    f"example; {row['wall_seconds']:.0f} s, {len(row['warnings'])} "
                    "warnings",
                    flush=True,
                )
                write(record, args.json)
    record.update(wall_seconds=time.perf_counter() - start, git_at_end=git_state())
    report(record, args.json)
    return 0


def report(record: dict, path: str) -> None:
    """Fit every case, write the record, print the tables and the verdicts."""
    rows = record["linear"] + record["bdmc"]
    for case in dict.fromkeys(r["case"] for r in rows):
        record["fits"][case] = case_fit([r for r in rows if r["case"] == case])
    write(record, path)
    tables = ["", *linear_table(record["linear"])] if record["linear"] else []
    if record["bdmc"]:
        tables += ["", *bdmc_table(record["bdmc"])]
    kernel_line = f"kernel: {record.get('kernel', 'not recorded')}"
    print("\n".join([kernel_line, *tables, "", *verdicts(record)]))
    seconds = record.get("wall_seconds", math.nan)  # nan: an interrupted run
    print(f"\ntotal wall time {seconds:.0f} s; wrote {path}")


if __name__ == "__main__":
    sys.exit(main())
