"""The grading pipeline, end to end, through ``nnkit grade``, for every assignment in solutions/.

Every assignment found in ``solutions/`` and every table in ``tests/mutations/`` takes part;
a new problem set plugs in by adding its files. One course copy is generated; all
submissions (the solution, the untouched release, one student per planted bug, tampered
notebooks) are graded with ``nnkit grade --jobs N`` — the instructors' command: sandboxed
kernels, the checks judged in the grader — and the tests read the scores from nbgrader's
gradebook and the messages from the autograded notebooks.

What is proved:
- the committed release (assignments/) is what ``generate_assignment`` makes of solutions/;
- the solution scores full marks on every autograded cell, the release scores zero on every one
  and is graded without error;
- each planted bug (tests/mutations/<assignment>.py) costs its own question its points, leaves
  every other question's points alone, and the feedback names the bug;
- an edited or deleted test cell is replaced by the instructor's (hidden tests included);
- an infinite loop costs only its question, after the time limit;
- grades export to CSV with every student; feedback shows no hidden test;
- every released notebook runs, cell by cell, up to its first unanswered question.
"""
from __future__ import annotations

import csv
import os
import subprocess
import sys
import time

import nbformat
import pytest
from assignment_utils import (
    HIDDEN_BEGIN,
    SOLUTION_BEGIN,
    Course,
    answered,
    assignment_names,
    autograded_ids,
    cells_by_id,
    delete_cell,
    is_clean,
    mutation_tables,
    nbgrader_meta,
    output_text,
    plant,
    questions,
    release_path,
    source_path,
)
from feedback_corpus import corpus, details, diagnoses, outcomes, report, student_id
from mutations import OBSERVATIONS

# NNKIT_ASSIGNMENTS=ps1_perceptron,ps3_backprop restricts the run to some assignments.
_ONLY = [a for a in os.environ.get("NNKIT_ASSIGNMENTS", "").split(",") if a]
ASSIGNMENTS = [a for a in assignment_names() if not _ONLY or a in _ONLY]
MUTATIONS = mutation_tables()
LABELS = {bug.cls for qs in corpus().values() for bugs in qs.values() for bug in bugs}
JOBS = int(os.environ.get("NNKIT_GRADING_JOBS", str(min(4, max(2, os.cpu_count() or 2)))))
# nbgrader 0.9.6 with SQLAlchemy 2.1 warns "Object of type <SubmittedAssignment> not in session": noise.
# one worker grades the class once (the tests share the module's graded course)
pytestmark = [pytest.mark.filterwarnings("ignore:Object of type:Warning"), pytest.mark.xdist_group("assignments")]
TIMINGS: dict[str, float] = {}


def _mutation_cases():
    cases = []
    for assignment in ASSIGNMENTS:
        for qid, bugs in sorted(MUTATIONS.get(assignment, {}).items()):
            for k, bug in enumerate(bugs):
                cases.append(pytest.param(assignment, qid, k, id=f"{assignment}-{qid}-{bug.what.replace(' ', '_')}"))
    return cases


# --- static checks (no kernel) ----------------------------------------------------------------------
def test_assignments_are_found():
    assert ASSIGNMENTS, "no assignment notebooks found in solutions/<name>/<name>.ipynb"


@pytest.mark.parametrize("assignment", ASSIGNMENTS)
def test_source_notebook_is_a_valid_nbgrader_source(assignment):
    from nbgrader.nbgraderformat import MetadataValidator, ValidationError

    nb = nbformat.read(source_path(assignment), 4)
    assert is_clean(nb), f"{assignment}: store the source notebook without outputs and execution counts"
    try:
        MetadataValidator().validate_nb(nb)
    except ValidationError as err:
        pytest.fail(f"{assignment}: invalid nbgrader metadata: {err}")
    ids = [nbgrader_meta(c).get("grade_id") for c in nb.cells if nbgrader_meta(c)]
    assert len(ids) == len(set(ids)), f"{assignment}: duplicate grade_ids"
    qs = questions(nb)
    assert qs, f"{assignment}: no autograded question (solution cell `<id>` with test cell `test_<id>`)"
    for test_id in autograded_ids(nb):
        cell = cells_by_id(nb)[test_id]
        assert nbgrader_meta(cell).get("locked"), f"{assignment}: test cell {test_id} must be read-only"
        assert HIDDEN_BEGIN in cell.source, f"{assignment}: test cell {test_id} has no hidden tests"
    written = [c for c in nb.cells if c.cell_type == "markdown" and nbgrader_meta(c).get("grade")
               and nbgrader_meta(c).get("solution")]
    assert written, f"{assignment}: needs at least one manually graded written answer"


