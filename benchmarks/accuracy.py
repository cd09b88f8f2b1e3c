"""Accuracy per gradient evaluation: each AIS option alone and the defaults.

Problems (float32, 2 CPU cores):

- ``linear10``: linear Gaussian decoder 10 latents -> 64 pixels, unit noise, ``nll``,
  sigmoid schedule (radius 10) to ``beta = 50``, 10 examples. Error of the mean log Z
  against the closed form at every ``beta`` with 16 chains, and of the rate with 128
  chains, at K = 500 and 2000.
- ``linear20``: the same with 20 latents, 64 chains, K = 2000: log Z error at every
  beta and the smallest importance ESS.
- ``digits``: probabilistic PCA fitted to scikit-learn's digits (closed-form maximum
  likelihood, 10 latents; an exact linear decoder *trained on the digits*), ``nll``
  to ``beta = 50``, 16 chains, K = 2000.
- ``mlp``: the fixed MLP decoder of ``benchmarks/bdmc_gap.py`` (10 -> 64 -> 256 ->
  64, squared error), BDMC gap at ``beta* = 3, 250, 500`` with K = 2000 (sigmoid
  radius 4, ``beta_max = 500``), 16 examples, 16 chains.

Configurations (all ``HMC(num_leapfrog=20)`` unless said): ``reference`` (identity
mass matrix, user schedule: the only one that also runs on rdppl before this
benchmark existed, ``--configs reference`` with an old checkout on ``PYTHONPATH``),
``diagonal`` and ``dense`` mass matrices, ``tuned`` schedule, ``hais`` (momentum
persistence 0.8, jitter 0.2, diagonal) and ``default`` (``rd_curve``'s defaults).
Every configuration costs the same gradient evaluations at the same K (the
preliminary run included). Errors are means over 2 seeds; the figure plots the
worst mean log Z error over ``beta`` against gradient evaluations.

Run: ``python benchmarks/accuracy.py`` (about 20 minutes on 2 cores; ``--quick`` for
a few minutes with K = 500 only). Results go to ``benchmarks/results/accuracy.json``
and ``docs/accuracy.png``; the table to ``docs/benchmarks.md`` by hand.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time

import jax
import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from thermodynamic_schedule import LINEAR, linear_problem  # noqa: E402

import rdppl  # noqa: E402
from rdppl.analytic import linear_gaussian_rd  # noqa: E402

BETA_MAX = 50.0
HERE = os.path.dirname(os.path.abspath(__file__))


def configurations() -> dict[str, object]:
    """Keyword arguments of each configuration (built on demand: an old rdppl
    has only ``reference``)."""
    wide = (1e-4, 2.0)  # preconditioned step sizes are O(1)
    return {
        "reference": lambda: {"kernel": rdppl.HMC(num_leapfrog=20)},
        "gentle": lambda: {"kernel": rdppl.HMC(num_leapfrog=20, adaptation_rate=0.1)},
        "diagonal": lambda: {
            "kernel": rdppl.HMC(
                num_leapfrog=20, mass_matrix="diagonal", step_size_bounds=wide
            )
        },
        "dense": lambda: {
            "kernel": rdppl.HMC(
                num_leapfrog=20, mass_matrix="dense", step_size_bounds=wide
            )
        },
        "tuned": lambda: {
            "kernel": rdppl.HMC(num_leapfrog=20),
            "tune_schedule": True,
        },
        "hais": lambda: {
            "kernel": rdppl.HMC(
                num_leapfrog=20,
                mass_matrix="diagonal",
                step_size_bounds=wide,
                persistence=0.8,
                step_size_jitter=0.2,
            )
        },
        "resample": lambda: {
            "kernel": rdppl.HMC(num_leapfrog=20),
            "resample_threshold": 0.5,
        },
        "tuned_resample": lambda: {
            "kernel": rdppl.HMC(num_leapfrog=20),
            "tune_schedule": True,
            "resample_threshold": 0.5,
        },
        "default": lambda: {},
    }


def digits_ppca(latent_dim: int = 10, num_examples: int = 10):
    """Maximum-likelihood probabilistic PCA of the digits (Tipping & Bishop)."""
    from sklearn.datasets import load_digits

    x = load_digits().data.astype(np.float64) / 16.0
    mean = x.mean(0)
    centred = x - mean
    eigenvalues, eigenvectors = np.linalg.eigh(np.cov(centred.T))
    eigenvalues, eigenvectors = eigenvalues[::-1], eigenvectors[:, ::-1]
    noise = eigenvalues[latent_dim:].mean()
    W = eigenvectors[:, :latent_dim] * np.sqrt(
        np.maximum(eigenvalues[:latent_dim] - noise, 0.0)
    )
    rng = np.random.default_rng(0)
    chosen = rng.choice(len(x), num_examples, replace=False)
    return W, mean, float(np.sqrt(noise)), x[chosen]


def linear_errors(W, b, sigma, x, schedule, num_chains, seed, options) -> dict:
    """log Z and rate errors against the closed form for one run."""
    tree = rdppl.rd_curve(
        LINEAR,
        x,
        rng_key=jax.random.key(seed),
        schedule=schedule,
        num_chains=num_chains,
        model_args=(W, b, np.asarray(sigma)),
        **options,
    )
    curve = tree["rate_distortion"]
    exact = linear_gaussian_rd(W, b, sigma, x, curve["beta"].values)
    per_example = curve["log_z"].values - exact.log_z
    log_z = per_example.mean(0)
    rate = (curve["rate"].values - exact.rate).mean(0)
    return {
        "log_z_error_at_beta_max_per_example": per_example[:, -1].tolist(),
        "log_z_error": log_z.tolist(),
        "rate_error": rate.tolist(),
        "min_ess": float(tree["sample_stats"]["importance_ess"].values.min()),
        "gradient_evaluations": int(tree.attrs["num_gradient_evaluations"]),
        "wall_time_seconds": float(tree.attrs["wall_time_seconds"]),
    }


def summarise_linear(runs: list[dict]) -> dict:
    log_z = np.array([r["log_z_error"] for r in runs])
    rate = np.array([r["rate_error"] for r in runs])
    at_max = np.concatenate([r["log_z_error_at_beta_max_per_example"] for r in runs])
    return {
        "log_z_error_at_beta_max": float(log_z[:, -1].mean()),
        "log_z_error_at_beta_max_standard_error": float(
            at_max.std(ddof=1) / np.sqrt(at_max.size)
        ),
        "worst_log_z_error": float(np.abs(log_z).max(1).mean()),
        "rate_error_at_beta_max": float(rate[:, -1].mean()),
        "worst_rate_error": float(np.abs(rate).max(1).mean()),
        "min_ess": float(min(r["min_ess"] for r in runs)),
        "gradient_evaluations": runs[0]["gradient_evaluations"],
        "wall_time_seconds": float(np.median([r["wall_time_seconds"] for r in runs])),
    }


def run_linear(name, problem, num_temperatures, num_chains, options, seeds) -> dict:
    W, b, sigma, x = problem
    schedule = rdppl.sigmoid_schedule(num_temperatures, beta_max=BETA_MAX, radius=10)
    runs = [
        linear_errors(W, b, sigma, x, schedule, num_chains, seed, options)
        for seed in seeds
    ]
    row = summarise_linear(runs)
    row.update(problem=name, num_temperatures=num_temperatures, num_chains=num_chains)
    return row


def run_mlp(options, seeds, num_temperatures=2000) -> list[dict]:
    """BDMC gaps of the MLP decoder at beta* = 3, 250, 500."""
    from bdmc_gap import decoder_weights, mlp_decoder

    params = decoder_weights(0)
    schedule = rdppl.sigmoid_schedule(num_temperatures, beta_max=500.0, radius=4)
    rows = []
    for beta in (3.0, 250.0, 500.0):
        gaps, cost = [], 0
        for seed in seeds:
            tree = rdppl.bdmc(
                mlp_decoder,
                rng_key=jax.random.key(seed),
                betas=[beta],
                schedule=schedule,
                num_examples=16,
                num_chains=16,
                distortion="squared_error",
                model_args=(params,),
                **options,
            )
            gaps.append(float(tree["bdmc"]["gap"].values.mean()))
            cost = int(tree.attrs["num_gradient_evaluations"])
        rows.append(
            {
                "problem": "mlp",
                "beta_star": beta,
                "num_temperatures": num_temperatures,
                "gap": float(np.mean(gaps)),
                "gradient_evaluations": cost,
            }
        )
    return rows


def plot(rows: list[dict], path: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 2, figsize=(10, 4))
    for ax, problem, chains in (
        (axes[0], "linear10", 16),
        (axes[1], "linear20", 64),
    ):
        for config in sorted({r["config"] for r in rows}):
            mine = sorted(
                (
                    r
                    for r in rows
                    if r["config"] == config
                    and r["problem"] == problem
                    and r["num_chains"] == chains
                ),
                key=lambda r: r["gradient_evaluations"],
            )
            if mine:
                ax.plot(
                    [r["gradient_evaluations"] for r in mine],
                    [r["worst_log_z_error"] for r in mine],
                    "o-",
                    label=config,
                )
        ax.set_xscale("log")
        ax.set_yscale("log")
        ax.set_xlabel("gradient evaluations (preliminary + reported)")
        ax.set_ylabel("worst |mean log Z error| over beta (nats)")
        ax.set_title(f"{problem}, {chains} chains")
        ax.axhline(0.05 if problem == "linear10" else 0.1, color="grey", ls=":")
        ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=120)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--configs", default=",".join(configurations()))
    parser.add_argument("--problems", default="linear10,linear20,digits,mlp")
    parser.add_argument("--quick", action="store_true")
    parser.add_argument(
        "--temperatures", default=None, help="K values (default 500,2000)"
    )
    parser.add_argument("--seeds", type=int, default=2)
    parser.add_argument("--examples", type=int, default=10)
    parser.add_argument(
        "--chains", default="16,128", help="linear10 chain counts (comma separated)"
    )
    parser.add_argument(
        "--output", default=os.path.join(HERE, "results", "accuracy.json")
    )
    parser.add_argument(
        "--figure", default=os.path.join(HERE, "..", "docs", "accuracy.png")
    )
    args = parser.parse_args(argv)
    seeds = list(range(1, args.seeds + 1))
    temperatures = (500,) if args.quick else (500, 2000)
    if args.temperatures:
        temperatures = tuple(int(k) for k in args.temperatures.split(","))
    all_configs = configurations()
    problems = args.problems.split(",")
    rows = []
    start = time.perf_counter()

    def record(row, config):
        row["config"] = config
        rows.append(row)
        printable = {k: v for k, v in row.items() if not isinstance(v, list)}
        print(json.dumps(printable), flush=True)

    for config in args.configs.split(","):
        options = all_configs[config]()
        if "linear10" in problems:
            W, b, x = linear_problem(10, 64, 1.0, seed=3, num_examples=args.examples)
            for k in temperatures:
                for chains in [int(c) for c in args.chains.split(",")]:
                    record(
                        run_linear(
                            "linear10", (W, b, 1.0, x), k, chains, options, seeds
                        ),
                        config,
                    )
        if "linear20" in problems:
            W, b, x = linear_problem(20, 64, 1.0, seed=5, num_examples=args.examples)
            record(
                run_linear(
                    "linear20", (W, b, 1.0, x), temperatures[-1], 64, options, seeds
                ),
                config,
            )
        if "digits" in problems:
            record(
                run_linear(
                    "digits", digits_ppca(), temperatures[-1], 16, options, seeds
                ),
                config,
            )
        if "mlp" in problems and not args.quick:
            for row in run_mlp(options, seeds):
                record(row, config)
    print(f"total wall time {time.perf_counter() - start:.0f} s")
    os.makedirs(os.path.dirname(args.output), exist_ok=True)
    previous = []
    if os.path.exists(args.output):
        with open(args.output) as handle:
            previous = [
                r
                for r in json.load(handle)["rows"]
                if r["config"] not in args.configs.split(",")
            ]
    rows = previous + rows
    with open(args.output, "w") as handle:
        json.dump({"versions": rdppl.__version__, "rows": rows}, handle, indent=1)
    if args.figure:
        plot(rows, args.figure)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
