"""Bad input raises an error that says which layer (or loss) and which shapes, in words a
teaching assistant would use. Every test asserts on the message text."""
from __future__ import annotations

import re

import numpy as np
import pytest

import nnkit as nk


def _net():
    return nk.Sequential(nk.Linear(3, 4, rng=0), nk.ReLU(), nk.Linear(4, 2, rng=1), nk.Sigmoid())


def _raises(exc, fn, *fragments):
    with pytest.raises(exc) as info:
        fn()
    message = str(info.value)
    for fragment in fragments:
        assert fragment in message, f"{fragment!r} missing from the message: {message}"
    return message


# --- shapes ----------------------------------------------------------------------------------
def test_linear_wrong_input_width_names_the_layer_and_both_shapes():
    net = _net()
    _raises(nk.ShapeError, lambda: net.forward(np.zeros((5, 4))), "layer [0] Linear(3→4)", "(batch, 3)", "(5, 4)")
    h = np.zeros((5, 3))
    _raises(nk.ShapeError, lambda: net[2].forward(h), "layer [2] Linear(4→2)", "(batch, 4)", "(5, 3)")


def test_wrong_width_deep_in_a_nested_network_names_its_position():
    net = nk.Sequential(nk.Linear(3, 4), nk.Sequential(nk.ReLU(), nk.Linear(5, 2)))
    _raises(nk.ShapeError, lambda: net.forward(np.zeros((2, 3))), "layer [1.1] Linear(5→2)", "(2, 4)")


def test_a_single_example_without_batch_axis_is_named():
    _raises(nk.ShapeError, lambda: _net().forward(np.zeros(2)), "layer [0] Linear(3→4)", "(2,)")


def test_upstream_gradient_of_the_wrong_shape():
    net = _net()
    net.forward(np.zeros((5, 3)))
    _raises(nk.ShapeError, lambda: net.backward(np.zeros((5, 4))), "(5, 4)", "(5, 2)", "∂ℒ/∂output")
    _raises(nk.ShapeError, lambda: net[1].backward(np.zeros((5, 2))), "layer [1] ReLU()", "(5, 2)", "(5, 4)")
    _raises(nk.ShapeError, lambda: net[2].backward(np.zeros((2, 5))), "layer [2] Linear(4→2)", "(2, 5)", "(5, 2)")


def test_softmax_dim_out_of_range_and_bad_flatten_dims():
    _raises(nk.ShapeError, lambda: nk.Softmax(dim=2).forward(np.zeros((2, 3))), "Softmax(dim=2)", "(2, 3)")
    _raises(nk.ShapeError, lambda: nk.LogSoftmax(dim=-3).forward(np.zeros((2, 3))), "LogSoftmax(dim=-3)", "(2, 3)")
    _raises(nk.ShapeError, lambda: nk.Flatten(2, 1).forward(np.zeros((2, 3, 4))), "Flatten(start_dim=2, end_dim=1)",
            "(2, 3, 4)")


def test_load_state_dict_of_the_wrong_shape_or_names():
    net = _net()
    state = net.state_dict()
    state["0.weight"] = np.zeros((3, 3))
    _raises(nk.ShapeError, lambda: net.load_state_dict(state), "0.weight", "(4, 3)", "(3, 3)")
    del state["0.weight"]
    state["extra"] = np.zeros(1)
    _raises(KeyError, lambda: net.load_state_dict(state), "missing ['0.weight']", "unexpected ['extra']")


# --- dtypes and types ------------------------------------------------------------------------
def test_integer_input_is_refused_with_the_dtype_and_a_fix():
    linear = nk.Sequential(nk.Linear(3, 2))[0]
    _raises(TypeError, lambda: linear.forward(np.zeros((2, 3), dtype=np.int64)),
            "layer [0] Linear(3→2)", "int64", "(2, 3)", "astype(np.float64)")
    _raises(TypeError, lambda: nk.ReLU().forward(np.array([True, False])), "ReLU()", "bool")


def test_non_array_input_is_refused():
    _raises(TypeError, lambda: nk.Sigmoid().forward("0.5"), "Sigmoid()", "numpy array", "str")
    _raises(TypeError, lambda: nk.Linear(2, 2).forward({"x": 1}), "Linear(2→2)", "dict")


def test_integer_upstream_gradient_is_refused():
    layer = nk.Tanh()
    layer.forward(np.zeros((2, 2)))
    _raises(TypeError, lambda: layer.backward(np.zeros((2, 2), dtype=int)), "Tanh()", "upstream gradient", "int64")


def test_loss_predictions_must_be_floats():
    _raises(TypeError, lambda: nk.MSELoss().forward(np.zeros(3, dtype=int), np.zeros(3)), "MSELoss()", "int64", "(3,)")
    _raises(TypeError, lambda: nk.CrossEntropyLoss().forward(np.zeros((2, 3), dtype=np.int32), np.zeros(2, dtype=int)),
            "CrossEntropyLoss()", "int32")


