"""The dashboard in a real browser: JupyterLab, headless Debian Chromium driven by Playwright.

Runs the lesson's cells (all but the last, which stops the dashboard), then clicks the
dashboard's own buttons: a peer opens a 6,000,000 sat channel (accepted, then ready after
mining), another a 4,000,000 sat one (rejected), and a peer pays an invoice (the balance
bar moves). Finally it runs the last cell and checks the dashboard says it stopped. A
screenshot of the end state goes to ``test-artifacts/dashboard.png``.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
NOTEBOOK = ROOT / "notebooks" / "04_node_dashboard.ipynb"
CHROMIUM = Path("/usr/bin/chromium")
SCREENSHOT = ROOT / "test-artifacts" / "dashboard.png"
LAUNCH_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
               "--disable-component-update", "--disable-sync", "--no-first-run", "--disable-quic"]
KERNEL_IDLE = "#jp-main-statusbar >> text=Python 3 (ipykernel) | Idle"
TIMEOUT_MS = 30_000


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _wait_for_server(url: str, proc: subprocess.Popen[bytes], timeout_s: float = 30.0) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"JupyterLab exited early with code {proc.returncode}")
        try:
            with urllib.request.urlopen(f"{url}/api/status", timeout=1) as response:
                if response.status == 200:
                    return
        except OSError:
            time.sleep(0.2)
    raise RuntimeError(f"JupyterLab did not answer at {url} within {timeout_s:g} s")


def _shut_down_kernels(url: str) -> None:
    """Ask the server to stop its kernels (they live in their own sessions, not our process group)."""
    try:
        with urllib.request.urlopen(f"{url}/api/kernels", timeout=5) as response:
            kernels = json.load(response)
        for kernel in kernels:
            request = urllib.request.Request(f"{url}/api/kernels/{kernel['id']}", method="DELETE")
            urllib.request.urlopen(request, timeout=10).close()
    except OSError:
        pass  # the server is already gone; its kernels follow their parent


@pytest.fixture
def lab(tmp_path: Path) -> Iterator[str]:
    """JupyterLab on a free loopback port, in its own process group, serving a copy of the lesson."""
    if not CHROMIUM.exists():
        pytest.skip(f"{CHROMIUM} is missing: install Debian's chromium (apt-get install chromium) for this test")
    pytest.importorskip("playwright.sync_api", reason="playwright (Python) is not installed")
    root, runtime, settings = tmp_path / "root", tmp_path / "runtime", tmp_path / "settings"
    root.mkdir()
    shutil.copy(NOTEBOOK, root / NOTEBOOK.name)
    notification = settings / "@jupyterlab" / "apputils-extension" / "notification.jupyterlab-settings"
    notification.parent.mkdir(parents=True)
    notification.write_text(json.dumps({"fetchNews": "false", "checkForUpdates": False}))
    port = _free_port()
    env = dict(os.environ, JUPYTER_RUNTIME_DIR=str(runtime), JUPYTERLAB_SETTINGS_DIR=str(settings),
               JUPYTERLAB_WORKSPACES_DIR=str(tmp_path / "workspaces"))
    proc = subprocess.Popen(
        [sys.executable, "-m", "jupyterlab", "--no-browser", f"--port={port}", "--ServerApp.ip=127.0.0.1",
         "--IdentityProvider.token=", "--ServerApp.password=", "--allow-root", f"--ServerApp.root_dir={root}",
         "--LabApp.news_url=None", "--LabApp.check_for_updates_class=jupyterlab.NeverCheckForUpdate"],
        env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        _wait_for_server(url, proc)
        yield url
    finally:
        _shut_down_kernels(url)
        os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(15)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(5)
    assert not list(runtime.glob("kernel-*.json")), "a kernel was left running"


def _run_menu(page, command: str) -> None:
    page.click("div.lm-MenuBar-itemLabel:text-is('Run')")
    page.click(f"li.lm-Menu-item[data-command='{command}']")


def _event_types(page, count: int) -> list[str]:
    items = page.locator(".ldkkit-events details.ldkkit-event")
    return [items.nth(i).get_attribute("data-event") for i in range(count)]


def _events_show(page, expected: list[str]) -> bool:
    """Whether the newest events are ``expected``, waiting for the widget (it may update after the status line)."""
    deadline = time.monotonic() + TIMEOUT_MS / 1000
    while _event_types(page, len(expected)) != expected and time.monotonic() < deadline:
        page.wait_for_timeout(100)
    return _event_types(page, len(expected)) == expected


def _control(page, button: str, expected_status: str, **choices: str) -> None:
    """Choose the dropdowns' labels, click a dashboard button and wait for its outcome."""
    for css, label in choices.items():
        page.select_option(f".ldkkit-{css.replace('_', '-')} select", label=label)
    page.click(f".ldkkit-btn-{button}")
    page.wait_for_selector(f".ldkkit-status >> text={expected_status}", timeout=TIMEOUT_MS)


