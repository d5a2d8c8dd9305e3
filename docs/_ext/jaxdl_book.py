"""What the jaxdl book adds to Sphinx: each notebook page says how long its notebook runs
and with which versions its outputs were made, and ``{notebook-runs}`` tables that for
all of them. Both read what the test run that executed the notebooks wrote into each
notebook's metadata (``metadata["jaxdl"]["executed"]``, see ``tests/test_notebooks.py``).
"""

from __future__ import annotations

import json
import pathlib

from docutils import nodes
from sphinx import addnodes
from sphinx.application import Sphinx
from sphinx.util.docutils import SphinxDirective

NOTEBOOK_PAGES = "notebooks/"
VERSIONS_PAGE = "versions"


def executed_record(path: pathlib.Path) -> dict | None:
    """The record of a notebook's last execution by the test run, or ``None``."""
    return json.loads(path.read_text()).get("metadata", {}).get("jaxdl", {}).get("executed")


def _duration(seconds: float) -> str:
    return f"{seconds:.0f} s" if seconds < 90 else f"{seconds / 60:.1f} min"


def _versions(record: dict) -> str:
    return ", ".join(f"{name} {version}" for name, version in record["packages"].items())


def _page_link(target: str, text: str) -> addnodes.pending_xref:
    link = addnodes.pending_xref("", refdomain="std", reftype="doc", reftarget=target, refexplicit=True)
    link += nodes.inline(text, text)
    return link


def add_run_note(app: Sphinx, doctree: nodes.document) -> None:
    """Under a notebook page's title: how long the notebook runs, and where its outputs come from."""
    docname = app.env.docname
    if not docname.startswith(NOTEBOOK_PAGES):
        return
    record = executed_record(pathlib.Path(app.env.doc2path(docname)))
    section = next(iter(doctree.findall(nodes.section)), None)
    if record is None or section is None:
        return
    note = nodes.paragraph(classes=["jaxdl-run-note"])
    note += nodes.Text(f"Runs in about {_duration(record['seconds'])} on a {record['machine']} "
                       f"in its small setting. The outputs below were saved by the test run of "
                       f"{record['date']} ({_versions(record)}; ")
    note += _page_link(f"/{VERSIONS_PAGE}", "all notebooks")
    note += nodes.Text(").")
    section.insert(1, note)


class NotebookRuns(SphinxDirective):
    """A table of every notebook: how long it ran, when, and with which versions."""

    def run(self) -> list[nodes.Node]:
        folder = pathlib.Path(self.env.srcdir) / NOTEBOOK_PAGES
        records = {}
        for path in sorted(folder.glob("*.ipynb")):
            self.env.note_dependency(str(path))
            records[path.stem] = executed_record(path)
            if records[path.stem] is None:
                raise self.error(f"{path.name} has no record of its execution: run "
                                 f"JAXDL_SAVE_NOTEBOOKS=1 python3 -m pytest tests/test_notebooks.py")
        # one line for the versions when every notebook ran with the same ones, a column otherwise
        shared = {(r["python"], _versions(r)) for r in records.values()}
        header = ["notebook", "executed", "time", "machine"] + (["Python", "versions"] if len(shared) > 1 else [])
        rows = [[_page_link(f"/{NOTEBOOK_PAGES}{stem}", stem), r["date"], _duration(r["seconds"]), r["machine"]]
                + ([f"Python {r['python']}", _versions(r)] if len(shared) > 1 else []) for stem, r in records.items()]
        nodes_out = []
        if len(shared) == 1:
            [(python, versions)] = shared
            nodes_out.append(nodes.paragraph(text=f"Every notebook ran with Python {python} and {versions}."))
        return [*nodes_out, _table(header, rows)]


def _table(header: list[str], rows: list[list]) -> nodes.table:
    table = nodes.table(classes=["jaxdl-notebook-runs"])
    group = nodes.tgroup(cols=len(header))
    table += group
    group += [nodes.colspec(colwidth=1) for _ in header]
    head = nodes.thead()
    group += head
    head += _row(header)
    body = nodes.tbody()
    group += body
    body += [_row(row) for row in rows]
    return table


def _row(cells: list) -> nodes.row:
    row = nodes.row()
    for cell in cells:
        entry = nodes.entry()
        paragraph = nodes.paragraph()
        paragraph += cell if isinstance(cell, nodes.Node) else nodes.Text(str(cell))
        entry += paragraph
        row += entry
    return row


def setup(app: Sphinx) -> dict:
    app.connect("doctree-read", add_run_note)
    app.add_directive("notebook-runs", NotebookRuns)
    return {"parallel_read_safe": True, "parallel_write_safe": True}
