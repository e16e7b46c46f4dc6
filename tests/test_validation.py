"""Every parameter is checked against its meaning before any step runs: a bad value is one line naming it and
the fix, never a traceback and never a started step (issue 18)."""
from __future__ import annotations

import dataclasses
import math
import re

import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from lib.core.errors import ConfigError
from lib.pipeline import make
from lib.pipeline.config import Study, study
from lib.pipeline.dag import plan

NAMES = [f.name for f in dataclasses.fields(Study) if f.name != "profile"]

# Values no study means: each was accepted before issue 18 and failed late (or ran on a silent wrong
# setting); each row is (SET, what the one-line error must say).
BAD = [
    ("step_size=inf", r"step_size must be in \(0, 1\]"),
    ("robust_step_size=inf", r"robust_step_size must be in \(0, 1\]"),
    ("train_step_size=1e999", r"train_step_size must be in \(0, 1\]"),
    ("center_weight=inf", r"center_weight must be >= 0 \(and finite\)"),
    ("center_weight_2d=inf", r"center_weight_2d must be >= 0 \(and finite\)"),
    ("seed=-1", r"seed must be an integer in \[0, 2\^64\)"),
    ("seed=18446744073709551616", r"seed must be an integer in \[0, 2\^64\)"),
    ("extra_seeds=5,-3", r"extra_seeds must be distinct integers, each an integer in \[0, 2\^64\)"),
    ("train_samples=70000", r"train_samples must be at most the 60000 train images"),
    ("attack_samples=20000", r"attack_samples must be at most the 500 test images this study uses"),
    ("test_samples=100 robust_samples=200", r"robust_samples must be at most the 100 test images"),
    ("steps=5", r"steps·step_size = 5·0.03 = 0.15 cannot reach the largest eps = 0.3.*raise steps to 10"),
    ("robust_steps=2", r"robust_steps·robust_step_size = 2·0.03 = 0.06 cannot reach the largest robust_eps = 0.3"),
    ("train_eps=0.3", r"train_steps·train_step_size = 1·0.1 = 0.1 cannot reach train_eps = 0.3"),
    ("epochs=2 epochs=3", r"overrides set epochs more than once"),
]


def first_error(overrides: str, profile: str = "smoke") -> str:
    """The message `python -m lib.pipeline ... makefile` (make report's first command) exits with."""
    with pytest.raises(SystemExit) as exc:
        make.main(["--profile", profile, "--set", overrides, "makefile"])
    return str(exc.value.code)


@pytest.mark.parametrize("overrides, message", BAD)
def test_a_meaningless_value_stops_make_report_before_any_step(overrides, message, tmp_path, monkeypatch):
    monkeypatch.setenv("INVADV_RUNS", str(tmp_path / "runs"))
    error = first_error(overrides)
    assert error.startswith("error: ") and "\n" not in error, error
    assert re.search(message, error), error
    assert not (tmp_path / "runs").exists()  # no step folder, not even the profile's


@pytest.mark.parametrize("overrides, message", [
    ("attack_samples=10", r"attack_samples=10: the first 10 test images hold no digit 3, 6, 8.*attack_samples=62"),
    ("test_samples=20 attack_samples=none robust_samples=none", r"test_samples=20: the first 20 test images hold no digit 8.*test_samples=62"),
    ("attack_split=train attack_samples=15", r"the first 15 train images hold no digit 7, 8.*attack_samples=18"),
])
def test_a_count_whose_images_miss_a_class_stops_before_any_step(overrides, message, tmp_path, monkeypatch):
    """Class centers need every class: checked on the labels before the trainings, not in the ε runs after them."""
    monkeypatch.setenv("INVADV_RUNS", str(tmp_path / "runs"))
    error = first_error(overrides)
    assert re.search(message, error) and "\n" not in error, error
    assert not any(p.is_dir() for p in (tmp_path / "runs" / "smoke").glob("*"))


def test_the_class_check_reads_each_split_once(monkeypatch):
    """test_samples and robust_samples both count test images: one read of the test labels serves both."""
    from lib.pipeline import config

    reads = []
    real = config.read_labels
    monkeypatch.setattr(config, "read_labels", lambda train: reads.append(train) or real(train))
    study("smoke", "test_samples=500 robust_samples=200 attack_samples=100 train_samples=4000").check_classes()
    assert sorted(reads) == [False, True]


# Hostile text: numbers of every kind, lists, words, unicode, separators in the wrong places.
NUMBERS = st.one_of(st.integers(min_value=-2 ** 70, max_value=2 ** 70).map(str), st.floats().map(repr),
                    st.sampled_from(["nan", "-inf", "1e999", "1e-999", "0", "-0", "0x10", "1_000", "٣", "10" * 2500]))
VALUES = st.one_of(NUMBERS, st.lists(NUMBERS, max_size=4).map(",".join), st.text(max_size=12),
                   st.sampled_from(["none", "all", "true", "false", "yes", "", ",", "=", "fp16", "auto", "train"]))
ITEMS = st.tuples(st.one_of(st.sampled_from(NAMES), st.text(max_size=8)), VALUES).map(lambda kv: f"{kv[0]}={kv[1]}")
SETS = st.one_of(st.lists(ITEMS, max_size=4).map(" ".join), st.text(max_size=40))


def assert_usable(s: Study) -> None:
    """What a study that passed validation promises the steps: every value they use works."""
    for f in dataclasses.fields(s):
        value = getattr(s, f.name)
        if isinstance(value, float):
            assert math.isfinite(value), f.name
    for seed in s.seeds:
        torch.Generator().manual_seed(seed)
        for model, dim in s.models(seed):
            s.train_config(model, dim, seed)
    assert plan(s)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(overrides=SETS, profile=st.sampled_from(["smoke", "quick", "paper"]))
def test_any_set_text_is_a_usable_study_or_one_line_error(overrides, profile):
    try:
        s = study(profile, overrides)
    except ConfigError as exc:
        assert "\n" not in str(exc) and str(exc), repr(str(exc))
        return
    assert_usable(s)


@settings(max_examples=200, deadline=None)
@given(values=st.dictionaries(st.sampled_from(NAMES), st.one_of(
    st.none(), st.booleans(), st.integers(min_value=-2 ** 70, max_value=2 ** 70), st.floats(), st.text(max_size=6),
    st.lists(st.floats(allow_nan=True), max_size=3).map(tuple), st.lists(st.integers(-5, 300), max_size=3).map(tuple)),
    max_size=3))
def test_any_notebook_overrides_are_a_usable_study_or_one_line_error(values):
    """Notebooks pass overrides as a dict of Python values: the same rules, the same promise."""
    try:
        s = study("smoke", values)
    except ConfigError as exc:
        assert "\n" not in str(exc) and str(exc), repr(str(exc))
        return
    assert_usable(s)
