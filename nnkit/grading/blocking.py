"""Make the shipped references unavailable to the student's code (in a throw-away child kernel).

``apply(forbid, allow, namespace)`` is called in a forked child of the student's kernel, before
the judge runs a question's checks again there. From then on, every function and class method
of the forbidden packages (``nnkit``, ``torch``… minus what the question allows) raises
``ReferenceBlocked`` when *the student's code* calls it, and importing a forbidden package
that is not loaded yet fails. Library code calling library code still works (nnkit's layers
use nnkit's functions; a model the question hands over runs), because a wrapper looks up the
stack for the nearest caller that is either the student's code or library code, and only the
student's code is refused. Each refusal is recorded in ``TOUCHED`` with the reference's name:
the judge names it in the feedback.

The parent kernel is never changed: the child is thrown away after the question.
"""
from __future__ import annotations

import functools
import importlib.abc
import os
import sys
import sysconfig
import types

#: the references the student's code tried to use, in order (read by the kernel's server)
TOUCHED: list[str] = []

_SKIP_MODULES = ("nnkit.grading.kernel_side", "nnkit.grading.wire", "nnkit.grading.blocking",
                 "nnkit.grading.global_rng")
_ALLOWED_OBJECTS: set[int] = set()


class ReferenceBlocked(Exception):
    """The student's code called a shipped reference that this question forbids."""


def _library_roots() -> tuple[str, ...]:
    paths = {sysconfig.get_paths()[k] for k in ("stdlib", "platstdlib", "purelib", "platlib")}
    import nnkit

    paths.add(os.path.dirname(os.path.dirname(nnkit.__file__)) + os.sep + "nnkit")
    return tuple(os.path.realpath(p) for p in paths)


_ROOTS: tuple[str, ...] = ()
_FORBIDDEN_DIRS: tuple[str, ...] = ()
_SERVER_FILE = os.path.join(os.path.dirname(os.path.abspath(__file__)), "kernel_side.py")


def _student_is_calling() -> bool:
    """True when the nearest caller outside the standard library and numpy is the student's code.

    Frames of the standard library and other non-forbidden libraries are skipped (``map``,
    ``functools.reduce``, ``np.vectorize`` call on the student's behalf); the first frame of
    nnkit or of a forbidden package means library code is calling; the kernel's server (which
    calls the student's objects) and anything outside the installed libraries (notebook cells,
    files handed in) are the student.
    """
    frame = sys._getframe(2)
    while frame is not None:
        raw = frame.f_code.co_filename or ""
        if raw.startswith("<frozen "):  # the import system
            frame = frame.f_back
            continue
        filename = os.path.realpath(raw)
        if filename == _SERVER_FILE or not filename.startswith(_ROOTS):
            return True
        if filename.startswith(_FORBIDDEN_DIRS):
            return False
        frame = frame.f_back
    return True


def _guard(fn, name: str):
    @functools.wraps(fn)
    def guarded(*args, **kwargs):
        if id(guarded) not in _ALLOWED_OBJECTS and _student_is_calling():
            TOUCHED.append(name)
            raise ReferenceBlocked(f"{name} is not available to this answer")
        return fn(*args, **kwargs)

    guarded.__nnkit_blocked__ = True
    return guarded


def _qualified(obj, owner: str) -> str:
    return f"{owner}.{getattr(obj, '__qualname__', getattr(obj, '__name__', '?'))}"


def _forbidden(name: str, forbid, allow) -> bool:
    def under(prefixes):
        return any(name == p or name.startswith(p + ".") for p in prefixes)

    return under(forbid) and not under(allow)


def _wrap_class(cls, owner: str, done: set) -> None:
    if id(cls) in done:
        return
    done.add(id(cls))
    for attr, value in list(vars(cls).items()):
        if attr.startswith("__") and attr != "__call__":
            continue
        if not isinstance(value, (staticmethod, classmethod, *_CALLABLES)):
            continue
        target = value.__func__ if isinstance(value, (staticmethod, classmethod)) else value
        if not isinstance(target, (types.FunctionType, types.BuiltinFunctionType)):
            continue
        wrapped = _guard(target, f"{owner}.{cls.__qualname__}.{attr}")
        if isinstance(value, staticmethod):
            wrapped = staticmethod(wrapped)
        elif isinstance(value, classmethod):
            wrapped = classmethod(wrapped)
        try:
            setattr(cls, attr, wrapped)
        except (TypeError, AttributeError):
            continue


