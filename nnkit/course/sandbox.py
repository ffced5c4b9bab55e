"""A kernel launcher that confines a student's code before it runs.

nbgrader starts one Jupyter kernel per submitted notebook. For grading runs, ``nnkit grade``
registers a kernelspec (in a private ``JUPYTER_PATH``) whose argv is::

    python -m nnkit.course.sandbox --spec SPEC.json -f {connection_file}

This module runs first, as the grader's user, and then *replaces itself* with ipykernel
(``execve``), so the kernel keeps the process id that jupyter_client watches, interrupts and
kills. Before that it applies, in this order:

1. **no network** — a new network namespace (``unshare(CLONE_NEWNET)``): only a loopback
   device that is down. The kernel talks to nbgrader over Unix-domain sockets (jupyter_client
   ``KernelManager.transport = "ipc"``), which do not need the network.
2. **a private view of the file system** — a new mount namespace: empty, root-owned tmpfs over
   the course folder (solutions, gradebook, other students' submissions), the grader's home,
   ``/tmp``, ``/var/tmp``, ``/dev/shm`` and the grading work folder; then the few folders the
   kernel needs are put back (the Python installation, the ``nnkit`` package, the kernel's
   socket folder), read-only; the student's folder becomes a *copy* on a size-limited tmpfs,
   so whatever the code writes is thrown away with the namespace.
3. **resource limits** (``setrlimit``): address space (memory), CPU seconds, number of
   processes (fork bombs), file size, open files, no core dumps.
4. **an unprivileged user** when started as root (``RLIMIT_NPROC`` is not enforced for root):
   a uid of its own per grading worker, no supplementary groups, ``no_new_privs``.
5. **a scrubbed environment**: only an allow-list of variables (no database URL, no tokens),
   a private ``HOME``, one thread for BLAS/OpenMP.

Every step that the operating system refuses is recorded and reported (``--probe`` prints
what is available); see docs/grading.md for what is and is not contained.
"""
from __future__ import annotations

import ctypes
import errno
import json
import os
import contextlib
import glob
import resource
import shutil
import signal
import sys
from dataclasses import asdict, dataclass, field

# --- Linux constants (x86-64 and arm64 share these) -----------------------------------------------
CLONE_NEWNS = 0x00020000
CLONE_NEWUSER = 0x10000000
CLONE_NEWNET = 0x40000000
MS_RDONLY = 1
MS_NOSUID = 2
MS_NODEV = 4
MS_NOEXEC = 8
MS_REMOUNT = 32
MS_BIND = 4096
MS_REC = 16384
MS_PRIVATE = 1 << 18
SYS_OPEN_TREE = 428
SYS_MOVE_MOUNT = 429
OPEN_TREE_CLONE = 1
OPEN_TREE_CLOEXEC = 0o2000000
AT_RECURSIVE = 0x8000
MOVE_MOUNT_F_EMPTY_PATH = 0x4
SYS_MOUNT_SETATTR = 442
MOUNT_ATTR_RDONLY, MOUNT_ATTR_NOSUID, MOUNT_ATTR_NODEV = 0x1, 0x2, 0x4
MNT_DETACH = 2
PR_SET_NO_NEW_PRIVS = 38
PR_SET_CHILD_SUBREAPER = 36

#: what every kernel sees of the machine, read-only, besides the Python environment: the
#: system's programs and libraries, the few files of /etc that the dynamic linker, the C
#: library and matplotlib read, and the CPU topology that BLAS and PyTorch ask for
SYSTEM_ALLOW = (
    "/usr", "/bin", "/sbin", "/lib", "/lib32", "/lib64", "/libx32",
    "/etc/ld.so.cache", "/etc/ld.so.conf", "/etc/ld.so.conf.d", "/etc/localtime", "/etc/passwd",
    "/etc/group", "/etc/nsswitch.conf", "/etc/alternatives", "/etc/fonts", "/etc/mime.types",
    "/sys/devices/system/cpu",
)
#: device nodes a kernel may open (GPUs, where present, so that CUDA checks can run)
DEVICES = ("/dev/null", "/dev/zero", "/dev/full", "/dev/random", "/dev/urandom")

