"""The book (``docs/``): it builds with no warning, and reads right in a real browser.

The build runs once per test run, with a public home set (``JAXDL_REPOSITORY``) so that the
notebook pages carry their "Open in Colab" links. A local web server on 127.0.0.1 serves
it to Debian's ``chromium``, driven headless by Playwright; every page is opened and
checked as a reader would notice: its title, every request answered, every image drawn,
no error in the console, every internal link and anchor found. Screenshots of the front
page, a notebook page, an API page, the front page at a phone's width and in dark mode go
to ``$JAXDL_BOOK_SCREENSHOTS`` (default ``docs/_build/screenshots``).

Without the browser or the ``docs`` extra the tests are skipped and say how to get them;
``JAXDL_REQUIRE_BROWSER=1`` (as CI runs) makes that a failure. ``JAXDL_BOOK_HTML=FOLDER``
reads a book built before (with ``JAXDL_REPOSITORY=jaxdl-course/jaxdl``) instead of
building one.
"""

from __future__ import annotations

import functools
import html.parser
import http.server
import importlib.util
import json
import os
import pathlib
import re
import shutil
import subprocess
import sys
import threading
import time
import urllib.parse

import pytest

from conftest import ROOT
from jaxdl.support import project

pytestmark = pytest.mark.book

HOME = "jaxdl-course/jaxdl"  # any owner/name: the test checks the links made from it
NOTEBOOKS = sorted(path.stem for path in (ROOT / "notebooks").glob("*.ipynb"))
SCREENSHOTS = pathlib.Path(os.environ.get("JAXDL_BOOK_SCREENSHOTS") or ROOT / "docs" / "_build" / "screenshots")
BUILD_SECONDS_LIMIT = 180


def chromium_path() -> str | None:
    """Debian's chromium (or ``$JAXDL_CHROMIUM``); Playwright may not download a browser of its own."""
    named = os.environ.get("JAXDL_CHROMIUM")
    return named if named else shutil.which("chromium") or shutil.which("chromium-browser")


def missing() -> str | None:
    """Why the book cannot be tested here, with what to do; ``None`` when it can."""
    absent = [name for name in ("sphinx", "myst_nb", "sphinx_book_theme", "sphinx_copybutton", "sphinxarg",
                                "playwright") if importlib.util.find_spec(name) is None]
    if absent:
        return f"needs the docs extra ({', '.join(absent)} missing): pip install -e '.[docs]'"
    if chromium_path() is None:
        return ("needs a chromium browser: apt-get install chromium (Debian/Ubuntu), "
                "or set JAXDL_CHROMIUM to one")
    return None


@pytest.fixture(scope="module")
def book(tmp_path_factory) -> pathlib.Path:
    """The book built once, with a public home set; its HTML folder."""
    reason = missing()
    if reason is not None:
        if os.environ.get("JAXDL_REQUIRE_BROWSER") == "1":
            pytest.fail(f"JAXDL_REQUIRE_BROWSER=1, but the book's tests cannot run: {reason}")
        pytest.skip(reason)
    if os.environ.get("JAXDL_BOOK_HTML"):
        return pathlib.Path(os.environ["JAXDL_BOOK_HTML"]).resolve()
    out = tmp_path_factory.mktemp("book")
    began = time.perf_counter()
    built = subprocess.run(
        [sys.executable, "-m", "sphinx", "-W", "--keep-going", "-q", "-b", "html", "-d", str(out / "doctrees"),
         str(ROOT / "docs"), str(out / "html")],
        capture_output=True, text=True, env={**os.environ, "JAXDL_REPOSITORY": HOME})
    seconds = time.perf_counter() - began
    assert built.returncode == 0, f"the book does not build without warnings:\n{built.stderr[-6000:]}"
    print(f"built the book in {seconds:.0f} s")
    assert seconds < BUILD_SECONDS_LIMIT
    return out / "html"


@pytest.fixture(scope="module")
def site(book):
    """The built book over HTTP on 127.0.0.1: its base URL."""
    handler = functools.partial(_QuietHandler, directory=str(book))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}/"
    server.shutdown()
    server.server_close()


class _QuietHandler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, format, *args):  # noqa: A002  (the base class's name)
        pass


@pytest.fixture(scope="module")
def browser():
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        # chromium's sandbox needs user namespaces, which a CI container running as root lacks
        browser = playwright.chromium.launch(executable_path=chromium_path(), args=["--no-sandbox"])
        yield browser
        browser.close()


