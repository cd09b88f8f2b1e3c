"""Result files: exact round trips, atomic writes, clear errors (netCDF and Zarr).

The trees here are built by hand (no AIS run) so the file tests stay fast.
"""

import json
import os
import pathlib
import random
import shutil
import signal
import stat
import subprocess
import sys
import tempfile
import textwrap
import time

import numpy as np
import pytest
import xarray as xr
from hypothesis import given
from hypothesis import strategies as st

import rdppl
from rdppl import results
from rdppl.results import atomic, files

TRAILER = len("\nrdppl-sha256:") + 64 + 1  # the checksum at the end of a netCDF file
BACKENDS = {
    "netcdf": (rdppl.to_netcdf, rdppl.from_netcdf, "result.nc"),
    "zarr": (rdppl.to_zarr, rdppl.from_zarr, "result.zarr"),
}


@pytest.fixture(params=list(BACKENDS))
def backend(request):
    return BACKENDS[request.param]


# Every kind of attribute value the encoding promises to give back exactly.
ATTRS = {
    "int": 3,
    "negative_int": -(2**63),
    "huge_int": 2**80,
    "float": 0.1,
    "negative_zero": -0.0,
    "nan": float("nan"),
    "infinity": float("-inf"),
    "str": "héllo wörld",
    "empty_str": "",
    "nul_str": "a\x00b",
    "surrogate_str": "\udcff",
    "true": True,
    "false": False,
    "none": None,
    "int_list": [1, 2, 3],
    "one_int_list": [7],
    "float_list": [0.5, 1.5],
    "str_list": ["z", "w"],
    "empty_list": [],
    "mixed_list": [1, "a", None, 2.5, True],
    "tuple": (1, (2, "b")),
    "nested_dict": {"a": {"b": [1, {"c": None}]}, "d": (True, 0.25)},
    "tag_like_dict": {"__tuple__": [1, 2]},
    "empty_dict": {},
    "int32_scalar": np.int32(-5),
    "int64_scalar": np.int64(9),
    "uint8_scalar": np.uint8(200),
    "float32_scalar": np.float32(1.25),
    "float64_scalar": np.float64(2.5),
    "bool_scalar": np.bool_(True),
    "float16_scalar": np.float16(0.5),
    "str_scalar": np.str_("numpy"),
    "int_array": np.arange(4, dtype=np.int16),
    "float_array": np.linspace(0, 1, 5),
    "one_element_array": np.array([3.5]),
    "uint64_array": np.array([0, 2**64 - 1], dtype=np.uint64),
    "float32_matrix": np.arange(6, dtype=np.float32).reshape(2, 3),
    "empty_array": np.zeros((0, 2)),
    "zero_dim_array": np.array(4.0),
    "bool_array": np.array([True, False]),
    "str_array": np.array(["a", "bc"]),
    "big_endian_array": np.array([1.0, 2.0], dtype=">f8"),
    "array_in_dict": {"weights": np.arange(3.0), "scale": np.float32(2)},
}


def assert_exactly_equal(actual, expected, where="value"):
    """Same types all the way down, same values (NaN equal to NaN), same dtypes."""
    assert type(actual) is type(expected), (where, type(actual), type(expected))
    if isinstance(expected, np.ndarray):
        assert actual.dtype == expected.dtype, where
        assert actual.shape == expected.shape, where
        assert actual.tobytes() == expected.tobytes(), where
    elif isinstance(expected, np.generic):
        assert actual.dtype == expected.dtype, where
        assert actual.tobytes() == expected.tobytes(), where
    elif isinstance(expected, dict):
        assert list(actual) == list(expected), where
        for key in expected:
            assert_exactly_equal(actual[key], expected[key], f"{where}[{key!r}]")
    elif isinstance(expected, list | tuple):
        assert len(actual) == len(expected), where
        for index, (a, e) in enumerate(zip(actual, expected, strict=True)):
            assert_exactly_equal(a, e, f"{where}[{index}]")
    elif isinstance(expected, float):
        assert np.array([actual]).tobytes() == np.array([expected]).tobytes(), where
    else:
        assert actual == expected, where


