"""The committed products are the study's reference: the plan names them on any machine, a restore copies only what
the manifest lists after checking it, and recomputing a committed product is a choice the run says it would make,
with why, before anything runs (issue 52)."""
from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

from lib import ROOT
from lib.core import precision
from lib.core.errors import ProductError
from lib.pipeline import carry, dag, make, manifest, reuse
from lib.pipeline.config import study

COMMITTED = ROOT / "products" / "paper"


def committed() -> dict:
    return manifest.read(COMMITTED)


def paper_keys() -> dict[str, str]:
    return {name: t.key for name, t in dag.plan(study("paper")).items()}


# The recomputations under way that the store carries as progress (manifest `partial`), with the values that plan
# them: issue 53's AutoAttack of its authors' code, about 15 h on the 2-core CPU.
UNDER_WAY = "authors_autoattack=1"


def test_the_paper_plan_is_exactly_the_committed_products():
    """Every task of the paper plan has its committed product under the same key, and the store holds nothing else
    but the progress of a recomputation under way: an edit that would recompute a committed product fails here until
    its products are recomputed and carried."""
    entries = committed()["tasks"]
    assert {name: e["key"] for name, e in entries.items()} == paper_keys()
    assert {p.name for p in COMMITTED.iterdir() if p.is_dir()} == {e["folder"] for e in entries.values()} | set(
        committed()["partial"])


def test_the_committed_progress_is_of_the_recomputation_under_way_under_its_current_keys():
    """Each folder of progress is a task the paper plan makes with UNDER_WAY, under the key it plans now (a state of
    other code or values fails here: carried again under the new key, or removed), holds only progress states, and
    each is the file its manifest entry lists."""
    requested = dag.plan(study("paper", UNDER_WAY))
    for folder, entry in committed()["partial"].items():
        assert entry["task"] in requested and requested[entry["task"]].folder.name == folder, folder
        assert entry["task"] not in paper_keys()  # progress of a step the report does not read yet
        assert manifest.only_progress(COMMITTED / folder) and carry.resume_states(COMMITTED / folder)
        assert manifest.check_files(entry, COMMITTED / folder) == [], folder


def test_the_manifest_lists_every_committed_file_with_its_checksum_and_commit():
    entries = committed()["tasks"].values()
    for entry in entries:
        folder = COMMITTED / entry["folder"]
        assert set(entry["files"]) == {str(p.relative_to(folder)) for p in folder.rglob("*") if p.is_file()}
        assert manifest.check_files(entry, folder) == [], entry["folder"]
        assert len(entry["commit"] or "") >= 40 and entry["code_hash"] in committed()["code"]
    assert {e["step"] for e in entries} == {"train", "eps", "centers", "evaluate", "check", "autoattack", "extension",
                                            "figures"}
    # the steps whose notebooks draw the report's figures carry them, so a fresh clone exports them again
    assert all(any(name.startswith("figures/") for name in e["files"]) for e in entries if e["step"] in
               ("extension", "figures"))


def test_the_paper_profile_keys_do_not_depend_on_the_machine(monkeypatch):
    """Its precision is part of its protocol (bf16): a CPU without native bf16, or one whose flags cannot be read
    (macOS has no /proc/cpuinfo), plans the committed keys."""
    native = paper_keys()
    monkeypatch.setattr(precision, "cpu_flags", lambda: set())
    monkeypatch.setattr(precision, "onednn_bf16", lambda: False)
    assert study("paper").precision == "bf16" and paper_keys() == native
    assert study("quick").precision == "fp32"  # 'auto' still follows the machine where nothing is committed


def test_a_fresh_clone_on_avx2_kernels_restores_everything_and_plans_nothing(tmp_path):
    """`make report`'s planning step as a fresh clone runs it with oneDNN held to AVX2 (no bf16 instructions)."""
    env = {**os.environ, "ONEDNN_MAX_CPU_ISA": "AVX2", "INVADV_RUNS": str(tmp_path / "runs"),
           "INVADV_REPORTS": str(tmp_path / "reports"), "INVADV_STORE": str(ROOT / "products")}
    result = subprocess.run([sys.executable, "-m", "lib.pipeline", "--profile", "paper", "makefile"], cwd=ROOT,
                            env=env, capture_output=True, text=True)
    assert result.returncode == 0, result.stderr[-3000:]
    assert "restored 213 step(s)" in result.stderr
    assert "make report (paper, bf16): all 213 steps are made" in result.stderr and "0 to run" in result.stderr


# --- a store of our own: the smoke plan, carried ------------------------------------------------------------------

