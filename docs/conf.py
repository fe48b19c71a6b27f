"""Sphinx configuration of the dcl_prob documentation.

Build with ``python -m sphinx -W --keep-going -b html docs docs/_build/html``
after ``pip install -e ".[docs]"``.
"""

import sys
import warnings
from pathlib import Path

DOCS = Path(__file__).resolve().parent
sys.path.insert(0, str(DOCS / "_ext"))
sys.path.insert(0, str(DOCS.parent))

# ArviZ 0.23 warns on import about its coming 1.x refactor, and autodoc imports it.
warnings.filterwarnings(
    "ignore", message=".*ArviZ is undergoing", category=FutureWarning
)

project = "dcl_prob"
author = "dcl_prob developers"
copyright = "dcl_prob developers"

extensions = [
    "sphinx.ext.autodoc",
    "sphinx.ext.napoleon",
    "sphinx.ext.mathjax",
    "myst_parser",
    "dcl_reference",
]

source_suffix = {".md": "markdown", ".rst": "restructuredtext"}
root_doc = "index"
exclude_patterns = ["_build", "_ext"]
myst_enable_extensions = ["dollarmath", "amsmath"]
myst_heading_anchors = 3

napoleon_google_docstring = True
napoleon_numpy_docstring = False
napoleon_use_rtype = False
# Attributes sections as fields, so NamedTuple fields are not described twice.
napoleon_use_ivar = True
autodoc_member_order = "bysource"
autodoc_typehints = "description"
autodoc_default_options = {"show-inheritance": True}
# Type hints name classes from JAX, Equinox and NumPyro that these pages do not
# document. With nitpicky on, each of them would be a broken-reference warning.
nitpicky = False


# Pages that another change may add or remove. The toctree of index.md names
# them, and this hook drops the name of a page that does not exist, so that the
# build has neither a missing toctree entry nor an orphan page.
OPTIONAL_PAGES = ("scaling_out",)


def _drop_missing_pages(app, docname, source):
    if docname != "index":
        return
    for page in OPTIONAL_PAGES:
        if not (DOCS / f"{page}.md").exists():
            source[0] = source[0].replace(f"\n{page}\n", "\n")


def setup(app):
    app.connect("source-read", _drop_missing_pages)


# Keep "--T" and quotes in option names as typed.
smartquotes = False
html_theme = "alabaster"
html_title = "dcl_prob"