#: environment variables a grading kernel may inherit (everything else is dropped)
ENV_ALLOW = (
    "PATH", "LANG", "LANGUAGE", "LC_ALL", "LC_CTYPE", "LC_NUMERIC", "TZ", "TERM",
    "PYTHONWARNINGS", "PYTHONHASHSEED", "PYTHONIOENCODING", "PYTHONUTF8",
    "MPLBACKEND", "NBGRADER_EXECUTION", "JPY_PARENT_PID", "JPY_SESSION_NAME",
    "CUDA_VISIBLE_DEVICES", "VIRTUAL_ENV",
)


@dataclass
class SandboxSpec:
    """What the launcher applies; written by the grader as JSON next to the kernelspec."""

    memory: int | None = 4 << 30          # RLIMIT_AS per process, and the cgroup's limit, bytes
    cpu: int | None = 600                 # RLIMIT_CPU, seconds of CPU for the whole kernel
    nproc: int | None = 256               # processes + threads: the cgroup's pids.max, RLIMIT_NPROC
    fsize: int | None = 64 << 20          # RLIMIT_FSIZE, bytes per file written
    nofile: int | None = 256              # RLIMIT_NOFILE
    uid: int | None = None                # run as this uid (root only); None: stay
    gid: int | None = None
    network: bool = False                 # False: new network namespace
    mounts: bool = True                   # a file system built from the allow-list
    allow: list[str] = field(default_factory=list)     # folders shown read-only (Python, nnkit)
    allow_rw: list[str] = field(default_factory=list)  # folders shown writable (the socket folder)
    mask: list[str] = field(default_factory=list)      # never shown, even inside a system folder
    cgroup: list[str] = field(default_factory=list)    # cgroup folders the kernel joins
    workspace_size: int = 256 << 20       # tmpfs for the copy of the student's folder
    tmp_size: int = 128 << 20             # tmpfs for /tmp (HOME lives there)
    shm_size: int = 16 << 20              # tmpfs for /dev/shm
    home_seed: str | None = None          # folder copied into the private HOME
    threads: int = 1                      # OMP/OpenBLAS/MKL threads
    kill_uid_first: bool = True           # SIGKILL leftovers of this uid before starting
    report: str | None = None             # where to write what was applied (JSON)

    def to_json(self) -> str:
        return json.dumps(asdict(self), indent=1)

    @classmethod
    def from_file(cls, path: str) -> "SandboxSpec":
        with open(path) as f:
            data = json.load(f)
        return cls(**{k: v for k, v in data.items() if k in cls.__dataclass_fields__})


class SandboxError(OSError):
    """A confinement step that the operating system refused."""


_libc = None


def libc():
    global _libc
    if _libc is None:
        _libc = ctypes.CDLL(None, use_errno=True)
        _libc.syscall.restype = ctypes.c_long
    return _libc


def _check(ret: int, what: str) -> int:
    if ret < 0:
        err = ctypes.get_errno()
        raise SandboxError(err, f"{what}: {os.strerror(err)}")
    return ret


def unshare(flags: int) -> None:
    _check(libc().unshare(ctypes.c_int(flags)), f"unshare({flags:#x})")


def mount(source: str | None, target: str, fstype: str | None, flags: int, data: str | None = None) -> None:
    enc = (lambda s: None if s is None else os.fsencode(s))
    _check(libc().mount(enc(source), enc(target), enc(fstype), ctypes.c_ulong(flags), enc(data)),
           f"mount {fstype or source} on {target}")


def open_tree(path: str) -> int:
    """A detached, recursive copy of the mount tree at ``path`` (Linux ≥ 5.2)."""
    return _check(libc().syscall(ctypes.c_long(SYS_OPEN_TREE), ctypes.c_int(-100), os.fsencode(path),
                                 ctypes.c_uint(OPEN_TREE_CLONE | OPEN_TREE_CLOEXEC | AT_RECURSIVE)),
                  f"open_tree {path}")


