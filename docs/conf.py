"""Sphinx configuration of rdppl's documentation site (``nox -s docs``).

The pages are Markdown (MyST); the API reference is generated from the numpydoc
docstrings by autodoc; the gallery pages are generated from the examples' recorded
output (``docs/gallery/<example>/summary.json``) by ``docs/_ext/gallery.py`` at the
start of every build. The build runs with ``-W``: every warning is an error, a broken
internal link or heading anchor included. No intersphinx: the build needs no network.
"""

import sys
from pathlib import Path

DOCS = Path(__file__).resolve().parent
sys.path.insert(0, str(DOCS / "_ext"))
sys.path.insert(0, str(DOCS.parent))

import rdppl  # noqa: E402

project = "rdppl"
author = "rdppl contributors"
copyright = "2026, rdppl contributors"  # noqa: A001
version = release = rdppl.__version__

extensions = [
    "myst_parser",
    "sphinx.ext.autodoc",
    "sphinx.ext.mathjax",
    "numpydoc",
    "gallery",
    "public_names",
]

source_suffix = {".md": "markdown", ".rst": "restructuredtext"}
root_doc = "index"
# an example's output folder holds its figures and summary.json, never a page
exclude_patterns = ["_build", "gallery/*/*", "Thumbs.db", ".DS_Store"]
templates_path = []

# --- MyST ---------------------------------------------------------------------------
myst_enable_extensions = [
    "amsmath",  # \begin{align} ... blocks
    "attrs_inline",  # [text]{.class}: the verdict badges of the gallery
    "colon_fence",
    "dollarmath",  # $...$ and $$...$$
]
# `[text](#heading)` and `[text](page.md#heading)` resolve to headings up to ###; a
# missing page or anchor is a warning, hence an error under -W
myst_heading_anchors = 4

# --- API reference --------------------------------------------------------------------
autodoc_member_order = "bysource"
autodoc_typehints = "signature"
autodoc_preserve_defaults = True
numpydoc_show_class_members = False
numpydoc_class_members_toctree = False
numpydoc_xref_param_type = False
numpydoc_validation_checks = set()

# -n: every cross-reference must resolve. Without intersphinx (the build needs no
# network) the names of other libraries in signatures and docstrings have no target;
# they stay plain text. References to rdppl's own objects are all checked.
nitpicky = True
_EXTERNAL = (
    "arviz",
    "arviz_base",
    "blackjax",
    "builtins",
    "collections",
    "eqx",
    "equinox",
    "jax",
    "jaxlib",
    "jnp",
    "matplotlib",
    "np",
    "numpy",
    "numpyro",
    "optax",
    "os",
    "pathlib",
    "typing",
    "warnings",
    "xarray",
    "xr",
)
nitpick_ignore_regex = [
    (r"py:.*", rf"({'|'.join(_EXTERNAL)})(\..*)?"),
]

# --- HTML -----------------------------------------------------------------------------
html_theme = "pydata_sphinx_theme"
html_title = f"rdppl {release}"
html_static_path = ["_static"]
html_css_files = ["gallery.css"]
html_theme_options = {
    "navigation_with_keys": False,
    "show_toc_level": 2,
    "secondary_sidebar_items": ["page-toc"],
}
html_show_sourcelink = False
