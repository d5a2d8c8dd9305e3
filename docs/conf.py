"""The jaxdl book: Sphinx with myst-nb and sphinx-book-theme, built from the notebooks,
the guides in this folder and the package's docstrings.

    python3 -m sphinx -W --keep-going -b html docs docs/_build/html

The notebooks are not executed here: the test suite executes them, and the book shows
the outputs they were saved with. ``JAXDL_REPOSITORY=owner/name`` gives the build a
public home (:mod:`jaxdl.support.project`) and with it an "Open in Colab" link on every
notebook page.
"""

import pathlib
import sys

HERE = pathlib.Path(__file__).resolve().parent
sys.path.insert(0, str(HERE / "_ext"))
sys.path.insert(0, str(HERE.parent))  # the checkout's jaxdl, installed or not

import jaxdl  # noqa: E402
from jaxdl.support import project as jaxdl_project  # noqa: E402

project = "jaxdl"
author = "the jaxdl authors"
copyright = "the jaxdl authors, Apache-2.0"
release = version = jaxdl.__version__

extensions = [
    "myst_nb",
    "sphinx.ext.autodoc",
    "sphinx.ext.autosummary",
    "sphinx.ext.napoleon",
    "sphinx.ext.viewcode",
    "sphinx_copybutton",
    "sphinxarg.ext",
    "jaxdl_book",
]

exclude_patterns = ["_build", "notebooks/images", "**.ipynb_checkpoints", "README.md"]
templates_path = ["_templates"]
html_static_path = ["_static"]
html_css_files = ["jaxdl.css"]

# Notebooks: shown with the outputs they were saved with.
nb_execution_mode = "off"
nb_merge_streams = True
# An explorer of notebook 05 is a widget in Jupyter and Colab; on the book's page, its still picture.
nb_mime_priority_overrides = [(builder, "application/vnd.jupyter.widget-view+json", None)
                              for builder in ("html", "dirhtml", "singlehtml")]
myst_enable_extensions = ["colon_fence", "dollarmath", "deflist"]
myst_heading_anchors = 3

# The API reference: one page per module, written from the docstrings at build time.
autosummary_generate = True
autosummary_imported_members = False
autodoc_default_options = {"members": True, "show-inheritance": True}
autodoc_member_order = "bysource"
autodoc_typehints = "description"
autodoc_typehints_format = "short"
autodoc_preserve_defaults = True
napoleon_google_docstring = True
napoleon_numpy_docstring = False
add_module_names = False

html_theme = "sphinx_book_theme"
html_title = "jaxdl: the deep-learning course in JAX"
html_favicon = "_static/favicon.svg"
html_last_updated_fmt = None
# Light or dark as the reader's system asks, with the theme's switch to change it.
html_context = {"default_mode": "auto"}
html_theme_options = {
    "home_page_in_toc": True,
    "show_toc_level": 2,
    "use_download_button": True,
    "use_fullscreen_button": False,
    "navigation_with_keys": False,
}

_home = jaxdl_project.repository()
if _home is not None:
    # The notebook pages live at docs/notebooks, a link to the repository's notebooks/
    # folder: with no path_to_docs, a page's path is its notebook's path in the repository,
    # and the theme's Colab link is jaxdl_project.colab_url's (tests/test_book.py checks).
    html_theme_options.update({
        "repository_url": f"https://github.com/{_home}",
        "repository_branch": jaxdl_project.BRANCH,
        "path_to_docs": "",
        "use_repository_button": True,
        "launch_buttons": {"colab_url": jaxdl_project.COLAB, "notebook_interface": "classic"},
    })
