"""``nnkit site``: the course as a static website, built and read entirely offline.

1. every ``lectures/*.ipynb`` is executed in a fresh kernel (``execute``, as ``nnkit check``
   does) and its widgets are rendered in their initial state (``static_widgets``);
2. an index page (the lectures, from ``lectures/README.md``'s table) and a page listing the
   problem sets (each one's title, introduction and sections, from ``assignments/``) are written;
3. Sphinx with MyST-NB turns them into HTML with the Furo theme, equations typeset by a copy of
   MathJax 3 served from the site itself (``site_sphinx/conf.py`` says why these tools).

Nothing is downloaded while building, and the pages load nothing from another host.
"""
from __future__ import annotations

import re
import shutil
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

CONF_DIR = Path(__file__).with_name("site_sphinx")
LECTURE_ROW = re.compile(r"^\|\s*(\d+)\s*\|\s*\[([^\]]+)\]\(([^)\s]+\.ipynb)\)\s*\|\s*(.+?)\s*\|\s*$")


def lecture_table(readme: Path) -> list[tuple[str, str, str, str]]:
    """(number, title, notebook file, what it covers) for each row of lectures/README.md's table."""
    rows = (LECTURE_ROW.match(line) for line in readme.read_text(encoding="utf-8").splitlines())
    return [m.groups() for m in rows if m]


def _execute_lecture(path: Path, dest: Path, timeout: int) -> float:
    import nbformat

    from .execute import NotebookFailed, execute_notebook
    from .static_widgets import render_widgets

    nb = nbformat.read(path, 4)
    try:
        seconds = execute_notebook(nb, cwd=dest.parent, timeout=timeout, quiet=True)
    except NotebookFailed as e:
        raise NotebookFailed(f"lectures/{path.name}: {e}", e.cell, e.error) from None
    render_widgets(nb)
    nbformat.write(nb, dest)
    return seconds


def _index_page(root: Path) -> str:
    rows = lecture_table(root / "lectures" / "README.md")
    table = "\n".join(f"| {n} | [{title}](lectures/{file}) | {covers} |" for n, title, file, covers in rows)
    toctree = "\n".join(f"lectures/{Path(file).stem}" for _, _, file, _ in rows)
    return f"""# nnkit — a course on neural networks and backpropagation

The lectures below are executed notebooks: every figure is the one the code makes, and each
interactive widget is shown in its initial state (move it in JupyterLab). The problem sets are
nbgrader notebooks in which you implement what the lectures explain;
[the problem sets page](problem_sets.md) lists what each one covers.

| # | lecture | what it covers |
|---|---|---|
{table}

```{{toctree}}
:hidden:
:caption: Lectures

{toctree}
```

```{{toctree}}
:hidden:
:caption: Practice

problem_sets
```
"""


def _problem_set_section(path: Path, root: Path) -> str:
    import nbformat

    nb = nbformat.read(path, 4)
    title, *paragraphs = nb.cells[0].source.strip().split("\n\n")
    summary = paragraphs[:1]
    if len(paragraphs) > 1 and paragraphs[1].lstrip().startswith("$$"):
        summary.append(paragraphs[1])             # the equation that completes the first paragraph
    sections = [line[3:].strip() for c in nb.cells if c.cell_type == "markdown"
                for line in c.source.splitlines() if line.startswith("## ")]
    listing = "\n".join(f"- {s}" for s in sections)
    return (f"## {title.lstrip('# ').strip()}\n\n" + "\n\n".join(summary) + "\n\n"
            f"Notebook: `{path.relative_to(root).as_posix()}`. Sections:\n\n{listing}\n")


def _problem_sets_page(root: Path) -> str:
    notebooks = sorted((root / "assignments").glob("*/*.ipynb"))
    body = "\n".join(_problem_set_section(p, root) for p in notebooks)
    return ("# Problem sets\n\nWork through each problem set after its lectures: open the student "
            "notebook in JupyterLab, complete the cells marked `# YOUR CODE HERE` and run the checks "
            f"below each question.\n\n{body}")


def write_sources(root: Path, src: Path, *, timeout: int, jobs: int, log=print) -> None:
    """Fill ``src`` with the executed lectures, the index and the problem-sets page."""
    (src / "lectures").mkdir(parents=True)
    notebooks = sorted((root / "lectures").glob("*.ipynb"))
    log(f"executing {len(notebooks)} lectures ({jobs} at a time, at most {timeout} s per cell)")
    with ThreadPoolExecutor(max(1, jobs)) as pool:
        times = pool.map(lambda p: (p.name, _execute_lecture(p, src / "lectures" / p.name, timeout)), notebooks)
        for name, seconds in times:
            log(f"  {name}: {seconds:.1f} s")
    (src / "index.md").write_text(_index_page(root), encoding="utf-8")
    (src / "problem_sets.md").write_text(_problem_sets_page(root), encoding="utf-8")


def build_site(root: Path, out: Path | None = None, *, timeout: int = 300, jobs: int = 2, log=print) -> Path:
    """Build the website into ``out`` (default ``build/site``); return the path of its index.html."""
    from sphinx.cmd.build import build_main

    root = Path(root).resolve()
    out = Path(out or root / "build" / "site").resolve()
    src = out.with_name(out.name + "-src")
    for folder in (src, out):
        shutil.rmtree(folder, ignore_errors=True)
    started = time.monotonic()
    write_sources(root, src, timeout=timeout, jobs=jobs, log=log)
    log("rendering HTML (Sphinx, MyST-NB)")
    status = build_main(["-b", "html", "-q", "-c", str(CONF_DIR), str(src), str(out)])
    if status:
        raise RuntimeError(f"sphinx-build failed with status {status}")
    log(f"built {out / 'index.html'} in {time.monotonic() - started:.0f} s")
    return out / "index.html"
