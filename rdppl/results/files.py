"""Reading and writing result trees."""

from __future__ import annotations

import os

import xarray as xr

__all__ = ["from_netcdf", "to_netcdf"]


def to_netcdf(tree: xr.DataTree, path: str | os.PathLike) -> None:
    """Write a result tree to a netCDF4 file (h5netcdf engine)."""
    tree.to_netcdf(path, engine="h5netcdf")


def from_netcdf(path: str | os.PathLike) -> xr.DataTree:
    """Read a result tree written by :func:`to_netcdf` (loaded into memory)."""
    with xr.open_datatree(path, engine="h5netcdf") as tree:
        return tree.load()
