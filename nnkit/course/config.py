"""Finding the course, reading its ``nbgrader_config.py`` and running nbgrader in it."""
from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

CONFIG_FILE = "nbgrader_config.py"


class CourseError(RuntimeError):
    """The course folder or its configuration is not usable (a message for the instructor)."""


def find_course_root(start: str | os.PathLike | None = None) -> Path:
    """The folder holding ``nbgrader_config.py``: ``start`` or the nearest parent of it."""
    here = Path(start or os.getcwd()).resolve()
    for folder in (here, *here.parents):
        if (folder / CONFIG_FILE).is_file():
            return folder
    raise CourseError(f"no {CONFIG_FILE} in {here} or its parents: run from the course folder "
                      "or pass --course DIR")


def normalize_db_url(url: str | None) -> str | None:
    """``postgresql://…`` names a driver by default (psycopg 3 under SQLAlchemy 2.1); when only
    psycopg2 (this course's instructor extra) is installed, say so in the URL."""
    if not url or not url.startswith(("postgresql://", "postgres://")):
        return url
    import importlib.util

    if importlib.util.find_spec("psycopg") is None and importlib.util.find_spec("psycopg2") is not None:
        return "postgresql+psycopg2://" + url.split("://", 1)[1]
    return url


def load_config(root: Path, db_url: str | None = None):
    """The course's nbgrader configuration, as nbgrader itself would read it in ``root``.

    ``NbGraderAPI`` does not read the file by itself; this does, and pins the course root (and
    the gradebook URL when one is given).
    """
    from traitlets.config.loader import PyFileConfigLoader

    ensure_scripts_on_path()
    root = Path(root).resolve()
    cfg = PyFileConfigLoader(CONFIG_FILE, path=str(root)).load_config()
    cfg.CourseDirectory.root = str(root)
    if db_url:
        cfg.CourseDirectory.db_url = db_url
    if cfg.CourseDirectory.get("db_url", None):
        cfg.CourseDirectory.db_url = normalize_db_url(cfg.CourseDirectory.db_url)
    return cfg


def course_id(cfg) -> str:
    return cfg.CourseDirectory.get("course_id", None) or "default_course"


def db_url(cfg, root: Path) -> str:
    url = cfg.CourseDirectory.get("db_url", None)
    return url or "sqlite:///" + str(Path(root) / "gradebook.db")


def directory(cfg, name: str, default: str) -> str:
    return cfg.CourseDirectory.get(name, None) or default


def ensure_scripts_on_path() -> None:
    """nbgrader runs ``alembic`` from PATH when it creates a gradebook: make this interpreter's
    scripts folder visible even when the virtual environment is not activated."""
    bindir = os.path.dirname(sys.executable)
    if bindir not in os.environ.get("PATH", "").split(os.pathsep):
        os.environ["PATH"] = bindir + os.pathsep + os.environ.get("PATH", "")


def nbgrader_env(db: str | None = None) -> dict:
    env = dict(os.environ)
    env.setdefault("PYTHONWARNINGS", "ignore")
    bindir = os.path.dirname(sys.executable)  # nbgrader runs `alembic` from PATH
    if bindir not in env.get("PATH", "").split(os.pathsep):
        env["PATH"] = bindir + os.pathsep + env.get("PATH", "")
    if db:
        env["NNKIT_GRADEBOOK_URL"] = db
    return env


def run_nbgrader(root: Path, *args: str, db: str | None = None, check: bool = True,
                 quiet: bool = False) -> subprocess.CompletedProcess:
    """``nbgrader ARGS`` in the course folder (nbgrader reads its config from the cwd only)."""
    cmd = [sys.executable, "-m", "nbgrader", *args]
    db = normalize_db_url(db)
    if db:
        cmd.append(f"--CourseDirectory.db_url={db}")
    proc = subprocess.run(cmd, cwd=str(root), env=nbgrader_env(db), text=True,
                          capture_output=quiet)
    if check and proc.returncode != 0:
        detail = f"\n{proc.stderr[-3000:]}" if quiet and proc.stderr else ""
        raise CourseError(f"nbgrader {' '.join(args)} failed (exit code {proc.returncode}){detail}")
    return proc
