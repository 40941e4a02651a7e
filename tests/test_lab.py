"""JupyterLab as a user opens it (`make lab`): the notebooks are listed and the project's kernel starts."""
import json
import secrets
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def call(base: str, token: str, path: str, method: str = "GET", body: dict | None = None):
    request = urllib.request.Request(f"{base}{path}", method=method,
                                     data=None if body is None else json.dumps(body).encode(),
                                     headers={"Authorization": f"token {token}", "Content-Type": "application/json"})
    with urllib.request.urlopen(request, timeout=30) as response:
        text = response.read().decode()
        return response.status, (json.loads(text) if text else None)


def run_code(url: str, code: str, timeout: float = 40) -> str:
    """Execute ``code`` in a running kernel through the server's websocket; its standard output."""
    import asyncio
    import uuid

    from tornado.websocket import websocket_connect

    async def go() -> str:
        ws = await websocket_connect(url)
        msg_id = uuid.uuid4().hex
        ws.write_message(json.dumps({
            "header": {"msg_id": msg_id, "msg_type": "execute_request", "username": "test", "session": msg_id,
                       "version": "5.3"},
            "parent_header": {}, "metadata": {}, "channel": "shell",
            "content": {"code": code, "silent": False, "store_history": False, "user_expressions": {},
                        "allow_stdin": False, "stop_on_error": True}}))
        out = ""
        while True:
            msg = json.loads(await ws.read_message())
            if msg.get("parent_header", {}).get("msg_id") != msg_id:
                continue
            if msg["msg_type"] == "stream":
                out += msg["content"]["text"]
            elif msg["msg_type"] == "error":
                raise AssertionError(f"the kernel raised {msg['content']['ename']}")
            elif msg["msg_type"] == "status" and msg["content"]["execution_state"] == "idle":
                ws.close()
                return out

    return asyncio.run(asyncio.wait_for(go(), timeout))


@pytest.mark.slow
def test_jupyterlab_lists_the_notebooks_and_starts_and_stops_the_kernel(spawn, tmp_path):
    token, port = secrets.token_hex(16), free_port()
    base = f"http://127.0.0.1:{port}"
    lab = Path(sys.executable).with_name("jupyter")
    start = time.monotonic()
    server = spawn([str(lab), "lab", "--no-browser", "--allow-root", "--ip=127.0.0.1", f"--port={port}",
                    f"--IdentityProvider.token={token}", f"--ServerApp.root_dir={ROOT}",
                    f"--ServerApp.runtime_dir={tmp_path}"],
                   stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    while True:
        try:
            status, _ = call(base, token, "/api/status")
            break
        except OSError:
            assert server.poll() is None, "jupyter lab exited"
            assert time.monotonic() - start < 45, "jupyter lab did not answer within 45 s"
            time.sleep(0.5)
    _, listing = call(base, token, "/api/contents/")
    names = {item["name"] for item in listing["content"] if item["type"] == "notebook"}
    assert {"train.ipynb", "predict.ipynb", "hex2name.ipynb"} <= names
    status, kernel = call(base, token, "/api/kernels", "POST", {"name": "python3"})
    assert status == 201 and kernel["name"] == "python3"
    assert run_code(f"ws://127.0.0.1:{port}/api/kernels/{kernel['id']}/channels?token={token}",
                    "import biomeseason; print(6 * 7)") == "42\n"
    status, _ = call(base, token, f"/api/kernels/{kernel['id']}", "DELETE")
    assert status == 204
    _, kernels = call(base, token, "/api/kernels")
    assert kernels == []
    call(base, token, "/api/shutdown", "POST")
    assert server.wait(timeout=30) == 0
    assert time.monotonic() - start < 60