def assert_trees_exactly_equal(actual, expected):
    assert actual.name == expected.name
    assert [p for p, _ in actual.subtree_with_keys] == [
        p for p, _ in expected.subtree_with_keys
    ]
    for path, node in expected.subtree_with_keys:
        loaded = actual[path] if path != "." else actual
        mine = node.to_dataset(inherit=False)
        theirs = loaded.to_dataset(inherit=False)
        assert_exactly_equal(dict(theirs.attrs), dict(mine.attrs), f"{path} attrs")
        assert list(theirs.variables) == list(mine.variables), path
        for name, variable in mine.variables.items():
            other = theirs.variables[name]
            assert other.dims == variable.dims, (path, name)
            assert_exactly_equal(other.values, variable.values, f"{path}/{name}")
            assert_exactly_equal(
                dict(other.attrs), dict(variable.attrs), f"{path}/{name} attrs"
            )


def snapshot(tree):
    """Everything about a tree, deep-copied, to check that writing leaves it alone."""
    return [
        (
            path,
            dict(node.attrs),
            {
                name: (variable.dims, variable.values.copy(), dict(variable.attrs))
                for name, variable in node.to_dataset(inherit=False).variables.items()
            },
        )
        for path, node in tree.subtree_with_keys
    ]


def example_tree(name="example"):
    data = np.array(
        [[0.0, -0.0, 1.5], [np.inf, -np.inf, np.nan]], dtype=np.float64
    )  # bitwise: signed zeros, infinities, NaN
    curve = xr.Dataset(
        {
            "rate": (("example", "beta"), data, dict(ATTRS)),
            "count": (("example", "beta"), np.arange(6, dtype=np.int32).reshape(2, 3)),
            "flag": (("example",), np.array([True, False])),
            "label": (("example",), np.array(["first", "second"])),
            "small": (("beta",), np.array([1, 2, 3], dtype=np.float32)),
        },
        coords={
            "example": ("example", np.arange(2), {"long_name": "example index"}),
            "beta": ("beta", np.array([0.0, 0.5, 1.0]), {"flags": [True, None]}),
        },
        attrs=dict(ATTRS),
    )
    return xr.DataTree.from_dict(
        {
            "/": xr.Dataset(attrs=dict(ATTRS)),
            "/rate_distortion": curve,
            "/rate_distortion/nested": xr.Dataset(
                {"x": ("beta", np.array([7.0, 8.0, 9.0]))}, attrs={"depth": 2}
            ),
            "/empty_group": xr.Dataset(),
        },
        name=name,
    )


def leftovers(directory, keep):
    return sorted(set(os.listdir(directory)) - set(keep))


# --- exact round trips ---------------------------------------------------------------


def test_round_trip_is_exact(backend, tmp_path):
    write, read, name = backend
    tree = example_tree()
    before = snapshot(tree)
    path = tmp_path / name
    write(tree, path)
    loaded = read(path)
    assert_trees_exactly_equal(loaded, tree)
    # the caller's tree is untouched, and nothing but the result is left
    assert_exactly_equal(snapshot(tree), before)
    assert leftovers(tmp_path, [name]) == []
    # writing what was read, over the file it came from, changes nothing
    write(loaded, path)
    assert_trees_exactly_equal(read(path), tree)


def test_round_trip_of_an_rdppl_schema_tree(backend, tmp_path):
    write, read, name = backend
    group = results.curve_group(
        {"rate": np.ones((3, 4)), "distortion": np.zeros((3, 4))},
        np.linspace(0.0, 1.0, 4),
        attrs={"units": "nats"},
    )
    tree = results.make_tree(
        {"rate_distortion": group},
        attrs={"num_chains": 4, "kernel": "HMC()", "wall_time_seconds": 1.5},
        name="rd_curve",
    )
    write(tree, tmp_path / name)
    loaded = read(tmp_path / name)
    assert loaded.name == "rd_curve"
    assert type(loaded.attrs["num_chains"]) is int
    assert_trees_exactly_equal(loaded, tree)