@pytest.mark.parametrize("assignment", ASSIGNMENTS)
def test_mutation_table_covers_every_question(assignment):
    assert assignment in MUTATIONS, f"tests/mutations/{assignment}.py is missing"
    nb = nbformat.read(source_path(assignment), 4)
    table = MUTATIONS[assignment]
    missing = sorted(set(questions(nb)) - set(table))
    assert not missing, f"{assignment}: questions without planted bugs: {missing}"
    unknown = sorted(set(table) - set(questions(nb)))
    assert not unknown, f"{assignment}: mutation table names unknown questions: {unknown}"
    for qid, bugs in table.items():
        assert bugs, f"{assignment}: {qid} has an empty list of bugs"
        for entry in bugs:
            assert all(isinstance(x, str) for x in entry) and entry.what and entry.source and entry.cls, \
                f"{assignment}: {qid}: entries are (what, replacement source, class[, phrase])"
            assert entry.cls not in OBSERVATIONS, \
                f"{assignment}: {qid}: '{entry.what}' is labelled with an observation, not a bug class"


# --- one course, every submission, graded together ----------------------------------------------------
@pytest.fixture(scope="module")
def course(tmp_path_factory):
    start = time.perf_counter()
    course = Course.create(tmp_path_factory.mktemp("course") / "nnkit", ASSIGNMENTS)
    TIMINGS["generate_assignment (all)"] = time.perf_counter() - start
    return course


@pytest.fixture(scope="module")
def graded(course):
    """Plant every submission and autograde them all; returns {assignment: {student: scores}}."""
    for assignment in ASSIGNMENTS:
        release = course.release(assignment)
        perfect = answered(assignment, course.root)
        course.submit(assignment, "solution", perfect)
        course.submit(assignment, "blank", release)
        for qid, bugs in MUTATIONS.get(assignment, {}).items():
            for k, bug in enumerate(bugs):
                course.submit(assignment, student_id(assignment, qid, k), plant(perfect, qid, bug.source))
        first = questions(release)[0]
        wrong = plant(perfect, first, cells_by_id(release)[first].source)  # the stub again: unanswered
        course.submit(assignment, "tamper-edit", plant(wrong, f"test_{first}", "assert True"))
        course.submit(assignment, "tamper-delete", delete_cell(wrong, f"test_{first}"))
    start = time.perf_counter()
    seconds = course.grade_all(jobs=JOBS)
    TIMINGS["nnkit grade (all submissions)"] = time.perf_counter() - start
    n = sum(len(course.students(a)) for a in ASSIGNMENTS)
    TIMINGS["submissions"] = n
    for name, took in seconds.items():
        TIMINGS[f"  {name}"] = took
    print(f"\ngraded {n} submissions in {TIMINGS['nnkit grade (all submissions)']:.1f} s with {JOBS} jobs")
    return {assignment: course.scores(assignment) for assignment in ASSIGNMENTS}


@pytest.mark.notebooks
@pytest.mark.parametrize("assignment", ASSIGNMENTS)
def test_release_is_up_to_date(course, assignment):
    committed = release_path(assignment)
    assert committed.is_file(), f"assignments/{assignment} is missing: run `python tests/assignment_utils.py release`"
    fresh, stored = course.release(assignment), nbformat.read(committed, 4)
    assert is_clean(stored), f"{committed.name} carries outputs"
    hint = "assignments/ is out of date with solutions/: run `python tests/assignment_utils.py release`"
    assert len(fresh.cells) == len(stored.cells), hint
    for i, (a, b) in enumerate(zip(fresh.cells, stored.cells)):
        assert (a.cell_type, a.source) == (b.cell_type, b.source), f"{hint} (cell {i} differs)"
        assert nbgrader_meta(a) == nbgrader_meta(b), f"{hint} (nbgrader metadata of cell {i} differs)"


