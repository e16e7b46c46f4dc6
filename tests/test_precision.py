"""Precision: fp32, or bf16 autocast for the training and PGD steps; chosen, keyed and recorded."""
import os
import subprocess
import sys

import pytest
import torch

from lib import ROOT
from lib.analysis import report
from lib.core import precision
from lib.core.attacks import inverse_adversary
from lib.core.centers import class_means, cosine, extract_features
from lib.core.errors import ConfigError
from lib.core.protocol import TrainConfig
from lib.core.provenance import provenance
from lib.core.train import restore, train
from lib.pipeline import dag
from lib.pipeline.config import study


@pytest.mark.parametrize("flags, expected", [({"avx512f", "avx512_bf16"}, "bf16"), ({"amx_bf16"}, "bf16"),
                                             ({"avx2", "avx512f"}, "fp32"), (set(), "fp32")])
def test_auto_picks_bf16_only_where_the_cpu_has_it_natively(monkeypatch, flags, expected):
    monkeypatch.setattr(precision, "cpu_flags", lambda: flags)
    monkeypatch.setattr(precision, "onednn_bf16", lambda: True)
    assert precision.resolve("auto", "cpu") == expected
    assert precision.resolve("fp32", "cpu") == "fp32" and precision.resolve("bf16", "cpu") == "bf16"
    monkeypatch.setattr(precision, "onednn_bf16", lambda: False)  # the flags say bf16, the kernels will not use it
    assert precision.resolve("auto", "cpu") == "fp32"


@pytest.mark.parametrize("isa", ["AVX2", "AVX", "SSE41"])
def test_auto_is_fp32_where_onednn_is_held_below_bf16(isa):
    """Issue 31: with oneDNN limited to an instruction set without bf16, bf16 would be emulated (several times slower
    than fp32); `auto` must see the kernels that will run, not the CPU's flags. Checked in a fresh process, where the
    limit takes effect, and the same way twice (a key must not depend on a race)."""
    script = "from lib.core.precision import resolve; print(resolve('auto', 'cpu'), resolve('auto', 'cpu'))"
    env = {**os.environ, "ONEDNN_MAX_CPU_ISA": isa}
    out = subprocess.run([sys.executable, "-c", script], cwd=ROOT, env=env, capture_output=True, text=True, check=True)
    assert out.stdout.split() == ["fp32", "fp32"]
    native = subprocess.run([sys.executable, "-c", script], cwd=ROOT, capture_output=True, text=True, check=True,
                            env={k: v for k, v in os.environ.items() if k != "ONEDNN_MAX_CPU_ISA"})
    expected = "bf16" if {"avx512_bf16", "amx_bf16"} & precision.cpu_flags() else "fp32"
    assert native.stdout.split() == [expected, expected]


def test_a_bad_precision_is_named():
    with pytest.raises(ConfigError, match=r"precision must be one of \('fp32', 'bf16', 'auto'\), got 'fp16'"):
        study("smoke", "precision=fp16")
    with pytest.raises(ConfigError, match="precision must be one of"):
        TrainConfig(precision="auto")  # a trained model records what actually ran


@pytest.mark.parametrize("flags, expected", [({"amx_bf16"}, "bf16"), ({"avx2"}, "fp32"), (set(), "fp32")])
def test_quick_runs_bf16_where_native_paper_always_and_smoke_never(monkeypatch, flags, expected):
    """The paper profile's bf16 is its protocol (its committed products are bf16: issue 52), on any machine, macOS's
    unreadable flags (set()) included; `quick` follows the machine; `smoke`'s references are fp32."""
    monkeypatch.setattr(precision, "cpu_flags", lambda: flags)
    monkeypatch.setattr(precision, "onednn_bf16", lambda: True)
    assert study("quick").precision == expected and study("paper").precision == "bf16"
    assert study("smoke").precision == "fp32"  # the regression check's references are fp32
    assert study("paper", "precision=fp32").precision == "fp32"


def test_the_study_resolves_auto_and_keys_every_product_by_the_precision():
    assert study("smoke", "precision=auto").precision in ("fp32", "bf16")
    fp32, bf16 = (dag.plan(study("smoke", f"precision={p}")) for p in ("fp32", "bf16"))
    assert all(fp32[name].key != bf16[name].key for name in fp32)
    assert study("smoke", "precision=bf16").train_config("A", 200).precision == "bf16"


def test_provenance_and_report_header_record_the_precision():
    record = provenance("cpu", "bf16")
    assert record["precision"] == "bf16" and record["cpu_kernels"]
    header = report.header(study("smoke").to_dict(), [{"provenance": record}])
    assert "**Precision of the training and PGD steps:** bf16" in header


def test_bf16_inverse_adversaries_give_the_fp32_adversarial_centers(small_model, test_batch):
    x, y = (t[:128] for t in test_batch)  # every class, in emulated bf16 on a CPU without it
    # 10 steps of 0.02 reach past ε = 0.1 as the study's T·α' does (20 of 0.01 took twice as long in emulated bf16)
    centers = {p: class_means(extract_features(small_model, inverse_adversary(small_model, x, y, 0.1, 0.02, 10, p)), y)
               for p in precision.PRECISIONS}
    assert cosine(centers["fp32"], centers["bf16"]).min() > 0.999


@pytest.mark.slow
def test_bf16_training_keeps_fp32_state_and_learns_as_fp32_does(mnist):
    train_split, test_split = mnist
    accuracy = {}
    for p in precision.PRECISIONS:
        config = TrainConfig(model="B", epochs=1, train_samples=3000, test_samples=1000, precision=p)
        checkpoint = train(config, train_split, test_split, progress=False)
        model, centers = restore(checkpoint)
        assert all(t.dtype == torch.float32 for t in [*model.state_dict().values(), centers.centers])
        assert checkpoint["provenance"]["precision"] == p
        accuracy[p] = checkpoint["history"][-1]["test_acc"]
    assert abs(accuracy["bf16"] - accuracy["fp32"]) < 0.05, accuracy
