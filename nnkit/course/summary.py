"""The summary ``nnkit grade`` prints: scores, failures by question, and every submission that
needs a person's attention (timed out, errored, hit a limit, called the reference, had files
refused or course cells put back, or holds code worth reading)."""
from __future__ import annotations

import statistics

from .grade import GradeRun

def _fmt(x: float) -> str:
    return f"{x:.2f}".rstrip("0").rstrip(".")


def summary(run: GradeRun) -> str:
    lines = []
    n = len(run.records)
    per = run.seconds / n if n else 0.0
    where = (f"on the Dask cluster at {run.scheduler} ({run.jobs} worker thread{'s' if run.jobs != 1 else ''})"
             if run.scheduler else f"with {run.jobs} job{'s' if run.jobs != 1 else ''}")
    lines.append(f"{run.assignment}: {n} submission{'s' if n != 1 else ''} graded in {run.seconds:.1f} s "
                 f"{where} ({per:.1f} s per submission, "
                 f"{60 * n / run.seconds if run.seconds else 0:.1f} per minute)")
    c = run.containment
    if c:
        if c.get("sandbox"):
            lim = c.get("limits", {})
            lines.append(f"sandbox: user {c.get('user')}; network {c.get('network')}; files: {c.get('files')}; "
                         f"limits: {lim.get('memory', 0) >> 20} MiB, {lim.get('cpu_seconds')} CPU s, "
                         f"{lim.get('processes')} processes, {lim.get('file_size', 0) >> 20} MiB per file")
            if c.get("cgroup"):
                lines.append(c["cgroup"])
            if c.get("note"):
                lines.append(c["note"])
        else:
            lines.append(c.get("note", ""))
    sc = [v for s, v in run.scores.items()]
    if sc:
        totals = [v["score"] for v in sc]
        mx = max(v["max_score"] for v in sc)
        auto_max = max(v["max_code_score"] for v in sc)
        lines.append(f"scores (out of {_fmt(mx)}; {_fmt(auto_max)} autograded): mean {_fmt(statistics.mean(totals))}, "
                     f"median {_fmt(statistics.median(totals))}, min {_fmt(min(totals))}, max {_fmt(max(totals))}")
        manual = sum(1 for v in sc if v["needs_manual_grade"])
        if manual:
            lines.append(f"{manual} submission{'s' if manual != 1 else ''} need manual grading (formgrader)")
        # failures by question
        questions: dict[str, list] = {}
        for s, v in run.scores.items():
            for cell, (score, maxs, is_code, needs) in v["grades"].items():
                if not is_code:
                    continue
                q = questions.setdefault(cell, [maxs, 0, 0, 0])
                if score >= maxs - 1e-9:
                    q[1] += 1
                else:
                    q[2] += 1
        timed = {}
        for r in run.records.values():
            for e in r.get("events", []):
                if e["kind"] in ("timeout", "notebook_timeout", "not_run", "kernel_died") and e.get("test"):
                    timed[e["cell"]] = timed.get(e["cell"], 0) + 1
        if questions:
            w = max(len("question"), *(len(q) for q in questions))
            lines.append("")
            lines.append(f"{'question':<{w}}  points  full marks  lost points  not run/timed out")
            for q, (maxs, ok, bad, _) in questions.items():
                lines.append(f"{q:<{w}}  {_fmt(maxs):>6}  {ok:>10}  {bad:>11}  {timed.get(q, 0):>17}")
    attention = []
    for s in sorted(run.records):
        r = run.records[s]
        notes = []
        if r.get("status") not in ("graded",):
            notes.append(f"{r.get('status')}" + (f": {r['error']}" if r.get("error") else ""))
        kinds: dict[str, list] = {}
        for e in r.get("events", []):
            kinds.setdefault(e["kind"], []).append(e)
        if "timeout" in kinds:
            notes.append("cell timed out: " + ", ".join(e["cell"] for e in kinds["timeout"]))
        for e in kinds.get("kernel_died", []):
            notes.append(f"kernel stopped in {e['cell']} ({e.get('detail')})"
                         + ("; a fresh kernel graded the rest without that cell"
                            if any(r["cell"] == e["cell"] for r in kinds.get("restarted", [])) else ""))
        if "not_run" in kinds:
            notes.append(f"{len(kinds['not_run'])} cells not run: " + ", ".join(e["cell"] for e in kinds["not_run"][:4]))
        if "comm_truncated" in kinds:
            notes.append("widget messages truncated: " + kinds["comm_truncated"][0].get("detail", ""))
        if "notebook_timeout" in kinds:
            notes.append(f"notebook time limit: {len(kinds['notebook_timeout'])} cells not run")
        if "output_truncated" in kinds:
            notes.append("output truncated: " + ", ".join(e["cell"] for e in kinds["output_truncated"]))
        if "delegation" in kinds:
            notes.append("CALLS THE REFERENCE (zero): " + "; ".join(
                f"{e['cell']}: {', '.join(e.get('detail', [])[:2])}" for e in kinds["delegation"]))
        if "judge_unavailable" in kinds:
            notes.append("the kernel never connected to the grader: its tests score 0")
        unjudged = [e for e in kinds.get("judge", []) if not e.get("passed")]
        if unjudged:
            notes.append("tests the grader could not judge: " + ", ".join(
                f"{e['cell']} ({e.get('detail')})" for e in unjudged[:3]))
        if r.get("changes"):
            notes.append("course cells put back: " + "; ".join(r["changes"][:4]))
        if r.get("dropped"):
            notes.append("files refused: " + "; ".join(r["dropped"][:3]))
        if r.get("review"):
            notes.append("read the code: " + "; ".join(r["review"][:3]))
        if notes:
            attention.append((s, notes))
    if attention:
        lines.append("")
        lines.append("submissions that need attention:")
        w = max(len(s) for s, _ in attention)
        for s, notes in attention:
            lines.append(f"  {s:<{w}}  {notes[0]}")
            for note in notes[1:]:
                lines.append(f"  {'':<{w}}  {note}")
    if run.failed:
        lines.append("")
        lines.append(f"GRADER FAILED: {run.message}")
    return "\n".join(lines)
