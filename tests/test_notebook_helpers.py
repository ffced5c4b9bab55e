"""nk.notebook.show_in: what a widget callback shows replaces the Output widget's contents in one update."""
from __future__ import annotations

import ipywidgets as widgets
import matplotlib.pyplot as plt
import pytest
from IPython.core.interactiveshell import InteractiveShell
from IPython.core.pylabtools import select_figure_formats

import nnkit as nk


@pytest.fixture
def shell():
    shell = InteractiveShell.instance()
    select_figure_formats(shell, {"png"})   # what %matplotlib inline sets up
    return shell


def test_text_and_figure_replace_what_the_widget_showed(shell):
    out = widgets.Output()
    out.outputs = ({"output_type": "stream", "name": "stdout", "text": "old\n"},)
    fig, ax = plt.subplots()
    ax.plot([0, 1], [1, 0])
    nk.notebook.show_in(out, "η = 0.05", fig)
    text, figure = out.outputs
    assert text == {"output_type": "stream", "name": "stdout", "text": "η = 0.05\n"}
    assert figure["output_type"] == "display_data"
    assert figure["data"]["image/png"], "the figure is shown as a PNG, as %matplotlib inline shows it"
    assert not plt.fignum_exists(fig.number), "a figure shown in the widget is closed (not shown again below the cell)"


def test_showing_only_text_clears_the_figure(shell):
    out = widgets.Output()
    nk.notebook.show_in(out, plt.figure())
    nk.notebook.show_in(out, "The kernel does not fit.")
    assert [o["output_type"] for o in out.outputs] == ["stream"]
