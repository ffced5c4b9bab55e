"""The course tooling behind the ``nnkit`` command: release, collect, grade, feedback, export, check, site.

Grading runs every student's notebook through nbgrader in a sandboxed kernel (``sandbox``),
its test cells judged in the grader's own process (``judge``), N submissions at a time, each into
a private gradebook merged into the course gradebook (``gradebook``). See docs/grading.md.
Nothing here is imported by the reference library.
"""
