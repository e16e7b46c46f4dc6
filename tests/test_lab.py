"""`make lab` serves the notebooks with the project kernel on localhost, and shuts down cleanly."""
from __future__ import annotations

import json
import os
import secrets
import socket
import subprocess
import sys
import time
import urllib.request
from contextlib import contextmanager
from typing import Iterator

from lib import ROOT
from lib.pipeline.runner import KERNEL


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def api(port: int, token: str, path: str, method: str = "GET") -> dict:
    request = urllib.request.Request(f"http://127.0.0.1:{port}/api/{path}", method=method,
                                     headers={"Authorization": f"token {token}"})
    with urllib.request.urlopen(request, timeout=10) as response:
        body = response.read()
    return json.loads(body) if body else {}


@contextmanager
def make_lab(env: dict, *make_args: str, lab_args: str = "") -> Iterator[tuple[int, str]]:
    """`make lab` on a free port with a fresh token: yields (port, token) once it answers; then shuts it down
    through its API and checks that it exits cleanly."""
    port, token = free_port(), secrets.token_hex(16)
    args = f"--port={port} --ServerApp.port_retries=0 --IdentityProvider.token={token} {lab_args}".strip()
    server = subprocess.Popen(["make", "-s", "lab", f"VENV={sys.prefix}", *make_args, f"LAB_ARGS={args}"], cwd=ROOT,
                              env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        deadline = time.time() + 120
        while True:
            try:
                api(port, token, "status")
                break
            except OSError:
                assert server.poll() is None, server.stdout.read()
                assert time.time() < deadline, "JupyterLab did not answer within 120 s"
                time.sleep(0.5)
        yield port, token
        api(port, token, "shutdown", method="POST")
        assert server.wait(timeout=60) == 0
    finally:
        if server.poll() is None:
            server.terminate()
            server.wait(timeout=30)


def test_make_lab_serves_notebooks_and_the_project_kernel(tmp_path):
    env = {**os.environ, "JUPYTER_RUNTIME_DIR": str(tmp_path / "runtime"), "JUPYTER_CONFIG_DIR": str(tmp_path / "config")}
    with make_lab(env) as (port, token):
        assert KERNEL in api(port, token, "kernelspecs")["kernelspecs"]
        served = {item["name"] for item in api(port, token, "contents")["content"]}
        assert {"01_train.ipynb", "02_inverse_adversaries.ipynb", "03_centers.ipynb", "08_figures.ipynb"} <= served
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/lab?token={token}", timeout=10) as page:
            assert page.status == 200 and b"JupyterLab" in page.read()
