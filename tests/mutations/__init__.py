"""Planted bugs, one table per assignment: ``tests/mutations/<assignment>.py``.

Each file defines ``MUTATIONS = {"<solution grade_id>": [(bug class, replacement source of the
whole solution cell, phrase the feedback must contain), ...]}``. ``tests/test_assignments.py``
plants each entry into a copy of the solved notebook as its own student, autogrades them all
with nbgrader, and asserts that the question's test cell ``test_<grade_id>`` loses its points,
that every other question keeps its points, and that the test cell's error output contains the
phrase. Every autograded question needs at least one entry; cover the bug classes that apply
(transposed W, missing f′(z), a factor of the batch size, sign flip, no accumulation under
fan-out, dropout mask not reused / not rescaled, numerically unstable).
"""
