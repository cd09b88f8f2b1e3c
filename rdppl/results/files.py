r"""Reading and writing result trees safely: netCDF-4 (h5netcdf) and Zarr.

One module per job: ``rdppl.results.netcdf`` and ``rdppl.results.zarr_store``
(the public functions), ``rdppl.results.tree_codec`` and
``rdppl.results.attrs_codec`` (encoding), ``rdppl.results.digest`` (the
checksum) and ``rdppl.results.atomic`` (replacing files safely); this module
gathers the public names.

Guarantees
----------
Writing never damages an existing result. :func:`to_netcdf` and :func:`to_zarr` first
check and convert every attribute and variable (nothing touches the filesystem before
that succeeds), then write into a temporary file (``.NAME.<random>.tmp``) or directory
in the target's own directory, flush it to disk, and only then move it onto the target
(``os.replace`` for a file; an atomic exchange, or on systems without one a rename
aside, for a Zarr directory). On any error the temporary copy is removed and the target
is untouched; a process killed mid-write leaves the previous result readable (and, at
worst, an orphaned ``.NAME.<random>.tmp`` beside it, safe to delete). A symbolic link
at the target is refused (:class:`FileExistsError`), never written through. A
directory with less free space than the result needs (estimated from the encoded
tree, with a margin) is refused with an :class:`OSError` (``errno.ENOSPC``) naming the
path before anything is written: HDF5 may crash rather than raise on a full disk.

Reading checks what it reads. :func:`from_netcdf` and :func:`from_zarr` raise
:class:`FileNotFoundError` for a missing path, :class:`ResultFileError` (a
:class:`ValueError`) naming the file for a corrupt, truncated or foreign file, and
return a tree loaded into memory with the file closed.

Checksums
---------
The root attribute ``rdppl_digest`` holds a SHA-256 digest of the tree as given to the
writer: its name, groups, attributes (values and types) and variables (names,
dimensions, dtypes, shapes and values); see ``rdppl.results.digest``. Reading
recomputes it over the decoded tree and raises :class:`ResultFileError` on a mismatch,
so a damaged file (a flipped bit on disk, a lost Zarr chunk) is reported instead of
giving back changed values; ``strict=False`` skips the check to recover what is left.
A netCDF file also ends with a checksum of its own bytes
(``\nrdppl-sha256:<hex>\n``, after the HDF5 data, which HDF5 ignores), checked
before HDF5 parses the file: a damaged file can make HDF5 loop forever or crash.
Files in format 1 (written before the digest existed) have none and are read
unchecked (and lose a group attribute ``sample_dims`` that is a string: the ``"[]"``
rdppl then wrote on every group, which arviz-base 1.x cannot use); format 2 files must
have one. Decoding an attribute never allocates more than 64 MiB of NumPy values (a
crafted dtype such as ``<U300000000`` is refused, naming the attribute), and writing
refuses attributes that reading would refuse.

Attribute encoding
------------------
What :func:`to_netcdf` accepts, :func:`from_netcdf` gives back exactly: same values,
same Python and NumPy types (and the same for Zarr). Attributes of the root, of every
group and of every variable may hold:

- ``str``, ``int``, ``float``, ``bool`` and ``None``;
- ``list``, ``tuple`` and ``dict`` (string keys), nested, of these and of NumPy values;
- NumPy scalars and arrays of booleans, integers, floats and fixed-width strings.

Values netCDF holds natively stay native (readable by any netCDF tool): strings,
Python ``int`` (64-bit) and ``float``, NumPy integer and floating scalars,
one-dimensional non-empty NumPy integer and floating arrays, and non-empty lists of
non-empty strings (such as ArviZ's ``sample_dims = ["chain", "draw"]``, which
``arviz.from_netcdf`` then reads as a list; netCDF readers give back a one-item list as
its string, which rdppl's reader turns back into the list). Everything else (``bool``,
``None``, other lists, every ``tuple`` and ``dict``, other arrays and scalars,
strings holding NUL characters, integers beyond 64 bits) is stored as a JSON string.
Zarr keeps strings, 64-bit ``int``, finite ``float`` and non-empty lists of non-empty
strings native and stores everything else as a JSON string. Inside the JSON, tuples,
NumPy arrays and NumPy scalars are tagged objects (``{"__tuple__": [...]}``,
``{"__ndarray__": [dtype, shape, items]}``, ``{"__numpy__": [dtype, item]}``), and a
dict whose only key is such a tag is wrapped as ``{"__dict__": {...}}``.

Each attribute set that needs decoding carries one more attribute,
``rdppl_attr_types``: a JSON object mapping an attribute name to how to restore it
(``"json"``, ``"int"``, ``"float"``, ``"array"`` or ``"str_list"``; for instance a
Python ``int`` is stored as a 64-bit integer and given back as ``int``, not
``numpy.int64``). The root also carries ``rdppl_format_version`` (``2``; it marks the
file as written by rdppl), ``rdppl_tree_name`` (the tree's name), ``rdppl_layout``
(the order of groups and variables, which Zarr does not keep) and ``rdppl_digest``
(the checksum). These names
are reserved, and so, on variables, are the CF encoding attributes xarray applies when
reading (``_FillValue``, ``missing_value``, ``scale_factor``, ``add_offset``,
``_Unsigned``, ``_Encoding``, ``coordinates``). Encodings a tree carries that change
values (``dtype``, ``_FillValue``, ``scale_factor``, ... from a file it was read from)
are dropped; layout and compression encodings are kept. Anything else (a
function, an arbitrary object, a ``dict`` with non-string keys, a subclass of ``list``
or ``dict``, complex numbers, dates) is refused with a :class:`TypeError` naming the
group, variable and attribute. Data variables and coordinates of ``object`` dtype are
refused too (convert strings with ``.astype(str)``).

The functions do not dispatch on the path's suffix: :func:`to_netcdf` always writes
netCDF-4 and :func:`to_zarr` always writes a Zarr store (format 2, consolidated
metadata), whatever the name.
"""

from rdppl.results.atomic import replace_file
from rdppl.results.attrs_codec import ResultFileError
from rdppl.results.netcdf import from_netcdf, to_netcdf
from rdppl.results.zarr_store import from_zarr, to_zarr

__all__ = [
    "ResultFileError",
    "from_netcdf",
    "from_zarr",
    "replace_file",
    "to_netcdf",
    "to_zarr",
]