def test_unnamed_tree_stays_unnamed(backend, tmp_path):
    write, read, name = backend
    tree = xr.DataTree(xr.Dataset({"x": ("i", [1.0])}))
    write(tree, tmp_path / name)
    assert read(tmp_path / name).name is None


def test_trees_move_between_formats(tmp_path):
    tree = example_tree()
    rdppl.to_netcdf(tree, tmp_path / "a.nc")
    rdppl.to_zarr(rdppl.from_netcdf(tmp_path / "a.nc"), tmp_path / "b.zarr")
    rdppl.to_netcdf(rdppl.from_zarr(tmp_path / "b.zarr"), tmp_path / "c.nc")
    assert_trees_exactly_equal(rdppl.from_netcdf(tmp_path / "c.nc"), tree)


def test_netcdf_stores_plain_values_natively(tmp_path):
    # Numbers and strings stay readable by any netCDF tool; the rest is JSON text.
    rdppl.to_netcdf(example_tree(), tmp_path / "r.nc")
    with xr.open_datatree(tmp_path / "r.nc", engine="h5netcdf") as raw:
        attrs = dict(raw.attrs)
    assert attrs["rdppl_format_version"] == 2
    assert attrs["rdppl_tree_name"] == "example"
    assert attrs["int"] == 3 and attrs["float"] == 0.1 and attrs["str"] == "héllo wörld"
    np.testing.assert_array_equal(attrs["float_array"], ATTRS["float_array"])
    assert attrs["true"] == "true" and attrs["none"] == "null"
    assert json.loads(attrs["nested_dict"])["a"] == {"b": [1, {"c": None}]}
    types = json.loads(attrs["rdppl_attr_types"])
    assert types["int"] == "int" and types["true"] == "json" and "str" not in types


@given(
    value=st.recursive(
        st.none()
        | st.booleans()
        | st.integers()
        | st.floats(allow_nan=False)
        | st.text()
        | st.builds(np.float32, st.floats(width=32, allow_nan=False))
        | st.builds(np.int8, st.integers(-128, 127)),
        lambda children: (
            st.lists(children, max_size=3)
            | st.lists(children, max_size=3).map(tuple)
            | st.dictionaries(st.text(max_size=5), children, max_size=3)
        ),
        max_leaves=8,
    )
)
def test_any_supported_value_round_trips(value):
    tree = xr.DataTree(xr.Dataset({"x": ("i", [1.0], {"value": value})}))
    tree.attrs["value"] = value
    with tempfile.TemporaryDirectory() as directory:
        for write, read, name in BACKENDS.values():
            path = os.path.join(directory, name)
            write(tree, path)
            loaded = read(path)
            assert_exactly_equal(loaded.attrs["value"], value)
            assert_exactly_equal(loaded["x"].attrs["value"], value)


# --- refused trees leave the old result intact --------------------------------------


def read_bytes(path):
    """A file's bytes, or a directory's files' bytes by relative path."""
    path = pathlib.Path(path)
    if path.is_dir():
        return {
            str(f.relative_to(path)): f.read_bytes()
            for f in sorted(path.rglob("*"))
            if f.is_file()
        }
    return path.read_bytes()


def write_old_result(write, path):
    """Write a tree named "old" and return the bytes on disk."""
    write(example_tree("old"), path)
    return read_bytes(path)


class Opaque:
    pass


BAD_VALUES = {
    "function": lambda x: x,
    "object": Opaque(),
    "set": {1, 2},
    "int_keys": {1: "one"},
    "complex": 1 + 2j,
    "list_subclass": type("MyList", (list,), {})([1]),
    "nested_object": {"fine": 1, "bad": [Opaque()]},
    "object_array": np.array([1, "a"], dtype=object),
}


