"""Result files check what they give back: checksums, bounded attribute decoding.

A damaged file either raises :class:`rdppl.ResultFileError` or reads back exactly what
was written, never changed values; a crafted attribute cannot make the reader
allocate more than a bounded amount.
"""

import json
import os
import pathlib
import shutil
import tempfile
import time

import h5py
import numpy as np
import pytest
import xarray as xr
from hypothesis import given, settings
from hypothesis import strategies as st
from test_files import BACKENDS, TRAILER, assert_trees_exactly_equal, example_tree

import rdppl
from rdppl.results import attrs_codec

# flips per Hypothesis run: 30 in the default profile, 200 in the thorough one
FLIPS = 5 * settings().max_examples


@pytest.fixture(params=list(BACKENDS))
def backend(request):
    return BACKENDS[request.param]


def data_tree():
    """``example_tree`` with 16 kB more data, so that flips often land in values."""
    tree = example_tree("flipped")
    values = np.random.default_rng(0).normal(size=(2, 1000))
    tree["rate_distortion"]["noise"] = xr.Variable(("example", "draw"), values)
    return tree


def raw_root_attrs(path):
    with xr.open_datatree(path, engine="h5netcdf") as raw:
        return dict(raw.attrs)


# --- the checksum --------------------------------------------------------------------


def test_the_digest_is_stored_and_checked(backend, tmp_path):
    write, read, name = backend
    write(example_tree(), tmp_path / name)
    if name.endswith(".nc"):
        assert raw_root_attrs(tmp_path / name)["rdppl_digest"].startswith("sha256:")
    assert "rdppl_digest" not in read(tmp_path / name).attrs


def test_changed_values_are_detected_in_netcdf(tmp_path):
    # a value changed inside a valid file (what a flipped bit in the data does)
    path = tmp_path / "r.nc"
    tree = data_tree()
    rdppl.to_netcdf(tree, path)
    edit_root(path)  # no trailer: the content digest must see the change
    with h5py.File(path, "r+") as file:
        file["rate_distortion/noise"][0, 5] += 1e-12
    with pytest.raises(rdppl.ResultFileError, match="r.nc.*content does not match"):
        rdppl.from_netcdf(path)
    # strict=False reads what is left, unchecked
    damaged = rdppl.from_netcdf(path, strict=False)
    changed = damaged["rate_distortion"]["noise"].values
    assert changed[0, 5] != tree["rate_distortion"]["noise"].values[0, 5]


def test_changed_attributes_are_detected_in_netcdf(tmp_path):
    path = tmp_path / "r.nc"
    rdppl.to_netcdf(example_tree(), path)
    edit_root(path)
    with h5py.File(path, "r+") as file:
        file["rate_distortion"].attrs["str"] = "hallo wörld"  # same length and type
    with pytest.raises(rdppl.ResultFileError, match="content does not match"):
        rdppl.from_netcdf(path)


def test_a_replaced_zarr_chunk_is_detected(tmp_path):
    tree = example_tree()
    other = example_tree()
    other["rate_distortion"]["small"] = xr.Variable(
        "beta", np.array([1, 2, 4], dtype=np.float32)
    )
    rdppl.to_zarr(tree, tmp_path / "a.zarr")
    rdppl.to_zarr(other, tmp_path / "b.zarr")
    chunk = pathlib.Path("rate_distortion", "small", "0")
    shutil.copy(tmp_path / "b.zarr" / chunk, tmp_path / "a.zarr" / chunk)
    with pytest.raises(rdppl.ResultFileError, match="a.zarr.*checksum"):
        rdppl.from_zarr(tmp_path / "a.zarr")


def test_a_deleted_zarr_chunk_is_detected(tmp_path):
    # zarr gives the fill value for a missing chunk, silently
    rdppl.to_zarr(example_tree(), tmp_path / "a.zarr")
    os.remove(tmp_path / "a.zarr" / "rate_distortion" / "count" / "0.0")
    with pytest.raises(rdppl.ResultFileError, match="checksum"):
        rdppl.from_zarr(tmp_path / "a.zarr")


