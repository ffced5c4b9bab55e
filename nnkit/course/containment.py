"""What a grading run confines each kernel with: uids, the file system it sees, control groups.

``plan`` decides, once per run, what this machine allows and writes one sandbox spec per
worker (``sandbox.SandboxSpec``); the launcher applies it in the kernel's process. Here:

* **uids** — as root, two unused uids per worker, locked against other graders on the machine:
  a worker keeps its next kernel started while it grades with the current one, and the two
  kernels never share a uid (nor a control group, nor a runtime folder);
* **the allow-list** — what a kernel sees of the file system: the Python environment and the
  ``nnkit`` package (with an editable install, the package folder itself, never the repository
  around it), besides the system folders the launcher always shows;
* **control groups** — per kernel slot, one group for the kernel (memory and processes of its
  whole tree), and per worker one for the worker itself (its memory), under ``nnkit-grade-<pid>``.
"""
from __future__ import annotations

import contextlib
import dataclasses
import json
import os
import pwd
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

from . import cgroups
from . import config as C
from . import sandbox as SB

_UID_LOCKS: list = []   # open lock files of the uids this process has claimed


def free_uids(base: int, n: int) -> list[int]:
    """``n`` uids from ``base`` up that no account uses, the user namespace maps, no process
    runs as, and no other ``nnkit grade`` on this machine has claimed (a lock file per uid,
    held until this process exits: two graders must never share a kernel uid, or cleaning
    up one's processes would kill the other's kernels)."""
    import fcntl

    ranges = []
    with contextlib.suppress(OSError):
        for line in open("/proc/self/uid_map"):
            inside, _, count = (int(x) for x in line.split())
            ranges.append((inside, inside + count))
    lockdir = Path(tempfile.gettempdir()) / "nnkit-grade-uids"
    lockdir.mkdir(mode=0o700, exist_ok=True)
    out, uid = [], base
    while len(out) < n and uid < base + 100_000:
        candidate, uid = uid, uid + 1
        if ranges and not any(lo <= candidate < hi for lo, hi in ranges):
            continue
        try:
            pwd.getpwuid(candidate)
            continue
        except KeyError:
            pass
        fd = os.open(lockdir / str(candidate), os.O_RDWR | os.O_CREAT, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            os.close(fd)
            continue
        if SB.live_processes(candidate):
            os.close(fd)
            continue
        _UID_LOCKS.append(fd)
        out.append(candidate)
    if len(out) < n:
        raise C.CourseError(f"could not find {n} unused uids from {base} for the grading kernels")
    return out


def _uid_can_run_python(uid: int) -> bool:
    """Can ``uid`` start this Python and import nnkit? (Without a private mount namespace the
    kernel sees the real file system, where e.g. a Python under /root is out of its reach.)"""
    import nnkit

    paths = [os.path.realpath(sys.executable), str(Path(nnkit.__file__).resolve())]
    pid = os.fork()
    if pid == 0:  # pragma: no cover - child
        ok = False
        with contextlib.suppress(BaseException):
            os.setgroups([])
            os.setgid(uid)
            os.setuid(uid)
            ok = os.access(paths[0], os.X_OK) and os.access(paths[1], os.R_OK)
        os._exit(0 if ok else 1)
    _, status = os.waitpid(pid, 0)
    return os.waitstatus_to_exitcode(status) == 0


def release_uids() -> None:
    while _UID_LOCKS:
        with contextlib.suppress(OSError):
            os.close(_UID_LOCKS.pop())


def kernel_paths(root: Path) -> list[str]:
    """The folders a kernel must see besides the system: its Python environment and nnkit.

    The kernel's own ``sys.path`` (an isolated interpreter, as the kernel starts) gives the
    environment; a folder that holds the course, or lies inside it without being part of the
    environment (an editable install's repository, ``solutions/`` beside it), is never shown:
    the ``nnkit`` package folder is shown on its own instead.
    """
    import nnkit

    out = subprocess.run([sys.executable, "-I", "-c", "import sys, json; print(json.dumps(sys.path))"],
                         capture_output=True, text=True, check=True)
    env = {os.path.realpath(p) for p in (sys.prefix, sys.base_prefix, sys.exec_prefix, sys.base_exec_prefix)}
    env.add(os.path.dirname(os.path.dirname(os.path.realpath(sys.executable))))
    course = str(root)
    keep = []
    for p in [*json.loads(out.stdout), *env]:
        p = os.path.realpath(p)
        if not os.path.isdir(p) or SB.under(course, p):
            continue
        if SB.under(p, course) and not any(SB.under(p, e) for e in env):
            continue
        keep.append(p)
    keep.append(str(Path(nnkit.__file__).resolve().parent))
    return outermost(keep)


def outermost(paths) -> list[str]:
    """The paths that are not inside another path of the list (sorted, deduplicated)."""
    out: list[str] = []
    for p in sorted({os.path.normpath(p) for p in paths if p}, key=len):
        if not any(SB.under(p, q) for q in out):
            out.append(p)
    return sorted(out)


def _home_seed(dest: Path) -> str:
    """A HOME template with matplotlib's font cache, so that no kernel rebuilds it."""
    mpl = dest / ".config" / "matplotlib"
    mpl.mkdir(parents=True, exist_ok=True)
    with contextlib.suppress(Exception):
        import matplotlib

        cache = Path(matplotlib.get_cachedir())
        for f in cache.glob("fontlist-*.json"):
            shutil.copy(f, mpl / f.name)
    return str(dest)


def lock_down(root: Path, cfg, url: str) -> None:
    """Without a private mount namespace: permissions keep the kernel's uid out."""
    sub = root / C.directory(cfg, "submitted_directory", "submitted")
    auto = root / C.directory(cfg, "autograded_directory", "autograded")
    with contextlib.suppress(OSError):
        os.chmod(sub, 0o700)
    auto.mkdir(exist_ok=True)
    os.chmod(auto, 0o711)
    for p in auto.iterdir():
        if p.is_dir():
            os.chmod(p, 0o700)
    if url.startswith("sqlite:///"):
        with contextlib.suppress(OSError):
            os.chmod(url[len("sqlite:///"):], 0o600)


#: kernels a worker may have at once with uids of their own: the one grading, the next one
LANES = 2


@dataclasses.dataclass
class Plan:
    """The containment of one grading run: what the report shows, and what each worker applies.

    ``uids`` and ``kernel_groups`` are per kernel slot: worker ``w`` has slots ``w * lanes``
    up to ``(w + 1) * lanes``, one per kernel it may have at once (``worker_slots``)."""

    info: dict                                   # for the summary and the JSON report
    specs: list[dict] | None = None              # one SandboxSpec (as a dict) per worker
    uids: list[int] | None = None                # per kernel slot
    kernel_groups: list[list[str]] | None = None   # per kernel slot: the kernel's cgroup folders
    worker_groups: list[list[str]] | None = None   # per worker: the worker's own cgroup folders
    cgroup_root: str | None = None               # what to remove at the end
    lanes: int = 1                               # kernel slots per worker

    def worker_slots(self, worker: int, table: list | None) -> list | None:
        """The entries of ``table`` (``uids``, ``kernel_groups``) that belong to ``worker``."""
        return table[worker * self.lanes:(worker + 1) * self.lanes] if table else None

    def release(self) -> None:
        """Kill what is left of the kernels and give back the uids and control groups."""
        for uid in self.uids or []:
            with contextlib.suppress(Exception):
                SB.kill_uid(uid)
        release_uids()
        if self.cgroup_root:
            cgroups.remove_tree(self.cgroup_root)


def plan(root: Path, url: str, opts, workdir: Path, jobs: int) -> Plan:
    """What this machine lets the grader apply, and the per-worker sandbox specs."""
    info: dict = {"sandbox": opts.sandbox}
    if not opts.sandbox:
        info["note"] = "no sandbox (--no-sandbox): student code runs as the grader, with the grader's rights"
        return Plan(info)
    probe = SB.probe()
    is_root = probe["root"]
    info.update(probe)
    uids = free_uids(opts.uid_base, jobs * LANES) if is_root else None
    if uids and not probe["mounts"] and not _uid_can_run_python(uids[0]):
        release_uids()
        uids = None
        info["note"] = ("kernels run as root: without a mount namespace an unprivileged uid cannot "
                        "reach this Python installation")
    lanes = LANES if uids else 1
    groups = _control_groups(opts, jobs, lanes, info) if is_root else None
    seed = _home_seed(workdir / "home-seed")
    os.chmod(workdir / "home-seed", 0o755)
    allow = kernel_paths(root)
    specs = [dataclasses.asdict(SB.SandboxSpec(
        memory=opts.memory, cpu=opts.cpu, nproc=opts.nproc, fsize=opts.fsize,
        uid=uids[slot * lanes] if uids else None, gid=uids[slot * lanes] if uids else None,
        network=opts.network, mounts=probe["mounts"], allow=allow,
        mask=[str(root), str(workdir), os.path.expanduser("~")],
        cgroup=groups[0][slot * lanes] if groups else [], home_seed=seed)) for slot in range(jobs)]
    info["user"] = (f"uids {uids[0]}–{uids[-1]}" if uids else
                    "root (no unprivileged uid: RLIMIT_NPROC does not hold)" if is_root else "the grader's own")
    info["network"] = "host network" if opts.network else (
        "none (network namespace)" if probe["namespaces"] else "not isolated (no namespaces)")
    info["files"] = ("allow-list: the system, the Python environment and nnkit read-only; "
                     "the student's copy, /tmp and /dev/shm on capped tmpfs" if probe["mounts"]
                     else "permissions only")
    info["lock_down"] = bool(is_root and not probe["mounts"])
    info["limits"] = {"memory": opts.memory, "cpu_seconds": opts.cpu, "processes": opts.nproc,
                      "file_size": opts.fsize, "output_chars_per_cell": opts.max_output_chars,
                      "notebook_seconds": opts.notebook_timeout, "worker_memory": opts.worker_memory}
    return Plan(info, specs, uids, groups[0] if groups else None, groups[1] if groups else None,
                info.get("cgroup_root"), lanes)


def _control_groups(opts, jobs: int, lanes: int, info: dict):
    """Per kernel slot the kernel's group, per worker the worker's group; None where the host
    refuses."""
    name = f"nnkit-grade-{os.getpid()}"
    kernels, workers = [], []
    for slot in range(jobs):
        made = [cgroups.create(f"{name}/k{slot}" + (f"-{lane}" if lane else ""), memory=opts.memory,
                               pids=opts.nproc) for lane in range(lanes)]
        worker, _ = cgroups.create(f"{name}/w{slot}", memory=opts.worker_memory, pids=None)
        how = made[-1][1]
        if worker is None or any(kernel is None for kernel, _ in made):
            cgroups.remove_tree(name)
            info["cgroup"] = f"{how}: memory and processes limited per process only"
            return None
        kernels += [kernel.folders for kernel, _ in made]
        workers.append(worker.folders)
    info["cgroup"] = f"{how}: memory and processes counted for each kernel's whole process tree"
    info["cgroup_root"] = name
    return kernels, workers


