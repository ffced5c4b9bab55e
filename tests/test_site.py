"""The course website: built offline by ``nnkit site``, complete, and loading nothing from elsewhere.

The site is built once for this module into a temporary folder. The checks read its HTML
(every lecture has a page with its figures, typeset-ready math and widgets in their initial
state; the index links every lecture; the problem sets are listed; no page refers to another
host for a script, style sheet, font or image), then open every page in headless Chromium with
every request that is not a local file blocked and recorded, and check that the equations were
typeset by MathJax and every image loaded. A screenshot of lecture 2 is kept in the build folder.
"""
from __future__ import annotations

import importlib.util
import os
import re
import time
from html.parser import HTMLParser
from pathlib import Path
from typing import ClassVar

import nbformat
import pytest

from nnkit.course.site import build_site

pytestmark = [pytest.mark.notebooks, pytest.mark.xdist_group("site")]

ROOT = Path(__file__).resolve().parents[1]
LECTURES = sorted((ROOT / "lectures").glob("*.ipynb"))
ASSIGNMENTS = sorted((ROOT / "assignments").glob("*/*.ipynb"))
CHROMIUM = Path(os.environ.get("NNKIT_CHROMIUM", "/usr/bin/chromium"))
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                 "--disable-component-update", "--no-first-run", "--disable-sync", "--disable-quic"]
EXTERNAL = re.compile(r"^(https?:)?//", re.IGNORECASE)
CSS_URL = re.compile(r"url\(\s*['\"]?((?:https?:)?//[^'\")]+)", re.IGNORECASE)


