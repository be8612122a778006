"""lab.views.crosseval and `python -m lab evaluate --run R --dataset folder --data-dir D`."""

from __future__ import annotations

import json
import shutil

import numpy as np
import pytest
import torch

from lab.core.config import RunConfig
from lab.measure.evaluate import embed, verification_pairs
from lab.metric.energy import pairwise_energy_np
from lab.views import crosseval


@pytest.fixture
def synthetic_run(run_root):
    from lab.learn.runs import RunStore
    from lab.learn.training_run import train_run

    config = RunConfig(num_identities=12, images_per_identity=4, image_size=16,
                       val_identities=3, test_identities=3, epochs=2, p_identities=4,
                       k_images=2, extra={"width": 4}, device="cpu")
    run, _ = train_run(config, RunStore(run_root))
    return RunStore(run_root).load(run.id)


@pytest.fixture
def grey_folder(att_dir, tmp_path):
    folder = tmp_path / "faces"
    for person in ("s4", "s5", "s6", "s7"):
        shutil.copytree(att_dir / person, folder / person)
    return folder


def test_cross_dataset_figures_at_the_runs_own_threshold(synthetic_run, grey_folder, capsys):
    from lab.cli import main
    from lab.data import load_dataset
    from lab.views.verify import threshold_for_run

    code = main(["evaluate", "--run", synthetic_run.id, "--dataset", "folder",
                 "--data-dir", str(grey_folder), "--json"])
    out = json.loads(capsys.readouterr().out)
    assert code == 0 and out["people"] == 4 and out["images"] == 40
    # Recomputed here: the grey photos copied into the colour run's three channels.
    faceset = load_dataset("folder", data_dir=str(grey_folder), image_size=16)
    images = faceset.images.float().expand(-1, 3, -1, -1)
    emb = embed(synthetic_run.model, images, device="cpu")
    i, j, same = verification_pairs(faceset.labels.numpy(), max_impostor=20000,
                                    seed=synthetic_run.config.data_seed)
    energies = pairwise_energy_np(emb[i], emb[j], synthetic_run.config.energy)
    threshold = threshold_for_run(synthetic_run, 0.01)
    assert out["threshold"] == pytest.approx(threshold)
    assert out["far_at_threshold"] == pytest.approx(np.mean(energies[~same] <= threshold))
    assert out["frr_at_threshold"] == pytest.approx(np.mean(energies[same] > threshold))


def test_a_grey_run_sees_the_luminance_of_colour_images():
    colour = torch.zeros(1, 3, 2, 2)
    colour[:, 0] = 1.0  # pure red
    grey = crosseval._channels(colour, 1)
    assert grey.shape == (1, 1, 2, 2) and torch.allclose(grey, torch.full_like(grey, 0.299))


def test_evaluate_on_a_missing_folder_says_so(synthetic_run, tmp_path, capsys):
    from lab.cli import main

    code = main(["evaluate", "--run", synthetic_run.id, "--dataset", "folder",
                 "--data-dir", str(tmp_path / "nowhere")])
    assert code == 2 and "does not exist" in capsys.readouterr().err
