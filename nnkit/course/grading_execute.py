"""``GradingExecute``: nbgrader's Execute preprocessor, hardened for untrusted notebooks.

Used for grading runs only (``Autograde.autograde_preprocessors``); imported by the grading
workers, never by the library. Additions to nbgrader's ``Execute``:

* the integrity guard before and after every test cell (``guard.py``);
* caps on what a kernel can make the grader hold in memory while a cell runs: output
  characters per cell, widget (comm) traffic per notebook, traceback length;
* test cells score only by passing: a result value shown in a test cell (an
  ``execute_result``, which nbgrader would read as partial credit, even before an error) is
  kept as a plain display;
* a time limit for the whole notebook;
* **a stopped kernel costs only its own cell**: when a kernel dies (``os._exit``, a signal,
  the memory limit) or is stopped because it ignored the interrupt after the time limit, a
  fresh kernel runs the notebook again without that cell — the earlier cells silently, to
  rebuild the student's state — and grading goes on from the next cell.

What happened is written as JSON lines to ``events_file``; the worker reads it into the
submission's record for the summary.
"""
from __future__ import annotations

import ast
import contextlib
import hashlib
import hmac
import json
import os
import secrets
import signal
import subprocess
import time

from nbclient.client import NotebookClient
from nbclient.exceptions import DeadKernelError
from nbformat.v4 import new_output
from nbgrader.preprocessors import Execute
from traitlets import Bool, Integer, List, Unicode

