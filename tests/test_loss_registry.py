"""A loss is one spec: registering a toy pair loss makes it a choice everywhere and trains it.

This is the recipe of docs/ARCHITECTURE.md ("Add a loss") run as a test: the toy loss below is
written with lab.metric.losses' public helper, registered with lab.metric.loss_specs.register, and
nothing else in lab is touched. It is then chosen on the command line, trains, is saved and reloads;
the field table, the URL parser, the geometry page's terms and the margin views all know it.
"""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from lab.cli import main
from lab.core import fields
from lab.core.config import RunConfig, problems
from lab.metric import geometry, loss_specs
from lab.metric.losses import LossOutput, PairLossTerms, pair_batch_loss

TINY = ["--dataset", "digits", "--image-size", "8", "--network", "mlp", "--embedding-dim", "8",
        "--epochs", "2", "--steps-per-epoch", "3", "--val-identities", "2",
        "--test-identities", "3", "--device", "cpu", "--extra", "width=32"]


def hinge_loss(embeddings: torch.Tensor, labels: torch.Tensor, *, energy: str = "l2",
               margin: float = 0.7, indices=None) -> LossOutput:
    """L_G = E, L_I = max(0, m − E): the contrastive loss with linear terms."""
    return pair_batch_loss(embeddings, labels, lambda E: E,
                           lambda E: torch.clamp(margin - E, min=0.0), energy=energy,
                           indices=indices)


def hinge_terms(*, loss_margin: float = 0.7, q: float = 2.0) -> PairLossTerms:
    def minimisers(e_max: float) -> list[tuple[float, float]]:
        return [(0.0, min(loss_margin, e_max)), (0.0, e_max)]

    return PairLossTerms(
        name="hinge", genuine=lambda E: np.asarray(E, dtype=float),
        impostor=lambda E: np.maximum(loss_margin - np.asarray(E, dtype=float), 0.0),
        genuine_slope=lambda E: np.ones_like(np.asarray(E, dtype=float)),
        impostor_slope=lambda E: -(np.asarray(E, dtype=float) < loss_margin).astype(float),
        minimisers=minimisers, impostor_floor=0.0, floor_reached_at=loss_margin)


HINGE = loss_specs.LossSpec(
    name="hinge", title="Hinge (toy)", kind="pair", params=("energy", "margin", "miner"),
    param_help={"margin": "m: impostors farther than m cost nothing."},
    default_energy="l1", default_margin=0.7, latex=r"L_G = E,\ L_I = \max(0, m - E)",
    source="a test", function=hinge_loss,
    arguments=lambda c: {"energy": c.energy, "margin": c.margin},
    margin_kind="energy", pair_terms=hinge_terms)


@pytest.fixture
def hinge():
    loss_specs.register(HINGE)
    try:
        yield HINGE
    finally:
        loss_specs.unregister("hinge")
    assert "hinge" not in fields.LOSSES


def test_an_unregistered_loss_is_refused_everywhere():
    assert "hinge" not in fields.LOSSES
    assert any("loss must be one of" in p for p in problems(RunConfig(loss="hinge")))
    with pytest.raises(SystemExit):
        main(["train", "--loss", "hinge"])


def test_a_registered_toy_loss_is_a_choice_everywhere(hinge):
    assert "hinge" in fields.LOSSES and "hinge" in fields.CHOICES["loss"]
    config = RunConfig(loss="hinge")
    assert problems(config) == []
    # the loss brings its own energy and margin, as every built-in loss does
    assert (config.energy, config.margin) == ("l1", 0.7)
    assert fields.uses_margin("hinge", "all")
    from lab.views.margin_view import energy_margin

    assert energy_margin("hinge", 0.7) == 0.7
    terms = geometry.pair_loss_terms("hinge", loss_margin=0.7)
    assert terms.impostor(np.array([0.2, 1.0])).tolist() == pytest.approx([0.5, 0.0])
    assert "hinge" in geometry.pair_losses()


def test_a_registered_toy_loss_trains_through_the_cli(hinge, run_root, capsys):
    assert main(["train", *TINY, "--loss", "hinge", "--json", "--quiet"]) == 0
    result = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert result["status"] == "done"
    assert result["config"]["loss"] == "hinge"
    assert (result["config"]["energy"], result["config"]["margin"]) == ("l1", 0.7)
    assert 0.0 <= result["metrics"]["test"]["eer"] <= 1.0
    assert main(["evaluate", result["run_id"], "--json"]) == 0
