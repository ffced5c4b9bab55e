"""Draw a Value's computational graph with matplotlib (no graphviz needed).

Each node is a box with its label, its value (``data``) and its gradient (``grad``); the
operation that produced a node sits in a small circle on the edges that enter it, as in the
lecture's figures of f(x, y, z) = (x + y)z. The layout is layered from left to right: inputs on
the left, the output on the right, each node one column right of its latest input (constants
sit just left of where they are used). Within a column, nodes are ordered to keep edges short
(a few sweeps of the barycentre heuristic). Everything is iterative, so deep graphs draw too:
beyond ``max_nodes`` only the nodes nearest the output are shown, and the cut edges end in "…".
"""
from __future__ import annotations

import functools
from collections import deque

from .engine import Value

__all__ = ["draw_graph"]

# Layout in data units; at scale 1 one unit is one inch of the figure.
_DX, _DY = 1.9, 0.8  # distance between columns / rows
_BOX_W, _BOX_H = 1.2, 0.56  # node box
_OP_X = -(_BOX_W / 2 + 0.28)  # op circle, relative to its node's centre (in the gap before it)
_FONT = 7.5  # points, at scale 1
_MAX_WIDTH = 14.0  # inches before the drawing is scaled down (at most to half size)

NODE_GID = "nnkit-value"  # gid of the text of a node box (one per node)
OP_GID = "nnkit-op"  # gid of the text of an operation circle (one per computed node)


def draw_graph(root: Value, ax=None, *, max_nodes: int = 60, title: str | None = None):
    """Draw the graph that computed ``root``; returns the matplotlib ``Figure``.

    Call it after ``root.backward()`` to see the gradients (before, they are all 0). With
    ``ax=None`` a new figure is made, sized to the graph, and not registered with pyplot: it is
    shown when it is the notebook cell's last expression (or with ``display(fig)``) and needs no
    ``plt.close``. Graphs with more than ``max_nodes`` nodes show the ``max_nodes`` nodes
    nearest ``root``.
    """
    if not isinstance(root, Value):
        raise TypeError(f"draw_graph needs a Value, got {type(root).__name__}")
    if max_nodes < 1:
        raise ValueError(f"draw_graph: max_nodes must be ≥ 1, got {max_nodes}")
    order = root.topological_order()
    shown = _nearest_nodes(root, max_nodes)
    nodes = [v for v in order if v in shown]
    pos, paths = _layout(nodes, shown)

    points = list(pos.values()) + [b for _, _, bends in paths for b in bends]
    cols = [x for x, _ in points]
    rows = [y for _, y in points]
    cut = any(p not in shown for v in nodes for p in v._prev)  # edges from nodes not shown
    x0, x1 = min(cols) - _BOX_W / 2 - (1.1 if cut else 0.15), max(cols) + _BOX_W / 2 + 0.15
    y0, y1 = min(rows) - _DY / 2 - 0.1, max(rows) + _DY / 2 + 0.1
    header = title if title is not None else _default_title(root, len(nodes), len(order))
    if header:
        y1 += 0.35
    width, height = x1 - x0, y1 - y0

    from matplotlib.collections import LineCollection
    from matplotlib.figure import Figure
    from matplotlib.patches import FancyBboxPatch

    if ax is None:
        scale = max(0.5, min(1.0, _MAX_WIDTH / width))
        fig = _graph_figure_class(Figure)(figsize=(width * scale, height * scale))
        ax = fig.add_axes((0, 0, 1, 1))
    else:
        fig, scale = ax.figure, 1.0
    ax.set_xlim(x0, x1)
    ax.set_ylim(y0, y1)
    ax.set_aspect("equal")
    ax.axis("off")
    font = _FONT * scale

    edges = []
    for p, v, bends in paths:  # parent's box → (through each column it skips) → v's op circle
        (px, py), (vx, vy) = pos[p], pos[v]
        line = [(px + _BOX_W / 2, py)]
        for bx, by in bends:
            line += [(bx - _BOX_W / 2, by), (bx + _BOX_W / 2, by)]
        edges.append(line + [(vx + _OP_X, vy)])
        uses = v._prev.count(p)
        if uses > 1:  # x * x: one edge that carries the input twice (the branch rule sums both)
            ax.text(vx + _OP_X - 0.12, vy + 0.06, f"×{uses}", ha="right", va="bottom", fontsize=0.8 * font,
                    color="0.3")
    stubs = []
    for v in nodes:
        x, y = pos[v]
        if v._prev:
            ox = x + _OP_X
            if any(p not in shown for p in v._prev):
                stubs.append([(ox - 0.45, y), (ox, y)])
            ax.annotate("", xy=(x - _BOX_W / 2, y), xytext=(ox, y),
                        arrowprops=dict(arrowstyle="-|>", color="0.3", lw=0.8, shrinkA=0, shrinkB=0))
            ax.text(ox, y, v._op, ha="center", va="center", fontsize=font, zorder=4, gid=OP_GID,
                    bbox=dict(boxstyle="circle,pad=0.25" if len(v._op) <= 2 else "round,pad=0.25",
                              fc="#fff6d5", ec="0.3", lw=0.8))
        ax.add_patch(FancyBboxPatch((x - _BOX_W / 2, y - _BOX_H / 2), _BOX_W, _BOX_H,
                                    boxstyle="round,pad=0,rounding_size=0.06", zorder=3,
                                    fc="#dceaf7" if v is root else ("white" if v._prev else "#eef5e9"),
                                    ec="0.2", lw=1.2 if v is root else 0.8))
        ax.text(x, y, _node_text(v), ha="center", va="center", fontsize=font, family="monospace",
                zorder=5, gid=NODE_GID)
    ax.add_collection(LineCollection(edges, colors="0.45", linewidths=0.8, zorder=1))
    if stubs:
        ax.add_collection(LineCollection(stubs, colors="0.45", linewidths=0.8, linestyles="dashed", zorder=1))
        for (sx, sy), _ in stubs:
            ax.text(sx - 0.05, sy, "…", ha="right", va="center", fontsize=font, color="0.3")
    if header:
        ax.text(x0 + 0.1, y1 - 0.1, header, ha="left", va="top", fontsize=font, color="0.25")
    return fig