@pytest.mark.notebooks
@pytest.mark.parametrize("assignment", ASSIGNMENTS)
def test_release_hides_solutions_and_hidden_tests(course, assignment):
    source = cells_by_id(nbformat.read(source_path(assignment), 4))
    release = course.release(assignment)
    text = "\n".join(c.source for c in release.cells)
    assert SOLUTION_BEGIN not in text and HIDDEN_BEGIN not in text
    for gid, cell in cells_by_id(release).items():
        if nbgrader_meta(cell).get("grade") and cell.cell_type == "code":
            hidden = source[gid].source.split(HIDDEN_BEGIN, 1)[1].split("### END HIDDEN TESTS", 1)[0]
            for line in filter(None, (ln.strip() for ln in hidden.splitlines())):
                assert line not in cell.source or line in source[gid].source.split(HIDDEN_BEGIN, 1)[0], \
                    f"{assignment}: hidden test line leaked into the release: {line!r}"


@pytest.mark.notebooks
@pytest.mark.parametrize("assignment", ASSIGNMENTS)
def test_solution_scores_full_marks(course, graded, assignment):
    scores = graded[assignment]["solution"]
    assert scores, f"{assignment}: the solution was not graded"
    lost = {gid: s for gid, s in scores.items() if s[0] != s[1]}
    texts = {gid: course.feedback_text(assignment, "solution", gid)[-600:] for gid in lost}
    assert not lost, f"{assignment}: the solution loses points on {lost}: {texts}"


@pytest.mark.notebooks
@pytest.mark.parametrize("assignment", ASSIGNMENTS)
def test_release_scores_zero(course, graded, assignment):
    scores = graded[assignment]["blank"]
    assert scores and set(scores) == set(autograded_ids(course.release(assignment)))
    scored = {gid: s for gid, s in scores.items() if s[0] != 0}
    assert not scored, f"{assignment}: the unanswered release scores points on {scored}"
    nb = course.autograded(assignment, "blank")
    silent = [gid for gid in autograded_ids(nb) if not output_text(cells_by_id(nb)[gid]).strip()]
    assert not silent, f"{assignment}: unanswered questions fail without a message: {silent}"


@pytest.mark.notebooks
@pytest.mark.parametrize("assignment,qid,k", _mutation_cases())
def test_planted_bug_costs_its_question_and_is_named(course, graded, assignment, qid, k):
    entry = MUTATIONS[assignment][qid][k]
    bug = entry.what
    student = student_id(assignment, qid, k)
    scores = graded[assignment][student]
    test_id = f"test_{qid}"
    got, top = scores[test_id]
    feedback = course.feedback_text(assignment, student, test_id)
    assert got < top, f"{assignment}: planted bug '{bug}' in {qid} keeps {got}/{top} points"
    others = {gid: s for gid, s in scores.items() if gid != test_id and s[0] != s[1]}
    assert not others, (f"{assignment}: planted bug '{bug}' in {qid} also costs points on {others}: "
                        f"{ {g: course.feedback_text(assignment, student, g)[-400:] for g in others} }")
    wrong = diagnoses(feedback, LABELS) - {entry.cls}
    assert not wrong, f"{assignment}: feedback for '{bug}' in {qid} names {sorted(wrong)}, not {entry.cls!r}:\n" \
                      f"{feedback[-1500:]}"
    if entry.says:
        assert entry.says.lower() in feedback.lower(), \
            f"{assignment}: feedback for '{bug}' in {qid} does not say {entry.says!r}:\n{feedback[-1500:]}"


@pytest.mark.notebooks
def test_feedback_corpus_meets_its_targets(course, graded):
    """Over every planted student mistake: all caught, none misnamed, no collateral, ≥ 85 % named."""
    found = outcomes(course, graded, ASSIGNMENTS)
    table, total = report(found)
    print("\nfeedback on the planted-bug corpus:\n" + table)
    assert found, "no planted bugs"
    assert not total.misses(), f"targets missed: {total.misses()}\n{table}\n{details(found)}"


