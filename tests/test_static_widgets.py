"""Widgets of an executed notebook rendered in their initial state as plain HTML (for the website)."""
from __future__ import annotations

from nbformat import v4

from nnkit.course.static_widgets import STATE, VIEW, render_widgets


def _model(name: str, **state) -> dict:
    return {"model_name": name, "model_module": "@jupyter-widgets/controls", "model_module_version": "2.0.0",
            "state": state}


def _executed_notebook():
    models = {
        "box": _model("VBoxModel", children=["IPY_MODEL_row", "IPY_MODEL_out"]),
        "row": _model("HBoxModel", children=["IPY_MODEL_lr", "IPY_MODEL_act"]),
        "lr": _model("FloatSliderModel", description="learning rate η", value=0.05, min=0.005, max=0.32,
                     step=0.005, readout_format=".3f"),
        "act": _model("DropdownModel", description="activation", _options_labels=["sigmoid", "ReLU"], index=1),
        "out": _model("OutputModel", outputs=[
            {"output_type": "stream", "name": "stdout", "text": "J = 0.54 <converges>\n"},
            {"output_type": "display_data", "data": {"image/png": "iVBORw0KGgo=", "text/plain": "<Figure>"},
             "metadata": {}}]),
    }
    nb = v4.new_notebook()
    nb.metadata["widgets"] = {STATE: {"state": models, "version_major": 2, "version_minor": 0}}
    cell = v4.new_code_cell("display(box)")
    cell.outputs = [v4.new_output("display_data", data={VIEW: {"model_id": "box", "version_major": 2},
                                                        "text/plain": "VBox(children=...)"})]
    nb.cells = [cell]
    return nb


def test_controls_show_their_values_and_the_output_its_figure():
    nb = _executed_notebook()
    assert render_widgets(nb) == 1
    data = nb.cells[0].outputs[0]["data"]
    assert list(data) == ["text/html"], "only HTML is left: nothing for a page to load widget scripts for"
    html = data["text/html"]
    assert 'learning rate η</span><input type="range" min="0.005" max="0.32" step="0.005" value="0.05" disabled>' \
           '<output>0.050</output>' in html
    assert "<option selected>ReLU</option>" in html and "<option>sigmoid</option>" in html
    assert "J = 0.54 &lt;converges&gt;" in html, "printed text is escaped"
    assert '<img class="nnkit-widget-figure" alt="&lt;Figure&gt;" src="data:image/png;base64,iVBORw0KGgo=">' in html
    assert html.index("nnkit-widget-hbox") < html.index("nnkit-widget-output"), "children keep their order"
    assert "widgets" not in nb.metadata


def test_a_notebook_without_widgets_is_left_alone():
    nb = v4.new_notebook()
    cell = v4.new_code_cell("1")
    cell.outputs = [v4.new_output("execute_result", data={"text/plain": "1"}, execution_count=1)]
    nb.cells = [cell]
    assert render_widgets(nb) == 0
    assert nb.cells[0].outputs[0]["data"] == {"text/plain": "1"}
