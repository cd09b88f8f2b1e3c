"""Result files and the filesystem: symbolic links, a full disk, failed writes."""

import errno
import os
import shutil
from collections import namedtuple

import pytest
import xarray as xr
from test_files import BACKENDS, example_tree, leftovers, read_bytes

import rdppl
from rdppl.results import files

Usage = namedtuple("Usage", "total used free")


@pytest.fixture(params=list(BACKENDS))
def backend(request):
    return BACKENDS[request.param]


# --- symbolic links: refused, never written through ----------------------------------

needs_links = pytest.mark.skipif(not hasattr(os, "symlink"), reason="symbolic links")


@needs_links
def test_a_link_to_a_result_is_refused(backend, tmp_path):
    write, read, name = backend
    (tmp_path / "real").mkdir()
    real = tmp_path / "real" / name
    write(example_tree("old"), real)
    before = read_bytes(real)
    os.symlink(real, tmp_path / name)
    with pytest.raises(FileExistsError, match=f"symbolic link '.*{name}'") as error:
        write(example_tree("new"), tmp_path / name)
    assert error.value.errno == errno.EEXIST
    assert error.value.filename == str(tmp_path / name)
    # the link and the file it points to are as they were, and nothing is left over
    assert os.path.islink(tmp_path / name)
    assert read_bytes(real) == before
    assert read(real).name == "old"
    assert leftovers(tmp_path, ["real", name]) == []
    assert leftovers(tmp_path / "real", [name]) == []
    # the path the link points to is written as asked
    write(example_tree("new"), os.path.realpath(tmp_path / name))
    assert read(tmp_path / name).name == "new"


@needs_links
@pytest.mark.parametrize("points_to", ["a file", "nothing"])
def test_a_link_is_never_written_through(backend, tmp_path, points_to):
    # a link planted at the result path must not redirect the write elsewhere
    write, _, name = backend
    victim = tmp_path / "victim.txt"
    if points_to == "a file":
        victim.write_text("precious")
    os.symlink(victim, tmp_path / name)
    with pytest.raises(FileExistsError, match="symbolic link"):
        write(example_tree(), tmp_path / name)
    if points_to == "a file":
        assert victim.read_text() == "precious"
    else:
        assert not victim.exists()
    assert os.path.islink(tmp_path / name)
    assert leftovers(tmp_path, [name, "victim.txt"]) == []


@needs_links
def test_replace_file_refuses_a_link(tmp_path):
    (tmp_path / "target").write_text("kept")
    os.symlink(tmp_path / "target", tmp_path / "link")
    with pytest.raises(FileExistsError, match="symbolic link"):
        files.replace_file(tmp_path / "link", lambda temporary: None)
    assert (tmp_path / "target").read_text() == "kept"
    assert leftovers(tmp_path, ["target", "link"]) == []


@needs_links
def test_a_linked_directory_above_the_file_is_fine(backend, tmp_path):
    write, read, name = backend
    (tmp_path / "real").mkdir()
    os.symlink(tmp_path / "real", tmp_path / "alias")
    write(example_tree("through"), tmp_path / "alias" / name)
    assert read(tmp_path / "real" / name).name == "through"


# --- a full disk ---------------------------------------------------------------------


def fake_disk(monkeypatch, free):
    calls = []

    def disk_usage(path):
        calls.append(os.fspath(path))
        return Usage(10**12, 10**12 - free, free)

    monkeypatch.setattr(shutil, "disk_usage", disk_usage)
    return calls


@pytest.mark.parametrize("free", [0, 4096, "file size"])
def test_a_full_disk_is_refused_before_writing(backend, tmp_path, monkeypatch, free):
    write, read, name = backend
    path = tmp_path / name
    write(example_tree("old"), path)
    before = read_bytes(path)
    if free == "file size":  # room for the file, not for the margin
        free = (
            sum(len(part) for part in before.values())
            if name.endswith(".zarr")
            else len(before)
        )
    calls = fake_disk(monkeypatch, free)
    with pytest.raises(OSError, match=f"free space to write '.*{name}'") as error:
        write(example_tree("new"), path)
    assert error.value.errno == errno.ENOSPC
    assert calls == [str(tmp_path)]  # the target's own directory
    monkeypatch.undo()
    assert read_bytes(path) == before
    assert leftovers(tmp_path, [name]) == []
    assert read(path).name == "old"


def test_enough_space_writes(backend, tmp_path, monkeypatch):
    write, read, name = backend
    fake_disk(monkeypatch, 2**30)
    write(example_tree("new"), tmp_path / name)
    assert read(tmp_path / name).name == "new"


def test_unknown_free_space_does_not_stop_a_write(backend, tmp_path, monkeypatch):
    write, read, name = backend

    def disk_usage(path):
        raise OSError(errno.ENOSYS, "statvfs not supported")

    monkeypatch.setattr(shutil, "disk_usage", disk_usage)
    write(example_tree("new"), tmp_path / name)
    assert read(tmp_path / name).name == "new"


def test_replace_file_checks_the_size_it_is_told(tmp_path, monkeypatch):
    fake_disk(monkeypatch, 10_000)
    with pytest.raises(OSError, match="free space") as error:
        files.replace_file(tmp_path / "f", lambda temporary: None, size=10_000)
    assert error.value.errno == errno.ENOSPC
    files.replace_file(tmp_path / "f", lambda t: open(t, "w").close(), size=None)
    assert leftovers(tmp_path, ["f"]) == []


@pytest.mark.parametrize("failure", [OSError(errno.ENOSPC, "disk full"), MemoryError])
def test_the_temporary_copy_is_removed_when_the_write_raises(
    backend, tmp_path, monkeypatch, failure
):
    # the disk fills up (or memory runs out) half-way through the write
    write, read, name = backend
    path = tmp_path / name
    write(example_tree("old"), path)
    before = read_bytes(path)
    method = "to_netcdf" if name.endswith(".nc") else "to_zarr"
    temporaries = []

    def half_write(self, temporary, *args, **kwargs):
        temporaries.append(temporary)
        if method == "to_netcdf":
            with open(temporary, "wb") as file:
                file.write(b"\x89HDF\r\n\x1a\n" + bytes(5000))
        else:
            os.makedirs(os.path.join(temporary, "rate_distortion"), exist_ok=True)
            with open(os.path.join(temporary, ".zgroup"), "w") as file:
                file.write("{}")
        raise failure

    monkeypatch.setattr(xr.DataTree, method, half_write)
    with pytest.raises(type(failure) if isinstance(failure, OSError) else failure):
        write(example_tree("new"), path)
    monkeypatch.undo()
    assert len(temporaries) == 1 and not os.path.lexists(temporaries[0])
    assert leftovers(tmp_path, [name]) == []
    assert read_bytes(path) == before
    assert read(path).name == "old"


def test_errors_name_the_path_given(tmp_path, monkeypatch):
    fake_disk(monkeypatch, 0)
    with pytest.raises(OSError) as error:
        rdppl.to_netcdf(example_tree(), tmp_path / "named.nc")
    assert error.value.filename == str(tmp_path / "named.nc")
    assert "named.nc" in str(error.value)
