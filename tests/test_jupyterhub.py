"""A real JupyterHub on loopback: two learners log in, run a check in their own servers, and are graded.

The grading is the sandboxed one (``ldkkit.grading``): the learners' workbooks run as
another user, and the two learners are told apart by their home folders.

It proves the single-machine set-up the README describes (The Littlest JupyterHub's shape):
JupyterHub with configurable-http-proxy (from npm, which `python3 kit.py test` installs),
a dummy authenticator and a local process spawner. The hub and everything it starts run
in their own process group, which the test ends.
"""

from __future__ import annotations

import json
import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import time
import uuid
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
BIN = Path(sys.executable).parent
CHP = ROOT / ".venv" / "chp" / "node_modules" / ".bin" / "configurable-http-proxy"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def hub(tmp_path_factory):
    if not CHP.exists():
        pytest.skip(f"configurable-http-proxy is not installed at {CHP}: `python3 kit.py test` installs it with npm "
                    "(npm is needed); this JupyterHub smoke test did not run")
    requests = pytest.importorskip("requests")
    base = tmp_path_factory.mktemp("hub")
    homes = base / "homes"
    homes.mkdir()
    port, hub_port, token = free_port(), free_port(), secrets.token_hex(16)
    config = base / "jupyterhub_config.py"
    config.write_text(f"""
c.JupyterHub.ip = "127.0.0.1"
c.JupyterHub.port = {port}
c.JupyterHub.hub_ip = "127.0.0.1"
c.JupyterHub.hub_port = {hub_port}
c.JupyterHub.db_url = "sqlite:///{base}/jupyterhub.sqlite"
c.JupyterHub.cookie_secret_file = "{base}/cookie_secret"
c.JupyterHub.authenticator_class = "dummy"
c.DummyAuthenticator.password = "workshop"
c.Authenticator.allow_all = True
c.JupyterHub.spawner_class = "simple"
c.SimpleLocalProcessSpawner.home_dir_template = "{homes}/{{username}}"
c.Spawner.cmd = ["{BIN / 'jupyterhub-singleuser'}"]
c.Spawner.args = {["--allow-root"] if os.geteuid() == 0 else []!r}
c.Spawner.environment = {{"LDKKIT_PROGRESS_FILE": "progress.json"}}
c.Spawner.start_timeout = 60
c.Spawner.http_timeout = 60
c.ConfigurableHTTPProxy.command = ["{CHP}"]
c.JupyterHub.services = [{{"name": "grader", "api_token": "{token}"}}]
c.JupyterHub.load_roles = [{{"name": "grader", "scopes": ["admin:users", "admin:servers", "access:servers"],
                            "services": ["grader"]}}]
""")
    log = open(base / "hub.log", "w")
    env = {**os.environ, "PATH": f"{BIN}:{os.environ['PATH']}"}
    proc = subprocess.Popen([str(BIN / "jupyterhub"), "-f", str(config)], cwd=base, stdout=log, stderr=log,
                            env=env, start_new_session=True)
    url = f"http://127.0.0.1:{port}"
    try:
        for _ in range(120):
            try:
                if requests.get(f"{url}/hub/api/", timeout=1).ok:
                    break
            except requests.ConnectionError:
                pass
            time.sleep(0.5)
        else:
            pytest.fail(f"JupyterHub did not start; its log:\n{(base / 'hub.log').read_text()[-3000:]}")
        yield {"url": url, "token": token, "homes": homes, "requests": requests, "base": base}
    finally:
        os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(20)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
        log.close()


def login_and_spawn(hub, name: str) -> str:
    requests, url = hub["requests"], hub["url"]
    session = requests.Session()
    session.get(f"{url}/hub/login")
    reply = session.post(f"{url}/hub/login", data={"username": name, "password": "workshop",
                                                   "_xsrf": session.cookies.get("_xsrf")}, allow_redirects=False)
    assert reply.status_code in (302, 303), f"login failed for {name}: {reply.status_code}"
    headers = {"Authorization": f"token {hub['token']}"}
    requests.post(f"{url}/hub/api/users/{name}/server", headers=headers)
    for _ in range(120):
        user = requests.get(f"{url}/hub/api/users/{name}", headers=headers).json()
        if user.get("servers", {}).get("", {}).get("ready"):
            return f"{url}/user/{name}"
        time.sleep(0.5)
    pytest.fail(f"{name}'s server never became ready:\n{(hub['base'] / 'hub.log').read_text()[-3000:]}")


def run_in_kernel(hub, server: str, code: str) -> str:
    """Execute code in a new kernel of a learner's server, over the Jupyter protocol; return its output."""
    import websocket

    requests = hub["requests"]
    headers = {"Authorization": f"token {hub['token']}"}
    kernel = requests.post(f"{server}/api/kernels", headers=headers, json={"name": "python3"}).json()
    ws = websocket.create_connection(f"{server.replace('http', 'ws')}/api/kernels/{kernel['id']}/channels",
                                     header=[f"Authorization: token {hub['token']}"], timeout=120)
    msg_id = uuid.uuid4().hex
    ws.send(json.dumps({"header": {"msg_id": msg_id, "msg_type": "execute_request", "username": "grader",
                                   "session": uuid.uuid4().hex, "version": "5.3"},
                        "parent_header": {}, "metadata": {}, "channel": "shell",
                        "content": {"code": code, "silent": False, "store_history": False, "user_expressions": {},
                                    "allow_stdin": False, "stop_on_error": True}}))
    output = []
    while True:
        msg = json.loads(ws.recv())
        if msg.get("parent_header", {}).get("msg_id") != msg_id:
            continue
        if msg["msg_type"] == "stream":
            output.append(msg["content"]["text"])
        elif msg["msg_type"] == "error":
            output.append(f"{msg['content']['ename']}: {msg['content']['evalue']}")
        elif msg["msg_type"] == "status" and msg["content"]["execution_state"] == "idle":
            break
    ws.close()
    requests.delete(f"{server}/api/kernels/{kernel['id']}", headers=headers)
    return "".join(output)


def test_two_learners_check_and_are_graded(hub):
    from test_grading import own_handler

    from ldkkit.grading import grade

    workbook = "01_open_channel_request.ipynb"
    for name, source in (("alice", "solutions"), ("bob", "exercises")):
        server = login_and_spawn(hub, name)
        home = hub["homes"] / name
        shutil.copy(ROOT / "exercises" / workbook, home / workbook)  # what nbgitpuller does on a real hub
        if source == "solutions":  # alice finishes hers, in her own words
            (home / workbook).write_text(own_handler(workbook, name))
        output = run_in_kernel(hub, server, "from ldkkit.exercises import check\n"
                                            "from ldkkit.reference import handle_ldk_events\n"
                                            "print(check('open_channel_request', handle_ldk_events))")
        assert "checks passed" in output, output
    table = grade([hub["homes"] / "alice", hub["homes"] / "bob"], hub["base"] / "grades", timeout_s=120,
                  progress=False)
    verdicts = dict(zip(table["learner"], table["status"], strict=True))
    assert verdicts == {"alice": "passed", "bob": "failed"}  # told apart: one row each, by their folder
    assert sorted(table["path"]) == sorted(str(hub["homes"] / n / workbook) for n in ("alice", "bob"))
