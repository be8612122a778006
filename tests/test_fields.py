"""The table of allowed values (lab.core.fields) is the one the URL, the CLI, the Train widgets and
the lessons use: every allowed value opens /train, every refused one is a warning."""

from __future__ import annotations

from dataclasses import fields as dataclass_fields
from pathlib import Path

import pytest
import streamlit as st
from streamlit.testing.v1 import AppTest

from lab.cli import build_parser, config_from_args
from lab.core import fields
from lab.core.config import RunConfig, problems
from lab.views.lessons import LESSON_LIST
from lab.views.urlstate import config_from_query, config_to_query

ROOT = Path(__file__).resolve().parents[1]
NUMBERS = [f for f in fields.FIELDS.values() if f.kind in ("int", "float")]


def test_every_runconfig_field_has_one_row():
    assert set(fields.FIELDS) == {f.name for f in dataclass_fields(RunConfig)}


def _text(spec: fields.Field, value: float) -> str:
    return str(int(value)) if spec.kind == "int" else repr(float(value))


def _past(spec: fields.Field, end: str) -> float:
    step = 1 if spec.kind == "int" else max(abs(spec.high) * 1e-3, 1e-6)
    return spec.low - step if end == "low" else spec.high + step


@pytest.mark.parametrize("spec", NUMBERS, ids=lambda s: s.name)
def test_each_number_in_a_link_at_its_ends_and_past_them(spec):
    for value in (spec.low, spec.high):
        config, warnings = config_from_query({spec.name: _text(spec, value)})
        assert warnings == [] and getattr(config, spec.name) == value
    for end in ("low", "high"):
        text = _text(spec, _past(spec, end))
        config, warnings = config_from_query({spec.name: text})
        assert len(warnings) == 1 and spec.name in warnings[0], warnings
        assert getattr(config, spec.name) == getattr(RunConfig(), spec.name)
    config, warnings = config_from_query({spec.name: "1e9x"})
    assert len(warnings) == 1 and getattr(config, spec.name) == getattr(RunConfig(), spec.name)


def test_a_loss_brings_its_defaults_in_every_entry_point():
    """ArcFace is m = 0.5 rad on the cosine energy from RunConfig, the URL and the CLI alike."""
    cli = config_from_args(build_parser("train").parse_args(["train", "--loss", "arcface"]))
    url, warnings = config_from_query({"loss": "arcface"})
    assert warnings == []
    for config in (RunConfig(loss="arcface"), url, cli):
        assert (config.energy, config.margin) == ("cosine", 0.5)
    assert (RunConfig(loss="triplet").energy, RunConfig(loss="triplet").margin) == (
        "sqeuclidean", 0.2)
    # a margin given explicitly wins, and survives a round trip through the link
    config = RunConfig(loss="triplet", margin=1.0)
    assert config_from_query(config_to_query(config))[0] == config


def test_an_angular_margin_past_its_range_is_refused():
    config, warnings = config_from_query({"loss": "arcface", "margin": "2"})
    assert config.margin == 0.5 and "arcface" in warnings[0] and "1.5" in warnings[0]
    assert problems(RunConfig(loss="contrastive", margin=2.0)) == []


def test_the_cli_refuses_what_the_table_refuses():
    args = build_parser("train").parse_args(["train", "--epochs", "100000"])
    with pytest.raises(ValueError, match="epochs must be between 1 and 500"):
        config_from_args(args)


@pytest.mark.parametrize("lesson", LESSON_LIST, ids=lambda lesson: lesson.key)
def test_every_lesson_preset_lies_inside_the_table(lesson):
    for label, config in lesson.variants:
        assert problems(config) == [], (label, problems(config))
        parsed, warnings = config_from_query(config_to_query(config))
        assert warnings == [], (label, warnings)
        assert parsed.replace(extra=config.extra, data_dir=config.data_dir) == config, label


# ---- /train opened with these links, in AppTest -------------------------------------------

