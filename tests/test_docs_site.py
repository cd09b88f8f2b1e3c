"""The documentation site's sources (``nox -s docs`` builds them); cheap checks.

Every public name has an API page, every page is in the table of contents, the
configuration loads, and the gallery extension turns a recorded ``summary.json`` into
the expected page, refusing missing, tiny-mode or incomplete output. A small Sphinx
build (only where Sphinx is installed, e.g. ``nox -s docs``'s environment is not the
tests') shows that a broken link fails the build.
"""

import importlib.util
import json
import pathlib
import re
import runpy
import warnings

import pytest

import rdppl

ROOT = pathlib.Path(__file__).resolve().parents[1]
DOCS = ROOT / "docs"
AUTO = re.compile(r"^\.\. auto(?:function|class|exception|module):: (\S+)$", re.M)


def _load(name):
    path = DOCS / "_ext" / f"{name}.py"
    spec = importlib.util.spec_from_file_location(f"rdppl_docs_{name}", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


gallery = _load("gallery")
public_names = _load("public_names")


def _documented(pages):
    names = []
    for page in pages:
        names += [n.removeprefix("rdppl.") for n in AUTO.findall(page.read_text())]
    return [name for name in names if "." not in name]  # rdppl.<name> only


def test_every_public_name_has_an_api_entry():
    internals = DOCS / "api" / "internals.md"
    public = sorted(set((DOCS / "api").glob("*.md")) - {internals})
    documented = _documented(public)
    assert sorted(set(rdppl.__all__) - set(documented)) == []
    assert sorted(set(documented) - set(rdppl.__all__)) == []
    assert len(documented) == len(set(documented)), "a public name documented twice"
    # the internals page documents what the public pages refer to, nothing public
    assert not set(_documented([internals])) & set(rdppl.__all__)


def test_every_page_is_in_the_table_of_contents():
    index = (DOCS / "index.md").read_text()
    toctree = re.search(r"```\{toctree\}\n(.*?)```", index, re.S).group(1)
    entries = {line.strip() for line in toctree.splitlines()}
    pages = {page.stem for page in DOCS.glob("*.md")} - {"index"}
    assert pages <= entries
    api = (DOCS / "api" / "index.md").read_text()
    for page in (DOCS / "api").glob("*.md"):
        assert page.stem == "index" or f"\n{page.stem}\n" in api


def test_configuration_loads():
    conf = runpy.run_path(str(DOCS / "conf.py"))
    assert {"myst_parser", "sphinx.ext.autodoc", "numpydoc", "gallery"} <= set(
        conf["extensions"]
    )
    assert "sphinx.ext.intersphinx" not in conf["extensions"]  # no network
    assert conf["nitpicky"] and conf["myst_heading_anchors"] >= 3
    assert conf["version"] == rdppl.__version__


def test_references_resolve_to_public_names():
    documented = {"rdppl.to_netcdf", "rdppl.echo.echo_clip", "rdppl.Model.observed"}
    assert public_names.candidates("rdppl.results.to_netcdf", documented) == [
        "rdppl.to_netcdf"
    ]
    assert public_names.candidates("echo_clip", documented) == ["rdppl.echo.echo_clip"]
    assert public_names.candidates("to_netcdf", documented) == ["rdppl.to_netcdf"]
    assert public_names.candidates("observed", documented) == ["rdppl.Model.observed"]
    assert public_names.candidates("rdppl.results.nothing", documented) == []
    assert public_names.candidates("numpy.ndarray", documented) == []


# --------------------------------------------------------------------------------------
# the gallery extension

PNG = b"\x89PNG\r\n\x1a\n" + b"\0" * 64


def _summary(name, **changes):
    summary = {
        "example": name,
        "title": "AIS | the closed form",
        "paper": "Huang et al. (2020)",
        "claim": "AIS agrees with the closed form.",
        "verdict": "partly reproduced",
        "checks": [
            {
                "name": "log Z error",
                "statement": "AIS - exact, s.e. over examples",
                "value": 0.25,
                "standard_error": 0.125,
                "holds": True,
            },
            {
                "name": "gap",
                "statement": "BDMC gap",
                "value": 2.0,
                "standard_error": None,
                "holds": False,
            },
        ],
        "tables": [
            {"title": "Errors", "columns": ["beta", "rate"], "rows": [[1, 2.5]]}
        ],
        "figures": [f"{name}.png"],
        "notes": "The gap is large at beta = 50.",
        "mode": "full",
        "seed": 0,
        "settings": {"num_chains": 16},
        "wall_time_seconds": 150.0,
        "command": f"python examples/{name}.py --quiet --out docs/gallery/{name}",
        "platform": {"python": "3.11.7", "jax": "0.10.0", "cpu_count": 2},
    }
    summary.update(changes)
    return summary


def _recorded(tmp_path, name="01_fake", **changes):
    examples, site = tmp_path / "examples", tmp_path / "docs" / "gallery"
    examples.mkdir(exist_ok=True)
    (examples / f"{name}.py").write_text('"""Fake."""\n')
    (site / name).mkdir(parents=True)
    (site / name / f"{name}.png").write_bytes(PNG)
    summary = _summary(name, **changes)
    (site / name / "summary.json").write_text(json.dumps(summary))
    return site, examples


def test_gallery_pages_show_the_recorded_output(tmp_path):
    site, examples = _recorded(tmp_path)
    written = gallery.write_gallery(site, examples)
    assert written == [site / "index.md", site / "01_fake.md"]
    page = (site / "01_fake.md").read_text()
    assert page.startswith(gallery.MARK)
    assert "# AIS | the closed form" in page
    assert "[partly reproduced]{.verdict .verdict-partly-reproduced}" in page
    assert ":class: warning" in page and "1 of 2 checks hold" in page
    assert (
        "| log Z error | AIS - exact, s.e. over examples | 0.25 ± 0.125 | yes |" in page
    )
    assert "| gap | BDMC gap | 2 | **no** |" in page
    assert "| 1 | 2.5 |" in page
    assert "```{image} 01_fake/01_fake.png" in page
    assert "The gap is large at beta = 50." in page
    assert "python examples/01_fake.py --quiet --out docs/gallery/01_fake" in page
    assert "```{literalinclude} ../../examples/01_fake.py" in page
    assert "2 CPU cores" in page and "150 s (2.5 min)" in page
    index = (site / "index.md").read_text()
    assert "1 findings: 0 reproduced, 1 partly reproduced, 0 not reproduced." in index
    assert "[AIS | the closed form](01_fake.md)" in index
    assert "```{image} 01_fake/01_fake.png" in index
    assert "\n01_fake\n" in index  # in the hidden toctree


def test_gallery_removes_only_its_own_stale_pages(tmp_path):
    site, examples = _recorded(tmp_path)
    (site / "00_gone.md").write_text(gallery.MARK + " from ... -->\n# Gone\n")
    (site / "notes.md").write_text("# Written by hand\n")
    gallery.write_gallery(site, examples)
    assert not (site / "00_gone.md").exists()
    assert (site / "notes.md").exists()


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"mode": "tiny"}, "records a 'tiny' run"),
        ({"figures": ["absent.png"]}, "names figure absent.png"),
        ({"verdict": "probably"}, "unknown verdict"),
        ({"example": "02_other"}, "is the output of '02_other'"),
        ({"checks": [{"name": "x"}]}, "a check lacks holds, standard_error"),
    ],
)
def test_gallery_refuses_unusable_output(tmp_path, changes, message):
    site, examples = _recorded(tmp_path, **changes)
    with pytest.raises(gallery.GalleryError, match=re.escape(message)):
        gallery.write_gallery(site, examples)


