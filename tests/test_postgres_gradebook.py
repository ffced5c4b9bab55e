"""The gradebook on a real PostgreSQL server, shared by two graders running at the same time.

The test starts its own cluster (initdb + pg_ctl, as the ``postgres`` user when run as root)
in a temporary folder, listening on 127.0.0.1 and a free port, and stops it afterwards, even
when a test fails. It is skipped, with the reason, where the PostgreSQL server binaries are
not installed (Debian: ``apt-get install postgresql``; they live in /usr/lib/postgresql/*/bin).

Two ``nnkit grade --student …`` processes grade the two halves of a class into the one
PostgreSQL gradebook concurrently — what two machines would do — and ``nnkit export`` must
then list every student with the score they earned.
"""
from __future__ import annotations

import csv
import glob
import os
import pwd
import shutil
import socket
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest

pytest.importorskip("nbgrader")
pytest.importorskip("psycopg2", reason="psycopg2 (the instructor extra) is needed for PostgreSQL URLs")

from nnkit.course import fixtures as F  # noqa: E402
from nnkit.course import gradebook as GB  # noqa: E402

REPO = Path(__file__).resolve().parents[1]


def _pg_bin() -> Path | None:
    found = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"), key=lambda p: int(p.split("/")[-3]))
    if found:
        return Path(found[-1]).parent
    on_path = shutil.which("pg_ctl")
    return Path(on_path).resolve().parent if on_path else None


PG_BIN = _pg_bin()
pytestmark = pytest.mark.skipif(PG_BIN is None, reason="PostgreSQL server binaries (initdb, pg_ctl) not installed")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def postgres():
    """A throw-away PostgreSQL cluster; yields its SQLAlchemy URL, stops and deletes it after."""
    as_root = os.geteuid() == 0
    user = "postgres" if as_root else pwd.getpwuid(os.getuid()).pw_name
    if as_root:
        try:
            pw = pwd.getpwnam("postgres")
        except KeyError:
            pytest.skip("running as root and there is no 'postgres' user to run the server")
    base = Path(tempfile.mkdtemp(prefix="nnkit-pg-"))
    os.chmod(base, 0o755)
    if as_root:
        os.chown(base, pw.pw_uid, pw.pw_gid)
    data, log, sock = base / "data", base / "server.log", base
    port = _free_port()
    run_as = {"user": user} if as_root else {}

    def pg(*args, check=True, timeout=120):
        return subprocess.run([str(PG_BIN / args[0]), *args[1:]], capture_output=True, text=True, check=check,
                              timeout=timeout, cwd=str(base), **run_as)

    started = False
    try:
        pg("initdb", "-D", str(data), "-A", "trust", "-U", user, "--no-sync", "-E", "UTF8")
        pg("pg_ctl", "-D", str(data), "-l", str(log), "-w", "-t", "60", "-o",
           f"-p {port} -k {sock} -c listen_addresses=127.0.0.1 -c fsync=off", "start")
        started = True
        pg("createdb", "-h", "127.0.0.1", "-p", str(port), "-U", user, "gradebook")
        yield f"postgresql://{user}@127.0.0.1:{port}/gradebook"
    except subprocess.CalledProcessError as e:
        pytest.fail(f"could not start PostgreSQL: {e.cmd}\n{e.stdout}\n{e.stderr}\n"
                    + (log.read_text() if log.exists() else ""))
    finally:
        if started:
            pg("pg_ctl", "-D", str(data), "-m", "immediate", "-w", "stop", check=False)
        shutil.rmtree(base, ignore_errors=True)


def nnkit(*args, timeout=600) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "nnkit.course", *map(str, args)], capture_output=True,
                          text=True, timeout=timeout)


def test_the_gradebook_api_works_on_postgresql(postgres, tmp_path):
    root = F.make_course(tmp_path / "course", REPO, release=False)
    F.generate(root, F.TINY, db_url=postgres)
    assert GB.has_assignment(postgres, "nnkit", F.TINY)
    private = f"sqlite:///{tmp_path / 'private.db'}"
    GB.copy_assignment(postgres, private, "nnkit", F.TINY)       # PostgreSQL -> SQLite
    with GB.open_gradebook(private, "nnkit") as gb:
        a = gb.find_assignment(F.TINY)
        assert {c.name for c in a.notebooks[0].grade_cells} == set(F.POINTS)
        assert a.max_score == sum(F.POINTS.values())


@pytest.mark.notebooks
def test_two_graders_share_one_postgresql_gradebook(postgres, tmp_path):
    root = F.make_course(tmp_path / "course", REPO, release=False)
    assert nnkit("--course", root, "--db", postgres, "release", F.TINY).returncode == 0
    good = F.answered(root, F.TINY)
    full = sum(F.POINTS.values())
    expected = {}
    for i in range(3):
        F.submit(root, f"good{i}", F.TINY, good)
        expected[f"good{i}"] = full
    F.submit(root, "wrong_add", F.TINY, F.with_cell(good, "add", "def add(a, b):\n    return a - b"))
    expected["wrong_add"] = full - F.POINTS["test_add"]
    F.submit(root, "wrong_square", F.TINY, F.with_cell(good, "square", "def square(x):\n    return 2 * x"))
    expected["wrong_square"] = full - F.POINTS["test_square"]
    F.submit(root, "blank", F.TINY, F.read_release(root, F.TINY))
    expected["blank"] = 0.0

    common = ["--course", root, "--db", postgres, "grade", F.TINY, "--jobs", "1", "--timeout", "20",
              "--no-progress"]
    names = sorted(expected)
    halves = [[arg for s in names[k::2] for arg in ("--student", s)] for k in (0, 1)]
    procs = [subprocess.Popen([sys.executable, "-m", "nnkit.course", *map(str, common), *half],
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) for half in halves]
    outs = [p.communicate(timeout=600) for p in procs]
    for p, (out, err) in zip(procs, outs):
        assert p.returncode == 0, err[-3000:] + out[-2000:]
    assert sum(int(out.split(" submission")[0].split(": ")[-1]) for out, _ in outs) == len(expected)
    assert not (root / "gradebook.db").exists(), "the SQLite default was used instead of PostgreSQL"

    scores = GB.scores(postgres, "nnkit", F.TINY)
    assert {s: v["score"] for s, v in scores.items()} == expected

    csv_path = tmp_path / "grades.csv"
    proc = nnkit("--course", root, "--db", postgres, "export", "--to", csv_path)
    assert proc.returncode == 0, proc.stderr[-2000:]
    rows = {r["student_id"]: float(r["score"]) for r in csv.DictReader(open(csv_path)) if r["assignment"] == F.TINY}
    assert rows == expected
