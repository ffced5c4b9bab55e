"""Sphinx configuration of the course website (``nnkit site`` builds it; see nnkit/course/site.py).

Why these tools. Sphinx with MyST-NB reads the executed notebooks as they are (Markdown with
``$…$`` math, outputs, figures), is maintained by the Sphinx and Executable Books projects, and
builds with no network at all; Jupyter Book 1 is this same stack with a command line on top,
while Jupyter Book 2 (mystmd) downloads its theme at build time. nbconvert's lab template gives
one page per notebook with no index or navigation and loads MathJax and the widget manager
from a CDN. Furo is a maintained theme that needs no web fonts or scripts from elsewhere.
Widgets: nbclient embeds their state, but ipywidgets' HTML manager would have to be fetched
from a CDN, and without a kernel it could only move controls whose figures are drawn in Python;
so each widget is rendered as static HTML in its initial state (nnkit/course/static_widgets.py).
Equations are typeset in the browser by MathJax 3.2 copied into the site from the
sphinx-mathjax-offline package, so no page asks another host for anything. Notebooks are
executed before Sphinx runs (``nb_execution_mode = "off"``) by the course's own runner, which
names a cell that fails or stalls.
"""

project = "nnkit"
author = "the nnkit authors"
copyright = "the nnkit authors, MIT licence"
html_title = "nnkit — neural networks and backpropagation"

extensions = ["myst_nb", "sphinx-mathjax-offline"]   # the latter: MathJax files in _static/mathjax
nb_execution_mode = "off"                            # executed already, by nnkit.course.execute
nb_ipywidgets_js = {}                                # widgets are static HTML: no widget manager to load
myst_enable_extensions = ["dollarmath", "amsmath"]
mathjax3_config = {
    "loader": {"load": ["[tex]/mathtools", "[tex]/boldsymbol"]},
    "tex": {"packages": {"[+]": ["mathtools", "boldsymbol"]}},
}

html_theme = "furo"
html_static_path = ["static"]
html_css_files = ["nnkit-site.css"]
html_copy_source = False
html_show_sourcelink = False
suppress_warnings = ["myst.header", "myst.xref_missing", "misc.highlighting_failure"]
exclude_patterns = ["**.ipynb_checkpoints"]