def _links() -> list[tuple[str, dict[str, str], int]]:
    """(name, query, refused fields): every number at its minimum, at its maximum, one past each
    end, malformed; every choice of every choice field; each loss with semi-hard mining."""
    optional_ok = {"fold", "folds"}  # fold must be < folds; tried on their own below
    numbers = [f for f in NUMBERS if f.name not in optional_ok]
    links = [
        ("min", {f.name: _text(f, f.low) for f in numbers}, 0),
        ("max", {f.name: _text(f, f.high) for f in numbers}, 0),
        ("past min", {f.name: _text(f, _past(f, "low")) for f in numbers}, len(numbers)),
        ("past max", {f.name: _text(f, _past(f, "high")) for f in numbers}, len(numbers)),
        ("malformed", {f.name: "x1" for f in fields.FIELDS.values() if f.url}, None),
        ("folds", {"fold": "19", "folds": "20"}, 0),
        ("fold past", {"fold": "20", "folds": "21"}, 2),
    ]
    choice_fields = [f for f in fields.FIELDS.values() if f.choices]
    for index in range(max(len(f.choices) for f in choice_fields)):
        query = {f.name: list(f.choices)[index % len(f.choices)] for f in choice_fields}
        query["device"] = "cpu"
        links.append((f"choices {index}", query, 0))
    for loss in fields.LOSSES:
        high = fields.FIELDS["margin"].bounds(loss)[1]
        links.append((f"{loss} semihard", {"loss": loss, "miner": "semihard",
                                           "margin": f"{high:g}"}, 0))
    for lesson in LESSON_LIST:
        for label, config in lesson.variants:
            links.append((f"lesson {lesson.key}: {label}", config_to_query(config), 0))
    return links


@pytest.fixture
def store(run_root):
    st.cache_resource.clear()
    st.cache_data.clear()
    return run_root


@pytest.mark.slow
def test_train_opens_with_every_link(store):
    """No exception on any link; one warning per refused value; allowed values kept. About 45
    links, 2 minutes on 2 busy cores (the page alone, not the whole app, to keep it short)."""
    failures = []
    for name, query, refused in _links():
        at = AppTest.from_file(str(ROOT / "app_pages" / "train.py"), default_timeout=60)
        for key, value in query.items():
            at.query_params[key] = value
        at.run()
        ignored = [w.value for w in at.warning if w.value.startswith("Ignored")]
        if at.exception:
            failures.append((name, [e.value for e in at.exception]))
        elif refused is not None and len(ignored) != refused:
            failures.append((name, ignored))
        elif refused is None and not ignored:
            failures.append((name, "no warning for a malformed link"))
        elif refused == 0:
            expected, _ = config_from_query(query)
            shown = at.session_state["train_config"]
            if shown.replace(test_identities=expected.test_identities) != expected:
                failures.append((name, "the page changed the link's config"))
    assert failures == []


def test_learning_settings_are_typed_fields_and_old_runs_still_load_them():
    """width, init_scale, the augmentation's crop and brightness and the learning-rate schedule
    are RunConfig fields (in the table, so links, the CLI and the run-store check read them); a
    config.json written when they lived in ``extra`` loads them as fields and keeps the rest."""
    old = RunConfig.from_json('{"network": "mlp", "extra": {"width": 64, "lr_schedule": '
                              '"cosine", "augment_scale": 0.6, "sweep": "s1"}}')
    assert (old.width, old.lr_schedule, old.augment_scale) == (64, "cosine", 0.6)
    assert old.extra == {"sweep": "s1"}
    assert old == RunConfig(network="mlp", width=64, lr_schedule="cosine", augment_scale=0.6,
                            extra={"sweep": "s1"})
    assert RunConfig.from_json(old.to_json()) == old
    for name in ("width", "init_scale", "augment_scale", "augment_brightness", "lr_schedule"):
        assert name in fields.FIELDS
    assert any("width must be between" in p for p in problems(RunConfig(width=1)))
    assert any("lr_schedule must be one of" in p for p in problems(RunConfig(lr_schedule="x")))
    # a learning key in extra is that setting (what replace(extra=...) on an old config means)
    assert RunConfig(width=16).replace(extra={"width": 8}).width == 8