def flip(data, bit):
    flipped = bytearray(data)
    flipped[bit // 8] ^= 1 << (bit % 8)
    return bytes(flipped)


def read_flipped(read, path, expected):
    """Read a damaged file: an error, or exactly the tree written."""
    try:
        loaded = read(path)
    except rdppl.ResultFileError:
        return "error"
    assert_trees_exactly_equal(loaded, expected)
    return "same"


@pytest.fixture(scope="module")
def written(tmp_path_factory):
    directory = tmp_path_factory.mktemp("flips")
    tree = data_tree()
    rdppl.to_netcdf(tree, directory / "r.nc")
    rdppl.to_zarr(tree, directory / "r.zarr")
    store = {
        str(f.relative_to(directory / "r.zarr")): f.read_bytes()
        for f in sorted((directory / "r.zarr").rglob("*"))
        if f.is_file()
    }
    return tree, (directory / "r.nc").read_bytes(), store


@settings(max_examples=FLIPS)
@given(position=st.floats(0, 1, exclude_max=True))
def test_a_flipped_bit_in_a_netcdf_file_never_changes_values(written, position):
    tree, data, _ = written
    with tempfile.TemporaryDirectory() as directory:
        path = os.path.join(directory, "r.nc")
        with open(path, "wb") as file:
            file.write(flip(data, int(position * len(data) * 8)))
        read_flipped(rdppl.from_netcdf, path, tree)


@settings(max_examples=FLIPS)
@given(data=st.data())
def test_a_flipped_bit_in_a_zarr_store_never_changes_values(written, data):
    tree, _, store = written
    name = data.draw(st.sampled_from(sorted(store)), label="file")
    bit = data.draw(st.integers(0, max(len(store[name]) * 8 - 1, 0)), label="bit")
    with tempfile.TemporaryDirectory() as directory:
        root = pathlib.Path(directory, "r.zarr")
        for relative, content in store.items():
            (root / relative).parent.mkdir(parents=True, exist_ok=True)
            (root / relative).write_bytes(
                flip(content, bit) if relative == name and content else content
            )
        read_flipped(rdppl.from_zarr, root, tree)


def test_any_flip_is_refused_before_hdf5_parses_the_file(
    written, tmp_path, monkeypatch
):
    # The checksum at the end covers every byte. It is checked first because some
    # flips make HDF5 itself loop forever (one in the DIMENSION_LIST of "rate" did,
    # in len(dataset.dims), with h5py 3.16) or crash.
    tree, data, _ = written
    monkeypatch.setattr(h5py, "File", None)  # HDF5 is never asked to open it
    body = len(data) - TRAILER
    for bit in [13891 * 8 + 3, *range(0, body * 8, body * 8 // 40)]:
        (tmp_path / "f.nc").write_bytes(flip(data, bit))
        with pytest.raises(rdppl.ResultFileError, match="bytes do not match"):
            rdppl.from_netcdf(tmp_path / "f.nc")


def test_flips_in_the_data_are_all_detected_without_the_trailer(written, tmp_path):
    # every flip inside the values of "noise" changes a value: the content digest
    # catches each one in a file that lost its trailing checksum
    tree, data, _ = written
    data = data[:-TRAILER]
    values = tree["rate_distortion"]["noise"].values
    start = data.find(values.tobytes())
    assert start > 0
    for index in range(0, values.nbytes * 8, values.nbytes * 8 // 25):
        (tmp_path / "f.nc").write_bytes(flip(data, start * 8 + index))
        with pytest.raises(rdppl.ResultFileError, match="content does not match"):
            rdppl.from_netcdf(tmp_path / "f.nc")


# --- files without a digest ----------------------------------------------------------


def edit_root(path, **changes):
    """Change root attributes with h5py, as another program would (no trailer)."""
    data = pathlib.Path(path).read_bytes()
    assert data[-TRAILER:].startswith(b"\nrdppl-sha256:")
    pathlib.Path(path).write_bytes(data[:-TRAILER])
    with h5py.File(path, "r+") as file:
        for key, value in changes.items():
            if value is None:
                del file.attrs[key]
            else:
                file.attrs[key] = value


def test_format_1_files_without_a_digest_still_read(tmp_path):
    # what rdppl wrote before it stored checksums
    path = tmp_path / "old.nc"
    tree = example_tree()
    rdppl.to_netcdf(tree, path)
    edit_root(path, rdppl_digest=None, rdppl_format_version=np.int64(1))
    assert_trees_exactly_equal(rdppl.from_netcdf(path), tree)


def test_format_2_files_must_have_a_digest(tmp_path):
    path = tmp_path / "r.nc"
    rdppl.to_netcdf(example_tree(), path)
    edit_root(path, rdppl_digest=None)
    with pytest.raises(rdppl.ResultFileError, match="r.nc.*'rdppl_digest'.*missing"):
        rdppl.from_netcdf(path)
    assert rdppl.from_netcdf(path, strict=False).name == "example"


def test_a_renamed_digest_is_not_taken_for_an_attribute(tmp_path):
    # one flipped bit in the attribute's name: not a user attribute "rdppl_digesu"
    path = tmp_path / "r.nc"
    rdppl.to_netcdf(example_tree(), path)
    digest = raw_root_attrs(path)["rdppl_digest"]
    edit_root(path, rdppl_digest=None, rdppl_digesu=digest)
    with pytest.raises(rdppl.ResultFileError, match="missing"):
        rdppl.from_netcdf(path)


def test_a_renamed_format_marker_is_not_a_legacy_file(tmp_path):
    path = tmp_path / "r.nc"
    tree = example_tree()
    tree.attrs["rdppl_version"] = "0.1.0"  # as results carry
    rdppl.to_netcdf(tree, path)
    edit_root(path, rdppl_format_version=None, rdppl_format_versioo=np.int64(2))
    with pytest.raises(rdppl.ResultFileError, match="no 'rdppl_format_version'"):
        rdppl.from_netcdf(path)


def test_a_malformed_digest_is_reported(tmp_path):
    path = tmp_path / "r.nc"
    rdppl.to_netcdf(example_tree(), path)
    edit_root(path, rdppl_digest="md5:0123")
    with pytest.raises(rdppl.ResultFileError, match="not a sha256 digest"):
        rdppl.from_netcdf(path)


# --- exact round trips the checksum relies on ----------------------------------------


def test_value_changing_encodings_are_dropped(backend, tmp_path):
    # a tree read from another file may carry encodings that would change values
    write, read, name = backend
    tree = example_tree()
    tree["rate_distortion"]["noise"] = xr.Variable("beta", np.array([0.1, -1.0, 1e300]))
    tree["rate_distortion"]["noise"].encoding = {
        "dtype": "int16",
        "scale_factor": 0.5,
        "_FillValue": -1.0,
    }
    write(tree, tmp_path / name)
    assert_trees_exactly_equal(read(tmp_path / name), tree)


@pytest.mark.parametrize("key", ["_FillValue", "scale_factor", "coordinates"])
def test_cf_encoding_attributes_are_refused_on_variables(backend, tmp_path, key):
    # reading would apply them (scale_factor: 2 would double the values in Zarr)
    write, _, name = backend
    tree = example_tree()
    tree["rate_distortion"]["small"].attrs[key] = 2.0
    with pytest.raises(ValueError, match=f"'{key}' of variable 'small'.*CF"):
        write(tree, tmp_path / name)
    assert os.listdir(tmp_path) == []


@pytest.mark.parametrize(
    "values",
    [
        np.array(["a", "bc"], dtype="<U10"),  # stored narrower
        np.array([1.0, 2.0], dtype=">f8"),  # read back in native order
        np.array(["2000-01-01", "NaT"], dtype="datetime64[ns]"),
        np.array([b"ab", b"c"]),
        np.array(7.5),
        np.zeros((0,)),
        np.frombuffer(np.array([0xFFF8000000000001], np.uint64).tobytes(), np.float64),
    ],
    ids=["wide_str", "big_endian", "datetime", "bytes", "scalar", "empty", "nan"],
)
def test_variables_of_every_kind_pass_the_check(backend, tmp_path, values):
    write, read, name = backend
    dims = tuple(f"d{i}" for i in range(values.ndim))
    tree = xr.DataTree(xr.Dataset({"v": (dims, values)}), name="kinds")
    write(tree, tmp_path / name)
    loaded = read(tmp_path / name)
    np.testing.assert_array_equal(loaded["v"].values, values)
    if values.dtype.kind == "f":  # bitwise: the NaN payload too
        assert (
            loaded["v"].values.astype("<f8").tobytes() == values.astype("<f8").tobytes()
        )


# --- crafted attributes --------------------------------------------------------------


def craft(path, attribute):
    """An rdppl file whose root attribute "crafted" holds the JSON text given."""
    rdppl.to_netcdf(xr.DataTree(xr.Dataset({"x": ("i", [1.0])})), path)
    edit_root(
        path,
        crafted=attribute,
        rdppl_attr_types=json.dumps({"crafted": "json"}),
        rdppl_digest=None,
        rdppl_format_version=np.int64(1),  # unchecked: decoding comes first anyway
    )


@pytest.mark.parametrize(
    "structure",
    [
        {"__ndarray__": ["<U300000000", [1], [""]]},
        {"__numpy__": ["<U300000000", ""]},
        [{"__ndarray__": ["<f8", [5_000_000], [0.0] * 5]}],
        [{"__ndarray__": ["<U2000000", [5], [""] * 5]}] * 20,
    ],
    ids=["ndarray", "numpy_scalar", "shape_beyond_items", "many_arrays"],
)
def test_a_crafted_attribute_cannot_allocate_much(tmp_path, structure):
    path = tmp_path / "crafted.nc"
    craft(path, json.dumps(structure))
    assert path.stat().st_size < 10_000_000
    started = time.perf_counter()
    with pytest.raises(rdppl.ResultFileError, match="crafted.nc.*'crafted'"):
        rdppl.from_netcdf(path)
    assert time.perf_counter() - started < 5


def test_deeply_nested_json_is_an_error_not_a_crash(tmp_path):
    path = tmp_path / "deep.nc"
    craft(path, "[" * 200_000 + "]" * 200_000)
    with pytest.raises(rdppl.ResultFileError, match="deep.nc.*'crafted'"):
        rdppl.from_netcdf(path)


DTYPES = ["<U300000000", "<U4", "<f8", "|b1", "<i8", "|u1", "|V8", "|O", "<M8[ns]"]
JSON_ITEMS = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=4),
    lambda children: (
        st.lists(children, max_size=4)
        | st.dictionaries(st.text(max_size=4), children, max_size=3)
    ),
    max_leaves=10,
)


@given(
    tag=st.sampled_from(["__ndarray__", "__numpy__", "__tuple__", "__dict__"]),
    dtype=st.sampled_from(DTYPES) | JSON_ITEMS,
    shape=st.lists(st.integers(-2, 10**10), max_size=3) | JSON_ITEMS,
    items=JSON_ITEMS,
    extra=st.booleans(),
)
def test_any_crafted_tag_decodes_or_raises_result_file_error(
    tag, dtype, shape, items, extra
):
    inner = [dtype, shape, items] if tag == "__ndarray__" else [dtype, items]
    if tag in ("__tuple__", "__dict__"):
        inner = items
    structure = {tag: inner, "other": 1} if extra else {tag: inner}
    attrs = {
        "crafted": json.dumps(structure),
        "rdppl_attr_types": '{"crafted": "json"}',
    }
    try:
        decoded = attrs_codec.decode_attrs(attrs, "group '/'", "crafted.nc")
    except rdppl.ResultFileError as error:
        assert "crafted.nc" in str(error) and "'crafted'" in str(error)
        return
    value = decoded["crafted"]
    if isinstance(value, np.ndarray | np.generic):
        assert value.nbytes <= attrs_codec.MAX_DECODED_BYTES


def test_writing_refuses_what_reading_would_refuse(backend, tmp_path, monkeypatch):
    write, _, name = backend
    monkeypatch.setattr(attrs_codec, "MAX_DECODED_BYTES", 1000)
    tree = example_tree()
    tree.attrs["big"] = [np.zeros(100), np.zeros(100)]  # 1600 bytes
    with pytest.raises(TypeError, match="'big'.*1600 bytes.*1000"):
        write(tree, tmp_path / name)
    tree.attrs["big"] = [np.zeros(60), np.zeros(60)]
    write(tree, tmp_path / name)