@pytest.mark.notebooks
@pytest.mark.parametrize("assignment", ASSIGNMENTS)
@pytest.mark.parametrize("how", ["tamper-edit", "tamper-delete"])
def test_tampered_test_cell_is_restored(course, graded, assignment, how):
    first = questions(course.release(assignment))[0]
    source_test = cells_by_id(nbformat.read(source_path(assignment), 4))[f"test_{first}"].source
    nb = course.autograded(assignment, how)
    restored = cells_by_id(nb)[f"test_{first}"]
    # a deleted cell comes back with a comment line saying so; the instructor's source follows
    assert restored.source.endswith(source_test) and HIDDEN_BEGIN in restored.source, \
        f"{assignment}: the instructor's test cell was not restored ({how})"
    score, top = graded[assignment][how][f"test_{first}"]
    assert score == 0 < top, f"{assignment}: {how} scores {score}/{top} on the tampered question"
    others = {gid: s for gid, s in graded[assignment][how].items() if gid != f"test_{first}" and s[0] != s[1]}
    assert not others, f"{assignment}: {how} loses points elsewhere: {others}"


# --- time limit, feedback, export (a small course of the first assignment) -------------------------
LOOP_TIMEOUT = 5


@pytest.fixture(scope="module")
def small_course(tmp_path_factory):
    """First assignment only, short time limit: a correct (alice), a blank (bob), a looping (carol)
    and a wrong (dave: the first planted bug of the first question) submission."""
    assignment = ASSIGNMENTS[0]
    course = Course.create(tmp_path_factory.mktemp("small") / "nnkit", [assignment], timeout=LOOP_TIMEOUT)
    perfect = answered(assignment, course.root)
    qid = questions(perfect)[-1]
    loop = plant(perfect, qid, _looping(cells_by_id(perfect)[qid].source))
    course.submit(assignment, "alice", perfect)
    course.submit(assignment, "bob", course.release(assignment))
    course.submit(assignment, "carol", loop)
    first = questions(perfect)[0]
    course.submit(assignment, "dave", plant(perfect, first, MUTATIONS[assignment][first][0].source))
    start = time.perf_counter()
    report = course.grade(assignment)
    TIMINGS["nnkit grade (small course, 4 submissions)"] = time.perf_counter() - start
    for student, record in report["students"].items():
        assert record["status"].startswith("graded"), f"grading {student} failed: {record.get('error')}"
    return course, assignment, qid


def _looping(source: str) -> str:
    """The solution cell with an infinite loop at the start of its first function's body."""
    lines = source.splitlines()
    i = next(i for i, line in enumerate(lines) if line.lstrip().startswith("def "))
    j = i
    while not lines[j].split("#")[0].rstrip().endswith(":"):  # a signature may span lines
        j += 1
    indent = lines[i][: len(lines[i]) - len(lines[i].lstrip())] + "    "
    return "\n".join(lines[: j + 1] + [f"{indent}while True:", f"{indent}    pass"] + lines[j + 1:])


@pytest.mark.notebooks
def test_infinite_loop_costs_only_its_question(small_course):
    course, assignment, qid = small_course
    scores = course.scores(assignment)["carol"]
    assert scores[f"test_{qid}"][0] == 0, f"the looping answer to {qid} scored {scores[f'test_{qid}']}"
    others = {gid: s for gid, s in scores.items() if gid != f"test_{qid}" and s[0] != s[1]}
    assert not others, f"other questions lost points because of the loop in {qid}: {others}"
    text = course.feedback_text(assignment, "carol", f"test_{qid}")
    assert "Timeout" in text or "timed out" in text.lower(), text[-500:]


@pytest.mark.notebooks
def test_grades_export_to_csv_with_every_student(small_course, tmp_path):
    course, assignment, _ = small_course
    out = tmp_path / "grades.csv"
    env = {**os.environ, "PYTHONWARNINGS": "ignore"}
    env.pop("NNKIT_GRADEBOOK_URL", None)
    nbgrader = os.path.join(os.path.dirname(sys.executable), "nbgrader")
    proc = subprocess.run([nbgrader, "export", "--to", str(out)], cwd=course.root, env=env,
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-2000:]
    rows = list(csv.DictReader(out.open()))
    assert {r["student_id"] for r in rows} == {"alice", "bob", "carol", "dave"}
    by = {r["student_id"]: r for r in rows}
    assert float(by["alice"]["raw_score"]) > float(by["carol"]["raw_score"]) > float(by["bob"]["raw_score"]) == 0
    assert all(r["assignment"] == assignment for r in rows)