@pytest.mark.parametrize(
    "place, kind",
    [("root", "function"), ("group", "function")]
    + [("variable", kind) for kind in BAD_VALUES],
)
def test_unstorable_attribute_is_refused_before_writing(backend, tmp_path, kind, place):
    write, read, name = backend
    path = tmp_path / name
    old = write_old_result(write, path)
    tree = example_tree()
    node = tree if place == "root" else tree["rate_distortion"]
    if place == "variable":
        node["rate"].attrs["callback"] = BAD_VALUES[kind]
    else:
        node.attrs["callback"] = BAD_VALUES[kind]
    with pytest.raises(TypeError) as error:
        write(tree, path)
    message = str(error.value)
    assert "'callback'" in message
    assert ("'/rate_distortion'" in message) == (place != "root")
    assert ("'rate'" in message) == (place == "variable")
    assert read_bytes(path) == old
    assert leftovers(tmp_path, [name]) == []
    assert read(path).name == "old"


@pytest.mark.parametrize("key", ["rdppl_format_version", "rdppl_attr_types"])
def test_reserved_attribute_names_are_refused(backend, tmp_path, key):
    write, _, name = backend
    tree = example_tree()
    tree["rate_distortion"].attrs[key] = 1
    with pytest.raises(ValueError, match=f"'{key}'.*reserved"):
        write(tree, tmp_path / name)
    assert os.listdir(tmp_path) == []


def test_object_dtype_variable_is_refused(backend, tmp_path):
    write, read, name = backend
    path = tmp_path / name
    old = write_old_result(write, path)
    tree = example_tree()
    tree["rate_distortion"]["labels"] = ("example", np.array(["a", 1], dtype=object))
    with pytest.raises(
        TypeError, match="variable 'labels' in group '/rate_distortion'"
    ):
        write(tree, path)
    assert read_bytes(path) == old
    assert leftovers(tmp_path, [name]) == []


def test_only_data_trees_are_written(backend, tmp_path):
    write, _, name = backend
    with pytest.raises(TypeError, match="DataTree"):
        write(xr.Dataset({"x": ("i", [1.0])}), tmp_path / name)


@pytest.mark.parametrize("failure", [RuntimeError, KeyboardInterrupt])
def test_failure_during_the_write_leaves_the_old_result(
    backend, tmp_path, monkeypatch, failure
):
    # the write itself completes into the temporary file, then something fails
    write, read, name = backend
    path = tmp_path / name
    old = write_old_result(write, path)
    method = "to_netcdf" if name.endswith(".nc") else "to_zarr"
    original = getattr(xr.DataTree, method)

    def failing(self, *args, **kwargs):
        original(self, *args, **kwargs)
        raise failure("disk on fire")

    monkeypatch.setattr(xr.DataTree, method, failing)
    with pytest.raises(failure, match="disk on fire"):
        write(example_tree(), path)
    monkeypatch.undo()
    assert read_bytes(path) == old
    assert leftovers(tmp_path, [name]) == []
    assert read(path).name == "old"


def test_missing_directory_is_reported_before_anything(backend, tmp_path):
    write, _, name = backend
    with pytest.raises(FileNotFoundError, match="no-such-dir"):
        write(example_tree(), tmp_path / "no-such-dir" / name)
    assert os.listdir(tmp_path) == []


def test_netcdf_refuses_to_replace_a_directory(tmp_path):
    (tmp_path / "d.nc").mkdir()
    with pytest.raises(IsADirectoryError):
        rdppl.to_netcdf(example_tree(), tmp_path / "d.nc")
    assert os.listdir(tmp_path) == ["d.nc"]


@pytest.mark.skipif(os.name != "posix", reason="POSIX permissions")
def test_permissions_follow_the_umask_or_the_replaced_file(tmp_path):
    path = tmp_path / "r.nc"
    rdppl.to_netcdf(example_tree(), path)
    mask = os.umask(0)
    os.umask(mask)
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o666 & ~mask
    os.chmod(path, 0o640)
    rdppl.to_netcdf(example_tree(), path)
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o640