_CALLABLES = (types.FunctionType, types.BuiltinFunctionType)


def _wrap_module(module, forbid, allow, done: set, replaced: dict) -> None:
    """Guard the functions and classes a forbidden module defines. Only plain functions and
    classes are looked at: other objects (PyTorch's lazy ones) may run code when inspected."""
    for attr, value in list(vars(module).items()):
        if attr.startswith("__") or id(value) in _ALLOWED_OBJECTS or not isinstance(value, (type, *_CALLABLES)):
            continue
        try:
            home = value.__module__ if isinstance(value.__module__, str) else ""
            name = f"{home}.{getattr(value, '__qualname__', attr)}"
            if not _forbidden(name, forbid, allow):
                continue
            if isinstance(value, type):
                _wrap_class(value, home, done)
            else:
                guarded = replaced.get(id(value))
                if guarded is None:
                    guarded = replaced[id(value)] = _guard(value, _qualified(value, home))
                setattr(module, attr, guarded)
        except Exception:  # noqa: BLE001, S112 - an attribute that cannot be read or set stays as it is
            continue


class _RefuseImports(importlib.abc.MetaPathFinder):
    def __init__(self, forbid, allow):
        self.forbid, self.allow = forbid, allow

    def find_spec(self, fullname, path=None, target=None):
        if _forbidden(fullname, self.forbid, self.allow) and _student_is_calling():
            TOUCHED.append(f"import {fullname}")
            raise ImportError(f"{fullname} is not available to this answer")


def allow_objects(objects) -> None:
    """Objects the judge itself handed to the student's code (bound references): never refused."""
    _ALLOWED_OBJECTS.update(id(o) for o in objects)


def apply(forbid, allow, namespace: dict) -> None:
    """Refuse the forbidden references to the student's code from now on (in this process)."""
    global _ROOTS, _FORBIDDEN_DIRS
    forbid, allow = tuple(forbid), tuple(allow)
    _ROOTS = _library_roots()
    _FORBIDDEN_DIRS = tuple(os.path.realpath(os.path.dirname(m.__file__)) + os.sep
                            for n, m in list(sys.modules.items()) if n in forbid and getattr(m, "__file__", None))
    done: set = set()
    replaced: dict = {}
    for name, module in list(sys.modules.items()):
        if module is None or name in _SKIP_MODULES or not _forbidden(name, forbid, ()):
            continue
        _wrap_module(module, forbid, allow, done, replaced)
    _rebind_namespace(namespace, forbid, allow, done, replaced)
    sys.meta_path.insert(0, _RefuseImports(forbid, allow))


def _rebind_namespace(namespace: dict, forbid, allow, done: set, replaced: dict) -> None:
    """References the student's code already holds (``from nnkit.functional import sigmoid``,
    default arguments, closures) are replaced by their guarded versions too."""
    def swap(value):
        if id(value) in _ALLOWED_OBJECTS or not isinstance(value, (type, *_CALLABLES)):
            return value
        try:
            name = f"{value.__module__}.{getattr(value, '__qualname__', '')}"
        except Exception:  # noqa: BLE001
            return value
        if not isinstance(value.__module__, str) or not _forbidden(name, forbid, allow):
            return value
        if isinstance(value, type):
            _wrap_class(value, value.__module__, done)
            return value
        return replaced.setdefault(id(value), _guard(value, _qualified(value, value.__module__)))

    for key, value in list(namespace.items()):
        namespace[key] = swap(value)
        if isinstance(value, types.FunctionType) and value.__module__ == namespace.get("__name__"):
            if value.__defaults__:
                value.__defaults__ = tuple(swap(v) for v in value.__defaults__)
            if value.__kwdefaults__:
                value.__kwdefaults__ = {k: swap(v) for k, v in value.__kwdefaults__.items()}
            for cell in value.__closure__ or ():
                try:
                    cell.cell_contents = swap(cell.cell_contents)
                except ValueError:
                    continue
