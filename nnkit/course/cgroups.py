"""Control groups: memory and process limits for a whole process tree (a kernel and its children).

``setrlimit`` limits each process on its own: a kernel that forks ten children may use ten
times its memory limit. A control group counts the tree. Both kinds exist in the wild:

* **cgroup v2** (one unified hierarchy, ``/sys/fs/cgroup/cgroup.controllers`` exists): a group
  gets ``memory.max`` and ``pids.max``; its parent must delegate the ``memory`` and ``pids``
  controllers (``cgroup.subtree_control``);
* **cgroup v1** (one hierarchy per controller, ``/sys/fs/cgroup/memory`` and
  ``/sys/fs/cgroup/pids``): ``memory.limit_in_bytes`` (and ``memory.memsw.limit_in_bytes``
  where swap is accounted) and ``pids.max``.

Groups are created below the grader's own group, so a grader confined by its host stays
confined. :func:`create` returns ``None`` with the reason when neither works (no root, a
read-only ``/sys/fs/cgroup``); the grader then relies on the per-process limits and says so.
"""
from __future__ import annotations

import contextlib
import os
from dataclasses import dataclass

ROOT = "/sys/fs/cgroup"


@dataclass
class Group:
    """One control group: the folders a process joins (v1: one per controller, v2: one)."""

    version: int                # 1 or 2 (0: not known, for reading only)
    folders: list[str]

    def join(self, pid: int = 0) -> None:
        """Move process ``pid`` (0: the caller) into the group."""
        for folder in self.folders:
            _write(os.path.join(folder, "cgroup.procs"), str(pid or os.getpid()))

    def oom_kills(self) -> int:
        """How many processes the kernel's OOM killer has killed in this group."""
        for folder in self.folders:
            with contextlib.suppress(OSError, ValueError):
                name = "memory.events" if os.path.exists(os.path.join(folder, "memory.events")) else "memory.oom_control"
                for line in open(os.path.join(folder, name)):
                    key, _, value = line.partition(" ")
                    if key == "oom_kill":
                        return int(value)
        return 0


def version() -> int | None:
    """2, 1, or None when this process cannot manage control groups."""
    if os.path.exists(os.path.join(ROOT, "cgroup.controllers")):
        return 2
    if os.path.isdir(os.path.join(ROOT, "memory")) and os.path.isdir(os.path.join(ROOT, "pids")):
        return 1
    return None


def _own(controller: str) -> str:
    """This process's group in ``controller``'s hierarchy ("" for v2's unified one)."""
    for line in open("/proc/self/cgroup"):
        _, names, path = line.rstrip("\n").split(":", 2)
        if names.split(",") == [controller] or (controller == "" and names == ""):
            return path
    raise OSError(f"this process is in no {controller or 'unified'} control group")


def _write(path: str, value: str) -> None:
    with open(path, "w") as f:
        f.write(value)


def create(name: str, *, memory: int | None, pids: int | None) -> tuple[Group | None, str]:
    """A new group ``name`` (a relative path, e.g. ``nnkit-123/k0``) below this process's own.

    Returns the group and what was applied, or None and why not.
    """
    v = version()
    try:
        if v == 2:
            return _create_v2(name, memory, pids)
        if v == 1:
            return _create_v1(name, memory, pids)
    except OSError as e:
        return None, f"refused: {e}"
    return None, "refused: no cgroup v1 or v2 memory and pids controllers under /sys/fs/cgroup"


def _create_v1(name: str, memory: int | None, pids: int | None) -> tuple[Group, str]:
    mem = os.path.join(ROOT, "memory", _own("memory").lstrip("/"), name)
    pid = os.path.join(ROOT, "pids", _own("pids").lstrip("/"), name)
    for folder in (mem, pid):
        os.makedirs(folder, exist_ok=True)
    if memory:
        _write(os.path.join(mem, "memory.limit_in_bytes"), str(memory))
        with contextlib.suppress(OSError):  # only where swap is accounted
            _write(os.path.join(mem, "memory.memsw.limit_in_bytes"), str(memory))
        with contextlib.suppress(OSError):
            _write(os.path.join(mem, "memory.swappiness"), "0")
    if pids:
        _write(os.path.join(pid, "pids.max"), str(pids))
    return Group(1, [mem, pid]), "cgroup v1 (memory, pids)"


def _create_v2(name: str, memory: int | None, pids: int | None) -> tuple[Group, str]:
    base = os.path.join(ROOT, _own("").lstrip("/"))
    folder = os.path.join(base, name)
    # every folder on the way down delegates memory and pids to its children
    parts = name.strip("/").split("/")
    here = base
    for part in parts:
        with contextlib.suppress(OSError):
            _write(os.path.join(here, "cgroup.subtree_control"), "+memory +pids")
        here = os.path.join(here, part)
        os.makedirs(here, exist_ok=True)
    if memory:
        _write(os.path.join(folder, "memory.max"), str(memory))
        with contextlib.suppress(OSError):
            _write(os.path.join(folder, "memory.swap.max"), "0")
    if pids:
        _write(os.path.join(folder, "pids.max"), str(pids))
    return Group(2, [folder]), "cgroup v2 (memory, pids)"


def remove_tree(name: str) -> None:
    """Remove ``name`` (as given to :func:`create`) and everything below it, in every hierarchy."""
    v = version()
    if v is None:
        return
    bases = ([os.path.join(ROOT, _own("").lstrip("/"))] if v == 2 else
             [os.path.join(ROOT, c, _own(c).lstrip("/")) for c in ("memory", "pids")])
    for base in bases:
        top = os.path.join(base, name)
        for dirpath, _, _ in sorted(os.walk(top), key=lambda w: -len(w[0])):
            with contextlib.suppress(OSError):
                os.rmdir(dirpath)