def move_mount(fd: int, target: str) -> None:
    _check(libc().syscall(ctypes.c_long(SYS_MOVE_MOUNT), ctypes.c_int(fd), b"", ctypes.c_int(-100),
                          os.fsencode(target), ctypes.c_uint(MOVE_MOUNT_F_EMPTY_PATH)),
           f"move_mount onto {target}")


def under(path: str, root: str) -> bool:
    """Is ``path`` the folder ``root`` or inside it (by name)?"""
    path, root = os.path.normpath(path), os.path.normpath(root)
    return path == root or path.startswith(root.rstrip("/") + "/")


# --- the steps ------------------------------------------------------------------------------------
def live_processes(uid: int) -> list[int]:
    """The processes of ``uid`` that are alive (zombies, already dead and only waiting to be
    reaped, are not counted)."""
    out = []
    for pid in os.listdir("/proc"):
        if not pid.isdigit():
            continue
        with contextlib.suppress(OSError, IndexError):
            if os.stat(f"/proc/{pid}").st_uid != uid:
                continue
            with open(f"/proc/{pid}/stat") as f:
                state = f.read().rsplit(")", 1)[1].split()[0]
            if state not in ("Z", "X"):
                out.append(int(pid))
    return out


def wait_gone(uid: int, seconds: float = 3.0) -> None:
    """Wait (briefly) until the processes of ``uid`` just killed have died, so that they can be reaped."""
    import time

    deadline = time.monotonic() + seconds
    while live_processes(uid) and time.monotonic() < deadline:
        time.sleep(0.05)


def become_subreaper() -> bool:
    """Orphaned descendants (a kernel's children) become this process's children, so that it
    can reap them, whatever the machine's init does with orphans."""
    return libc().prctl(ctypes.c_int(PR_SET_CHILD_SUBREAPER), ctypes.c_ulong(1), ctypes.c_ulong(0),
                        ctypes.c_ulong(0), ctypes.c_ulong(0)) == 0


def reap_children() -> int:
    """Collect every child that has exited; returns how many."""
    reaped = 0
    while True:
        try:
            pid, _ = os.waitpid(-1, os.WNOHANG)
        except ChildProcessError:
            return reaped
        if pid == 0:
            return reaped
        reaped += 1


def kill_uid(uid: int) -> None:
    """SIGKILL every process of ``uid`` (leftovers of an earlier kernel, a fork bomb's children).

    A child process takes the uid and calls ``kill(-1, SIGKILL)``: the kernel delivers it to
    every process that uid may signal, i.e. exactly that uid's processes.
    """
    pid = os.fork()
    if pid == 0:  # pragma: no cover - runs in the child
        try:
            os.setgroups([])
            os.setgid(uid)
            os.setuid(uid)
            os.kill(-1, signal.SIGKILL)
        except BaseException:
            pass
        os._exit(0)
    os.waitpid(pid, 0)


def set_limits(spec: SandboxSpec) -> dict:
    applied = {}
    table = [
        ("RLIMIT_AS", resource.RLIMIT_AS, spec.memory, 0),
        ("RLIMIT_CPU", resource.RLIMIT_CPU, spec.cpu, 5),   # SIGXCPU at soft, SIGKILL at hard
        ("RLIMIT_NPROC", resource.RLIMIT_NPROC, spec.nproc, 0),
        ("RLIMIT_FSIZE", resource.RLIMIT_FSIZE, spec.fsize, 0),
        ("RLIMIT_NOFILE", resource.RLIMIT_NOFILE, spec.nofile, 0),
        ("RLIMIT_CORE", resource.RLIMIT_CORE, 0, 0),
    ]
    for name, res, value, slack in table:
        if value is None:
            continue
        soft, hard = resource.getrlimit(res)
        new_hard = value + slack
        if hard != resource.RLIM_INFINITY:
            new_hard = min(new_hard, hard)
        try:
            resource.setrlimit(res, (min(value, new_hard), new_hard))
            applied[name] = value
        except (ValueError, OSError) as e:
            applied[name] = f"refused: {e}"
    return applied


