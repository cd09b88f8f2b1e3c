"""Module paths of rdppl 0.1's flat layout, still importable from their new homes.

rdppl's modules live in layered subpackages (docs/architecture.md). Importing a module
by its old flat path (``import rdppl.tracing``) gives the module at its new path
(:data:`MOVED`); for an internal module it warns with a ``DeprecationWarning`` naming
the new path. The public submodules (``rdppl.schedules``, ``rdppl.estimators``, ...)
keep their names without a warning: they are part of the public API.
"""

from __future__ import annotations

import importlib
import importlib.abc
import importlib.machinery
import importlib.util
import sys
import warnings

__all__ = ["MOVED", "PUBLIC", "install"]

#: old flat module path -> the module's path now
MOVED = {
    "rdppl.adaptation": "rdppl.sampler.adaptation",
    "rdppl.ais": "rdppl.sampler.ais",
    "rdppl.analytic": "rdppl.numerics.analytic",
    "rdppl.architectures": "rdppl.encoders.architectures",
    "rdppl.cache": "rdppl.sampler.cache",
    "rdppl.checkpoint": "rdppl.sampler.checkpoint",
    "rdppl.checkpoint_arrays": "rdppl.sampler.checkpoint_arrays",
    "rdppl.checkpoint_lock": "rdppl.sampler.checkpoint_lock",
    "rdppl.cli_info": "rdppl.cli.info",
    "rdppl.data_validation": "rdppl.program.data",
    "rdppl.decoders": "rdppl.program.decoders",
    "rdppl.demo": "rdppl.cli.demo",
    "rdppl.devices": "rdppl.sampler.devices",
    "rdppl.diagnostics": "rdppl.numerics.diagnostics",
    "rdppl.echo": "rdppl.encoders.echo",
    "rdppl.estimators": "rdppl.numerics.estimators",
    "rdppl.fingerprint": "rdppl.sampler.fingerprint",
    "rdppl.kernels": "rdppl.sampler.kernels",
    "rdppl.memory": "rdppl.sampler.memory",
    "rdppl.model": "rdppl.program.decorator",
    "rdppl.objectives": "rdppl.encoders.objectives",
    "rdppl.optimise": "rdppl.encoders.optimise",
    "rdppl.plot_axes": "rdppl.plot.axes",
    "rdppl.plot_bdmc": "rdppl.plot.bdmc",
    "rdppl.protocol": "rdppl.sampler.protocol",
    "rdppl.recompile": "rdppl.program.recompile",
    "rdppl.runner": "rdppl.sampler.runner",
    "rdppl.schedules": "rdppl.numerics.schedules",
    "rdppl.sites": "rdppl.program.sites",
    "rdppl.summary": "rdppl.results.summary",
    "rdppl.sweep": "rdppl.encoders.sweep",
    "rdppl.tracing": "rdppl.program.tracing",
    "rdppl.training": "rdppl.encoders.training",
}

#: old paths that are public submodules (``rdppl.<name>``): importable, no warning
PUBLIC = frozenset(
    {
        "rdppl.analytic",
        "rdppl.cache",
        "rdppl.decoders",
        "rdppl.diagnostics",
        "rdppl.echo",
        "rdppl.estimators",
        "rdppl.schedules",
        "rdppl.training",
    }
)


class _MovedModules(importlib.abc.MetaPathFinder, importlib.abc.Loader):
    """Finds an old module path and loads it as the module at its new path."""

    def find_spec(self, fullname, path=None, target=None):
        if fullname not in MOVED:
            return None
        return importlib.util.spec_from_loader(fullname, self)

    def create_module(self, spec):
        new = MOVED[spec.name]
        if spec.name not in PUBLIC:
            warnings.warn(
                f"module {spec.name} moved to {new}; import from {new}, or use the "
                f"public names rdppl.* (the old path will be removed)",
                DeprecationWarning,
                stacklevel=2,  # warnings skips importlib's frames: the import line
            )
        return importlib.import_module(new)

    def exec_module(self, module) -> None:
        """Nothing to run: the module at the new path is already imported."""


def install() -> None:
    """Put the finder of old module paths on ``sys.meta_path`` (once)."""
    if not any(isinstance(f, _MovedModules) for f in sys.meta_path):
        sys.meta_path.append(_MovedModules())
