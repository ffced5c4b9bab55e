"""Kernel-side integrity guard: are the checks, numpy and nnkit still the originals?

Student code and the hidden tests run in the same Python process, so a submission can make a
check pass by replacing what the check relies on::

    np.allclose = lambda *a, **k: True            # numpy's comparison
    G.check_forward = lambda *a, **k: None         # the check itself
    nk.Sigmoid.forward = my_forward                # the reference the check compares with
    get_ipython().showtraceback = lambda *a: None  # hide the failure

The grader (``nnkit.course.grade.GradingExecute``) installs this guard *before the first cell
runs*: it imports the modules the checks use and keeps a reference to every function, class
and method in them, in builtins, in IPython's shell and in the kernel. Before and after each
test cell it asks the guard, through a silent request the notebook never sees, what changed.
A test cell that ran while anything was replaced scores zero (the grader adds an
``IntegrityError`` output to it), the originals are put back, and the submission is flagged.

The answer is authenticated (HMAC with a key that only the grader and the guard's closure
hold, over a fresh nonce per request), so a submission that replaces the guard's reply
without finding that key is flagged too.

This is a tripwire, not a wall: code that runs in the same process can in principle reach
anything, including this guard (through ``gc`` or ``ctypes``). docs/grading.md says which
cheats it catches and which it cannot.
"""
from __future__ import annotations

import os
import sys

#: modules whose functions and classes are protected; "name.*" includes the subpackages
DEFAULT_PROTECT = (
    "numpy.*", "nnkit.*", "builtins", "math", "copy", "warnings", "functools", "operator",
    "itertools", "contextlib", "types", "traceback", "json", "hmac", "hashlib",
    "importlib", "torch", "torch.nn.functional", "torch.testing.*", "torch.autograd.*",
    "torch.nn.modules.*", "torch.linalg", "torch.functional",
)
#: imported before the student's first cell so that their originals are known
DEFAULT_PRELOAD = ("numpy", "torch", "nnkit", "nnkit.grading", "nnkit.grading.*")

#: builtins that IPython and ipykernel swap in and out around every execution
VOLATILE = {"builtins": {"input", "raw_input", "getpass", "get_ipython", "display", "exit", "quit",
                         "help", "copyright", "credits", "license", "_", "__", "___"}}

_CHECK = None  # set by install(); the grader calls check() through it


def _is_protected_name(name: str, patterns) -> bool:
    for p in patterns:
        if p.endswith(".*"):
            base = p[:-2]
            if name == base or name.startswith(base + "."):
                return True
        elif name == p:
            return True
    return False


def _preload(names) -> list[str]:
    import importlib
    import pkgutil

    loaded = []
    for name in names:
        try:
            if name.endswith(".*"):
                pkg = importlib.import_module(name[:-2])
                for info in pkgutil.iter_modules(getattr(pkg, "__path__", []), pkg.__name__ + "."):
                    try:
                        importlib.import_module(info.name)
                        loaded.append(info.name)
                    except Exception:
                        pass
            else:
                importlib.import_module(name)
                loaded.append(name)
        except Exception:
            pass
    return loaded


def install(key: str, preload=DEFAULT_PRELOAD, protect=DEFAULT_PROTECT) -> None:
    """Snapshot the originals. Called by the grader before any student code runs."""
    global _CHECK
    _preload(preload)
    _CHECK = _make_guard(key.encode(), tuple(protect))


def check(nonce: str, mode: str = "check") -> str:
    """The grader's entry point (through ``user_expressions``); see :func:`_make_guard`."""
    return _CHECK(nonce, mode)