def _copy_tree_from_fd(src_fd: int, dest: str) -> None:
    """Copy a directory opened as ``src_fd`` into ``dest``; symbolic links are skipped."""
    os.makedirs(dest, exist_ok=True)
    for entry in os.scandir(src_fd):
        target = os.path.join(dest, entry.name)
        if entry.is_symlink():
            continue
        if entry.is_dir(follow_symlinks=False):
            sub = os.open(entry.name, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW, dir_fd=src_fd)
            try:
                _copy_tree_from_fd(sub, target)
            finally:
                os.close(sub)
        elif entry.is_file(follow_symlinks=False):
            fd = os.open(entry.name, os.O_RDONLY | os.O_NOFOLLOW, dir_fd=src_fd)
            try:
                with os.fdopen(fd, "rb", closefd=False) as fin, open(target, "wb") as fout:
                    shutil.copyfileobj(fin, fout)
            finally:
                os.close(fd)


def setns(fd: int, nstype: int) -> None:
    _check(libc().setns(ctypes.c_int(fd), ctypes.c_int(nstype)), "setns")


def fill_workspace(pid: int, ids: tuple[int, int], workspace: str, source: str, fsize: int | None) -> str | None:
    """Copy the student's folder ``source`` into the workspace of the running kernel ``pid``.

    For a kernel started before its submission was known (``kernel_pool``), in which nothing
    of a student's has run. As at a kernel's start (:func:`confine`), the files are copied as
    the kernel's uid, under its file-size limit, from a folder opened before entering the
    kernel's view: a child process enters the kernel's mount namespace, drops to its uid and
    copies. Returns None, or why the copy failed.
    """
    read_end, write_end = os.pipe()
    child = os.fork()
    if child == 0:  # pragma: no cover - runs in the child
        os.close(read_end)
        why = b""
        try:
            src_fd = os.open(source, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW)
            ns_fd = os.open(f"/proc/{pid}/ns/mnt", os.O_RDONLY)
            setns(ns_fd, CLONE_NEWNS)
            drop_privileges(*ids)
            if fsize:
                signal.signal(signal.SIGXFSZ, signal.SIG_IGN)   # a file too big fails, not the copy
                resource.setrlimit(resource.RLIMIT_FSIZE, (fsize, fsize))
            os.chdir(workspace)
            _copy_tree_from_fd(src_fd, workspace)
        except BaseException as e:  # noqa: BLE001 - reported to the parent
            why = (str(e) or type(e).__name__).encode()[:500]
        os.write(write_end, why)
        os._exit(0)
    os.close(write_end)
    with os.fdopen(read_end, "rb") as f:
        why = f.read().decode(errors="replace")
    _, status = os.waitpid(child, 0)
    if status != 0:
        return why or f"the copying process ended with status {status}"
    return why or None


def _arch_syscall(name: str) -> int:
    """Syscall numbers that differ between x86-64 and arm64."""
    import platform

    table = {"pivot_root": {"x86_64": 155, "aarch64": 41}}
    return table[name].get(platform.machine(), table[name]["x86_64"])


def pivot_root(new_root: str, put_old: str) -> None:
    _check(libc().syscall(ctypes.c_long(_arch_syscall("pivot_root")), os.fsencode(new_root),
                          os.fsencode(put_old)), f"pivot_root {new_root}")


def umount_detached(target: str) -> None:
    _check(libc().umount2(os.fsencode(target), ctypes.c_int(MNT_DETACH)), f"umount {target}")


def read_only(target: str) -> None:
    """Make the mount at ``target`` and every mount below it read-only (and nosuid, nodev)."""
    attr = (ctypes.c_uint64 * 4)(MOUNT_ATTR_RDONLY | MOUNT_ATTR_NOSUID | MOUNT_ATTR_NODEV, 0, 0, 0)
    ret = libc().syscall(ctypes.c_long(SYS_MOUNT_SETATTR), ctypes.c_int(-100), os.fsencode(target),
                         ctypes.c_uint(AT_RECURSIVE), attr, ctypes.c_size_t(32))
    if ret < 0:  # Linux < 5.12: the top mount only
        mount(None, target, None, MS_REMOUNT | MS_BIND | MS_RDONLY | MS_NOSUID | MS_NODEV)