# --- targets ---------------------------------------------------------------------------------
def test_class_targets_out_of_range():
    scores = np.zeros((3, 4))
    message = _raises(ValueError, lambda: nk.CrossEntropyLoss().forward(scores, np.array([0, 4, -1])),
                      "CrossEntropyLoss()", "0…3", "(3, 4)")
    assert re.search(r"found \[4, -1\]", message)
    _raises(ValueError, lambda: nk.NLLLoss(reduction="sum").forward(scores, np.array([0, 1, 9])),
            "NLLLoss(reduction='sum')", "0…3", "[9]")


def test_class_targets_of_the_wrong_shape_or_dtype():
    scores = np.zeros((3, 4))
    _raises(nk.ShapeError, lambda: nk.CrossEntropyLoss().forward(scores, np.array([[0], [1], [2]])),
            "CrossEntropyLoss()", "(3, 4)", "(3,)", "(3, 1)", "reshape(-1)")
    _raises(TypeError, lambda: nk.CrossEntropyLoss().forward(scores, np.array([0.0, 1.0, 2.0])),
            "CrossEntropyLoss()", "float64", "astype(int)")
    _raises(nk.ShapeError, lambda: nk.CrossEntropyLoss().forward(np.zeros((2, 3, 4)), np.zeros((2, 3), dtype=int)),
            "CrossEntropyLoss()", "(N, C)", "(2, 3, 4)")


def test_elementwise_targets_must_match_exactly_no_broadcasting():
    """A target (N,) against predictions (N, 1) would broadcast into an (N, N) loss: refused."""
    _raises(nk.ShapeError, lambda: nk.MSELoss().forward(np.zeros((3, 1)), np.zeros(3)),
            "MSELoss()", "(3,)", "(3, 1)", "target.reshape(3, 1)")
    _raises(nk.ShapeError, lambda: nk.BCEWithLogitsLoss().forward(np.zeros((4, 2)), np.zeros((2, 4))),
            "BCEWithLogitsLoss()", "(2, 4)", "(4, 2)")


def test_probabilities_and_binary_targets_out_of_range():
    _raises(ValueError, lambda: nk.BCELoss().forward(np.array([0.5, 1.2]), np.zeros(2)),
            "BCELoss()", "[0, 1]", "1.2", "BCEWithLogitsLoss")
    _raises(ValueError, lambda: nk.BCELoss().forward(np.array([0.5, np.nan]), np.zeros(2)), "BCELoss()", "[0, 1]")
    _raises(ValueError, lambda: nk.BCEWithLogitsLoss().forward(np.zeros(2), np.array([0.0, 2.0])),
            "BCEWithLogitsLoss()", "targets", "[0, 1]", "max 2")


def test_loss_upstream_gradient_of_the_wrong_shape():
    loss = nk.MSELoss(reduction="none")
    loss.forward(np.zeros((2, 3)), np.zeros((2, 3)))
    _raises(nk.ShapeError, lambda: loss.backward(np.ones(3)), "MSELoss(reduction='none')", "(3,)", "(2, 3)")


# --- order of calls --------------------------------------------------------------------------
def test_backward_before_forward():
    net = _net()
    _raises(nk.BackwardBeforeForwardError, lambda: net.backward(np.zeros((1, 2))), "backward() was called before forward()")
    _raises(nk.BackwardBeforeForwardError, lambda: net[2].backward(np.zeros((1, 2))), "layer [2] Linear(4→2)", "before forward()")
    for loss in (nk.MSELoss(), nk.CrossEntropyLoss(), nk.BCELoss(reduction="none")):
        _raises(nk.BackwardBeforeForwardError, loss.backward, loss.label(), "before forward")
    assert issubclass(nk.BackwardBeforeForwardError, RuntimeError) and issubclass(nk.ShapeError, ValueError)


# --- construction ----------------------------------------------------------------------------
def test_bad_construction_arguments():
    _raises(ValueError, lambda: nk.Dropout(1.5), "Dropout", "drop probability", "1.5")
    _raises(ValueError, lambda: nk.Linear(0, 3), "Linear", "≥ 1", "0, 3")
    _raises(ValueError, lambda: nk.MSELoss(reduction="avg"), "MSELoss", "'avg'", "mean")
    _raises(TypeError, lambda: nk.Sequential(nk.Linear(2, 2), "relu"), "Sequential", "item 1", "str")
    _raises(TypeError, lambda: nk.Linear(2, 2, rng="seed"), "rng", "Generator")


def test_bad_optimiser_arguments():
    params = _net().parameters()
    _raises(ValueError, lambda: nk.optim.SGD(params, lr=0), "SGD", "learning rate", "0")
    _raises(ValueError, lambda: nk.optim.SGD(params, lr=0.1, nesterov=True), "SGD", "Nesterov", "momentum > 0")
    _raises(ValueError, lambda: nk.optim.SGD([], lr=0.1), "SGD", "empty")
    _raises(TypeError, lambda: nk.optim.SGD([np.zeros(3)], lr=0.1), "SGD", "item 0", "ndarray", "Parameter")
    _raises(ValueError, lambda: nk.optim.SGD(params, lr=0.1, momentum=-0.5), "SGD", "momentum", "-0.5")
