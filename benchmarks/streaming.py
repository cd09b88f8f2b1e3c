"""Peak memory against the number of examples and of temperatures.

Memory against the number of examples, with and without ``batch_size``:

Each measurement runs in a fresh process (so the peaks do not mix): ``rd_curve`` on
a small linear decoder (4 latents -> 16 observed dimensions, 4 chains, 20
temperatures) for ``N`` examples, once with all examples in one batch and once with
``batch_size=1000``. Reported: the process's peak resident memory (``ru_maxrss``),
the memory of a process that only imported rdppl and built the data, and the
difference. The per-temperature records that the result holds grow with ``N`` (about
``12 * 4 bytes * (K + 1)`` per example), everything else is bounded by the batch.

Memory against the number of temperatures ``K``, with every record kept and with
``num_curve_points=2000``: 50 examples, 2 chains, 1 leapfrog step, the same decoder,
``K`` up to ``--temperatures`` (default ``10000,100000,400000``; the field's largest
runs had 1.6e6; every record is kept only up to 400,000). Kept at 2000 points, only
the resampling decisions (one bit per example and temperature) and the schedule still
grow with ``K``.

Run ``python benchmarks/streaming.py`` (``--sizes 1000,10000,100000``,
``--temperatures ...``, ``--json PATH``).
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import textwrap

PROGRAM = textwrap.dedent(
    """
    import json
    import resource
    import sys
    import time
    import warnings

    import jax
    import numpy as np
    import numpyro
    import numpyro.distributions as dist

    import rdppl

    warnings.simplefilter("ignore")
    num_examples, batch_size, run = int(sys.argv[1]), sys.argv[2], sys.argv[3] == "1"
    batch_size = None if batch_size == "none" else int(batch_size)
    num_temperatures, num_points, chains, leapfrog = (
        int(sys.argv[4]), None if sys.argv[5] == "none" else int(sys.argv[5]),
        int(sys.argv[6]), int(sys.argv[7]),
    )
    rng = np.random.default_rng(0)
    W = rng.normal(size=(16, 4)).astype(np.float32)


    @rdppl.model(observed="x")
    def decoder(x=None):
        z = numpyro.sample("z", dist.Normal(0, 1).expand([4]).to_event(1))
        numpyro.sample("x", dist.Normal(W @ z, 1.0).to_event(1), obs=x)


    data = (rng.normal(size=(num_examples, 4)) @ W.T).astype(np.float32)
    start = time.perf_counter()
    if run:
        result = rdppl.rd_curve(
            decoder,
            data,
            rng_key=jax.random.key(0),
            schedule=rdppl.sigmoid_schedule(num_temperatures, beta_max=1.0),
            num_chains=chains,
            kernel=rdppl.HMC(num_leapfrog=leapfrog),
            batch_size=batch_size,
            num_curve_points=num_points,
            chunk_size=min(num_temperatures, 4096),
        )
        points = num_temperatures + 1 if num_points is None else num_points
        assert result["rate_distortion"]["rate"].shape == (num_examples, points)
    seconds = time.perf_counter() - start
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # MiB (Linux)
    print(json.dumps({"peak_mib": peak, "seconds": seconds}))
    """
)


def measure(
    num_examples: int,
    batch_size: int | None,
    run: bool,
    num_temperatures: int = 20,
    num_points: int | None = None,
    chains: int = 4,
    leapfrog: int = 5,
) -> dict:
    output = subprocess.run(
        [
            sys.executable,
            "-c",
            PROGRAM,
            str(num_examples),
            "none" if batch_size is None else str(batch_size),
            "1" if run else "0",
            str(num_temperatures),
            "none" if num_points is None else str(num_points),
            str(chains),
            str(leapfrog),
        ],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    return json.loads(output.strip().splitlines()[-1])


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sizes", default="1000,10000,100000")
    parser.add_argument("--batch-size", type=int, default=1000)
    parser.add_argument("--temperatures", default="10000,100000,400000")
    parser.add_argument("--json", default=None)
    args = parser.parse_args(argv)
    sizes = [int(s) for s in args.sizes.split(",") if s]
    rows = []
    print(f"{'examples':>9} {'batch':>6} {'peak MiB':>9} {'over idle':>10} {'s':>7}")
    for size in sizes:
        idle = measure(size, None, run=False)
        for batch in (None, args.batch_size):
            used = measure(size, batch, run=True)
            row = {
                "examples": size,
                "batch_size": batch,
                "peak_mib": used["peak_mib"],
                "idle_mib": idle["peak_mib"],
                "over_idle_mib": used["peak_mib"] - idle["peak_mib"],
                "seconds": used["seconds"],
            }
            rows.append(row)
            print(
                f"{size:>9} {str(batch):>6} {row['peak_mib']:>9.0f} "
                f"{row['over_idle_mib']:>10.0f} {row['seconds']:>7.1f}",
                flush=True,
            )
    rows += _against_temperatures([int(k) for k in args.temperatures.split(",") if k])
    if args.json:
        with open(args.json, "w") as file:
            json.dump(rows, file, indent=2)
    return 0


ALL_RECORDS_UP_TO = 400_000  # beyond: only the run kept at 2000 curve points


def _against_temperatures(temperatures: list[int], examples: int = 50) -> list[dict]:
    """Peak memory against ``K``, every record kept or 2000 curve points."""
    rows = []
    if temperatures:
        print(f"\n{'K':>9} {'points':>7} {'peak MiB':>9} {'over idle':>10} {'s':>7}")
    idle = measure(examples, None, run=False)["peak_mib"]
    for k in temperatures:
        # every record kept would need about 13 KiB per temperature here
        for points in (None, 2000) if k <= ALL_RECORDS_UP_TO else (2000,):
            used = measure(examples, None, True, k, points, chains=2, leapfrog=1)
            row = {
                "examples": examples,
                "temperatures": k,
                "num_curve_points": points,
                "peak_mib": used["peak_mib"],
                "over_idle_mib": used["peak_mib"] - idle,
                "seconds": used["seconds"],
            }
            rows.append(row)
            print(
                f"{k:>9} {str(points):>7} {row['peak_mib']:>9.0f} "
                f"{row['over_idle_mib']:>10.0f} {row['seconds']:>7.1f}",
                flush=True,
            )
    return rows


if __name__ == "__main__":
    sys.exit(main())