def _place(new_root: str, path: str) -> str:
    """Create ``path`` inside ``new_root`` (folders 0755 on the way) and return its new name."""
    target = new_root + path
    os.makedirs(os.path.dirname(target), mode=0o755, exist_ok=True)
    return target


def allow_list_root(spec: SandboxSpec, cwd: str, owner: tuple[int, int], seed=()) -> dict:
    """Build the kernel's whole file system from an allow-list (in the new mount namespace).

    A fresh tmpfs becomes ``/``; into it go, read-only, the system folders and files of
    :data:`SYSTEM_ALLOW`, ``spec.allow`` (the Python environment and the nnkit package) and
    device nodes; writable, ``spec.allow_rw`` (the kernel's socket folder) and size-capped
    tmpfs for ``/tmp``, ``/dev/shm`` and the student's folder ``cwd`` (owned by ``owner``;
    its files are copied in later by :func:`confine`, after privileges are dropped). Nothing
    else of the machine exists for the kernel: not the course, its solutions or gradebook,
    other students' work, the grader's home or temporary files.
    """
    uid, gid = owner
    mount(None, "/", None, MS_REC | MS_PRIVATE)
    ro = [p for p in dict.fromkeys([*SYSTEM_ALLOW, *spec.allow]) if os.path.lexists(p)]
    devices = [p for p in (*DEVICES, *sorted(glob.glob("/dev/nvidia*"))) if os.path.exists(p)]
    rw = [p for p in spec.allow_rw if os.path.isdir(p)] + devices
    links = [p for p in ro if os.path.islink(p) and p in SYSTEM_ALLOW]   # /bin -> usr/bin
    system = [_clone(p, False) for p in ro if p not in links and p in SYSTEM_ALLOW]
    clones = [_clone(p, False) for p in ro if p not in links and p not in SYSTEM_ALLOW]
    clones += [_clone(p, True) for p in rw]
    # the new root is built on a tmpfs mounted over /tmp, which only this namespace sees
    mount("tmpfs", "/tmp", "tmpfs", MS_NOSUID | MS_NODEV, "size=4m,mode=0755")
    new_root = "/tmp/root"
    os.mkdir(new_root, 0o755)
    mount("tmpfs", new_root, "tmpfs", MS_NOSUID | MS_NODEV, "size=4m,mode=0755")
    for p in links:
        os.symlink(os.readlink(p), _place(new_root, p))
    _attach(new_root, system)
    # the course, the grader's files and home never show, even where a system folder holds them
    masked = [m for m in spec.mask if os.path.isdir(new_root + m)]
    for m in masked:
        mount("tmpfs", new_root + m, "tmpfs", MS_NOSUID | MS_NODEV, "size=1m,mode=0755")
    for path, size in {"/tmp": spec.tmp_size, "/dev/shm": spec.shm_size}.items():
        target = _place(new_root, path)
        os.makedirs(target, exist_ok=True)
        mount("tmpfs", target, "tmpfs", MS_NOSUID | MS_NODEV, f"size={size},mode=1777")
    _attach(new_root, clones)   # after /tmp: the socket folder may lie below it
    proc = _place(new_root, "/proc")
    os.makedirs(proc, exist_ok=True)
    try:  # a kernel running as its own uid sees only its own processes
        mount("proc", proc, "proc", MS_NOSUID | MS_NODEV | MS_NOEXEC, "hidepid=2")
        proc_view = "own processes only (hidepid=2)"
    except SandboxError:
        fd = open_tree("/proc")
        move_mount(fd, proc)
        os.close(fd)
        proc_view = "every process (the host's /proc)"
    for link, target in (("fd", "/proc/self/fd"), ("stdin", "/proc/self/fd/0"),
                         ("stdout", "/proc/self/fd/1"), ("stderr", "/proc/self/fd/2")):
        with contextlib.suppress(FileExistsError):
            os.symlink(target, _place(new_root, f"/dev/{link}"))
    workspace = _place(new_root, cwd)
    os.makedirs(workspace, mode=0o755, exist_ok=True)
    mount("tmpfs", workspace, "tmpfs", MS_NOSUID | MS_NODEV,
          f"size={spec.workspace_size},mode=0700,uid={uid},gid={gid}")
    old = new_root + "/.old"
    os.mkdir(old, 0o700)
    pivot_root(new_root, old)
    os.chdir("/")
    umount_detached("/.old")
    os.rmdir("/.old")
    mount(None, "/", None, MS_REMOUNT | MS_BIND | MS_RDONLY | MS_NOSUID | MS_NODEV)
    home = "/tmp/home"
    write_seed(seed, home, owner)
    return {"allowed": [c[0] for c in system + clones], "masked": masked, "proc": proc_view,
            "workspace": cwd, "home": home}