@pytest.fixture(scope="module")
def site(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("site") / "html"
    start = time.perf_counter()
    build_site(ROOT, out, timeout=300, jobs=2, log=lambda *a: None)
    print(f"site built in {time.perf_counter() - start:.0f} s")
    return out


def _page(site: Path, lecture: Path) -> Path:
    return site / "lectures" / f"{lecture.stem}.html"


class _Resources(HTMLParser):
    """The URLs a page loads: scripts, style sheets and other links, images, media, frames."""

    LOADED: ClassVar[dict[str, str]] = {"script": "src", "img": "src", "source": "src", "iframe": "src", "audio": "src",
              "video": "src", "embed": "src", "object": "data", "link": "href"}

    def __init__(self):
        super().__init__()
        self.urls: list[str] = []

    def handle_starttag(self, tag, attrs):
        attrs = dict(attrs)
        if tag == "link" and "stylesheet" not in attrs.get("rel", "") and "icon" not in attrs.get("rel", "") \
                and "preload" not in attrs.get("rel", ""):
            return  # navigation links (next, prev, search, index) load nothing
        url = attrs.get(self.LOADED.get(tag, ""), None)
        if url:
            self.urls.append(url)
        if attrs.get("style"):
            self.urls += CSS_URL.findall(attrs["style"])


def _loaded_urls(page: Path) -> list[str]:
    parser = _Resources()
    parser.feed(page.read_text(encoding="utf-8"))
    return parser.urls


def test_every_lecture_has_a_page_linked_from_the_index(site):
    index = (site / "index.html").read_text(encoding="utf-8")
    for lecture in LECTURES:
        page = _page(site, lecture)
        assert page.is_file(), f"no page for lectures/{lecture.name} in the site"
        assert f'href="lectures/{lecture.stem}.html"' in index, f"the index does not link {lecture.name}"
        title = nbformat.read(lecture, 4).cells[0].source.splitlines()[0].lstrip("# ").strip()
        assert title.split(" — ")[-1] in page.read_text(encoding="utf-8"), f"{page.name}: title {title!r} missing"


def test_problem_sets_are_listed_with_what_they_cover(site):
    page = (site / "problem_sets.html").read_text(encoding="utf-8")
    assert 'href="problem_sets.html"' in (site / "index.html").read_text(encoding="utf-8")
    for notebook in ASSIGNMENTS:
        nb = nbformat.read(notebook, 4)
        title = nb.cells[0].source.splitlines()[0].lstrip("# ").strip()
        assert title.split(" — ")[-1] in page, f"problem_sets.html does not list {notebook.name}"
        assert notebook.relative_to(ROOT).as_posix() in page, f"problem_sets.html does not name {notebook.name}"
        sections = [ln[3:] for c in nb.cells if c.cell_type == "markdown" for ln in c.source.splitlines()
                    if ln.startswith("## ")]
        assert sections, f"{notebook.name} has no sections to list"


@pytest.mark.parametrize("lecture", LECTURES, ids=lambda p: p.name)
def test_lecture_page_has_figures_math_and_static_widgets(site, lecture):
    page = _page(site, lecture)
    text = page.read_text(encoding="utf-8")
    images = [u for u in _loaded_urls(page) if re.search(r"\.(png|svg|jpe?g)$", u) or u.startswith("data:image/")]
    assert images, f"{page.name}: no figures"
    for url in images:
        if not url.startswith("data:"):
            assert (page.parent / url).resolve().is_file(), f"{page.name}: figure {url} is missing from the site"
    assert re.search(r'class="math[ "]', text), f"{page.name}: no math markup for MathJax to typeset"
    mathjax = [u for u in _loaded_urls(page) if "mathjax" in u.lower()]
    assert mathjax and all((page.parent / u).resolve().is_file() for u in mathjax), \
        f"{page.name}: MathJax is not loaded from the site itself: {mathjax}"
    assert "application/vnd.jupyter.widget-view+json" not in text and "VBox(children=" not in text, \
        f"{page.name}: a widget is shown as text instead of its initial state"
    if "widgets.Output()" in lecture.read_text(encoding="utf-8"):
        assert re.search(r'class="nnkit-widget-output">(?:<pre[^>]*>.*?</pre>)?<img ', text, re.DOTALL), \
            f"{page.name}: a widget's initial figure is missing"


def test_no_page_loads_anything_from_another_host(site):
    offenders = []
    for page in sorted(site.rglob("*.html")):
        offenders += [f"{page.relative_to(site)}: {u}" for u in _loaded_urls(page) if EXTERNAL.match(u)]
    for sheet in sorted(site.rglob("*.css")):
        offenders += [f"{sheet.relative_to(site)}: {u}" for u in CSS_URL.findall(sheet.read_text(errors="replace"))]
    assert not offenders, "pages load resources from other hosts:\n" + "\n".join(offenders[:20])


def _browser_missing() -> str | None:
    if not CHROMIUM.exists():
        return f"{CHROMIUM} is missing: install Debian's Chromium (apt-get install chromium)"
    if importlib.util.find_spec("playwright") is None:
        return "the playwright Python package is not installed"
    return None


PAGE_STATE_JS = """async () => {
  if (window.MathJax && MathJax.startup && MathJax.startup.promise) { await MathJax.startup.promise; }
  const images = [...document.images];
  return {
    typeset: document.querySelectorAll('mjx-container').length,
    errors: document.querySelectorAll('mjx-merror, mjx-container [data-mjx-error]').length,
    images: images.length,
    broken: images.filter(i => !(i.complete && i.naturalWidth > 0)).map(i => i.src.slice(0, 80)),
  };
}"""


@pytest.mark.browser
def test_pages_render_offline_in_chromium(site):
    reason = _browser_missing()
    if reason:
        pytest.skip(reason)
    from playwright.sync_api import sync_playwright

    blocked: list[str] = []

    def local_only(route):
        if route.request.url.startswith(("file:", "data:")):
            route.continue_()
        else:
            blocked.append(route.request.url)
            route.abort()

    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        try:
            context = browser.new_context(viewport={"width": 1280, "height": 900})
            context.route("**/*", local_only)
            page = context.new_page()
            for lecture in LECTURES:
                page.goto(_page(site, lecture).as_uri(), wait_until="load")
                state = page.evaluate(PAGE_STATE_JS)
                assert state["typeset"] > 0, f"{lecture.stem}.html: MathJax typeset no equation"
                assert state["errors"] == 0, f"{lecture.stem}.html: {state['errors']} equations failed to typeset"
                assert state["images"] > 0 and not state["broken"], f"{lecture.stem}.html: images not loaded: {state}"
                if lecture.name.startswith("02_"):
                    page.screenshot(path=str(site.parent / "lecture2.png"), full_page=True)
        finally:
            browser.close()
    assert not blocked, f"pages asked other hosts for: {blocked[:10]}"