# --- a killed writer never loses the previous result -------------------------------

# The writer imports rdppl.results.files without running the __init__ of rdppl and
# rdppl.results (their modules stand in as empty packages), which skips importing JAX
# and keeps each attempt short.
WRITER = textwrap.dedent(
    """
    import sys
    import types

    import numpy as np
    import xarray as xr

    _, root, backend, path, size, generation = sys.argv
    for name in ("rdppl", "rdppl.results"):
        package = types.ModuleType(name)
        package.__path__ = [root + "/" + name.replace(".", "/")]
        sys.modules[name] = package
    from rdppl.results import files

    write = files.to_netcdf if backend == "netcdf" else files.to_zarr
    base = np.arange(int(size), dtype=np.float64)
    generation = int(generation)
    print("ready", flush=True)
    while True:
        data = xr.Dataset({"x": ("i", base + generation)})
        write(xr.DataTree(data, name=f"gen{generation}"), path)
        print(generation, flush=True)
        generation += 1
    """
)
ROOT = str(pathlib.Path(files.__file__).parents[2])


@pytest.mark.parametrize(
    "kind, size, attempts",
    [
        ("netcdf", 8_000_000, 6),  # 64 MB of float64 per write
        ("zarr", 2_000_000, 4),
    ],
)
def test_sigkill_during_writes_never_loses_the_result(tmp_path, kind, size, attempts):
    write, read, name = BACKENDS[kind]
    path = str(tmp_path / name)
    base = np.arange(size, dtype=np.float64)
    write(xr.DataTree(xr.Dataset({"x": ("i", base)}), name="gen0"), path)
    current = 0
    delays = random.Random(kind).sample([0.05, 0.1, 0.2, 0.35, 0.5, 0.75], attempts)
    # on a busy machine every kill may land between writes: try a few more times
    delays += random.Random(kind).sample([0.15, 0.3, 0.45, 0.6, 0.9, 1.2], 6)
    interrupted = 0
    for attempt, delay in enumerate(delays):
        if attempt >= attempts and interrupted and current:
            break
        writer = subprocess.Popen(
            [
                sys.executable,
                "-c",
                WRITER,
                ROOT,
                kind,
                path,
                str(size),
                str(current + 1),
            ],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        try:
            ready = writer.stdout.readline()
            assert ready == "ready\n", writer.stderr.read()
            time.sleep(delay + random.Random(delay).uniform(0, 0.05))
        finally:
            writer.send_signal(signal.SIGKILL)
            writer.wait()
        completed = [int(line) for line in writer.stdout.read().split()]
        writer.stdout.close()
        writer.stderr.close()
        loaded = read(path)
        generation = int(loaded.name.removeprefix("gen"))
        # the last completed write, or one whose replace landed just before the kill
        last = completed[-1] if completed else current
        assert generation in (last, last + 1), (generation, completed)
        np.testing.assert_array_equal(loaded["x"].values, base + generation)
        # a kill in the middle of a write leaves only its temporary copy behind
        orphans = leftovers(tmp_path, [name])
        assert all(o.startswith(f".{name}.") for o in orphans), orphans
        interrupted += bool(orphans)
        for orphan in orphans:
            atomic.remove(str(tmp_path / orphan))
        current = generation
    assert interrupted > 0  # some kill did land in the middle of a write
    assert current > 0  # and new results did replace old ones


# --- reading refuses what is not an rdppl result ------------------------------------


def test_missing_file_names_the_path(backend, tmp_path):
    _, read, name = backend
    with pytest.raises(FileNotFoundError, match="nothing-here"):
        read(tmp_path / f"nothing-here{name}")


def test_text_file_is_not_a_result(tmp_path):
    path = tmp_path / "notes.nc"
    path.write_text("these are not the results you are looking for\n")
    with pytest.raises(rdppl.ResultFileError, match="notes.nc.*corrupt") as error:
        rdppl.from_netcdf(path)
    assert isinstance(error.value, ValueError)
    assert error.value.__cause__ is not None


def test_empty_file_is_not_a_result(tmp_path):
    (tmp_path / "empty.nc").write_bytes(b"")
    with pytest.raises(rdppl.ResultFileError, match="empty.nc"):
        rdppl.from_netcdf(tmp_path / "empty.nc")


@pytest.mark.parametrize("fraction", [0.05, 0.5, 0.9, 0.999])
def test_truncated_file_is_reported(tmp_path, fraction):
    rdppl.to_netcdf(example_tree(), tmp_path / "full.nc")
    data = (tmp_path / "full.nc").read_bytes()
    hdf5 = len(data) - TRAILER  # the file's checksum follows the HDF5 data
    (tmp_path / "cut.nc").write_bytes(data[: int(hdf5 * fraction)])
    with pytest.raises(rdppl.ResultFileError, match="cut.nc.*truncated") as error:
        rdppl.from_netcdf(tmp_path / "cut.nc")
    assert error.value.__cause__ is not None


def test_a_file_cut_only_in_its_checksum_still_reads(tmp_path):
    rdppl.to_netcdf(example_tree(), tmp_path / "full.nc")
    data = (tmp_path / "full.nc").read_bytes()
    (tmp_path / "cut.nc").write_bytes(data[:-10])  # the HDF5 data is whole
    assert_trees_exactly_equal(rdppl.from_netcdf(tmp_path / "cut.nc"), example_tree())


def test_directory_is_not_a_netcdf_file(tmp_path):
    rdppl.to_zarr(example_tree(), tmp_path / "store.zarr")
    with pytest.raises(IsADirectoryError, match="from_zarr"):
        rdppl.from_netcdf(tmp_path / "store.zarr")


def plain_xarray_tree():
    return xr.DataTree.from_dict(
        {"/group": xr.Dataset({"x": ("i", [1.0, 2.0])}, attrs={"source": "elsewhere"})}
    )


def test_foreign_netcdf_file_is_refused_unless_not_strict(tmp_path):
    path = tmp_path / "foreign.nc"
    plain_xarray_tree().to_netcdf(path, engine="h5netcdf")
    with pytest.raises(rdppl.ResultFileError, match="foreign.nc.*not written by rdppl"):
        rdppl.from_netcdf(path)
    loaded = rdppl.from_netcdf(path, strict=False)
    xr.testing.assert_identical(loaded, plain_xarray_tree())


def test_foreign_zarr_store_is_refused_unless_not_strict(tmp_path):
    path = tmp_path / "foreign.zarr"
    plain_xarray_tree().to_zarr(path, mode="w", consolidated=True, zarr_format=2)
    with pytest.raises(rdppl.ResultFileError, match="foreign.zarr.*not written by"):
        rdppl.from_zarr(path)
    xr.testing.assert_identical(
        rdppl.from_zarr(path, strict=False), plain_xarray_tree()
    )


def test_results_written_before_the_marker_still_read(tmp_path):
    # rdppl's results always carried their rdppl version
    path = tmp_path / "legacy.nc"
    tree = plain_xarray_tree()
    tree.attrs["rdppl_version"] = "0.1.0"
    tree.to_netcdf(path, engine="h5netcdf")
    xr.testing.assert_identical(rdppl.from_netcdf(path), tree)


def rewrite_root_attrs(path, **attrs):
    with xr.open_datatree(path, engine="h5netcdf") as opened:
        tree = opened.load()
    tree.attrs = {**tree.attrs, **attrs}
    tree.to_netcdf(path, engine="h5netcdf")


def test_newer_format_is_refused(tmp_path):
    path = tmp_path / "future.nc"
    rdppl.to_netcdf(example_tree(), path)
    rewrite_root_attrs(path, rdppl_format_version=np.int64(3))
    with pytest.raises(rdppl.ResultFileError, match="future.nc.*newer"):
        rdppl.from_netcdf(path)


def test_corrupt_attribute_encoding_is_reported(tmp_path):
    path = tmp_path / "mangled.nc"
    rdppl.to_netcdf(example_tree(), path)
    rewrite_root_attrs(path, nested_dict="{not json")
    with pytest.raises(rdppl.ResultFileError, match="mangled.nc.*'nested_dict'"):
        rdppl.from_netcdf(path)


def test_zarr_reading_errors(tmp_path):
    (tmp_path / "file.zarr").write_text("a file")
    with pytest.raises(rdppl.ResultFileError, match="file.zarr.*not a Zarr store"):
        rdppl.from_zarr(tmp_path / "file.zarr")
    (tmp_path / "dir.zarr").mkdir()
    with pytest.raises(rdppl.ResultFileError, match="dir.zarr") as error:
        rdppl.from_zarr(tmp_path / "dir.zarr")
    assert error.value.__cause__ is not None
    # a damaged chunk
    rdppl.to_zarr(example_tree(), tmp_path / "bad.zarr")
    chunk = tmp_path / "bad.zarr" / "rate_distortion" / "rate" / "0.0"
    chunk.write_bytes(b"garbage" * 10)
    with pytest.raises(rdppl.ResultFileError, match="bad.zarr.*corrupt"):
        rdppl.from_zarr(tmp_path / "bad.zarr")


def test_zarr_never_replaces_what_is_not_a_store(tmp_path):
    (tmp_path / "precious").mkdir()
    (tmp_path / "precious" / "thesis.tex").write_text("years of work")
    with pytest.raises(FileExistsError, match="not a Zarr store"):
        rdppl.to_zarr(example_tree(), tmp_path / "precious")
    assert (tmp_path / "precious" / "thesis.tex").read_text() == "years of work"
    assert leftovers(tmp_path, ["precious"]) == []


def test_zarr_without_atomic_exchange_renames_aside(tmp_path, monkeypatch):
    path = tmp_path / "r.zarr"
    write_old_result(rdppl.to_zarr, path)
    monkeypatch.setattr(atomic, "exchange", lambda first, second: False)
    rdppl.to_zarr(example_tree("new"), path)
    assert rdppl.from_zarr(path).name == "new"
    assert leftovers(tmp_path, ["r.zarr"]) == []
    # a failure renaming the new store into place puts the old one back
    real_rename = os.rename

    def rename(source, destination):
        if str(source).endswith(".tmp"):
            raise OSError("rename failed")
        real_rename(source, destination)

    monkeypatch.setattr(os, "rename", rename)
    with pytest.raises(OSError, match="rename failed"):
        rdppl.to_zarr(example_tree("newer"), path)
    monkeypatch.undo()
    assert rdppl.from_zarr(path).name == "new"
    assert leftovers(tmp_path, ["r.zarr"]) == []


def test_interrupted_zarr_swap_is_pointed_to(tmp_path):
    rdppl.to_zarr(example_tree(), tmp_path / "kept.zarr")
    holder = tmp_path / ".r.zarr.abc123.old"
    holder.mkdir()
    shutil.move(tmp_path / "kept.zarr", holder / "r.zarr")
    with pytest.raises(FileNotFoundError, match=r"previous one at .*abc123\.old"):
        rdppl.from_zarr(tmp_path / "r.zarr")


def test_zarr_missing_gives_install_hint(monkeypatch, tmp_path):
    monkeypatch.setitem(sys.modules, "zarr", None)
    for call in (
        lambda: rdppl.to_zarr(example_tree(), tmp_path / "r.zarr"),
        lambda: rdppl.from_zarr(tmp_path / "r.zarr"),
    ):
        with pytest.raises(ImportError, match=r"pip install 'rdppl\[zarr\]'"):
            call()
    assert os.listdir(tmp_path) == []


def test_public_names():
    assert issubclass(rdppl.ResultFileError, ValueError)
    for name in ("to_netcdf", "from_netcdf", "to_zarr", "from_zarr", "ResultFileError"):
        assert name in rdppl.__all__ and name in files.__all__
        assert getattr(rdppl, name) is getattr(files, name)