@functools.cache
def _graph_figure_class(Figure):
    """A ``Figure`` that a notebook shows as a PNG even where pyplot was never imported."""

    class GraphFigure(Figure):
        def _repr_png_(self) -> bytes:
            import io

            buffer = io.BytesIO()
            self.savefig(buffer, format="png", dpi=110)
            return buffer.getvalue()

    return GraphFigure


def _node_text(v: Value) -> str:
    lines = [v.label] if v.label else []
    lines += [f"data {v.data:.4g}", f"grad {v.grad:.4g}"]
    return "\n".join(lines)


def _default_title(root: Value, n_shown: int, n_total: int) -> str:
    if n_shown == n_total:
        return ""
    return f"the {n_shown} nodes nearest the output, of {n_total} (dashed edges come from nodes not shown)"


def _nearest_nodes(root: Value, limit: int) -> set[Value]:
    """Up to ``limit`` nodes, breadth first from ``root`` towards the inputs."""
    seen, queue = {root}, deque([root])
    while queue and len(seen) < limit:
        for p in queue.popleft()._prev:
            if p not in seen and len(seen) < limit:
                seen.add(p)
                queue.append(p)
    return seen


class _Bend:
    """A point where an edge that skips columns crosses one; it takes a row slot like a node."""


def _layout(nodes: list[Value], shown: set[Value]):
    """Positions of the nodes and the paths of the edges between them.

    Columns: a node sits one column left of its earliest user (the output is rightmost), so an
    expression tree has no long edges. An edge that still skips columns gets a ``_Bend`` in each
    column it crosses, which is ordered like a node so the edge passes between boxes.
    Rows: a few sweeps of the barycentre heuristic, left to right and back, reduce crossings.
    Returns ``({node: (x, y)}, [(parent, node, [bend points])])``.
    """
    users: dict[Value, list[Value]] = {v: [] for v in nodes}
    for v in nodes:
        for p in dict.fromkeys(v._prev):  # a + a is one edge
            if p in shown:
                users[p].append(v)
    dist: dict[Value, int] = {}
    for v in reversed(nodes):  # users come before their inputs
        dist[v] = 1 + max((dist[u] for u in users[v]), default=-1)
    depth = max(dist.values())
    col = {v: depth - dist[v] for v in nodes}

    left: dict[object, list] = {v: [] for v in nodes}  # neighbours in the column to the left
    right: dict[object, list] = {v: [] for v in nodes}
    columns: dict[int, list] = {c: [] for c in range(depth + 1)}
    for v in nodes:
        columns[col[v]].append(v)
    edges = []
    for p in nodes:
        for v in users[p]:
            chain = [p] + [_Bend() for _ in range(col[p] + 1, col[v])] + [v]
            for c, bend in enumerate(chain[1:-1], start=col[p] + 1):
                columns[c].append(bend)
            for a, b in zip(chain, chain[1:]):
                right.setdefault(a, []).append(b)
                left.setdefault(b, []).append(a)
            edges.append((p, v, chain[1:-1]))

    y = {n: i - (len(c) - 1) / 2 for c in columns.values() for i, n in enumerate(c)}
    for _ in range(4):  # barycentre sweeps
        for sweep, neighbours in ((range(depth + 1), left), (range(depth, -1, -1), right)):
            for k in sweep:
                c = columns[k]
                c.sort(key=lambda n: sum(y[m] for m in neighbours[n]) / len(neighbours[n]) if neighbours[n] else y[n])
                for i, n in enumerate(c):
                    y[n] = i - (len(c) - 1) / 2
    where = {n: (k * _DX, -y[n] * _DY) for k, c in columns.items() for n in c}
    return {v: where[v] for v in nodes}, [(p, v, [where[b] for b in bends]) for p, v, bends in edges]
