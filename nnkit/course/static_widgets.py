"""Widgets in their initial state as plain HTML, for pages read without a kernel.

An executed notebook keeps its widgets' state in its metadata (nbclient stores it) and one
widget-view output where each widget was displayed. ``render_widgets`` replaces every such
output by HTML: controls become disabled form elements showing their values, an Output widget
becomes what it showed (text, figures), boxes lay their children out in rows or columns. The
result needs no JavaScript and fetches nothing. The course's widgets redraw in Python, so
without a kernel there is nothing to interact with; a note under each says where to move them.
"""
from __future__ import annotations

import html
import math

VIEW = "application/vnd.jupyter.widget-view+json"
STATE = "application/vnd.jupyter.widget-state+json"
NOTE = ('<p class="nnkit-widget-note">Interactive in JupyterLab: run the notebook to move the '
        "controls. Shown here in their initial state.</p>")


def _model(ref: str) -> str:
    return ref.removeprefix("IPY_MODEL_")


def _label(state: dict) -> str:
    text = html.escape(state.get("description", ""))
    return f'<span class="nnkit-widget-label">{text}</span>' if text else ""


def _readout(value, fmt: str | None) -> str:
    try:
        return format(value, fmt or "")
    except (TypeError, ValueError):
        return str(value)


def _range(state: dict, lo, hi, step, position, readout) -> str:
    return (f'<label class="nnkit-widget-control">{_label(state)}'
            f'<input type="range" min="{lo}" max="{hi}" step="{step}" value="{position}" disabled>'
            f"<output>{html.escape(readout)}</output></label>")


def _slider(name: str, s: dict) -> str:
    if name == "SelectionSliderModel":
        labels = s.get("_options_labels", [])
        index = s.get("index") or 0
        return _range(s, 0, max(len(labels) - 1, 0), 1, index, labels[index] if labels else "")
    if name == "FloatLogSliderModel":
        exponent = math.log(s["value"], s.get("base", 10))
        return _range(s, s["min"], s["max"], s["step"], exponent, _readout(s["value"], s.get("readout_format")))
    return _range(s, s["min"], s["max"], s["step"], s["value"], _readout(s["value"], s.get("readout_format")))


def _dropdown(s: dict) -> str:
    index = s.get("index")
    options = "".join(f'<option{" selected" if i == index else ""}>{html.escape(str(label))}</option>'
                      for i, label in enumerate(s.get("_options_labels", [])))
    return f'<label class="nnkit-widget-control">{_label(s)}<select disabled>{options}</select></label>'


def _output_html(output: dict) -> str:
    """One captured output (stream, display_data or execute_result) as HTML."""
    if output.get("output_type") == "stream":
        return f'<pre class="nnkit-widget-text">{html.escape(output.get("text", ""))}</pre>'
    data = output.get("data", {})
    if "image/png" in data:
        alt = html.escape(data.get("text/plain", "figure"))
        return f'<img class="nnkit-widget-figure" alt="{alt}" src="data:image/png;base64,{data["image/png"].strip()}">'
    if "image/svg+xml" in data:
        return data["image/svg+xml"]
    if "text/html" in data:
        return data["text/html"]
    return f'<pre class="nnkit-widget-text">{html.escape(data.get("text/plain", ""))}</pre>'


def _widget_html(model_id: str, models: dict) -> str:
    entry = models.get(model_id)
    if entry is None:
        return ""
    name, state = entry["model_name"], entry["state"]
    if name in ("VBoxModel", "HBoxModel", "BoxModel"):
        kind = "hbox" if name == "HBoxModel" else "vbox"
        children = "".join(_widget_html(_model(c), models) for c in state.get("children", []))
        return f'<div class="nnkit-widget-{kind}">{children}</div>'
    if name.endswith("SliderModel"):
        return _slider(name, state)
    if name == "DropdownModel":
        return _dropdown(state)
    if name == "OutputModel":
        inner = "".join(_output_html(o) for o in state.get("outputs", []))
        return f'<div class="nnkit-widget-output">{inner}</div>'
    if name == "HTMLModel":
        return f"<div>{state.get('value', '')}</div>"
    if name == "LabelModel":
        return f"<div>{html.escape(state.get('value', ''))}</div>"
    return f'<span class="nnkit-widget-unknown">[{html.escape(name.removesuffix("Model"))}]</span>'


def render_widgets(nb) -> int:
    """Replace every widget-view output of ``nb`` (in place) by static HTML; return how many.

    The widget state is then dropped from the metadata: nothing is left for a page to load
    widget JavaScript for.
    """
    models = nb.metadata.get("widgets", {}).get(STATE, {}).get("state", {})
    replaced = 0
    for cell in nb.cells:
        for output in cell.get("outputs", []):
            view = output.get("data", {}).get(VIEW)
            if view is None:
                continue
            body = _widget_html(view["model_id"], models)
            output["data"] = {"text/html": f'<div class="nnkit-widget">{body}{NOTE}</div>'}
            replaced += 1
    nb.metadata.pop("widgets", None)
    return replaced
