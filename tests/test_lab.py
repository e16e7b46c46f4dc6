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

from lib import ROOT
from lib.pipeline.make import KERNEL


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


def test_make_lab_serves_notebooks_and_the_project_kernel(tmp_path):
    port, token = free_port(), secrets.token_hex(16)
    env = {**os.environ, "JUPYTER_RUNTIME_DIR": str(tmp_path / "runtime"), "JUPYTER_CONFIG_DIR": str(tmp_path / "config")}
    lab = subprocess.Popen(["make", "-s", "lab", f"VENV={sys.prefix}",
                            f"LAB_ARGS=--port={port} --ServerApp.port_retries=0 --IdentityProvider.token={token}"],
                           cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        deadline = time.time() + 120
        while True:
            try:
                api(port, token, "status")
                break
            except OSError:
                assert lab.poll() is None, lab.stdout.read()
                assert time.time() < deadline, "JupyterLab did not answer within 120 s"
                time.sleep(0.5)
        assert KERNEL in api(port, token, "kernelspecs")["kernelspecs"]
        served = {item["name"] for item in api(port, token, "contents")["content"]}
        assert {"01_train.ipynb", "02_inverse_adversaries.ipynb", "03_centers.ipynb", "06_figures.ipynb"} <= served
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/lab?token={token}", timeout=10) as page:
            assert page.status == 200 and b"JupyterLab" in page.read()
        api(port, token, "shutdown", method="POST")
        assert lab.wait(timeout=60) == 0
    finally:
        if lab.poll() is None:
            lab.terminate()
            lab.wait(timeout=30)
