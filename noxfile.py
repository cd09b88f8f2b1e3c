"""Nox sessions: tests, slow, x64, lint, examples, benchmark.

`nox -s tests` runs the default test suite on every supported Python that nox can
find (3.11 and 3.12); missing interpreters are skipped, never downloaded.
"""

import glob
import os

import nox

nox.options.sessions = ["tests", "lint"]
nox.options.download_python = "never"
nox.options.error_on_missing_interpreters = False
nox.options.reuse_existing_virtualenvs = True

PYTHONS = ["3.11", "3.12"]


def _add_pyenv_interpreters(versions):
    """Put pyenv's interpreters on PATH so nox finds them without shims."""
    root = os.environ.get("PYENV_ROOT", os.path.expanduser("~/.pyenv"))
    for version in versions:
        found = sorted(glob.glob(os.path.join(root, "versions", f"{version}.*", "bin")))
        if found:
            os.environ["PATH"] = found[-1] + os.pathsep + os.environ["PATH"]


_add_pyenv_interpreters(PYTHONS)


def _install(session, extras="test"):
    session.install("-e", f".[{extras}]")


@nox.session(python=PYTHONS)
def tests(session):
    """Default test suite (excludes tests marked slow)."""
    _install(session)
    session.run(
        "pytest",
        "-m",
        "not slow",
        "-n",
        "auto",
        "--durations=15",
        *session.posargs,
        env={"RDPPL_HYPOTHESIS_PROFILE": "default"},
    )


@nox.session(python=PYTHONS[0])
def slow(session):
    """Slow tests and the thorough Hypothesis profile."""
    _install(session)
    session.run(
        "pytest",
        "-n",
        "auto",
        *session.posargs,
        env={"RDPPL_HYPOTHESIS_PROFILE": "thorough"},
    )


@nox.session(python=PYTHONS[0])
def x64(session):
    """The default suite in float64 (JAX_ENABLE_X64=1)."""
    _install(session)
    session.run(
        "pytest",
        "-m",
        "not slow",
        "-n",
        "auto",
        *session.posargs,
        env={
            "RDPPL_HYPOTHESIS_PROFILE": "default",
            "JAX_ENABLE_X64": "1",
            # the tests' float32 model parameters meet float64 latents
            "RDPPL_DTYPE_PROMOTION": "standard",
        },
    )


@nox.session(python=PYTHONS[0])
def lint(session):
    """ruff format --check and ruff check."""
    session.install("ruff>=0.6")
    session.run("ruff", "format", "--check", ".")
    session.run("ruff", "check", ".")


@nox.session(python=PYTHONS[0])
def examples(session):
    """Run the demo, the examples and the documentation snippets as written."""
    _install(session)
    out = session.create_tmp()
    session.run("python", "-m", "rdppl", "demo", "--out", os.path.join(out, "demo"))
    for path in sorted(os.listdir("examples")):
        if path.endswith(".py"):
            session.run(
                "python",
                os.path.join("examples", path),
                "--out",
                os.path.join(out, path[:-3]),
            )
    session.run("pytest", "tests/test_docs.py", "-q")


@nox.session(python=PYTHONS[0])
def benchmark(session):
    """Cost per gradient evaluation against a minimal JAX loop; accuracy per option."""
    _install(session)
    session.run("python", "benchmarks/ais_overhead.py", *session.posargs)
    session.run("python", "benchmarks/thermodynamic_schedule.py")
    session.run("python", "benchmarks/accuracy.py")
    session.run("python", "benchmarks/streaming.py")