def test_gallery_refuses_missing_output(tmp_path):
    site, examples = _recorded(tmp_path)
    (examples / "02_unrun.py").write_text("")
    (site / "03_orphan").mkdir()
    (examples / "04_no_summary.py").write_text("")
    (site / "04_no_summary").mkdir()
    summaries, problems = gallery.read_gallery(site, examples)
    assert [s["example"] for s in summaries] == ["01_fake"]
    assert len(problems) == 3
    assert "examples/02_unrun.py has no recorded output" in problems[0]
    assert "docs/gallery/03_orphan/ has no example script" in problems[1]
    assert "docs/gallery/04_no_summary/summary.json is missing" in problems[2]


def test_gallery_refuses_an_empty_gallery(tmp_path):
    (tmp_path / "examples").mkdir()
    (tmp_path / "gallery").mkdir()
    with pytest.raises(gallery.GalleryError, match="no gallery examples"):
        gallery.collect(tmp_path / "gallery", tmp_path / "examples")


# --------------------------------------------------------------------------------------
# a broken link fails the build (where Sphinx is installed)


def test_broken_links_fail_the_build(tmp_path):
    sphinx_cmd = pytest.importorskip("sphinx.cmd.build")
    pytest.importorskip("myst_parser")
    source = tmp_path / "source"
    source.mkdir()
    (source / "conf.py").write_text(
        'extensions = ["myst_parser"]\nmyst_heading_anchors = 3\n'
        "suppress_warnings = []\n"
    )
    (source / "index.md").write_text(
        "# Home\n\n## A heading\n\n[ok](other.md#b-heading) [ok](#a-heading)\n\n"
        "```{toctree}\nother\n```\n"
    )
    (source / "other.md").write_text("# Other\n\n## B heading\n")
    out = tmp_path / "out"
    args = ["-q", "-W", "--keep-going", "-b", "html", str(source), str(out)]
    with warnings.catch_warnings():  # Sphinx's and MyST's own deprecations
        warnings.simplefilter("ignore")
        assert sphinx_cmd.build_main(args) == 0
        for broken in ("[x](missing.md)", "[x](other.md#no-heading)", "[x](#nope)"):
            (source / "other.md").write_text(f"# Other\n\n## B heading\n\n{broken}\n")
            assert sphinx_cmd.build_main(["-E", *args]) != 0, broken
