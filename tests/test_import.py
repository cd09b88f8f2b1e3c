"""``import rdppl`` is lazy (PEP 562): names load on first use, and all of them work.

Each check runs in a fresh interpreter: this test process has imported everything.
"""

import json
import subprocess
import sys

import pytest

import rdppl

HEAVY = [
    "jax",
    "numpyro",
    "blackjax",
    "equinox",
    "optax",
    "xarray",
    "matplotlib",
    "rdppl.training",
    "rdppl.encoders.sweep",
    "rdppl.encoders.optimise",
    "rdppl.plot",
]
TRAINING = [
    "rdppl.training",
    "rdppl.encoders.sweep",
    "rdppl.encoders.optimise",
    "rdppl.encoders.objectives",
]


def fresh(code):
    """Run ``code`` in a new interpreter; it prints one JSON value, returned here."""
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=300
    )
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout.strip().splitlines()[-1])


def test_import_rdppl_loads_nothing_heavy():
    code = (
        "import json, sys, rdppl; "
        f"print(json.dumps([m for m in {HEAVY!r} if m in sys.modules] + "
        "sorted(m for m in sys.modules if m.startswith('rdppl.'))))"
    )
    # only the version and the finder of old module paths (standard library only)
    assert fresh(code) == ["rdppl._moved", "rdppl._version"]


def test_rd_curve_loads_neither_trainers_nor_matplotlib():
    # (optax itself arrives with blackjax, which imports it eagerly)
    code = (
        "import json, sys, rdppl; rdppl.rd_curve; rdppl.bdmc; rdppl.log_likelihood; "
        f"print(json.dumps([m for m in {[*TRAINING, 'matplotlib']!r} "
        "if m in sys.modules]))"
    )
    assert fresh(code) == []


def test_the_command_line_parser_loads_no_jax():
    code = (
        "import json, sys; from rdppl.cli import commands; commands.build_parser(); "
        "print(json.dumps([m for m in ('jax', 'numpyro', 'matplotlib') "
        "if m in sys.modules]))"
    )
    assert fresh(code) == []


def test_every_exported_name_imports_and_has_its_kind():
    names = ", ".join(rdppl.__all__)
    code = (
        "import json, types, rdppl\n"
        f"from rdppl import {names}\n"
        "kinds = {n: isinstance(getattr(rdppl, n), types.ModuleType) "
        "for n in rdppl.__all__}\n"
        "same = all(globals()[n] is getattr(rdppl, n) for n in rdppl.__all__)\n"
        "print(json.dumps([kinds, same, sorted(set(rdppl.__all__) - set(dir(rdppl)))]))"
    )
    kinds, same, missing = fresh(code)
    assert same
    assert missing == []
    modules = {name for name, is_module in kinds.items() if is_module}
    assert modules == set(rdppl._SUBMODULES) & set(rdppl.__all__)
    assert {"analytic", "plot", "results", "schedules", "training"} <= modules
    assert not modules & {"model", "bdmc", "rd_curve", "summary", "log_likelihood"}


def test_a_submodule_never_hides_the_function_of_its_name():
    # rdppl.model (the decorator) shares its name with the submodule rdppl/model.py:
    # importing the submodule, directly or through another name, keeps the function
    names = [n for n in ("model", "bdmc", "summary") if n in rdppl.__all__]
    imports = "; ".join(f"import rdppl.{name}" for name in names)
    code = (
        f"import json, sys, types, rdppl; rdppl.rd_curve; {imports}; "
        "print(json.dumps({n: [callable(getattr(rdppl, n)), "
        "isinstance(getattr(rdppl, n), types.ModuleType), "
        f"'rdppl.' + n in sys.modules] for n in {names!r}}}))"
    )
    for name, (is_callable, is_module, loaded) in fresh(code).items():
        assert is_callable, name
        assert not is_module, name
        assert loaded, name


def test_unknown_names_raise_attribute_error():
    with pytest.raises(AttributeError, match="no attribute 'not_a_name'"):
        rdppl.not_a_name  # noqa: B018
    assert "rd_curve" in dir(rdppl)
