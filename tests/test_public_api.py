"""The public API: every exported name resolves, and importing stays light."""

import subprocess
import sys

import pytest

import rdppl


@pytest.mark.parametrize("name", rdppl.__all__)
def test_every_exported_name_resolves(name):
    assert getattr(rdppl, name) is not None


def test_import_does_not_load_optax_or_matplotlib():
    # a fresh interpreter: this test process has imported everything already
    code = (
        "import sys, rdppl; "
        "print(sorted(m for m in ('optax', 'matplotlib', 'rdppl.training') "
        "if m in sys.modules))"
    )
    loaded = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    ).stdout.strip()
    assert loaded == "[]"
    # and the lazy names load on first use
    code = "import sys, rdppl; rdppl.train_beta_vae; print('optax' in sys.modules)"
    used = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    ).stdout.strip()
    assert used == "True"


def test_entry_points_share_keyword_names():
    import inspect

    shared = {"rng_key", "distortion", "observed", "reconstruction", "model_args"}
    for function in (
        rdppl.rd_curve,
        rdppl.bdmc,
        rdppl.log_likelihood,
        rdppl.variational_bounds,
    ):
        parameters = inspect.signature(function).parameters
        assert list(parameters)[:2] == ["model", "data"], function.__name__
        assert shared <= set(parameters), function.__name__
        assert all(
            parameters[name].kind is inspect.Parameter.KEYWORD_ONLY for name in shared
        )
    for function in (rdppl.rd_curve, rdppl.bdmc, rdppl.log_likelihood):
        parameters = inspect.signature(function).parameters
        for name in ("schedule", "num_chains", "kernel", "progress"):
            assert name in parameters, (function.__name__, name)
        assert parameters["progress"].default is False