def _clone(path: str, writable: bool) -> tuple[str, bool, bool, int]:
    """A detached copy of the mount tree at ``path``, taken before the view changes."""
    return path, writable, os.path.isdir(path), open_tree(path)


def _attach(new_root: str, clones) -> None:
    """Put detached mount trees (from :func:`_clone`) in place under ``new_root``."""
    for path, writable, is_dir, fd in clones:
        target = _place(new_root, path)
        if is_dir:
            os.makedirs(target, mode=0o755, exist_ok=True)
        elif not os.path.exists(target):
            open(target, "a").close()
        move_mount(fd, target)
        os.close(fd)
        if not writable:
            read_only(target)


def read_seed(folder: str | None, limit: int = 16 << 20) -> list[tuple[str, bytes]]:
    """The files of the HOME template, read before the file system view changes."""
    out: list[tuple[str, bytes]] = []
    if not folder or not os.path.isdir(folder):
        return out
    total = 0
    for dirpath, _, filenames in os.walk(folder):
        for name in filenames:
            path = os.path.join(dirpath, name)
            if os.path.islink(path) or not os.path.isfile(path):
                continue
            with open(path, "rb") as f:
                data = f.read(limit - total)
            total += len(data)
            out.append((os.path.relpath(path, folder), data))
            if total >= limit:
                return out
    return out


def write_seed(seed: list[tuple[str, bytes]], home: str, owner: tuple[int, int]) -> None:
    uid, gid = owner
    os.makedirs(home, exist_ok=True)
    for rel, data in seed:
        path = os.path.join(home, rel)
        os.makedirs(os.path.dirname(path), exist_ok=True)
        with open(path, "wb") as f:
            f.write(data)
    for dirpath, dirnames, filenames in os.walk(home):
        for name in [dirpath] + [os.path.join(dirpath, n) for n in dirnames + filenames]:
            os.chown(name, uid, gid)
    os.chmod(home, 0o700)


def kernel_env(spec: SandboxSpec, home: str) -> dict:
    env = {k: v for k, v in os.environ.items() if k in ENV_ALLOW or k.startswith("LC_")}
    threads = str(spec.threads)
    env.update({
        "HOME": home, "TMPDIR": "/tmp" if spec.mounts else home,
        "IPYTHONDIR": os.path.join(home, ".ipython"),
        "MPLCONFIGDIR": os.path.join(home, ".config", "matplotlib"),
        "XDG_CACHE_HOME": os.path.join(home, ".cache"),
        "XDG_CONFIG_HOME": os.path.join(home, ".config"),
        "JUPYTER_CONFIG_DIR": os.path.join(home, ".jupyter"),
        "OMP_NUM_THREADS": threads, "OPENBLAS_NUM_THREADS": threads, "MKL_NUM_THREADS": threads,
        "NUMEXPR_NUM_THREADS": threads, "MALLOC_ARENA_MAX": "2",
        "PYTHONDONTWRITEBYTECODE": "1", "PYTHONNOUSERSITE": "1",
        "NNKIT_SANDBOX": "1",
    })
    env.setdefault("PYTHONWARNINGS", "ignore")
    return env