class PageRead:
    """One page opened in the browser, with everything that went wrong while it loaded."""

    def __init__(self, browser, url: str, **context):
        self.context = browser.new_context(**context)
        self.page = self.context.new_page()
        self.problems: list[str] = []
        self.page.on("requestfailed", lambda request: self.problems.append(
            f"request failed: {request.url} ({request.failure})"))
        self.page.on("response", lambda response: response.status >= 400 and self.problems.append(
            f"HTTP {response.status}: {response.url}"))
        self.page.on("console", lambda message: message.type == "error" and self.problems.append(
            f"console error: {message.text}"))
        self.page.on("pageerror", lambda error: self.problems.append(f"script error: {error}"))
        self.page.goto(url, wait_until="load")

    def broken_images(self) -> list[str]:
        self.page.evaluate("() => document.querySelectorAll('img[loading=lazy]').forEach(i => i.loading = 'eager')")
        self.page.wait_for_function("() => [...document.images].every(i => i.complete)", timeout=10_000)
        return self.page.evaluate("() => [...document.images].filter(i => !(i.naturalWidth > 0)).map(i => i.src)")

    def close(self):
        self.context.close()


def pages(book: pathlib.Path) -> list[str]:
    """Every page of the book, relative to its root (the source listings viewcode makes included)."""
    return sorted(str(path.relative_to(book)) for path in book.rglob("*.html")
                  if not {"_sources", "_static"} & set(path.relative_to(book).parts))


class _Anchors(html.parser.HTMLParser):
    def __init__(self):
        super().__init__()
        self.ids: set[str] = set()
        self.links: list[str] = []

    def handle_starttag(self, tag, attrs):
        attrs = dict(attrs)
        for name in ("id", "name"):
            if attrs.get(name):
                self.ids.add(attrs[name])
        if tag == "a" and attrs.get("href"):
            self.links.append(attrs["href"])


@functools.lru_cache(maxsize=None)
def _parsed(path: pathlib.Path) -> _Anchors:
    parser = _Anchors()
    parser.feed(path.read_text(encoding="utf-8"))
    return parser


def broken_links(book: pathlib.Path, page: str) -> list[str]:
    """The links of ``page`` into the book whose file or anchor is not there."""
    broken = []
    for href in _parsed(book / page).links:
        target = urllib.parse.urlsplit(href)
        if target.scheme or target.netloc or href.startswith(("mailto:", "javascript:")):
            continue
        file = (book / page).parent / urllib.parse.unquote(target.path) if target.path else book / page
        file = file.resolve()
        if file.is_dir():
            file = file / "index.html"
        if book.resolve() not in file.parents or not file.is_file():
            broken.append(f"{href} (no file {file.relative_to(book.resolve()) if book.resolve() in file.parents else file})")
        elif target.fragment and file.suffix == ".html" and urllib.parse.unquote(target.fragment) not in _parsed(file).ids:
            broken.append(f"{href} (no anchor #{target.fragment} in {file.name})")
    return broken


def test_every_page_loads_whole_in_a_browser(book, site, browser):
    all_pages = pages(book)
    assert len(all_pages) > 60, all_pages
    problems = {}
    for page_name in all_pages:
        read = PageRead(browser, site + page_name)
        title = read.page.title()
        found = [] if title and "jaxdl" in title else [f"title {title!r}"]
        found += [f"image not drawn: {src}" for src in read.broken_images()]
        found += [f"broken link: {link}" for link in broken_links(book, page_name)]
        found += read.problems
        read.close()
        if found:
            problems[page_name] = found
    assert not problems, json.dumps(problems, indent=1)


@pytest.mark.parametrize("name", NOTEBOOKS)
def test_a_notebook_page_shows_its_cells_outputs_and_links(book, site, browser, name):
    read = PageRead(browser, f"{site}notebooks/{name}.html")
    page = read.page
    assert page.locator("div.cell div.cell_input").count() > 3
    assert page.locator("div.cell div.cell_output").count() > 0
    assert page.locator("div.cell_output img").count() > 0, "no plot among the saved outputs"
    assert re.search(r"Runs in about \d", page.locator("p.jaxdl-run-note").inner_text())
    assert page.locator("details.hide:not([open])").count() > 0, "the exercises' solutions are not folded"
    assert page.locator("button.copybtn").count() > 0
    # the download button offers the notebook itself
    downloads = [a.get_attribute("href") for a in page.locator("a[href$='.ipynb']").all()]
    local = [href for href in downloads if not urllib.parse.urlsplit(href).scheme]
    assert local and all((book / "notebooks" / href).resolve().is_file() for href in local), downloads
    # Open in Colab: the repository's own notebook, at the project's branch
    colab = [a.get_attribute("href") for a in page.locator(f"a[href^='{project.COLAB}']").all()]
    assert colab == [project.colab_url(f"notebooks/{name}.ipynb", HOME)]
    assert (ROOT / "notebooks" / f"{name}.ipynb").is_file()
    # previous and next chapter
    chapter = NOTEBOOKS.index(name)
    if chapter > 0:
        assert page.locator(f"a.left-prev[href$='{NOTEBOOKS[chapter - 1]}.html']").count() == 1
    if chapter < len(NOTEBOOKS) - 1:
        assert page.locator(f"a.right-next[href$='{NOTEBOOKS[chapter + 1]}.html']").count() == 1
    read.close()


