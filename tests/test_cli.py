"""The command line, run in-process through ``rdppl.cli.main`` (once as a process)."""

import subprocess
import sys

import numpy as np
import pytest
import xarray as xr
from test_plot import curve_tree  # hand-made result trees

import rdppl
from rdppl import cli


@pytest.fixture
def saved(tmp_path):
    """Two saved results that share the name ``rd_curve``, one with BDMC bounds."""
    first, second = tmp_path / "hmc.nc", tmp_path / "nuts.nc"
    tree = curve_tree(0, bdmc=True)
    tree.attrs.update(num_chains=8, num_temperatures=5, distortion="nll")
    rdppl.to_netcdf(tree, first)
    rdppl.to_netcdf(curve_tree(1), second)
    return first, second


def run(capsys, *arguments):
    code = cli.main([str(a) for a in arguments])
    out, err = capsys.readouterr()
    return code, out, err


def test_help_describes_every_command(capsys):
    code, out, _ = run(capsys, "--help")
    assert code == 0
    for command in ("demo", "info", "plot"):
        assert command in out
    assert "--version" in out
    for command in ("demo", "info", "plot"):
        code, out, _ = run(capsys, command, "--help")
        assert code == 0
        assert f"usage: rdppl {command}" in out
    code, out, _ = run(capsys, "plot", "--help")
    assert "-o OUTPUT, --output OUTPUT" in out


def test_version(capsys):
    code, out, _ = run(capsys, "--version")
    assert code == 0
    assert out.strip() == f"rdppl {rdppl.__version__}"


def test_usage_errors_exit_2(capsys):
    code, _, err = run(capsys)
    assert code == 2
    assert "usage: rdppl" in err
    code, _, err = run(capsys, "bogus")
    assert code == 2
    assert "invalid choice" in err
    code, _, err = run(capsys, "plot")  # FILE is required
    assert code == 2


def test_info_summarises_a_saved_result(capsys, saved):
    code, out, err = run(capsys, "info", saved[0])
    assert code == 0, err
    lines = out.splitlines()
    assert lines[0].startswith("rd_curve")
    assert "rate_distortion (example 4, beta 6)" in out
    assert "bdmc (example 4, beta 2)" in out
    assert "chains 8" in out
    assert "gap" in out  # the BDMC section
    if "rate_distortion:" in out:  # the plain table (rdppl.summary absent or not used)
        dataset = xr.open_dataset(saved[0], group="rate_distortion", engine="h5netcdf")
        rate = dataset["rate"].sortby("beta").mean("example").values
        dataset.close()
        # the row of beta = 10 shows the mean rate there
        row = next(line for line in lines if line.split()[:1] == ["10"])
        assert float(row.split()[1]) == pytest.approx(rate[-1], rel=1e-3)


def test_info_on_a_zarr_store(capsys, tmp_path):
    pytest.importorskip("zarr")
    store = tmp_path / "result.zarr"
    rdppl.to_zarr(curve_tree(2, name="zarr_run"), store)
    code, out, err = run(capsys, "info", store)
    assert code == 0, err
    assert out.startswith("zarr_run")


@pytest.mark.parametrize("command", ["info", "plot"])
def test_unreadable_files_give_one_line_errors(capsys, tmp_path, command):
    missing = tmp_path / "missing.nc"
    code, out, err = run(capsys, command, missing)
    assert code == 1
    assert err.count("\n") == 1
    assert err.startswith(f"rdppl {command}: error: no such file or directory")
    assert str(missing) in err
    assert "Traceback" not in err

    foreign = tmp_path / "foreign.nc"
    foreign.write_text("not a result\n")
    code, out, err = run(capsys, command, foreign)
    assert code == 1
    assert err.count("\n") == 1
    assert str(foreign) in err
    assert "Traceback" not in err

    plain = tmp_path / "plain.nc"  # a netCDF file rdppl did not write
    xr.Dataset({"a": ("x", np.arange(3.0))}).to_netcdf(plain, engine="h5netcdf")
    code, _, err = run(capsys, command, plain)
    assert code == 1
    assert err.count("\n") == 1
    assert str(plain) in err


def test_plot_draws_several_results_with_distinct_labels(
    capsys, saved, tmp_path, monkeypatch
):
    from rdppl import plot

    drawn = {}
    original = plot.plot_rd_curve

    def spy(*trees, **options):
        ax = original(*trees, **options)
        drawn["labels"] = [
            line.get_label()
            for line in ax.get_lines()
            if not line.get_label().startswith("_")
        ]
        drawn["containers"] = len(ax.containers)
        drawn["xscale"] = ax.get_xscale()
        return ax

    monkeypatch.setattr(plot, "plot_rd_curve", spy)
    output = tmp_path / "curves.png"
    code, out, err = run(capsys, "plot", *saved, "-o", output, "--log-distortion")
    assert code == 0, err
    assert f"wrote {output}" in out
    assert output.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    # both are named rd_curve: the file names tell them apart
    assert drawn["labels"] == ["rd_curve (hmc.nc)", "rd_curve (nuts.nc)"]
    assert drawn["containers"] == 1  # the BDMC bounds of the first
    assert drawn["xscale"] == "log"

    code, _, err = run(capsys, "plot", saved[0], "-o", output, "--no-bdmc")
    assert code == 0, err
    assert drawn["labels"] == ["rd_curve"]
    assert drawn["containers"] == 0


def test_plot_diagnostics_needs_one_result_with_sample_stats(capsys, saved, tmp_path):
    output = tmp_path / "diagnostics.png"
    code, _, err = run(capsys, "plot", "--diagnostics", *saved, "-o", output)
    assert code == 1
    assert "single result" in err
    code, _, err = run(capsys, "plot", "--diagnostics", saved[0], "-o", output)
    assert code == 1  # the hand-made tree has no sample_stats
    assert "sample_stats" in err
    assert not output.exists()


# so few temperatures and chains make a run the diagnostics flag (an RDWarning)
@pytest.mark.filterwarnings("ignore::UserWarning")
def test_demo_runs_the_main_job_in_miniature(capsys, tmp_path):
    pytest.importorskip("matplotlib")
    code, out, err = run(
        capsys,
        "demo",
        "--out",
        tmp_path,
        "--num-temperatures",
        10,
        "--num-chains",
        2,
        "--num-examples",
        2,
    )
    assert code == 0, err
    assert "mean |log Z error| at beta_max" in out
    result = rdppl.from_netcdf(tmp_path / "rd_curve.nc")
    assert result.name == "rd_curve"
    assert (tmp_path / "rd_curve.png").exists()
    # and `rdppl info` reads what the demo wrote
    code, out, err = run(capsys, "info", tmp_path / "rd_curve.nc")
    assert code == 0, err
    assert out.startswith("rd_curve")


def test_module_entry_point_as_a_process(saved):
    # `python -m rdppl` and the console script share rdppl.__main__.main
    from rdppl.__main__ import main

    assert main is cli.main
    done = subprocess.run(
        [sys.executable, "-m", "rdppl", "info", str(saved[0])],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.startswith("rd_curve")
    done = subprocess.run(
        [sys.executable, "-m", "rdppl", "info", str(saved[0]) + ".missing"],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 1
    assert done.stderr.startswith("rdppl info: error: no such file")
    assert "Traceback" not in done.stderr