def test_the_dashboard_in_jupyterlab(lab: str) -> None:
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=str(CHROMIUM), args=LAUNCH_ARGS)
        try:
            page = browser.new_page(viewport={"width": 1400, "height": 1600})
            _play(page, lab)
        finally:
            browser.close()


def _play(page, url: str) -> None:
    from playwright.sync_api import expect
    page.goto(f"{url}/lab/tree/{NOTEBOOK.name}")
    page.wait_for_selector(KERNEL_IDLE, timeout=60_000)
    # Every cell but the last, which stops the dashboard: select it, then run all above it.
    page.locator(".jp-Notebook .jp-Cell").last.click()
    _run_menu(page, "notebook:run-all-above")
    page.wait_for_selector(".jp-OutputArea-output >> text=pay_peer failed", timeout=60_000)
    page.wait_for_selector(".ldkkit-dashboard .ldkkit-btn-peer-opens-channel", timeout=TIMEOUT_MS)

    # A peer opens a 6,000,000 sat channel: accepted, pending, then ready once mined.
    _control(page, "peer-opens-channel", "carol opened a 6,000,000 sat channel to you: accepted",
             peer="carol", channel_sats="6,000,000 sat")
    assert _events_show(page, ["ChannelPending", "OpenChannelRequest"])
    _control(page, "mine", "mined 6 blocks", blocks="6")
    assert _events_show(page, ["ChannelReady"])
    assert "carol" in page.locator(".ldkkit-events summary").first.inner_text()

    # A 4,000,000 sat channel: the reference policy rejects it, and the call shows under the event.
    _control(page, "peer-opens-channel", "alice opened a 4,000,000 sat channel to you: your handler rejected it",
             peer="alice", channel_sats="4,000,000 sat")
    assert _events_show(page, ["OpenChannelRequest"])
    assert "force_close_without_broadcasting_txn" in page.locator(".ldkkit-events .ldkkit-call").first.inner_text()

    # An event expands to all its fields.
    page.locator(".ldkkit-events summary").first.click()
    assert "funding_satoshis: 4000000" in page.locator(".ldkkit-events details pre").first.inner_text()

    # carol pays our invoice: our side of her channel's balance bar grows.
    bar = page.locator(".ldkkit-bar[title^='carol:']")
    assert bar.get_attribute("title") == "carol: local 0 sat, remote 6,000,000 sat"
    assert "width:0.00%" in bar.locator(".ldkkit-bar-local").get_attribute("style")
    _control(page, "peer-pays-invoice", "carol paid your 50,000 sat invoice", peer="carol",
             payment_sats="50,000 sat")
    # The status line can show before the table's new state reaches the browser: wait for it, as a reader would.
    expect(bar).to_have_attribute("title", "carol: local 50,000 sat, remote 5,950,000 sat", timeout=TIMEOUT_MS)
    expect(bar.locator(".ldkkit-bar-local")).to_have_attribute("style", re.compile(r"width:0\.83%"),
                                                               timeout=TIMEOUT_MS)
    assert page.locator(".ldkkit-errors li").count() == 1  # only the notebook's own pay_peer error

    # The last cell stops the dashboard, which says so.
    page.locator(".jp-Notebook .jp-Cell").last.click()
    _run_menu(page, "notebook:run-cell")
    page.wait_for_selector(".jp-OutputArea-output >> text=closed the world", timeout=TIMEOUT_MS)
    page.wait_for_selector(".ldkkit-header >> text=BackgroundProcessor.start (thread): stopped", timeout=TIMEOUT_MS)
    SCREENSHOT.parent.mkdir(exist_ok=True)
    page.locator(".jp-Cell", has=page.locator(".ldkkit-dashboard")).evaluate("cell => cell.scrollIntoView()")
    page.screenshot(path=str(SCREENSHOT))
