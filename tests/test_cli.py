"""The command line, run in-process through ``rdppl.cli.commands.main``; once as a
process."""

import subprocess
import sys

import numpy as np
import pytest
import xarray as xr
from test_plot import curve_tree, negative_gap_tree  # hand-made result trees

import rdppl
from rdppl.cli import commands as cli


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
        drawn["axes"] = len(ax.figure.get_axes())
        drawn["xscale"] = ax.get_xscale()
        return ax

    monkeypatch.setattr(plot, "plot_rd_curve", spy)
    output = tmp_path / "curves.png"
    code, out, err = run(capsys, "plot", *saved, "-o", output, "--log-distortion")
    assert code == 0, err
    assert f"wrote {output}" in out
    assert output.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    # both are named rd_curve: the file names tell them apart
    assert drawn["labels"] == [
        "rd_curve (hmc.nc)",
        "rd_curve (nuts.nc)",
        "rd_curve (hmc.nc) at BDMC beta* (panel below)",
    ]
    assert drawn["axes"] == 2  # the panel of BDMC gaps of the first
    assert drawn["xscale"] == "log"

    code, _, err = run(capsys, "plot", saved[1], "-o", output)
    assert code == 0, err
    assert drawn["xscale"] == "linear"  # chosen: no "L" to unfold
    code, _, err = run(capsys, "plot", saved[1], "-o", output, "--linear-distortion")
    assert drawn["xscale"] == "linear"
    code, _, err = run(capsys, "plot", saved[0], "-o", output, "--no-bdmc")
    assert code == 0, err
    assert drawn["labels"] == ["rd_curve"]
    assert drawn["axes"] == 1


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


def one_line_error(err, command):
    assert err.count("\n") == 1, err
    assert err.startswith(f"rdppl {command}: error: ")
    assert "Traceback" not in err


def test_plot_draws_negative_bdmc_gaps(capsys, tmp_path):
    # a good certificate (mean gaps below zero) crashed the figure
    path, output = tmp_path / "certified.nc", tmp_path / "certified.png"
    rdppl.to_netcdf(negative_gap_tree(), path)
    code, out, err = run(capsys, "plot", path, "-o", output)
    assert code == 0, err
    assert output.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_plot_names_the_file_and_the_missing_variable(capsys, tmp_path):
    tree = curve_tree()
    tree["rate_distortion"] = xr.DataTree(
        tree["rate_distortion"].to_dataset().drop_vars("distortion")
    )
    path = tmp_path / "no_distortion.nc"
    rdppl.to_netcdf(tree, path)
    code, _, err = run(capsys, "plot", path, "-o", tmp_path / "x.png")
    assert code == 1
    one_line_error(err, "plot")
    assert str(path) in err
    assert "'rate_distortion' has no variable 'distortion'" in err


def test_info_says_why_pareto_khat_is_nan(capsys, tmp_path):
    from rdppl import diagnostics
    from rdppl.cli import info as cli_info

    # the fit needs 6 tail weights, the largest fifth of the chains: 30 chains
    assert diagnostics.khat_tail_length(cli_info.KHAT_MIN_CHAINS_FOR_FIT - 1) < 6
    assert diagnostics.khat_tail_length(cli_info.KHAT_MIN_CHAINS_FOR_FIT) == 6
    tree = curve_tree()
    dataset = tree["rate_distortion"].to_dataset()
    stats = xr.Dataset(
        {"pareto_khat": dataset["rate"] * np.nan},
        coords=dataset.coords,
    )
    tree["sample_stats"] = xr.DataTree(stats)
    tree.attrs["num_chains"] = 16
    path = tmp_path / "few_chains.nc"
    rdppl.to_netcdf(tree, path)
    code, out, err = run(capsys, "info", path)
    assert code == 0, err
    assert "pareto_khat_max is nan: k-hat needs at least 30 chains" in out
    assert "this run has 16" in out
    tree.attrs["num_chains"] = 64  # enough chains: another reason
    assert "no finite k-hat" in cli_info.khat_note(tree)
    stats["pareto_khat"] = stats["pareto_khat"].fillna(0.2)
    tree["sample_stats"] = xr.DataTree(stats)
    assert cli_info.khat_note(tree) is None


def test_info_into_a_closed_pipe_exits_quietly(saved):
    # `rdppl info FILE | head`: the reader leaves before rdppl writes
    process = subprocess.Popen(
        [sys.executable, "-m", "rdppl", "info", str(saved[0])],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    process.stdout.close()
    _, err = process.communicate(timeout=120)
    assert process.returncode == 1
    assert err == b""


def test_demo_rejects_non_positive_counts_in_one_line(capsys, tmp_path):
    for flag, value in [("--num-chains", 0), ("--num-examples", -1)]:
        out_dir = tmp_path / "demo"
        code, out, err = run(capsys, "demo", "--out", out_dir, flag, value)
        assert code == 1
        one_line_error(err, "demo")
        assert f"{flag} must be a positive integer, got {value}" in err
        assert not out_dir.exists()
    code, _, err = run(capsys, "demo", "--out", tmp_path, "--beta-max", "0")
    assert code == 1
    assert "--beta-max must be positive" in err


def test_info_on_a_directory_that_is_no_zarr_store(capsys, tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "zarr", None)  # even without zarr installed
    folder = tmp_path / "plots"
    folder.mkdir()
    (folder / "a.png").write_bytes(b"")
    for command in ("info", "plot"):
        code, _, err = run(capsys, command, folder)
        assert code == 1
        one_line_error(err, command)
        assert "not a Zarr store" in err
        assert "not an rdppl result" in err
        assert "needs the zarr package" not in err
