"""Nox sessions: tests, slow, x64, lint, examples, gallery, docs, benchmark.

`nox -s tests` runs the default test suite on every supported Python that nox can
find (3.11 and 3.12); missing interpreters are skipped, never downloaded.
"""

import glob
import os
import shutil

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


def _gallery_examples():
    """The gallery examples ``examples/NN_name.py``, in order."""
    return sorted(glob.glob(os.path.join("examples", "[0-9][0-9]_*.py")))


@nox.session(python=PYTHONS[0])
def examples(session):
    """Run the demo, the examples (gallery ones --tiny) and the documentation code."""
    _install(session)
    out = session.create_tmp()
    session.run("python", "-m", "rdppl", "demo", "--out", os.path.join(out, "demo"))
    gallery = set(_gallery_examples())
    for path in sorted(glob.glob(os.path.join("examples", "*.py"))):
        name = os.path.basename(path)[:-3]
        if name.startswith("_"):  # helper modules the examples import
            continue
        # the gallery's full runs belong to `nox -s gallery`
        tiny = ["--tiny", "--quiet"] if path in gallery else []
        session.run("python", path, *tiny, "--out", os.path.join(out, name))
    session.run("pytest", "tests/test_docs.py", "-q")


@nox.session(python=PYTHONS[0])
def gallery(session):
    """Full runs of the gallery examples, recorded in docs/gallery/<name>/ for the site.

    `nox -s gallery -- 03_damaged_prior` runs only the examples named.
    """
    _install(session, "examples")
    paths = _gallery_examples()
    if session.posargs:
        paths = [
            path for path in paths if os.path.basename(path)[:-3] in session.posargs
        ]
        if not paths:
            session.error(f"no gallery example named {' '.join(session.posargs)}")
    for path in paths:
        name = os.path.basename(path)[:-3]
        out = os.path.join("docs", "gallery", name)
        session.run("python", path, "--quiet", "--out", out)


@nox.session(python=PYTHONS[0])
def docs(session):
    """Build the documentation site into docs/_build/html; any warning is an error.

    The gallery pages come from docs/gallery/<name>/summary.json (`nox -s gallery`).
    """
    _install(session, "docs")
    build = os.path.join("docs", "_build")
    # a fresh build every time: no page is left from a previous one
    shutil.rmtree(build, ignore_errors=True)
    session.run(
        "sphinx-build",
        "-W",  # warnings are errors: broken links and anchors, bad docstrings
        "--keep-going",  # ... all of them reported at once
        "-n",  # every cross-reference must resolve
        "-b",
        "html",
        "docs",
        os.path.join(build, "html"),
        *session.posargs,
    )
    session.log(f"site: {os.path.join(build, 'html', 'index.html')}")


@nox.session(python=PYTHONS[0])
def benchmark(session):
    """Cost per gradient evaluation against a minimal JAX loop; accuracy per option;
    accuracy against BlackJAX's tempered SMC at equal gradient evaluations; accuracy
    at the field's sizes (closed form and BDMC gaps)."""
    _install(session)
    session.run("python", "benchmarks/ais_overhead.py", *session.posargs)
    session.run("python", "benchmarks/thermodynamic_schedule.py")
    session.run("python", "benchmarks/accuracy.py")
    session.run("python", "benchmarks/streaming.py")
    session.run("python", "benchmarks/peers.py")
    session.run("python", "benchmarks/field_accuracy.py")
