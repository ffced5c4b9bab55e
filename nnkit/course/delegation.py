"""Answers that call the shipped reference: what each question forbids, and a static look.

An answer to "implement σ" that returns ``nk.functional.sigmoid(z)`` is not an answer. By
default a graded function may use nothing from the packages in ``FORBIDDEN`` (nnkit itself —
its grading modules included — PyTorch, SciPy…): numpy and the student's own functions only.
A check module lifts that where a question builds on shipped pieces, in a module-level table::

    MAY_USE = {"check_convnet": ("nnkit.layers", "nnkit.conv", "nnkit.module")}

The judge (``judge.py``) detects delegation twice: by running the question's checks again in
a throw-away child of the kernel where the forbidden references fail (``nnkit.grading.blocking``),
and by this module's static look at the answer's code, which finds calls such as
``nk.functional.sigmoid(z)``, ``torch.sigmoid(t)`` or a class derived from ``nk.Dropout``
in the definitions of the graded names.
"""
from __future__ import annotations

import ast
import importlib
import sys
from dataclasses import dataclass

#: packages whose code an answer may not call unless its question allows it
FORBIDDEN = ("nnkit", "torch", "scipy", "sklearn", "jax", "tensorflow")


@dataclass(frozen=True)
class Policy:
    """What an answer may not call (``forbid``), except what its question allows (``allow``)."""

    forbid: tuple[str, ...] = FORBIDDEN
    allow: tuple[str, ...] = ()

    def forbids(self, dotted: str) -> bool:
        def under(prefixes):
            return any(dotted == p or dotted.startswith(p + ".") for p in prefixes)

        return under(self.forbid) and not under(self.allow)


def policy_for(checks) -> Policy:
    """The policy of the check functions a test cell calls (their modules' ``MAY_USE``)."""
    allow: list[str] = []
    for check in checks:
        module = sys.modules.get(getattr(check, "__module__", "") or "")
        table = getattr(module, "MAY_USE", {}) if module is not None else {}
        allow += list(table.get(getattr(check, "__name__", ""), ()))
    return Policy(allow=tuple(dict.fromkeys(allow)))


# --- the static look ---------------------------------------------------------------------------
def aliases(sources: list[str]) -> dict[str, str]:
    """Names bound by the notebook's imports: {'nk': 'nnkit', 'F': 'torch.nn.functional', …}."""
    out: dict[str, str] = {}
    for source in sources:
        for node in ast.walk(_parse(source)):
            if isinstance(node, ast.Import):
                for a in node.names:
                    out[a.asname or a.name.split(".")[0]] = a.name if a.asname else a.name.split(".")[0]
            elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
                for a in node.names:
                    out[a.asname or a.name] = f"{node.module}.{a.name}"
    return out


def _parse(source: str) -> ast.AST:
    try:
        return ast.parse(source)
    except (SyntaxError, ValueError):
        return ast.Module(body=[], type_ignores=[])


def definitions(sources: list[str], names: set[str]) -> dict[str, ast.AST]:
    """The last top-level ``def``/``class`` of each name in the student's cells."""
    found: dict[str, ast.AST] = {}
    for source in sources:
        for node in _parse(source).body:
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)) and node.name in names:
                found[node.name] = node
    return found


def _dotted(node: ast.AST) -> str | None:
    parts = []
    while isinstance(node, ast.Attribute):
        parts.append(node.attr)
        node = node.value
    if isinstance(node, ast.Name):
        return ".".join([node.id, *reversed(parts)])
    return None


def canonical(dotted: str) -> str:
    """'nnkit.Linear' → 'nnkit.layers.Linear': where the object named really lives, when it can be found."""
    parts = dotted.split(".")
    for cut in range(len(parts), 0, -1):
        try:
            obj = importlib.import_module(".".join(parts[:cut]))
        except Exception:  # noqa: BLE001 - not a module: try a shorter prefix
            continue
        for attr in parts[cut:]:
            obj = getattr(obj, attr, None)
            if obj is None:
                return dotted
        home, qual = getattr(obj, "__module__", None), getattr(obj, "__qualname__", None)
        return f"{home}.{qual}" if isinstance(home, str) and isinstance(qual, str) else dotted
    return dotted


def _bound_inside(definition: ast.AST) -> set[str]:
    """Names the definition binds itself (arguments, assignments, loops): they shadow the imports."""
    names = set()
    for node in ast.walk(definition):
        if isinstance(node, ast.arg):
            names.add(node.arg)
        elif isinstance(node, ast.Name) and isinstance(node.ctx, ast.Store):
            names.add(node.id)
    return names


def static_hits(sources: list[str], names: set[str], policy: Policy, course_sources=()) -> list[str]:
    """'nk.functional.sigmoid (line 4)' for each forbidden call or base class in the graded names."""
    bound = aliases(sources + list(course_sources))
    hits: list[str] = []
    for definition in definitions(sources, names).values():
        local = _bound_inside(definition)
        nodes = [n.func for n in ast.walk(definition) if isinstance(n, ast.Call)]
        if isinstance(definition, ast.ClassDef):
            nodes += list(definition.bases)
        for node in nodes:
            written = _dotted(node)
            if written is None or written.split(".")[0] not in bound or written.split(".")[0] in local:
                continue
            root, _, rest = written.partition(".")
            full = bound[root] + ("." + rest if rest else "")
            if policy.forbids(full.split(".")[0]) and policy.forbids(canonical(full)):
                hit = f"{written} (line {node.lineno})"
                if hit not in hits:
                    hits.append(hit)
    return hits
