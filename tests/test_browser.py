"""End to end in a real browser: JupyterLab runs lecture 1 and a slider really redraws its figure.

What a student does, automated: open the lecture in JupyterLab, *Run → Run All Cells*, move the
perceptron's w₁ slider with the keyboard, and see the decision-line figure change. The test
starts its own JupyterLab server on 127.0.0.1 (free port, known token) over a temporary copy of
``lectures/``, with its settings, workspaces, runtime and IPython directories in temporary
folders, and drives Debian's Chromium headless through Playwright. Server and browser are
stopped at the end whatever happens (the server by killing its own process group).

Needs ``/usr/bin/chromium`` (``apt-get install chromium``) and the ``playwright`` Python package;
``playwright install`` is not needed. Skips with the reason when either is missing.
"""
from __future__ import annotations

import base64
import importlib.util
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest

pytestmark = [pytest.mark.browser, pytest.mark.notebooks]

ROOT = Path(__file__).resolve().parents[1]
LECTURE = "01_perceptrons_and_networks.ipynb"
CHROMIUM = Path(os.environ.get("NNKIT_CHROMIUM", "/usr/bin/chromium"))
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                 "--disable-component-update", "--no-first-run", "--disable-sync", "--disable-quic"]
TOKEN = "nnkit-browser-test"
TIMEOUT_MS = 60_000

# JupyterLab user settings written before the server starts.
LAB_SETTINGS = {
    # no "get notified about Jupyter news?" toast over the notebook, no update checks
    "@jupyterlab/apputils-extension/notification.jupyterlab-settings": {"fetchNews": "false", "checkForUpdates": False},
    # render every cell (the default lazily renders cells outside the viewport)
    "@jupyterlab/notebook-extension/tracker.jupyterlab-settings": {"windowingMode": "none"},
    # never write outputs back into the (copied) notebook
    "@jupyterlab/docmanager-extension/plugin.jupyterlab-settings": {"autosave": False},
}

KERNEL_IDLE_JS = """() => {
  const w = window.jupyterapp && window.jupyterapp.shell.currentWidget;
  const k = w && w.sessionContext && w.sessionContext.session && w.sessionContext.session.kernel;
  return !!k && k.status === 'idle' && k.connectionStatus === 'connected';
}"""


def _requirements_missing() -> str | None:
    if not CHROMIUM.exists():
        return f"{CHROMIUM} is missing: install Debian's Chromium (apt-get install chromium) to run the browser test"
    if importlib.util.find_spec("playwright") is None:
        return "the playwright Python package is not installed (pip install playwright; no browser download needed)"
    if not (Path(sys.executable).parent / "jupyter-lab").exists() or importlib.util.find_spec("jupyterlab") is None:
        return "JupyterLab is not installed in this environment (pip install 'nnkit[student]')"
    return None


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _stop_process_group(proc: subprocess.Popen) -> None:
    """Stop the server and every kernel it started (they share the server's process group)."""
    if proc.poll() is None:
        try:
            os.killpg(proc.pid, signal.SIGTERM)
            proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(timeout=15)
        except ProcessLookupError:
            pass
    else:  # the server is gone; its kernels may not be
        try:
            os.killpg(proc.pid, signal.SIGKILL)
        except (ProcessLookupError, PermissionError):
            pass


@pytest.fixture(scope="module")
def lab_server(tmp_path_factory):
    """A private JupyterLab over a copy of lectures/: yields (base_url, log_path)."""
    reason = _requirements_missing()
    if reason:
        pytest.skip(reason)
    tmp = tmp_path_factory.mktemp("jupyterlab")
    env = dict(os.environ, PATH=f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}")
    env.pop("JUPYTER_CONFIG_DIR", None)
    for var, sub in [("JUPYTER_RUNTIME_DIR", "runtime"), ("JUPYTERLAB_SETTINGS_DIR", "settings"),
                     ("JUPYTERLAB_WORKSPACES_DIR", "workspaces"), ("IPYTHONDIR", "ipython"),
                     ("MPLCONFIGDIR", "matplotlib"), ("JUPYTER_CONFIG_DIR", "config")]:
        (tmp / sub).mkdir()
        env[var] = str(tmp / sub)
    env["MPLBACKEND"] = "module://matplotlib_inline.backend_inline"
    for rel, value in LAB_SETTINGS.items():
        path = tmp / "settings" / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(value))
    root = tmp / "lectures"
    shutil.copytree(ROOT / "lectures", root)

    port = _free_port()
    base = f"http://127.0.0.1:{port}"
    cmd = [str(Path(sys.executable).parent / "jupyter-lab"), "--no-browser", "--ServerApp.allow_root=True",
           "--ServerApp.ip=127.0.0.1", f"--ServerApp.port={port}", "--ServerApp.port_retries=0",
           f"--IdentityProvider.token={TOKEN}", f"--ServerApp.root_dir={root}",
           "--LabApp.news_url=None", "--LabApp.check_for_updates_class=jupyterlab.NeverCheckForUpdate",
           "--LabApp.extension_manager=readonly", "--LabApp.expose_app_in_browser=True"]
    log_path = tmp / "server.log"
    with open(log_path, "w") as log:
        proc = subprocess.Popen(cmd, env=env, cwd=root, stdout=log, stderr=subprocess.STDOUT,
                                start_new_session=True)
    try:
        deadline = time.monotonic() + 90
        while True:
            if proc.poll() is not None:
                raise RuntimeError(f"JupyterLab exited with code {proc.returncode}:\n{log_path.read_text()[-3000:]}")
            try:
                urllib.request.urlopen(f"{base}/api/status?token={TOKEN}", timeout=2).close()
                break
            except (urllib.error.URLError, OSError):
                if time.monotonic() > deadline:
                    raise TimeoutError(f"JupyterLab did not answer within 90 s:\n{log_path.read_text()[-3000:]}")
                time.sleep(0.25)
        yield base, log_path
    finally:
        _stop_process_group(proc)


