"""``GradingExecute``: nbgrader's Execute preprocessor, hardened for untrusted notebooks.

Used for grading runs only (``Autograde.autograde_preprocessors``); imported by the grading
workers, never by the library. Additions to nbgrader's ``Execute``:

* **test cells are judged, not run, in the kernel**: the kernel serves the judge's calls
  (``nnkit.grading.kernel_side``) while the cell's checks run in this process (``judge.py``),
  and the judge's verdict becomes the cell's outputs; the kernel is connected to the judge
  before any student code runs;
* caps on what a kernel can make the grader hold in memory while a cell runs: output
  characters per cell, widget (comm) traffic per notebook, traceback length;
* test cells score only by passing: a result value shown in a test cell (an
  ``execute_result``, which nbgrader would read as partial credit, even before an error) is
  kept as a plain display;
* a time limit for the whole notebook;
* **kernels started ahead of need**: the notebook's first kernel may be one the worker
  started while it graded the submission before (``prestarted``, ``kernel_pool.py``), already
  sandboxed and holding a copy of the student's folder; it serves this notebook only;
* **a stopped kernel costs only its own cell**: when a kernel dies (``os._exit``, a signal,
  the memory limit) or is stopped because it ignored the interrupt after the time limit, a
  fresh kernel runs the notebook again without that cell — the earlier cells silently, to
  rebuild the student's state — and grading goes on from the next cell.

What happened is written as JSON lines to ``events_file``; the worker reads it into the
submission's record for the summary.
"""
from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import time

from nbclient.client import NotebookClient
from nbclient.exceptions import DeadKernelError
from nbformat.v4 import new_output
from nbgrader.preprocessors import Execute
from traitlets import Any, Integer, List, Unicode

from . import cgroups
from .judge import Judge


def describe_exit(code, oom: bool = False) -> str:
    if oom:
        return "killed: the memory limit of the kernel's processes (cgroup) was reached"
    if code is None:
        return "exit status unknown"
    if code < 0:
        sig = -code
        name = signal.Signals(sig).name if sig in signal.Signals._value2member_map_ else str(sig)
        why = {"SIGXCPU": "CPU-time limit reached", "SIGKILL": "killed", "SIGXFSZ": "file-size limit"}.get(name, "")
        return f"signal {name}" + (f": {why}" if why else "")
    return f"exit code {code}"


class KernelStopped(Exception):
    """The kernel died or was stopped while running a cell."""