from . import cgroups
from . import guard as guard_module


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
    guard = Bool(True, help="Check numpy, nnkit and the checks before and after each test cell.").tag(config=True)
    guard_preload = List(list(guard_module.DEFAULT_PRELOAD)).tag(config=True)
    guard_protect = List(list(guard_module.DEFAULT_PROTECT)).tag(config=True)
    guard_timeout = Integer(60, help="Seconds to wait for the guard's answer.").tag(config=True)
    interrupt_grace = Integer(
        10, help="Seconds a timed-out kernel has to answer after the interrupt before it is stopped."
    ).tag(config=True)
    sandbox_report = Unicode("", help="File where the kernel launcher writes what it applied.").tag(config=True)
    kernel_cgroup = List(Unicode(), help="The kernel's control-group folders (to tell an OOM kill).").tag(config=True)
    events_file = Unicode("", help="Where to append what happened, one JSON object a line.").tag(config=True)

    # -- the notebook ---------------------------------------------------------------------------
    def preprocess(self, nb, resources=None, km=None):
        NotebookClient.__init__(self, nb, km)
        self.reset_execution_trackers()
        self._check_assign_resources(resources)
        self._deadline = time.monotonic() + self.notebook_timeout if self.notebook_timeout else None
        self._comm_bytes, self._comm_truncated = 0, False
        self._oom_seen = cgroups.Group(0, list(self.kernel_cgroup)).oom_kills()
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
        self.set_widgets_metadata()
        return self.nb, self.resources

    def _run_kernel(self, resources, start: int, skip: set[int], replay: bool) -> int | None:
        """One kernel: rebuild the state of cells before ``start``, then grade from there.

        Returns the index of the cell that stopped the kernel, or None.
        """
        self._guard_on = False
        self._alive = True
        with self.setup_kernel(stderr=subprocess.DEVNULL):  # the kernel's log is kept in kernel.log
            info = self.wait_for_reply(self.kc.kernel_info())
            self.nb.metadata["language_info"] = info["content"]["language_info"]
            self._read_sandbox_report()
            if self.guard:
                self._install_guard()
            for index in range(start) if replay else ():
                if index not in skip and not self._replay_cell(index):
                    return index
            for index in range(start, len(self.nb.cells)):
                try:
                    self.preprocess_cell(self.nb.cells[index], resources, index)
                except KernelStopped:
                    return index
        return None

    def _replay_cell(self, index: int) -> bool:
        """Run an already graded cell again, silently, keeping its first outputs."""
        cell = self.nb.cells[index]
        if cell.cell_type != "code" or not cell.source.strip():
            return True
        reply = self._silent(cell.source, {}, timeout=self.timeout or 60)
        if reply is None:
            self._stop_kernel()
            return False
        if self._guard_on and self._meta(cell).get("locked"):
            self._guard_call("seal")
        return True

    def _read_sandbox_report(self):
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
        before = self._guard_call("check") if (is_test and self._guard_on) else []
        self._out_chars, self._out_truncated = 0, False
        started = time.monotonic()
        try:
            cell, resources = super().preprocess_cell(cell, resources, index)
        except DeadKernelError:
            why = describe_exit(self._exit_code(), oom=self._oom())
            cell.outputs.insert(0, self._error("KernelDied", f"the kernel stopped while running this cell ({why})"))
            self._event("kernel_died", name, test=is_test, detail=why)
            raise KernelStopped(name)
        if is_test:
            self._no_partial_credit(cell)
        if any(o.get("output_type") == "error" and o.get("ename") == "CellTimeoutError" for o in cell.outputs):
            self._event("timeout", name, test=is_test, seconds=round(time.monotonic() - started, 1))
            if self._silent("", {}, timeout=self.interrupt_grace) is None:
                # the interrupt did not stop it (a loop that ignores SIGINT): stop the kernel
                self._stop_kernel()
                self._event("kernel_died", name, test=is_test,
                            detail="stopped by the grader: it ignored the interrupt")
                raise KernelStopped(name)
        if self._out_truncated:
            self._event("output_truncated", name, test=is_test)
        if self._guard_on:
            self._guard_after(cell, name, is_test, before)
        return cell, resources

    def _guard_after(self, cell, name: str, is_test: bool, before: list[str]) -> None:
        if is_test:
            found = list(dict.fromkeys(list(before) + list(self._guard_call("check"))))
            if found:
                msg = "this test ran while the submission had replaced what the checks use: " + "; ".join(found[:6])
                cell.outputs.insert(0, self._error("IntegrityError", msg))
                self._event("tamper", name, test=True, detail=found)
        elif self._meta(cell).get("locked"):
            found = self._guard_call("seal")
            if found:
                self._event("tamper", name, test=False, detail=found)

    @staticmethod
    def _no_partial_credit(cell) -> None:
        """A value shown by a test cell is not a score: nbgrader would read an
        ``execute_result`` as partial credit, even one shown before the cell failed."""
        for out in cell.outputs:
            if out.get("output_type") == "execute_result":
                out["output_type"] = "display_data"
                out.pop("execution_count", None)

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

    # -- the guard ------------------------------------------------------------------------------
    def _install_guard(self):
        self._guard_key = secrets.token_hex(32)
        code = (f"import nnkit.course.guard as _nnkit_guard\n"
                f"_nnkit_guard.install({self._guard_key!r}, {list(self.guard_preload)!r}, "
                f"{list(self.guard_protect)!r})\n"
                f"del _nnkit_guard\n")
        reply = self._silent(code, {})
        if reply is None or reply["content"].get("status") != "ok":
            why = "no answer" if reply is None else reply["content"].get("evalue", "error")
            self._event("guard_unavailable", None, detail=why)
            return
        self._guard_on = True

    def _guard_call(self, mode: str) -> list[str]:
        nonce = secrets.token_hex(16)
        expr = f"__import__('nnkit.course.guard', fromlist=['check']).check({nonce!r}, {mode!r})"
        reply = self._silent("", {"g": expr})
        if reply is None:  # the kernel is busy (a loop that ignores interrupts): nothing to say
            return []
        answer = reply["content"].get("user_expressions", {}).get("g", {})
        try:
            text = ast.literal_eval(answer["data"]["text/plain"])
            body, mac = text.rsplit("\n", 1)
            expected = hmac.new(self._guard_key.encode(), (nonce + body).encode(), hashlib.sha256).hexdigest()
            data = json.loads(body)
            if not hmac.compare_digest(mac, expected) or data.get("nonce") != nonce:
                return ["the integrity check's answer was forged"]
            return list(data.get("violations", []))
        except Exception:
            if self._alive and reply["content"].get("status") == "ok":
                return ["the integrity check could not run (its answer was removed or changed)"]
            return []

    def _silent(self, code: str, user_expressions: dict, timeout: int | None = None):
        if not self.kc or not self._alive:
            return None
        saved = self.timeout
        self.timeout = timeout or self.guard_timeout
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
        return bool(self._meta(cell).get("grade"))

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