@pytest.fixture
def page(lab_server, tmp_path):
    """A fresh headless Chromium page that can reach only the local server."""
    from playwright.sync_api import sync_playwright

    manager = sync_playwright().start()
    browser = None
    try:
        browser = manager.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        context = browser.new_context(viewport={"width": 1400, "height": 1000})
        page = context.new_page()
        page.set_default_timeout(TIMEOUT_MS)
        page.route("**/*", lambda route: route.continue_()
                   if route.request.url.startswith(("http://127.0.0.1", "data:", "blob:")) else route.abort())
        yield page
    finally:
        if browser is not None:
            try:
                browser.close()
            except Exception:  # the browser may already be gone; stopping Playwright still cleans up
                pass
        manager.stop()


def _png(src: str | None) -> bytes:
    """The PNG bytes of an <img src="data:image/png;base64,..."> (fails clearly if it is not one)."""
    prefix = "data:image/png;base64,"
    assert src and src.startswith(prefix), f"expected an inline PNG figure, got src={str(src)[:60]!r}"
    data = base64.b64decode(src[len(prefix):])
    assert data[:8] == b"\x89PNG\r\n\x1a\n", "figure data is not a PNG"
    return data


def _png_size(data: bytes) -> tuple[int, int]:
    return int.from_bytes(data[16:20], "big"), int.from_bytes(data[20:24], "big")


def test_perceptron_slider_redraws_the_figure(lab_server, page, tmp_path):
    from playwright.sync_api import expect

    base, log_path = lab_server
    started = time.perf_counter()
    try:
        page.goto(f"{base}/lab/tree/{LECTURE}?token={TOKEN}&reset")
        page.locator(".jp-NotebookPanel").first.wait_for()
        page.wait_for_function(KERNEL_IDLE_JS)                  # kernel started and connected

        # Run → Run All Cells, as a student would.
        page.locator(".lm-MenuBar-itemLabel", has_text="Run").first.click()
        page.locator(".lm-Menu-itemLabel", has_text="Run All Cells").first.click()

        demo = page.locator(".perceptron-demo").first
        out = demo.locator(".widget-output").first
        expect(out).to_contain_text("w1=+1.00 w2=-1.00 b=+0.00", timeout=TIMEOUT_MS)
        # The last cell's output, then an idle kernel: every cell has run.
        expect(page.locator(".jp-OutputArea-output", has_text="(1024, 1024, 1024, 10)")).to_have_count(
            1, timeout=TIMEOUT_MS)
        page.wait_for_function(KERNEL_IDLE_JS)
        errors = page.locator(".jp-OutputArea-output[data-mime-type='application/vnd.jupyter.stderr']")
        assert errors.count() == 0, f"a cell wrote to stderr: {errors.first.inner_text()[:500]}"
        expect(out.locator("img")).to_have_count(1)
        before = _png(out.locator("img").first.get_attribute("src"))

        # Move the w₁ slider five steps to the right with the keyboard (one press = one step of 0.1).
        slider = demo.locator(".widget-slider").first
        handle = slider.locator(".noUi-handle")
        handle.scroll_into_view_if_needed()
        handle.focus()
        for _ in range(5):
            handle.press("ArrowRight")
        expect(slider.locator(".widget-readout")).to_have_text("1.50")
        # Each press queues one redraw; compare only once the final one has been drawn.
        expect(out).to_contain_text("w1=+1.50 w2=-1.00 b=+0.00", timeout=TIMEOUT_MS)
        page.wait_for_function(KERNEL_IDLE_JS)
        expect(out).to_contain_text("w1=+1.50 w2=-1.00 b=+0.00")
        expect(out.locator("img")).to_have_count(1)
        after = _png(out.locator("img").first.get_attribute("src"))

        assert _png_size(after) == _png_size(before), "the redrawn figure should have the same size"
        assert after != before, "moving the w₁ slider did not change the perceptron figure"
    except Exception:
        shot = tmp_path / "failure.png"
        try:
            page.screenshot(path=str(shot), full_page=True)
        except Exception:
            pass
        print(f"screenshot: {shot}\nserver log: {log_path}\n{log_path.read_text()[-2000:]}")
        raise
    finally:
        print(f"browser test: {time.perf_counter() - started:.1f} s in the browser")