@pytest.mark.parametrize("query", ["TinyVGG", "make_batches"])
def test_the_search_finds(site, browser, query):
    read = PageRead(browser, f"{site}search.html?q={query}")
    read.page.wait_for_selector("#search-results li", timeout=20_000)
    results = read.page.locator("#search-results li").all_inner_texts()
    assert any(query in text for text in results), results
    read.close()


def test_the_sidebar_is_the_course_in_order(site, browser):
    read = PageRead(browser, site + "index.html")
    links = read.page.locator("nav.bd-docs-nav a.reference.internal").evaluate_all("as => as.map(a => a.href)")
    chapters = [next(i for i, link in enumerate(links) if link.endswith(f"notebooks/{name}.html")) for name in NOTEBOOKS]
    assert chapters == sorted(chapters)
    read.close()


def test_a_phone_reads_it_without_scrolling_sideways(site, browser):
    for page_name in ("index.html", "notebooks/05_convolutions.html", "experiments/mnist.html", "performance.html",
                      "command.html", "api/generated/jaxdl.train.html", "api/generated/jaxdl.data.records.html"):
        read = PageRead(browser, site + page_name, viewport={"width": 400, "height": 800}, device_scale_factor=1)
        width = read.page.evaluate("() => document.documentElement.scrollWidth")
        assert width <= 400, f"{page_name} is {width} px wide on a 400 px screen"
        if page_name == "index.html":
            SCREENSHOTS.mkdir(parents=True, exist_ok=True)
            read.page.screenshot(path=str(SCREENSHOTS / "front_page_phone_400px.png"), full_page=False)
        read.close()


def test_dark_mode_follows_the_reader(site, browser):
    read = PageRead(browser, site + "notebooks/05_convolutions.html", color_scheme="dark")
    assert read.page.evaluate("() => document.documentElement.dataset.theme") == "dark"
    background = read.page.evaluate("() => getComputedStyle(document.body).backgroundColor")
    red, green, blue = (int(v) for v in re.findall(r"\d+", background)[:3])
    assert red + green + blue < 3 * 80, background
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    read.page.screenshot(path=str(SCREENSHOTS / "notebook_dark.png"))
    read.close()


def test_screenshots_of_the_front_page_a_notebook_and_the_api(site, browser):
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    for page_name, shot in (("index.html", "front_page.png"),
                            ("notebooks/05_convolutions.html", "notebook_05_convolutions.png"),
                            ("api/generated/jaxdl.train.html", "api_jaxdl_train.png")):
        read = PageRead(browser, site + page_name, viewport={"width": 1280, "height": 900})
        read.page.screenshot(path=str(SCREENSHOTS / shot))
        assert (SCREENSHOTS / shot).stat().st_size > 10_000
        read.close()


def test_the_command_reference_is_the_parser(book):
    from jaxdl.run.cli import build_parser

    text = (book / "command.html").read_text()

    def names(parser):  # every subcommand and option string, all the way down
        for action in parser._actions:
            yield from (s for s in action.option_strings if s not in ("-h", "--help"))
            if isinstance(action.choices, dict):  # a subcommand's parsers
                for name, sub in action.choices.items():
                    yield name
                    yield from names(sub)

    absent = [name for name in names(build_parser()) if name not in text]
    assert not absent


def test_the_versions_page_names_what_the_notebooks_ran_with(book):
    text = (book / "versions.html").read_text()
    for name in NOTEBOOKS:
        record = json.loads((ROOT / "notebooks" / f"{name}.ipynb").read_text())["metadata"]["jaxdl"]["executed"]
        assert record["packages"]["jax"] in text and record["date"] in text
