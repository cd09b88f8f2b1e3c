"""Lists of strings are native attributes, so other readers (ArviZ) see lists."""

import json
import os
import tempfile

import numpy as np
import pytest
import xarray as xr
from hypothesis import given
from hypothesis import strategies as st
from test_files import BACKENDS, assert_trees_exactly_equal
from test_files_integrity import edit_root

import rdppl
from rdppl.results import attrs_codec


@pytest.fixture(params=list(BACKENDS))
def backend(request):
    return BACKENDS[request.param]


def posterior_tree(sample_dims):
    draws = np.arange(12.0).reshape(2, 3, 2)
    posterior = xr.Dataset({"z": (("chain", "draw", "example"), draws)})
    posterior.attrs["sample_dims"] = sample_dims
    curve = xr.Dataset({"rate": ("beta", [0.5, 0.25])})
    return xr.DataTree.from_dict(
        {"/posterior": posterior, "/rate_distortion": curve}, name="result"
    )


def raw_attrs(path, group):
    """A group's attributes as xarray reads them, without rdppl's decoding."""
    engine = "zarr" if str(path).endswith(".zarr") else "h5netcdf"
    with xr.open_datatree(path, engine=engine) as raw:
        return dict(raw[group].attrs)


def test_sample_dims_is_a_list_to_other_readers(backend, tmp_path):
    write, read, name = backend
    tree = posterior_tree(["chain", "draw"])
    write(tree, tmp_path / name)
    assert raw_attrs(tmp_path / name, "posterior")["sample_dims"] == ["chain", "draw"]
    assert_trees_exactly_equal(read(tmp_path / name), tree)


def test_a_one_item_list_comes_back_as_a_list(backend, tmp_path):
    # netCDF readers give back a one-item string list as the string itself
    write, read, name = backend
    tree = posterior_tree(["draw"])
    write(tree, tmp_path / name)
    raw = raw_attrs(tmp_path / name, "posterior")["sample_dims"]
    assert raw in ("draw", ["draw"])
    assert read(tmp_path / name)["posterior"].attrs["sample_dims"] == ["draw"]


@pytest.mark.parametrize(
    "value",
    [[], [""], ["a", ""], ["a\x00b", "c"], ["\udcff", "c"], ["a", 1], ("a", "b")],
    ids=["empty", "empty_str", "one_empty", "nul", "surrogate", "mixed", "tuple"],
)
def test_other_lists_stay_json(tmp_path, value):
    # what netCDF cannot hold exactly, or what is no list of str, stays JSON text
    tree = posterior_tree(value)
    rdppl.to_netcdf(tree, tmp_path / "r.nc")
    assert isinstance(raw_attrs(tmp_path / "r.nc", "posterior")["sample_dims"], str)
    assert_trees_exactly_equal(rdppl.from_netcdf(tmp_path / "r.nc"), tree)


@given(value=st.lists(st.text(max_size=5), max_size=4))
def test_any_list_of_str_round_trips_exactly(value):
    tree = posterior_tree(value)
    with tempfile.TemporaryDirectory() as directory:
        for write, read, name in BACKENDS.values():
            path = os.path.join(directory, name)
            write(tree, path)
            loaded = read(path)
            assert_trees_exactly_equal(loaded, tree)
            assert type(loaded["posterior"].attrs["sample_dims"]) is list


@pytest.mark.parametrize(
    "stored",
    [np.int64(3), np.array([1, 2]), np.array([b"a", b"b"], dtype=object)],
    ids=["int", "ints", "bytes"],
)
def test_a_malformed_string_list_is_reported(stored):
    attrs = {"s": stored, "rdppl_attr_types": json.dumps({"s": "str_list"})}
    with pytest.raises(rdppl.ResultFileError, match="r.nc.*'s'"):
        attrs_codec.decode_attrs(attrs, "group '/'", "r.nc")


# --- files written before lists of str were native -----------------------------------


def format_1_file(path, sample_dims):
    """What rdppl wrote before: ``sample_dims`` a JSON string on every group."""
    tree = posterior_tree(sample_dims)
    tree["rate_distortion"].attrs["sample_dims"] = sample_dims
    tree["rate_distortion"]["rate"].attrs["sample_dims"] = sample_dims
    rdppl.to_netcdf(tree, path)
    edit_root(path, rdppl_digest=None, rdppl_format_version=np.int64(1))
    return tree


def test_a_string_sample_dims_of_an_old_file_is_dropped(tmp_path):
    format_1_file(tmp_path / "old.nc", "[]")
    loaded = rdppl.from_netcdf(tmp_path / "old.nc")
    assert "sample_dims" not in loaded["posterior"].attrs
    assert "sample_dims" not in loaded["rate_distortion"].attrs
    # only groups carry ArviZ's attribute: a variable's is kept
    assert loaded["rate_distortion"]["rate"].attrs["sample_dims"] == "[]"


def test_a_list_sample_dims_of_an_old_file_is_kept(tmp_path):
    format_1_file(tmp_path / "old.nc", ["chain", "draw"])
    loaded = rdppl.from_netcdf(tmp_path / "old.nc")
    assert loaded["posterior"].attrs["sample_dims"] == ["chain", "draw"]


def test_new_files_keep_a_string_sample_dims(backend, tmp_path):
    write, read, name = backend
    tree = posterior_tree("[]")
    write(tree, tmp_path / name)
    assert read(tmp_path / name)["posterior"].attrs["sample_dims"] == "[]"


def test_arviz_reads_sample_dims_without_rdppl(tmp_path):
    az = pytest.importorskip("arviz")
    if int(az.__version__.split(".")[0]) < 1:
        pytest.skip("arviz 1.x reads the DataTree's sample_dims")
    tree = posterior_tree(["chain", "draw"])
    rdppl.to_netcdf(tree, tmp_path / "r.nc")
    extracted = az.extract(az.from_netcdf(tmp_path / "r.nc"), var_names=["z"])
    assert extracted.sizes["sample"] == 6
