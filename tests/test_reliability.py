"""Bad input gets one clear line; interruptions, read-only folders and network leaks cost nothing."""
from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from lib import ROOT
from lib.core import products
from lib.core.errors import ConfigError, ProductError
from lib.core.train import load_checkpoint
from lib.pipeline import dag, make, runner
from lib.pipeline.config import study
from tests.smoke import offline_env

# A small training run in a real process: 3 epochs of 1k images, one thread (bitwise reproducible).
TRAIN_SCRIPT = """
import sys, torch
from lib.core.protocol import TrainConfig
from lib.core.data import load_split
from lib.core.train import train_or_load
torch.set_num_threads(1)
config = TrainConfig(model="B", epochs=3, train_samples=1000, test_samples=300, seed=3)
train_or_load(config, sys.argv[1], load_split(True), load_split(False), "cpu")
"""


def start_training(path: Path) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-c", TRAIN_SCRIPT, str(path)], cwd=ROOT, env=offline_env(),
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)


def test_killed_training_resumes_to_the_same_weights(tmp_path):
    full, killed = tmp_path / "full" / "checkpoint.pt", tmp_path / "killed" / "checkpoint.pt"
    resume_state = killed.with_name(".checkpoint.resume.pt")
    run = start_training(killed)
    deadline = time.time() + 300
    while not resume_state.exists():  # epoch 1 is done and saved
        assert run.poll() is None and time.time() < deadline, run.stderr.read() if run.poll() else "timeout"
        time.sleep(0.05)
    time.sleep(0.5)  # into epoch 2
    run.send_signal(signal.SIGKILL)
    assert run.wait() == -signal.SIGKILL
    assert not killed.exists()
    survived = products.load(resume_state)["history"]
    assert len(survived) in (1, 2)  # epoch 1 (or 2) was saved before the kill

    for path in (killed, full):  # resume the killed run; train another one without interruption
        finished = start_training(path)
        assert finished.wait() == 0, finished.stderr.read()
    resumed, reference = load_checkpoint(killed), load_checkpoint(full)
    assert not resume_state.exists()  # the resume state goes once the checkpoint is saved
    for name, tensor in reference["model"].items():
        assert torch.equal(resumed["model"][name], tensor), name
    assert torch.equal(resumed["centers"], reference["centers"])
    strip = lambda history: [{k: v for k, v in h.items() if k != "seconds"} for h in history]
    assert strip(resumed["history"]) == strip(reference["history"]) and len(reference["history"]) == 3
    assert resumed["history"][:len(survived)] == survived  # those epochs were not trained again


def test_resume_state_of_another_config_is_refused(tmp_path):
    from lib.core.protocol import TrainConfig
    from lib.core.train import train

    state = tmp_path / "state.pt"
    products.save({"config": TrainConfig(model="A").to_dict()}, state)
    with pytest.raises(ProductError, match="another config"):
        train(TrainConfig(model="B"), None, None, state_path=state)


def drop_permission_override() -> None:
    """In the child, before exec: give up root's right to ignore file permissions (CAP_DAC_*)."""
    import ctypes

    libc = ctypes.CDLL(None, use_errno=True)
    for capability in (1, 2):  # CAP_DAC_OVERRIDE, CAP_DAC_READ_SEARCH, out of the bounding set
        if libc.prctl(24, capability, 0, 0, 0) != 0:  # PR_CAPBSET_DROP
            raise OSError(ctypes.get_errno(), "prctl(PR_CAPBSET_DROP) failed")


def run_as_unprivileged(code: str) -> subprocess.CompletedProcess:
    """Run Python code in a process that folder permissions apply to (root ignores them otherwise)."""
    try:
        return subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True,
                              env=offline_env(), preexec_fn=drop_permission_override if os.geteuid() == 0 else None)
    except (OSError, subprocess.SubprocessError) as exc:
        pytest.skip(f"cannot drop root's permission override here ({exc}); run the suite as a normal user")


def test_read_only_output_folder_is_named(tmp_path):
    folder = tmp_path / "read-only"
    folder.mkdir()
    folder.chmod(0o555)
    tmp_path.chmod(0o755)
    result = run_as_unprivileged(
        "from lib.core import products\n"
        f"products.write_text('x', {str(folder / 'centers.csv')!r})")
    assert result.returncode != 0
    last = result.stderr.strip().splitlines()[-1]
    assert re.match(rf"lib.core.errors.NotWritable: cannot write centers.csv into {folder}: Permission denied\. "
                    r"Fix the folder's permissions, or point INVADV_RUNS", last), result.stderr
    assert list(folder.iterdir()) == []