@pytest.fixture
def store(tmp_path, monkeypatch):
    """The smoke plan with three finished steps carried into a scratch store, and an empty runs/ of another clone."""
    monkeypatch.setenv("INVADV_RUNS", str(tmp_path / "runs"))
    monkeypatch.setenv("INVADV_STORE", str(tmp_path / "products"))
    tasks = dag.plan(study("smoke"))
    for name in ("train-A-200d", "train-B-200d", "eps-0-B-200d"):
        t = tasks[name]
        t.folder.mkdir(parents=True)
        t.output.write_bytes(name.encode())
        t.executed.write_text('{"metadata": {"invadv": {"commit": "%s"}}}' % ("c" * 40))
    carry.carry(tasks, "smoke")
    monkeypatch.setenv("INVADV_RUNS", str(tmp_path / "fresh"))
    return carry.store_dir("smoke")


def test_carry_writes_a_manifest_a_restore_checks(store):
    listed = manifest.read(store)["tasks"]
    assert set(listed) == {"train-A-200d", "train-B-200d", "eps-0-B-200d"}
    assert listed["eps-0-B-200d"]["inputs"] == {"train-B-200d": listed["train-B-200d"]["key"]}
    assert listed["train-A-200d"]["commit"] == "c" * 40 and listed["train-A-200d"]["values"]["model"] == "A"
    assert len(carry.restore(dag.plan(study("smoke")), "smoke")) == 3


def test_a_restore_refuses_a_file_that_is_not_what_was_committed(store):
    entry = manifest.read(store)["tasks"]["train-B-200d"]
    (store / entry["folder"] / "checkpoint.pt").write_bytes(b"tampered")
    with pytest.raises(ProductError, match=r"(?s)checkpoint.pt differs from its SHA-256 in MANIFEST.json.*git checkout"):
        carry.restore(dag.plan(study("smoke")), "smoke")


def test_a_folder_the_manifest_does_not_list_is_not_restored(store):
    (store / manifest.NAME).write_text(json.dumps({"format": manifest.FORMAT, "tasks": {}, "code": {}}))
    lines = carry.restore(dag.plan(study("smoke")), "smoke")
    assert len(lines) == 3 and all("not listed in MANIFEST.json" in line for line in lines)
    assert not dag.plan(study("smoke"))["train-A-200d"].executed.exists()


def test_the_run_says_why_it_would_recompute_and_asks_before_it_does(store):
    """Other values: the committed training is recomputed, its ε run follows; without SET the run refuses."""
    tasks = dag.plan(study("smoke", "center_weight=0.02"))  # B reads λ; A, which tracks its centers, does not
    found = reuse.assess(tasks, "smoke")
    assert set(found.recompute) == {"train-B-200d", "eps-0-B-200d"} and "train-A-200d" in found.new
    assert found.recompute["train-B-200d"] == {"values": ["center_weight: 0.01 → 0.02"]}
    assert found.recompute["eps-0-B-200d"] == {"inputs": ["train-B-200d"]}
    assert reuse.causes(found) == ["train-B-200d — values differ: center_weight: 0.01 → 0.02",
                                   "eps-0-B-200d — their inputs are recomputed"]
    assert found.needs_choice("") == ["train-B-200d"]
    assert found.needs_choice("center_weight=0.02") == []  # a SET is the choice


def test_a_code_change_names_the_definitions_and_always_asks(store, monkeypatch):
    committed_ = manifest.read(store)
    entry = committed_["tasks"]["train-A-200d"]
    parts = committed_["code"][entry["code_hash"]]
    parts["lib.core.train:train_epoch"] = "0" * 12  # as if it had been made by other code
    entry["code_hash"] = "old"
    committed_["code"]["old"] = parts
    (store / manifest.NAME).write_text(json.dumps(committed_))
    entry_key = entry["key"]
    tasks = dag.plan(study("smoke"))
    monkeypatch.setattr(tasks["train-A-200d"], "key", "f" * 12)  # its key is not the committed one
    assert entry_key != tasks["train-A-200d"].key
    found = reuse.assess(tasks, "smoke")
    assert found.recompute["train-A-200d"]["code"] == ["lib.core.train:train_epoch"]
    assert found.needs_choice("epochs=3") == ["train-A-200d"]  # a SET does not choose other code
    assert "RECOMPUTE=1" in str(reuse.refusal(found, ""))


def test_make_stops_before_recomputing_committed_products_unless_asked(store, monkeypatch, capsys):
    monkeypatch.setattr(make.cost, "calibrate", lambda *args: {"train": 1e-3, "pgd": 5e-4, "forward": 2e-4})
    monkeypatch.setattr(make.cost, "estimate", lambda s, tasks, rates: {t.name: 10.0 for t in tasks})
    s = study("smoke", "center_weight=0.02")
    with pytest.raises(reuse.RecomputeRefused, match="would recompute 1 committed step"):
        make.prepare(s)
    note = capsys.readouterr().err
    assert "2 committed step(s) would be recomputed" in note and "center_weight: 0.01 → 0.02" in note
    assert make.prepare(s, recompute=True)  # asked for: planned
    assert make.prepare(s, "center_weight=0.02")  # or chosen with SET
