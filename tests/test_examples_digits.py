"""The digits example runs end to end (``--tiny``) and writes its figure and summary."""

import json
import math
import pathlib
import subprocess
import sys

ROOT = pathlib.Path(__file__).resolve().parents[1]
SCRIPT = ROOT / "examples" / "digits_encoders.py"
PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


def test_tiny_digits_example_writes_figure_and_summary(tmp_path):
    completed = subprocess.run(
        [sys.executable, str(SCRIPT), "--out", str(tmp_path), "--tiny", "--quiet"],
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    assert completed.returncode == 0, completed.stderr[-4000:]
    assert "wrote" in completed.stdout

    figure = tmp_path / "digits_encoders.png"
    assert figure.read_bytes()[:8] == PNG_SIGNATURE
    assert figure.stat().st_size > 10_000  # a drawn figure, not an empty canvas

    summary = json.loads((tmp_path / "summary.json").read_text())
    rate_weights = summary["settings"]["rate_weights"]
    points = summary["points"]
    for model in ("beta_vae", "echo", "amortized", "ais"):
        rows = [row for row in points if row["model"] == model]
        assert [row["rate_weight"] for row in rows] == rate_weights
        for row in rows:
            assert math.isfinite(row["rate"]) and math.isfinite(row["distortion"])
            assert row["distortion"] > 0  # -log p(x|z) of 64 binary pixels
    for row in points:
        if row["model"] in ("beta_vae", "amortized"):
            assert row["rate"] >= 0  # a KL divergence
        if row["model"] == "ais":
            # Each AIS point is the schedule temperature nearest 1 / rate_weight.
            assert row["ais_temperature"] > 0
        if row["model"] == "echo":
            # The exact information cannot go below the clipping floor.
            assert row["rate"] >= summary["echo_rate_floor"] - 1e-4
    assert set(summary["wall_time_seconds"]) == {"beta_vae", "echo", "amortized", "ais"}
    assert math.isfinite(summary["negative_log_likelihood_ais"])