def test_pipeline_refuses_a_read_only_runs_folder_before_running_anything(tmp_path):
    (tmp_path / "runs").mkdir(mode=0o555)
    tmp_path.chmod(0o755)
    result = run_as_unprivileged(
        "import os; os.environ['INVADV_RUNS'] = " + repr(str(tmp_path / "runs")) + "\n"
        "from lib.pipeline import make\nmake.main(['--profile', 'smoke', 'makefile'])")
    assert result.returncode == 1
    assert result.stderr.startswith(f"error: cannot write .write-check into {tmp_path / 'runs' / 'smoke'}")


@pytest.mark.parametrize("eps, message", [
    (-0.1, r"eps must be in \[0, 1\]"), (1.5, r"eps must be in \[0, 1\]"),
    ("0.1", r"eps must be in"), (0.12, r"eps=0.12 is not in the study's grid .*overrides=\"eps=0,0.1,0.12,0.3\""),
])
def test_bad_eps_of_a_notebook_is_named(eps, message):
    with pytest.raises(ConfigError, match=message):
        dag.eps_task(study("smoke"), eps, "A", 200)


@pytest.mark.parametrize("model, dim, message", [
    ("Z", 200, "model must be one of"), ("A", 0, "feature_dim must be an integer >= 1"),
    ("A", 3, r"model A-3d is not one the study trains"),
])
def test_bad_model_of_a_notebook_is_named(model, dim, message):
    with pytest.raises(ConfigError, match=message):
        dag.train_task(study("smoke"), model, dim)
    with pytest.raises(ConfigError, match=message.replace("trains", "attacks")):
        dag.eps_task(study("smoke"), 0.1, model, dim)


@pytest.mark.parametrize("overrides, message", [
    ("eps=0,a", "eps must be a comma-separated list of numbers, got '0,a'"),
    ("step_size=fast", "step_size must be a number, got 'fast'"),
    ("steps=ten", "steps must be an integer, got 'ten'"),
    ("eps=0,1.5", r"eps must be distinct values, each in \[0, 1\]"),
    ("center_weight_2d=-0.1", "center_weight_2d must be >= 0"),
    ("attack_samples=5", "attack_samples must be None"),
    ("attack_split=val", "attack_split must be one of"),
])
def test_bad_override_text_is_named(overrides, message):
    with pytest.raises(ConfigError, match=message):
        study("smoke", overrides)


def test_notebook_error_is_one_line_at_the_top_of_its_output(tmp_path):
    import papermill

    out = tmp_path / "02.ipynb"
    with pytest.raises(papermill.PapermillExecutionError) as info:
        papermill.execute_notebook(dag.NOTEBOOKS / "02_inverse_adversaries.ipynb", out,
                                   parameters={"profile": "smoke", "eps": -0.5}, kernel_name=runner.KERNEL,
                                   cwd=str(dag.NOTEBOOKS), progress_bar=False, execution_timeout=600)
    assert info.value.ename == "ConfigError"
    failed = [c for c in json.loads(out.read_text())["cells"]
              if any(o.get("output_type") == "error" for o in c.get("outputs", []))]
    [error] = [o for o in failed[0]["outputs"] if o["output_type"] == "error"]
    assert error["traceback"] == ["ConfigError: eps must be in [0, 1] (pixels are in [0, 1]), got -0.5"]


def test_failing_step_prints_its_error_first(monkeypatch, tmp_path):
    monkeypatch.setenv("INVADV_RUNS", str(tmp_path))
    with pytest.raises(SystemExit, match=r"^error: centers needs train-A-200d, train-B-200d.* first: run `make report PROFILE=smoke`"):
        make.main(["--profile", "smoke", "execute", "centers"])


def test_every_torch_load_is_weights_only():
    sources = [*ROOT.glob("lib/**/*.py"), *ROOT.glob("tools/*.py"), *ROOT.glob("notebooks/*.ipynb")]
    calls = [(p.name, m) for p in sources for m in re.findall(r"torch\.load\([^)]*\)", p.read_text())]
    assert calls, "expected at least lib/core/products.py to load products"
    assert all("weights_only=True" in call for _, call in calls), calls


def test_offline_guard_refuses_the_network():
    result = subprocess.run([sys.executable, "-c", "import urllib.request; urllib.request.urlopen('http://192.0.2.1')"],
                            capture_output=True, text=True, env=offline_env(), timeout=60)
    assert "network access refused by tests/offline/sitecustomize.py" in result.stderr
