"""JAX's persistent compilation cache, for runs in a new process.

A new process compiles rdppl's AIS loop again (several seconds per model and data
shape, most of a short run's first call). JAX can keep compiled programs on disk and
reuse them in later processes; :func:`use_compilation_cache` turns that on.
"""

from __future__ import annotations

import os

import jax

__all__ = ["DEFAULT_CACHE_DIRECTORY", "use_compilation_cache"]

DEFAULT_CACHE_DIRECTORY = os.path.join(
    os.environ.get("XDG_CACHE_HOME", os.path.expanduser("~/.cache")), "rdppl", "jax"
)


def use_compilation_cache(
    directory: str | os.PathLike | None = None, *, min_compile_seconds: float = 0.5
) -> str:
    """Keep compiled programs in ``directory`` and reuse them in later processes.

    Sets JAX's ``jax_compilation_cache_dir`` (and the thresholds that decide what is
    kept) for this process; call it before the first run. A later process that calls
    it with the same directory, the same model, data shapes, settings, JAX version
    and device skips compilation. The same is possible without rdppl, by setting
    the environment variable ``JAX_COMPILATION_CACHE_DIR``. Entries are keyed by the
    program, so a stale entry is never used for a changed model; delete the
    directory to reclaim the space.

    Parameters
    ----------
    directory
        Where to keep the programs (created if missing). ``None``:
        ``$XDG_CACHE_HOME/rdppl/jax`` (``~/.cache/rdppl/jax``).
    min_compile_seconds
        Keep only programs that took at least this long to compile (JAX's
        ``jax_persistent_cache_min_compile_time_secs``); 0 keeps every one.

    Returns
    -------
    str
        The cache directory.
    """
    if isinstance(min_compile_seconds, bool) or not isinstance(
        min_compile_seconds, int | float
    ):
        raise TypeError(
            f"min_compile_seconds must be a number, got {min_compile_seconds!r}"
        )
    if not min_compile_seconds >= 0:
        raise ValueError(
            f"min_compile_seconds must be >= 0, got {min_compile_seconds!r}"
        )
    path = os.path.abspath(
        os.fspath(DEFAULT_CACHE_DIRECTORY if directory is None else directory)
    )
    os.makedirs(path, exist_ok=True)
    jax.config.update("jax_compilation_cache_dir", path)
    jax.config.update(
        "jax_persistent_cache_min_compile_time_secs", float(min_compile_seconds)
    )
    jax.config.update("jax_persistent_cache_min_entry_size_bytes", 0)
    return path
