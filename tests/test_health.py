"""Health monitor: each failure a teacher would otherwise diagnose by eye is provoked on purpose
by a real short training run, and the right one-line finding (and only a fitting one) appears:
in the run's history and metrics, and as a banner on the Train page."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from lab.core.config import RunConfig
from lab.learn.jobs import TrainingJob, TrainingLimiter
from lab.learn.runs import RunStore
from lab.learn.training_run import train_run
from lab.measure import health

ROOT = Path(__file__).resolve().parents[1]
DIGITS = RunConfig(dataset="digits", network="mlp", embedding_dim=8, epochs=6, test_identities=3,
                   val_identities=2, p_identities=5, k_images=4, steps_per_epoch=8, seed=3)


def kinds(records, config) -> list[str]:
    return [f.kind for f in health.diagnose(records, config)]


# ---------------------------------------------------------------- the statistics


def test_spread_is_zero_for_one_point_and_scale_free():
    rng = np.random.default_rng(0)
    points = rng.normal(size=(50, 8))
    spread, norm = health._spread(points)
    assert health._spread(points * 1000)[0] == pytest.approx(spread)
    assert health._spread(np.tile(points[:1], (50, 1)))[0] == pytest.approx(0.0, abs=1e-12)
    assert norm == pytest.approx(np.linalg.norm(points, axis=1).mean())


def test_inside_margin_share_counts_impostors_closer_than_the_margin():
    # two identities on a line: impostor distances are |x_i - x_j| across the groups
    emb = np.array([[0.0], [0.1], [1.0], [1.1]])
    labels = np.array([0, 0, 1, 1])
    # impostor pairs: 1.0, 1.1, 0.9, 1.0 -> below 0.95: one of four
    assert health.inside_margin_share(emb, labels, "contrastive", "l2", 0.95) == 0.25
    assert health.inside_margin_share(emb, labels, "contrastive", "l2", 2.0) == 1.0
    # triplets: d(a,p) = 0.1, d(a,n) in 0.9 .. 1.1: all pay a loss with alpha = 1.5, none with 0.5
    assert health.inside_margin_share(emb, labels, "triplet", "l2", 1.5) == 1.0
    assert health.inside_margin_share(emb, labels, "triplet", "l2", 0.5) == 0.0
    assert health.inside_margin_share(emb, labels, "arcface", "cosine", 0.5) is None


# ---------------------------------------------------------------- the rules, on written records


def record(epoch, loss, **stats):
    return {"epoch": epoch, "loss": loss, "active_fraction": stats.pop("active", 0.5),
            "status": stats.pop("status", "running"), "message": stats.pop("message", ""),
            "health": stats}


def test_a_healthy_history_has_no_finding():
    records = [record(e, 1.0 / e, spread=0.6, norm=1.0, val_eer=0.3 - 0.02 * e,
                      train_eer=0.2 - 0.02 * e, inside_margin=0.3) for e in range(1, 8)]
    assert kinds(records, RunConfig()) == []


def test_validation_noise_is_not_over_fitting_but_a_sustained_rise_is():
    noisy = [0.31, 0.32, 0.32, 0.40, 0.35, 0.33, 0.31, 0.25, 0.35, 0.29, 0.32, 0.32]
    records = [record(e + 1, 0.1, val_eer=v, train_eer=0.3 - 0.01 * e)
               for e, v in enumerate(noisy)]
    assert "overfitting" not in kinds(records, RunConfig())
    rising = [0.30, 0.25, 0.22, 0.20, 0.22, 0.27, 0.31, 0.34, 0.36]
    records = [record(e + 1, 0.1, val_eer=v, train_eer=0.3 - 0.02 * e)
               for e, v in enumerate(rising)]
    [finding] = health.diagnose(records, RunConfig())
    assert finding.kind == "overfitting" and "validation EER rose" in finding.message
    # a stall far above a still-falling training EER counts too
    stalled = [0.40, 0.30, 0.26, 0.25, 0.26, 0.26, 0.27, 0.26, 0.26, 0.27]
    records = [record(e + 1, 0.1, val_eer=v, train_eer=max(0.2 - 0.03 * e, 0.0))
               for e, v in enumerate(stalled)]
    assert "has not improved" in health.diagnose(records, RunConfig())[0].message
    # ... but not when the training EER rose as well (that is not learning these people)
    records = [record(e + 1, 0.1, val_eer=v, train_eer=0.1 + 0.02 * e)
               for e, v in enumerate(rising)]
    assert "overfitting" not in kinds(records, RunConfig())


def test_a_margin_changed_mid_run_is_the_one_the_finding_names():
    config = RunConfig(loss="contrastive", margin=4.0)
    records = [record(1, 2.7, inside_margin=1.0), record(2, 2.7, inside_margin=1.0)]
    assert "margin 4" in health.diagnose(records, config)[0].message
    records[1]["changes"] = {"margin": 0.01}
    records[1]["health"]["inside_margin"] = 0.0
    [finding] = health.diagnose(records, config)
    assert finding.kind == "no_active" and "now 0.01" in finding.fix


# ---------------------------------------------------------------- provoked by real runs


def trained(config: RunConfig, tmp_path) -> tuple[list[dict], dict]:
    run, _ = train_run(config, store=RunStore(tmp_path / "runs"))
    return run.history, run.metrics


@pytest.mark.slow
@pytest.mark.parametrize("case, changes, expected, fix", [
    ("lr 10 diverges", dict(loss="naive", normalize=False, energy="sqeuclidean", lr=10.0,
                            optimizer="sgd", network="linear", epochs=3, steps_per_epoch=40),
     "diverged", "learning rate"),
    ("the naive loss explodes", dict(loss="naive", normalize=False, lr=1e-2), "exploding",
     "normalise"),
    ("margin 0.01 leaves no active triplets", dict(loss="triplet", margin=0.01, epochs=8),
     "no_active", "raise the margin"),
    ("margin 0 collapses", dict(margin=0.0), "collapse", "raise the margin"),
    ("margin 4 beyond the sphere is stuck", dict(margin=4.0), "stuck", "below 2"),
    ("few people, many epochs over-fit", dict(
        dataset="synthetic", num_identities=14, images_per_identity=12, difficulty=2.0,
        image_size=16, embedding_dim=64, normalize=False, margin=2.0, val_identities=5,
        test_identities=5, p_identities=4, k_images=4, epochs=16, lr=1e-2, seed=0),
     "overfitting", "stop earlier"),
])
def test_each_failure_provoked_by_a_real_run_gets_its_finding(tmp_path, case, changes,
                                                              expected, fix):
    config = DIGITS.replace(**changes)
    history, metrics = trained(config, tmp_path)
    found = health.diagnose(history, config)
    assert expected in [f.kind for f in found], (case, [f.text for f in found], history)
    finding = next(f for f in found if f.kind == expected)
    assert fix in finding.fix, finding.fix
    # the run keeps its statistics in history.jsonl and its findings in metrics.json
    assert all("health" in r for r in history)
    assert expected in [f["kind"] for f in metrics["health"]]


@pytest.mark.slow
def test_the_default_digits_run_is_healthy(tmp_path):
    history, metrics = trained(DIGITS, tmp_path)
    assert metrics["health"] == [], metrics["health"]
    assert {"spread", "norm", "val_eer", "train_eer", "inside_margin"} <= set(history[-1]["health"])


@pytest.mark.slow
def test_the_train_page_shows_the_finding_as_a_banner(run_root):
    from streamlit.testing.v1 import AppTest

    job = TrainingJob(DIGITS.replace(margin=4.0), store=RunStore(run_root),
                      limiter=TrainingLimiter(1)).start()
    assert job.wait(120)
    at = AppTest.from_file(str(ROOT / "app.py"), default_timeout=120)
    at.switch_page("app_pages/train.py")
    at.session_state["training_job"] = job
    at.run()
    assert not at.exception, [e.value for e in at.exception]
    banners = [w.value for w in at.warning]
    assert any("Loss stuck at the margin" in b and "Likely fix: lower the margin below 2" in b
               for b in banners), banners
