"""Showing a widget's result: replace what an ``ipywidgets.Output`` shows, in one state update.

A lecture's interactive cell draws with ``show_in(out, text, fig)``, never with
``with out: clear_output(wait=True); display(fig)``. Setting ``out.outputs`` is an ordinary
widget state change: nothing is captured from the kernel's output stream, so

- a headless client (nbclient, hence ``jupyter nbconvert --execute`` and papermill) has no
  Output widget to imitate and sends the kernel nothing while it waits for the cell to finish;
  the imitation's messages are what made it miss the reply and hang (lectures/README.md);
- a figure drawn while other slider updates are queued cannot land in another widget.

IPython is imported when first used; the rest of nnkit does not need it.
"""
from __future__ import annotations

from typing import Any


def outputs(*items: Any) -> tuple[dict, ...]:
    """Output-widget entries for ``items``, in order.

    A ``str`` becomes printed text (a newline is added); anything else is formatted the way
    IPython's ``display`` would (a matplotlib figure as a PNG under ``%matplotlib inline``).
    """
    from IPython.core.interactiveshell import InteractiveShell

    formatter = InteractiveShell.instance().display_formatter
    entries = []
    for item in items:
        if isinstance(item, str):
            entries.append({"output_type": "stream", "name": "stdout", "text": item + "\n"})
        else:
            data, metadata = formatter.format(item)
            entries.append({"output_type": "display_data", "data": data, "metadata": metadata})
    return tuple(entries)


def show_in(out, *items: Any) -> None:
    """Make the Output widget ``out`` show ``items`` (see ``outputs``) instead of what it showed.

    Matplotlib figures among the items are closed afterwards, so that ``%matplotlib inline``
    does not show them a second time below the cell.
    """
    out.outputs = outputs(*items)
    for item in items:
        if hasattr(item, "savefig"):
            import matplotlib.pyplot as plt

            plt.close(item)