def drop_privileges(uid: int, gid: int) -> None:
    os.setgroups([])
    os.setresgid(gid, gid, gid)
    os.setresuid(uid, uid, uid)
    if os.getuid() == 0 or os.geteuid() == 0:  # pragma: no cover - defensive
        raise SandboxError(errno.EPERM, "could not drop root privileges")


def no_new_privs() -> bool:
    return libc().prctl(ctypes.c_int(PR_SET_NO_NEW_PRIVS), ctypes.c_ulong(1), ctypes.c_ulong(0),
                        ctypes.c_ulong(0), ctypes.c_ulong(0)) == 0


def _namespaces(spec: SandboxSpec, report: dict, ids: tuple[int, int], is_root: bool) -> int:
    """Enter new network and mount namespaces; returns the flags that took effect."""
    uid, gid = ids
    flags = (0 if spec.network else CLONE_NEWNET) | (CLONE_NEWNS if spec.mounts else 0)
    report["network"] = "host" if spec.network else None
    if not flags:
        return 0
    try:
        if is_root:
            unshare(flags)
        else:  # an unprivileged user needs a user namespace first
            unshare(flags | CLONE_NEWUSER)
            for name, text in (("setgroups", "deny"), ("uid_map", f"{uid} {uid} 1"), ("gid_map", f"{gid} {gid} 1")):
                with open(f"/proc/self/{name}", "w") as f:
                    f.write(text)
        if not spec.network:
            report["network"] = "none (new network namespace)"
        return flags
    except (SandboxError, OSError) as e:
        report["network"] = report["network"] or f"refused: {e}"
        return 0


def _file_view(spec: SandboxSpec, report: dict, cwd: str, ids: tuple[int, int], seed, flags: int,
               conn_file: str | None, chown_cwd: bool) -> str:
    """The allow-list file system where possible; otherwise a private home. Returns HOME."""
    report["mounts"] = None
    if spec.mounts and flags & CLONE_NEWNS:
        try:
            report["mounts"] = allow_list_root(spec, cwd, ids, seed)
            return report["mounts"]["home"]
        except (SandboxError, OSError) as e:
            report["mounts"] = f"refused: {e}"
    elif spec.mounts:
        report["mounts"] = "refused: no mount namespace"
    base = os.path.dirname(conn_file) if conn_file else cwd
    home = os.path.join(base, f"home-{os.getpid()}")
    write_seed(seed, home, ids)
    if chown_cwd:  # the student's folder becomes the kernel's
        for dirpath, dirnames, filenames in os.walk(cwd):
            for name in [dirpath] + [os.path.join(dirpath, n) for n in dirnames + filenames]:
                os.lchown(name, *ids)
    return home


def _join_cgroups(spec: SandboxSpec) -> str | None:
    """Enter the kernel's control groups (memory and processes of the whole tree)."""
    if not spec.cgroup:
        return None
    try:
        for folder in spec.cgroup:
            with open(os.path.join(folder, "cgroup.procs"), "w") as f:
                f.write(str(os.getpid()))
        return "joined"
    except OSError as e:
        return f"refused: {e}"