@pytest.mark.notebooks
def test_feedback_names_the_bug_but_shows_no_hidden_test(small_course):
    import html as html_lib

    course, assignment, _ = small_course
    api = course.api()
    source = nbformat.read(source_path(assignment), 4)
    hidden_lines = {line.strip() for gid in autograded_ids(source)
                    for line in cells_by_id(source)[gid].source.split(HIDDEN_BEGIN, 1)[1].splitlines()
                    if line.strip() and line.strip() not in cells_by_id(source)[gid].source.split(HIDDEN_BEGIN, 1)[0]}
    first = questions(source)[0]
    planted = MUTATIONS[assignment][first][0]
    for student, expected in (("bob", "not implemented yet"), ("dave", planted.says or planted.cls)):
        result = api.generate_feedback(assignment, student, force=True)
        assert result["success"], result.get("error")
        page = html_lib.unescape((course.root / "feedback" / student / assignment / f"{assignment}.html").read_text())
        assert "BEGIN HIDDEN TESTS" not in page
        leaked = [line for line in hidden_lines if line in page]
        assert not leaked, f"feedback for {student} shows hidden test lines: {leaked}"
        assert expected in page, f"feedback for {student} does not say {expected!r}"


@pytest.mark.notebooks
def test_nbgrader_validate_tells_a_self_learner_where_they_stand(small_course):
    """`nbgrader validate` (the students' own check) passes an answered notebook, fails the release."""
    from nbgrader.validator import Validator

    course, assignment, _ = small_course
    cfg = course.api().config
    answered_path = course.root / "submitted" / "alice" / assignment / f"{assignment}.ipynb"
    release_nb = course.root / "assignments" / assignment / f"{assignment}.ipynb"
    assert Validator(config=cfg).validate(str(answered_path)) == {}
    failed = Validator(config=cfg).validate(str(release_nb)).get("failed", [])
    unanswered = [f for f in failed if "not implemented yet" in f["raw_error"]]
    assert len(unanswered) == len(autograded_ids(course.release(assignment))), failed


# --- self-learners: the release runs up to the first unanswered question ------------------------------
@pytest.mark.notebooks
@pytest.mark.parametrize("assignment", ASSIGNMENTS)
def test_release_runs_to_its_first_unanswered_question(assignment, tmp_path):
    """Execute the committed release cell by cell; the first error must be the first stub."""
    from nbclient import NotebookClient

    nb = nbformat.read(release_path(assignment), 4)
    client = NotebookClient(nb, timeout=60, kernel_name="python3", allow_errors=True,
                            resources={"metadata": {"path": str(tmp_path)}})  # a student's own folder
    first_error = None
    with client.setup_kernel():
        for index, cell in enumerate(nb.cells):
            if cell.cell_type != "code":
                continue
            client.execute_cell(cell, index)
            errors = [o for o in cell.outputs if o.output_type == "error"]
            if errors:
                first_error = (index, cell, errors[0])
                break
    assert first_error is not None, f"{assignment}: the unanswered release raised no error at all"
    index, cell, error = first_error
    unanswered = error.ename == "NotImplementedError" or "not implemented yet" in error.evalue
    assert unanswered, f"{assignment}: cell {index} fails before the first question: {error.ename}: {error.evalue}"
    first_question = questions(nb)[0]
    assert nbgrader_meta(cell).get("grade_id") in (first_question, f"test_{first_question}"), \
        f"{assignment}: the first stub to fail is in cell {nbgrader_meta(cell).get('grade_id')}, not {first_question}"


def teardown_module(module):
    if TIMINGS:
        print("\ngrading-pipeline timings:")
        for key, value in TIMINGS.items():
            print(f"  {key}: {value:.1f}" if isinstance(value, float) else f"  {key}: {value}")
