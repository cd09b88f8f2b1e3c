"""Every gallery example (``examples/NN_*.py``) runs in ``--tiny`` mode as written.

Each writes a ``summary.json`` in the schema of ``examples/_gallery.py``, its figures,
and ends with one ``FINDING <name>: <VERDICT>`` line. Tiny runs are too short for the
findings to hold, so only the verdict's form is checked here; the full runs' verdicts
are in ``docs/gallery/`` (``nox -s gallery``).
"""

import json
import math
import pathlib
import subprocess
import sys

import pytest

ROOT = pathlib.Path(__file__).resolve().parents[1]
EXAMPLES = sorted((ROOT / "examples").glob("[0-9][0-9]_*.py"))
PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
VERDICTS = ("reproduced", "not reproduced", "partly reproduced")
KEYS = {
    "example", "title", "paper", "claim", "verdict", "checks", "tables", "figures",
    "notes", "mode", "seed", "settings", "wall_time_seconds", "command", "platform",
}  # fmt: skip


def _check_summary(summary, name, mode):
    assert KEYS <= set(summary)
    assert summary["example"] == name
    assert summary["mode"] == mode
    assert summary["verdict"] in VERDICTS
    assert summary["checks"], "an example must make at least one check"
    for check in summary["checks"]:
        assert {"name", "statement", "value", "standard_error", "holds"} <= set(check)
        assert isinstance(check["holds"], bool)
    held = [check["holds"] for check in summary["checks"]]
    expected = (
        "reproduced"
        if all(held)
        else "not reproduced"
        if not any(held)
        else "partly reproduced"
    )
    assert summary["verdict"] == expected
    assert math.isfinite(summary["wall_time_seconds"])
    for table in summary["tables"]:
        assert all(len(row) == len(table["columns"]) for row in table["rows"])
    assert summary["figures"]


def test_gallery_is_not_empty():
    assert len(EXAMPLES) >= 9


@pytest.mark.parametrize("script", EXAMPLES, ids=lambda p: p.stem)
def test_example_runs_tiny(script, tmp_path):
    completed = subprocess.run(
        [sys.executable, str(script), "--tiny", "--quiet", "--out", str(tmp_path)],
        capture_output=True,
        text=True,
        timeout=900,
        check=False,
        cwd=tmp_path,
    )
    assert completed.returncode == 0, completed.stderr[-4000:]
    summary = json.loads((tmp_path / "summary.json").read_text())
    _check_summary(summary, script.stem, "tiny")
    last = completed.stdout.strip().splitlines()[-1]
    assert last == f"FINDING {script.stem}: {summary['verdict'].upper()}"
    for figure in summary["figures"]:
        data = (tmp_path / figure).read_bytes()
        assert data[:8] == PNG_SIGNATURE
        assert len(data) > 5_000  # a drawn figure, not an empty canvas


@pytest.mark.parametrize("script", EXAMPLES, ids=lambda p: p.stem)
def test_full_run_is_recorded_in_docs(script):
    """``nox -s gallery`` wrote the full run's output where the docs read it."""
    folder = ROOT / "docs" / "gallery" / script.stem
    summary = json.loads((folder / "summary.json").read_text())
    _check_summary(summary, script.stem, "full")
    for figure in summary["figures"]:
        assert (folder / figure).read_bytes()[:8] == PNG_SIGNATURE