def _make_guard(key: bytes, protect: tuple):
    # Everything the guard uses is bound here, before student code runs.
    import hashlib
    import hmac
    import json
    import threading
    import types

    _vars, _id, _isinstance, _callable, _getattr, _setattr, _delattr = (
        vars, id, isinstance, callable, getattr, setattr, delattr)
    _list, _len, _type = list, len, type
    _ModuleType, _FunctionType = types.ModuleType, types.FunctionType
    _modules = sys.modules
    _CodeType = types.CodeType
    _env = tuple({os.path.join(os.path.realpath(p), "") for p in (sys.prefix, sys.base_prefix, sys.exec_prefix)})
    _new, _sha256, _dumps = hmac.new, hashlib.sha256, json.dumps
    _gettrace, _getprofile, _settrace, _setprofile = sys.gettrace, sys.getprofile, sys.settrace, sys.setprofile
    _MISSING = object()

    def library_code(code) -> bool:
        """Is ``code`` compiled from a module of the Python environment (the very object, not
        a copy with another file name)? Searches the functions of the module whose file it names."""
        fname = code.co_filename
        if not _isinstance(fname, str) or not fname.startswith(_env):
            return False
        for mod in _list(_modules.values()):
            if _getattr(mod, "__file__", None) != fname:
                continue
            stack = [v.__code__ for v in _list(_vars(mod).values()) if _isinstance(v, _FunctionType)]
            seen = set()
            while stack:
                c = stack.pop()
                if c is code:
                    return True
                if _id(c) not in seen:
                    seen.add(_id(c))
                    stack.extend(k for k in c.co_consts if _isinstance(k, _CodeType))
        return False

    def library_wrapper(now, orig) -> bool:
        """A library's own wrapper of ``orig`` (importing ``torch.optim`` wraps
        ``torch.manual_seed`` so: ``functools.wraps``, code from the installed package)."""
        if not _isinstance(now, _FunctionType):
            return False
        inner = now
        for _ in range(4):
            inner = _getattr(inner, "__wrapped__", None)
            if inner is orig:
                return library_code(now.__code__)
            if inner is None:
                return False
        return False

    def watched(value) -> bool:
        return (_isinstance(value, (type, _ModuleType, staticmethod, classmethod, property))
                or _callable(value))

    modules: dict = {}       # name -> (module object, {attr: value})
    classes: dict = {}       # id(cls) -> (cls, {attr: value})
    names: dict = {}         # user namespace name -> value bound by a read-only cell
    codes: dict = {}         # id(function) -> (function, __code__, __defaults__, __kwdefaults__)

    def snap_code(value):
        fn = value.__func__ if _isinstance(value, (staticmethod, classmethod)) else value
        if _isinstance(fn, _FunctionType) and _id(fn) not in codes:
            codes[_id(fn)] = (fn, fn.__code__, fn.__defaults__, fn.__kwdefaults__)
    shell_state: dict = {}   # what IPython and the kernel use to report errors

    def snap_class(cls, owner_patterns):
        if _id(cls) in classes:
            return
        mod = _getattr(cls, "__module__", "") or ""
        if not _is_protected_name(mod, owner_patterns):
            return
        try:
            d = _vars(cls)
        except TypeError:
            return
        items = {k: v for k, v in d.items() if watched(v) and not k.startswith("__")
                 or k in ("__call__", "__eq__", "__ne__", "__lt__", "__le__",
                          "__gt__", "__ge__", "__bool__", "__float__", "__array__",
                          "__init__", "__new__", "__getattribute__", "__getattr__")}
        classes[_id(cls)] = (cls, items, frozenset(d.keys()))
        for v in items.values():
            snap_code(v)

    def snap_module(name, mod):
        try:
            d = _vars(mod)
        except TypeError:
            return
        skip = VOLATILE.get(name, ())
        items = {k: v for k, v in _list(d.items()) if watched(v) and k not in skip}
        modules[name] = (mod, items)
        for v in items.values():
            if _isinstance(v, type):
                snap_class(v, protect)
            elif _is_protected_name(_getattr(v, "__module__", "") or "", protect):
                snap_code(v)

    def snap_new_modules() -> list:
        new = []
        for name, mod in _list(_modules.items()):
            if mod is None or name in modules or not _is_protected_name(name, protect):
                continue
            snap_module(name, mod)
            new.append(name)
        return new

    try:  # the shell is fixed now: builtins.get_ipython exists only while a cell runs
        from IPython.core.interactiveshell import InteractiveShell

        _shell = InteractiveShell.instance() if InteractiveShell.initialized() else None
    except Exception:
        _shell = None

    def shell_objects():
        shell = _shell
        objs = []
        if shell is not None:
            objs.append(("IPython shell", shell))
            kernel = _getattr(shell, "kernel", None)
            if kernel is not None:
                objs.append(("kernel", kernel))
        return shell, objs

    def shell_hooks(shell) -> dict:
        """IPython's error handlers and input transformers, as they are now."""
        itm = _getattr(shell, "input_transformer_manager", None)
        return {
            "custom_exceptions": _getattr(shell, "custom_exceptions", ()),
            "input_transformers_post": _list(_getattr(shell, "input_transformers_post", [])),
            "ast_transformers": _list(_getattr(shell, "ast_transformers", [])),
            "cleanup_transforms": _list(_getattr(itm, "cleanup_transforms", []) or []),
            "line_transforms": _list(_getattr(itm, "line_transforms", []) or []),
            "token_transformers": _list(_getattr(itm, "token_transformers", []) or []),
        }

    def snap_shell():
        shell, objs = shell_objects()
        for label, obj in objs:
            for cls in _type(obj).__mro__:
                if cls is object:
                    continue
                try:
                    d = _vars(cls)
                except TypeError:
                    continue
                classes.setdefault(_id(cls), (cls, {k: v for k, v in d.items() if _callable(v)}, frozenset(d.keys())))
            shell_state[label] = (obj, {k for k, v in _vars(obj).items() if _callable(v)})
        if shell is not None:
            shell_state["hooks"] = shell_hooks(shell)

    def compare(restore: bool) -> list:
        found = []
        for name, (mod, items) in _list(modules.items()):
            if _modules.get(name, mod) is not mod:
                found.append(f"sys.modules[{name!r}] was replaced")
                if restore:
                    _modules[name] = mod
            d = _vars(mod)
            for attr, orig in _list(items.items()):
                now = d.get(attr, _MISSING)
                if now is not orig and library_wrapper(now, orig):
                    items[attr] = now          # the library's own doing: the new original
                    snap_code(now)
                elif now is not orig:
                    found.append(f"{name}.{attr} was {'deleted' if now is _MISSING else 'replaced'}")
                    if restore:
                        d[attr] = orig
        for cls, items, keys in _list(classes.values()):
            d = _vars(cls)
            for attr in [k for k in _list(d.keys()) if k not in keys]:
                # a new entry that overrides an inherited method (e.g. nk.Sigmoid.forward = ...)
                if any(attr in _vars(base) for base in cls.__mro__[1:] if base is not object):
                    found.append(f"{cls.__module__}.{cls.__qualname__}.{attr} was overridden")
                    if restore:
                        try:
                            _delattr(cls, attr)
                        except (TypeError, AttributeError):
                            pass
            for attr, orig in items.items():
                now = d.get(attr, _MISSING)
                if now is not orig:
                    found.append(f"{cls.__module__}.{cls.__qualname__}.{attr} was "
                                 f"{'deleted' if now is _MISSING else 'replaced'}")
                    if restore:
                        try:
                            _setattr(cls, attr, orig)
                        except (TypeError, AttributeError):
                            pass
        for label, (obj, known) in _list((k, v) for k, v in shell_state.items() if k != "hooks"):
            cls_attrs = set()
            for cls in _type(obj).__mro__:
                try:
                    cls_attrs.update(k for k, v in _vars(cls).items() if _callable(v))
                except TypeError:
                    pass
            for attr, v in _list(_vars(obj).items()):
                if attr in cls_attrs and attr not in known and _callable(v):
                    found.append(f"the {label}'s method {attr} was overridden")
                    if restore:
                        _delattr(obj, attr)
        hooks = shell_state.get("hooks")
        shell, _ = shell_objects()
        if hooks is not None and shell is not None:
            itm = _getattr(shell, "input_transformer_manager", None)
            current = shell_hooks(shell)
            for k, orig in hooks.items():
                now = current[k]
                if now != orig:
                    found.append(f"IPython's {k} were changed")
                    if restore:
                        try:
                            if k == "custom_exceptions":
                                shell.set_custom_exc((), None)
                            elif k in ("cleanup_transforms", "line_transforms", "token_transformers"):
                                _getattr(itm, k)[:] = orig
                            else:
                                _getattr(shell, k)[:] = orig
                        except Exception:
                            pass
        for fn, code, defaults, kwdefaults in _list(codes.values()):
            if fn.__code__ is not code or fn.__defaults__ is not defaults or fn.__kwdefaults__ is not kwdefaults:
                found.append(f"the code of {fn.__module__}.{fn.__qualname__} was replaced")
                if restore:
                    fn.__code__, fn.__defaults__, fn.__kwdefaults__ = code, defaults, kwdefaults
        if _gettrace() is not None:
            found.append("a trace function was set (sys.settrace)")
            if restore:
                _settrace(None)
        if _getprofile() is not None:
            found.append("a profile function was set (sys.setprofile)")
            if restore:
                _setprofile(None)
        if _getattr(threading, "_trace_hook", None) is not None or _getattr(threading, "_profile_hook", None) is not None:
            found.append("a trace function was set for new threads")
            if restore:
                threading.settrace(None)
                threading.setprofile(None)
        user_ns = _getattr(shell, "user_ns", None) if shell is not None else None
        if user_ns is not None:
            for name, orig in _list(names.items()):
                if user_ns.get(name, _MISSING) is not orig:
                    found.append(f"the name {name!r} bound by a read-only cell was rebound")
                    if restore:
                        user_ns[name] = orig
        return found

    def seal():
        """After a read-only cell: remember the modules and grading functions it bound."""
        shell, _ = shell_objects()
        user_ns = _getattr(shell, "user_ns", {}) if shell is not None else {}
        for name, value in _list(user_ns.items()):
            if name.startswith("_") or name in names:
                continue
            if _isinstance(value, _ModuleType):
                if _is_protected_name(value.__name__, protect):
                    names[name] = value
            elif watched(value) and _is_protected_name(_getattr(value, "__module__", "") or "", protect):
                names[name] = value

    snap_new_modules()
    snap_shell()
    seal()

    def guard(nonce: str, mode: str) -> str:
        if mode == "seal":
            found = compare(restore=True)
            new = snap_new_modules()
            seal()
        else:
            found = compare(restore=True)
            new = snap_new_modules()
        body = _dumps({"nonce": nonce, "violations": found, "new_modules": _len(new)})
        return body + "\n" + _new(key, (nonce + body).encode(), _sha256).hexdigest()

    return guard