def _redirect_log(conn_file: str | None) -> None:
    """The kernel's own log (not the notebook's output) goes next to its sockets."""
    if not conn_file:
        return
    with contextlib.suppress(OSError):
        fd = os.open(os.path.join(os.path.dirname(conn_file), "kernel.log"),
                     os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        os.dup2(fd, 1)
        os.dup2(fd, 2)
        os.close(fd)


def _write_report(spec: SandboxSpec, report: dict) -> None:
    if spec.report:
        with contextlib.suppress(OSError):
            fd = os.open(spec.report, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
            with os.fdopen(fd, "w") as f:
                json.dump(report, f)


def confine(spec: SandboxSpec, *, conn_file: str | None = None) -> tuple[dict, dict]:
    """Apply ``spec`` to the current process. Returns (what was applied, kernel environment).

    Order: leftovers of the uid killed; the control groups joined; new namespaces; the
    allow-list file system; resource limits; the unprivileged uid; ``no_new_privs``; only then
    the student's files are copied into the workspace (as the kernel's uid, through a folder
    opened before the view changed). Steps that fail are recorded as strings ("refused: …")
    and the kernel still starts; the grader reads the report and says what was not contained.
    """
    is_root = os.geteuid() == 0
    report: dict = {"pid": os.getpid(), "root": is_root}
    cwd = os.getcwd()
    own_uid = is_root and spec.uid is not None
    ids = (spec.uid, spec.gid if spec.gid is not None else spec.uid) if own_uid else (os.getuid(), os.getgid())
    if own_uid and spec.kill_uid_first:
        kill_uid(spec.uid)
    report["cgroup"] = _join_cgroups(spec)
    src_fd = os.open(cwd, os.O_RDONLY | os.O_DIRECTORY)
    seed = read_seed(spec.home_seed)
    flags = _namespaces(spec, report, ids, is_root)
    home = _file_view(spec, report, cwd, ids, seed, flags, conn_file, chown_cwd=own_uid)
    if conn_file and own_uid:
        os.chown(conn_file, *ids)
    report["limits"] = set_limits(spec)
    report["user"] = None
    if own_uid:
        try:
            drop_privileges(*ids)
            report["user"] = f"uid {ids[0]}"
        except OSError as e:
            report["user"] = f"refused: {e}"
    report["no_new_privs"] = no_new_privs()
    if isinstance(report["mounts"], dict):
        try:
            os.chdir(cwd)  # the workspace tmpfs, in the new root
            _copy_tree_from_fd(src_fd, cwd)
        except OSError as e:
            report["mounts"]["workspace"] = f"copy failed: {e}"
    os.close(src_fd)
    os.chdir(cwd)
    env = kernel_env(spec, home)
    _redirect_log(conn_file)
    _write_report(spec, report)
    return report, env


#: how the kernel starts: isolated (``-I``: no current folder, no PYTHON* variables, no user
#: site-packages), with the student's folder appended *last* to ``sys.path`` so that a file
#: handed in next to the notebook (``numpy.py``, ``ipykernel_launcher.py``) can be imported
#: by name but can never stand in for an installed module; nnkit is imported first because an
#: editable install finds it only after every folder on sys.path has been searched
KERNEL_MAIN = ("import sys, nnkit; sys.path.append(''); "
               "from ipykernel import kernelapp; kernelapp.launch_new_instance()")


def probe() -> dict:
    """What this machine allows (used by ``nnkit grade`` to explain its containment)."""
    out = {"root": os.geteuid() == 0}
    pid = os.fork()
    if pid == 0:  # pragma: no cover - child
        code = 0
        try:
            if os.geteuid() == 0:
                unshare(CLONE_NEWNET | CLONE_NEWNS)
            else:
                unshare(CLONE_NEWUSER | CLONE_NEWNET | CLONE_NEWNS)
            code |= 1
            mount(None, "/", None, MS_REC | MS_PRIVATE)
            fd = open_tree("/")
            os.close(fd)
            code |= 2
        except BaseException:
            pass
        os._exit(code)
    _, status = os.waitpid(pid, 0)
    code = os.waitstatus_to_exitcode(status)
    out["namespaces"] = bool(code & 1)
    out["mounts"] = bool(code & 2)
    return out


def main(argv: list[str] | None = None) -> None:
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv[:1] == ["--probe"]:
        print(json.dumps(probe()))
        return
    spec_path, conn = None, None
    rest: list[str] = []
    i = 0
    while i < len(argv):
        a = argv[i]
        if a == "--spec":
            spec_path = argv[i + 1]
            i += 2
        elif a == "-f":
            conn = argv[i + 1]
            rest += ["-f", conn]
            i += 2
        else:
            rest.append(a)
            i += 1
    spec = SandboxSpec.from_file(spec_path) if spec_path else SandboxSpec(mounts=False)
    _, env = confine(spec, conn_file=conn)
    os.execve(sys.executable, [sys.executable, "-I", "-c", KERNEL_MAIN, *rest], env)


if __name__ == "__main__":
    main()