class GradingExecute(Execute):
    """nbgrader's Execute, hardened for untrusted notebooks (see the module docstring)."""

    notebook_timeout = Integer(
        1800, help="Seconds for the whole notebook; cells after the limit are not run (0 = none)."
    ).tag(config=True)
    max_output_chars = Integer(
        200_000, help="Characters of output kept per cell while it runs; the rest is dropped."
    ).tag(config=True)
    max_comm_bytes = Integer(
        2_000_000, help="Bytes of widget (comm) messages kept per notebook; the rest is dropped."
    ).tag(config=True)
    max_restarts = Integer(
        3, help="Fresh kernels started after a kernel was stopped, per notebook."
    ).tag(config=True)
    control_timeout = Integer(60, help="Seconds to wait for the kernel's answer to the grader's own requests.").tag(
        config=True)
    interrupt_grace = Integer(
        10, help="Seconds a timed-out kernel has to answer after the interrupt before it is stopped."
    ).tag(config=True)
    sandbox_report = Unicode("", help="File where the kernel launcher writes what it applied.").tag(config=True)
    kernel_cgroup = List(Unicode(), help="The kernel's control-group folders (to tell an OOM kill).").tag(config=True)
    events_file = Unicode("", help="Where to append what happened, one JSON object a line.").tag(config=True)
    runtime_dir = Unicode("", help="The kernel's runtime folder (the judge's socket goes there).").tag(config=True)
    prestarted = Any(None, allow_none=True,
                     help="Kernels started ahead of need: an object whose claim(folder) returns a kernel "
                          "holding a copy of that folder (kernel_pool.Claimed), or None.").tag(config=True)

    # -- the notebook ---------------------------------------------------------------------------
    def preprocess(self, nb, resources=None, km=None):
        NotebookClient.__init__(self, nb, km)
        self.reset_execution_trackers()
        self._check_assign_resources(resources)
        self._deadline = time.monotonic() + self.notebook_timeout if self.notebook_timeout else None
        self._comm_bytes, self._comm_truncated = 0, False
        self._oom_seen = cgroups.Group(0, list(self.kernel_cgroup)).oom_kills()
        self._judge = Judge(self.nb, self.runtime_dir or None)
        skip: set[int] = set()
        start = 0
        for attempt in range(self.max_restarts + 1):
            stopped = self._run_kernel(resources, start, skip, replay=attempt > 0)
            if stopped is None:
                break
            skip.add(stopped)
            start = stopped + 1
            if not any(c.cell_type == "code" and c.source.strip() for c in self.nb.cells[start:]):
                break
            if attempt == self.max_restarts:
                self._not_run(start, f"the kernel was stopped {attempt + 1} times")
            elif self._deadline is not None and time.monotonic() > self._deadline:
                self._not_run(start, f"the notebook used its {self.notebook_timeout} s")
                break
            else:
                self._event("restarted", self._name(stopped), test=self._is_test(self.nb.cells[stopped]),
                            detail="a fresh kernel ran the notebook again without this cell")
        self._judge.close()
        self.set_widgets_metadata()
        return self.nb, self.resources

    def _run_kernel(self, resources, start: int, skip: set[int], replay: bool) -> int | None:
        """One kernel: rebuild the state of cells before ``start``, then grade from there.

        Returns the index of the cell that stopped the kernel, or None.
        """
        self._alive = True
        claimed = None if replay else self._claim(resources)
        try:
            with self.setup_kernel(stderr=subprocess.DEVNULL):  # the kernel's log is kept in kernel.log
                info = self.wait_for_reply(self.kc.kernel_info())
                self.nb.metadata["language_info"] = info["content"]["language_info"]
                self._read_sandbox_report(claimed)
                self._connect_judge()
                for index in range(start) if replay else ():
                    if index not in skip and not self._replay_cell(index):
                        return index
                for index in range(start, len(self.nb.cells)):
                    try:
                        self.preprocess_cell(self.nb.cells[index], resources, index)
                    except KernelStopped:
                        return index
            return None
        finally:
            if claimed is not None:
                self._give_back(claimed)

    def _claim(self, resources):
        """A kernel started ahead of need, holding the notebook's folder, or None (nbclient then
        starts one, as for every later kernel of this notebook)."""
        if self.prestarted is None:
            return None
        folder = (resources or {}).get("metadata", {}).get("path") or os.getcwd()
        claimed = self.prestarted.claim(folder)
        if claimed is not None:
            self.km, self.kc, self.owns_km = claimed.km, claimed.kc, False
        return claimed

    def _give_back(self, claimed) -> None:
        """The claimed kernel served this notebook: stop it; later kernels are nbclient's own."""
        with contextlib.suppress(Exception):
            if self.kc is not None:
                self.kc.stop_channels()
        self.prestarted.discard(claimed.km)
        self.km, self.kc, self.owns_km = None, None, True

    def _replay_cell(self, index: int) -> bool:
        """Run an already graded cell again, silently, keeping its first outputs."""
        cell = self.nb.cells[index]
        if cell.cell_type != "code" or not cell.source.strip() or self._is_test(cell):
            return True  # test cells run nothing of the student's in the kernel
        reply = self._silent(cell.source, {}, timeout=self.timeout or 60)
        if reply is None:
            self._stop_kernel()
            return False
        return True

    def _connect_judge(self) -> None:
        """Open the judge's channel to this kernel before any student code runs."""
        server, path, token = self._judge.listen()
        # the caches of the import system are cleared first: a kernel started ahead of need got
        # the student's files after it started
        code = ("__import__('importlib').invalidate_caches(); "
                f"__import__('nnkit.grading.kernel_side', fromlist=['connect']).connect({path!r}, {token!r})")
        msg_id = self.kc.execute(code, silent=True, store_history=False, allow_stdin=False)
        connected = self._judge.accept(server, path, token)
        saved, self.timeout = self.timeout, self.control_timeout
        try:
            self.wait_for_reply(msg_id)
        except Exception:  # noqa: BLE001 - reported below through the missing channel
            connected = False
        finally:
            self.timeout = saved
        if not connected:
            self._judge.close()
            self._event("judge_unavailable", None, detail="the kernel did not connect to the grader")

    def _read_sandbox_report(self, claimed=None):
        if claimed is not None:
            self._event("sandbox", None, detail=claimed.report)
            return
        if not self.sandbox_report:
            return
        with contextlib.suppress(OSError, ValueError):
            with open(self.sandbox_report) as f:
                self._event("sandbox", None, detail=json.load(f))
            os.remove(self.sandbox_report)

    # -- one cell -------------------------------------------------------------------------------
    def preprocess_cell(self, cell, resources, index):
        if cell.cell_type != "code" or not cell.source.strip():
            return cell, resources
        name, is_test = self._name(index), self._is_test(cell)
        if self._deadline is not None and time.monotonic() > self._deadline:
            cell.outputs = [self._error("NotebookTimeout", f"not run: the notebook used its {self.notebook_timeout} s")]
            self._event("notebook_timeout", name, test=is_test)
            return cell, resources
        self._out_chars, self._out_truncated = 0, False
        started = time.monotonic()
        limit = self.timeout or 600
        # a test cell's checks get the cell's time limit, and so does the second run without the
        # references: the kernel serving them may take both, and a little more for the grader's side
        hearing = self._judge.start(cell, limit) if is_test else None
        source, saved_timeout = cell.source, self.timeout
        try:
            if hearing is not None:
                cell.source, self.timeout = hearing.serve_code, 2 * limit + 10
            cell, resources = super().preprocess_cell(cell, resources, index)
        except DeadKernelError:
            why = describe_exit(self._exit_code(), oom=self._oom())
            if hearing is not None:
                hearing.finish(grace=0)
            cell.outputs.insert(0, self._error("KernelDied", f"the kernel stopped while running this cell ({why})"))
            self._event("kernel_died", name, test=is_test, detail=why)
            raise KernelStopped(name)
        finally:
            cell.source, self.timeout = source, saved_timeout
        timed_out = any(o.get("output_type") == "error" and o.get("ename") == "CellTimeoutError" for o in cell.outputs)
        if hearing is not None:
            self._record_verdict(cell, name, hearing.finish(grace=1.0), timed_out)
        if timed_out:
            self._event("timeout", name, test=is_test, seconds=round(time.monotonic() - started, 1))
            if self._silent("", {}, timeout=self.interrupt_grace) is None:
                # the interrupt did not stop it (a loop that ignores SIGINT): stop the kernel
                self._stop_kernel()
                self._event("kernel_died", name, test=is_test,
                            detail="stopped by the grader: it ignored the interrupt")
                raise KernelStopped(name)
        if self._out_truncated:
            self._event("output_truncated", name, test=is_test)
        return cell, resources

    def _record_verdict(self, cell, name: str, verdict, timed_out: bool) -> None:
        """The judge's verdict is the test cell's output (whatever the kernel printed meanwhile)."""
        cell.outputs = verdict.outputs()
        if timed_out and verdict.passed:  # cannot happen unless the kernel stalled after the verdict
            cell.outputs.append(self._error("CellTimeoutError", "the kernel did not end this test in time"))
        if verdict.delegated:
            self._event("delegation", name, test=True, detail=verdict.delegated)
        if verdict.remark:
            self._event("judge", name, test=True, passed=verdict.passed, detail=verdict.remark)

    def _not_run(self, start: int, why: str) -> None:
        for index in range(start, len(self.nb.cells)):
            cell = self.nb.cells[index]
            if cell.cell_type == "code" and cell.source.strip():
                cell.outputs = [self._error("KernelDied", f"not run: {why}")]
                self._event("not_run", self._name(index), test=self._is_test(cell))

    # -- what a kernel can make the grader hold ---------------------------------------------------
    def output(self, outs, msg, display_id, cell_index):
        content = msg.get("content", {})
        mtype = msg.get("msg_type")
        if mtype == "error":
            tb = content.get("traceback", [])
            if len(tb) > 60:
                content["traceback"] = tb[:30] + ["... traceback truncated by the grader ..."] + tb[-29:]
            return super().output(outs, msg, display_id, cell_index)
        if mtype == "stream":
            size = len(content.get("text", ""))
        elif mtype in ("display_data", "execute_result", "update_display_data"):
            size = sum(len(str(v)) for v in content.get("data", {}).values())
        else:
            size = 0
        if self.max_output_chars and self._out_chars + size > self.max_output_chars:
            return self._truncate(outs, content, mtype)
        self._out_chars += size
        return super().output(outs, msg, display_id, cell_index)

    def _truncate(self, outs, content, mtype):
        room = max(self.max_output_chars - self._out_chars, 0)
        self._out_chars = self.max_output_chars
        first = not self._out_truncated
        self._out_truncated = True
        if mtype == "stream" and (first or room):
            note = f"\n... output truncated by the grader (more than {self.max_output_chars} characters) ...\n"
            out = new_output("stream", name=content.get("name", "stdout"), text=content.get("text", "")[:room] + note)
            outs.append(out)
            return out
        return None

    def handle_comm_msg(self, outs, msg, cell_index):
        content = msg.get("content", {})
        size = len(json.dumps(content.get("data", {}), default=str)) + sum(
            len(b) for b in msg.get("buffers", []) or [])
        self._comm_bytes += size
        if self.max_comm_bytes and self._comm_bytes > self.max_comm_bytes:
            if not self._comm_truncated:
                self._comm_truncated = True
                self._event("comm_truncated", self._name(cell_index), test=False,
                            detail=f"more than {self.max_comm_bytes} bytes of widget messages")
            return None
        return super().handle_comm_msg(outs, msg, cell_index)

    def _silent(self, code: str, user_expressions: dict, timeout: int | None = None):
        if not self.kc or not self._alive:
            return None
        saved = self.timeout
        self.timeout = timeout or self.control_timeout
        try:
            msg_id = self.kc.execute(code, silent=True, store_history=False,
                                     user_expressions=user_expressions, allow_stdin=False)
            return self.wait_for_reply(msg_id)
        except DeadKernelError:
            self._alive = False
            return None
        finally:
            self.timeout = saved

    # -- helpers --------------------------------------------------------------------------------
    def _event(self, kind: str, cell: str | None, **fields) -> None:
        if not self.events_file:
            return
        record = {"kind": kind, **({"cell": cell} if cell is not None else {}), **fields}
        with open(self.events_file, "a") as f:
            f.write(json.dumps(record, default=str) + "\n")

    @staticmethod
    def _meta(cell) -> dict:
        return cell.metadata.get("nbgrader", {})

    def _name(self, index: int) -> str:
        return self._meta(self.nb.cells[index]).get("grade_id", f"cell {index}")

    def _is_test(self, cell) -> bool:
        """An autograder test: graded and not an answer (a manually graded answer runs as code)."""
        meta = self._meta(cell)
        return bool(meta.get("grade")) and not meta.get("solution")

    def _oom(self) -> bool:
        before, self._oom_seen = self._oom_seen, cgroups.Group(0, list(self.kernel_cgroup)).oom_kills()
        return self._oom_seen > before

    def _stop_kernel(self):
        self._alive = False
        with contextlib.suppress(Exception):
            self.km.provisioner.process.kill()
        with contextlib.suppress(Exception):
            self.km.provisioner.process.wait(timeout=5)

    def _exit_code(self):
        self._alive = False
        with contextlib.suppress(Exception):
            proc = self.km.provisioner.process
            proc.wait(timeout=2)
            return proc.returncode
        return None

    @staticmethod
    def _error(ename: str, evalue: str):
        return new_output("error", ename=ename, evalue=evalue, traceback=[f"{ename}: {evalue}"])
