"""Planted bugs, one table per assignment: ``tests/mutations/<assignment>.py``.

Each file defines ``MUTATIONS = {"<solution grade_id>": [entry, ...]}``; an entry is a tuple
``(what, source, cls)`` or ``(what, source, cls, says)``, read as a :class:`Bug`:

- ``what``: the mistake in a few words ("softmax over the batch axis");
- ``source``: the replacement source of the whole solution cell, as a student would write it;
- ``cls``: the bug's class, written as the grader names it when it has the evidence: a probe's
  bug (``Likely bug: …`` in the message) or a category that is itself a diagnosis ("modifies
  its input", "ignores the generator it is given"). Never an observation such as "wrong
  values" (see ``OBSERVATIONS``);
- ``says``: optional words the feedback must also contain (an observation the student needs,
  such as the argument's name).

``DELEGATIONS`` (same shape, class "not accepted") are answers that call a shipped reference; the
files append them to ``MUTATIONS``. They are graded with the rest but are not part of the corpus
of student mistakes (``corpus()`` in ``tests/feedback_corpus.py`` leaves them out).

``tests/test_assignments.py`` plants each entry into a copy of the solved notebook as its own
student, grades them all with ``nnkit grade``, and asserts per bug: its question loses its
points, every other question keeps them (no collateral), the feedback names no class but its
own, and says ``says``. Over the corpus it asserts the targets of ``tests/feedback_corpus.py``:
every bug caught, no wrong class, no collateral, the right class named for at least 85 %.
Cover the classes students actually meet: wrong axis, missing 1/N, transposes, in-place
updates, generator misuse, off-by-one in the layer loop, unscaled dropout, momentum sign …
"""
from __future__ import annotations

from typing import NamedTuple


class Bug(NamedTuple):
    what: str
    source: str
    cls: str
    says: str = ""


#: categories of a failure that report what was observed, not a bug class: never a label
OBSERVATIONS = ("wrong values", "wrong shape", "wrong type", "raised an exception", "inf/nan",
                "not implemented")
