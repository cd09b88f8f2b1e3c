"""Sphinx extension: cross-references to rdppl's objects by any of their names.

The API reference documents each public object once, under its public name
(``rdppl.as_inverse_temperature``), while docstrings and signatures often name it by
the module that defines it (``rdppl.results.as_inverse_temperature``) or, inside that
module, by its bare name (``check_result``). This resolves such references to the
documented object when exactly one matches; anything else stays a missing reference,
which the ``-n -W`` build reports as an error.
"""

from __future__ import annotations

from typing import Any

__all__ = ["candidates", "setup"]


def candidates(target: str, documented: set[str]) -> list[str]:
    """The documented names a Python reference ``target`` may mean.

    Parameters
    ----------
    target
        The reference as written, e.g. ``rdppl.results.to_netcdf`` or ``echo_clip``.
    documented
        Full names of the documented Python objects.

    Returns
    -------
    list of str
        ``rdppl.<name>`` for ``rdppl.<module>.<name>`` when the former is documented;
        for a bare name, the documented rdppl names ending in it: the public one
        alone when it exists, else the least nested ones.
    """
    target = target.lstrip("~.")
    if target.startswith("rdppl.") and target.count(".") >= 2:
        public = "rdppl." + target.rsplit(".", 1)[-1]
        return [public] if public in documented else []
    if "." not in target:
        if f"rdppl.{target}" in documented:
            return [f"rdppl.{target}"]
        found = [
            name
            for name in documented
            if name.startswith("rdppl.") and name.endswith("." + target)
        ]
        # a module-level object before a class's attribute of the same name
        shallowest = min((name.count(".") for name in found), default=0)
        return sorted(name for name in found if name.count(".") == shallowest)
    return []


def _resolve(app: Any, env: Any, node: Any, contnode: Any) -> Any:
    if node.get("refdomain") != "py":
        return None
    domain = env.get_domain("py")
    # only objects the role may name: a :func: never resolves to an attribute
    kinds = set(domain.objtypes_for_role(node["reftype"]) or ())
    documented = {
        name for name, entry in domain.objects.items() if entry.objtype in kinds
    }
    found = candidates(node["reftarget"], documented)
    if len(found) != 1:
        return None
    return domain.resolve_xref(
        env, node["refdoc"], app.builder, node["reftype"], found[0], node, contnode
    )


def setup(app: Any) -> dict[str, Any]:
    """Register the resolver for references Sphinx could not resolve itself."""
    app.connect("missing-reference", _resolve)
    return {"version": "1", "parallel_read_safe": True, "parallel_write_safe": True}
