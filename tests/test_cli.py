"""``python -m lab``: train, runs, evaluate and bench accuracy, driven as a user would."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from lab.cli import main

ROOT = Path(__file__).resolve().parents[1]
TINY = ["--dataset", "digits", "--image-size", "8", "--network", "mlp", "--embedding-dim", "8",
        "--epochs", "2", "--steps-per-epoch", "3", "--val-identities", "2",
        "--test-identities", "3", "--device", "cpu", "--extra", "width=32"]


@pytest.fixture(autouse=True)
def one_thread():
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def test_train_json_then_runs_and_evaluate(run_root, capsys):
    assert main(["train", *TINY, "--loss", "triplet", "--miner", "batchhard", "--json",
                 "--name", "tiny triplet"]) == 0
    out, err = capsys.readouterr()
    result = json.loads(out.strip().splitlines()[-1])
    assert result["status"] == "done" and Path(result["folder"]).parent == run_root
    assert result["config"]["energy"] == "sqeuclidean"  # the loss's own default energy
    assert result["config"]["margin"] == 0.2 and result["config"]["width"] == 32
    assert 0 <= result["metrics"]["test"]["eer"] <= 1
    assert "epoch 2/2" in err  # the progress bar
    assert main(["runs"]) == 0
    listing = capsys.readouterr().out
    assert result["run_id"] in listing and "tiny triplet" in listing
    assert main(["evaluate", result["run_id"], "--json", "--baselines"]) == 0
    evaluated = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert evaluated["metrics"]["test"]["eer"] == pytest.approx(result["metrics"]["test"]["eer"])
    assert set(evaluated["metrics"]["baselines"]) == {"pixels", "eigenfaces", "fisherfaces"}


def test_bad_option_and_unknown_run_are_messages(run_root, capsys):
    with pytest.raises(SystemExit) as refused:
        main(["train", "--loss", "hinge"])
    assert refused.value.code == 2 and "hinge" in capsys.readouterr().err
    assert main(["evaluate", "20200101-000000-abcdef"]) == 1
    assert "no run" in capsys.readouterr().err


def test_bench_accuracy_writes_json(tmp_path, capsys):
    out = tmp_path / "bench.json"
    assert main(["bench", "accuracy", "--dataset", "digits", "--image-size", "8",
                 "--network", "linear", "--loss", "contrastive", "--folds", "2",
                 "--val-identities", "2", "--time-budget", "0.3", "--json", str(out)]) == 0
    result = json.loads(out.read_text())
    assert len(result["folds"]) == 2 and result["mean"]["eer"] is not None
    assert result["baseline_pixels_mean"]["eer"] is not None
    assert result["machine"]["torch"] == torch.__version__
    # the mean is over the folds' own figures
    assert result["mean"]["eer"] == pytest.approx(sum(f["eer"] for f in result["folds"]) / 2)
    test_ids = [set(f["test_identities"]) for f in result["folds"]]
    assert test_ids[0].isdisjoint(test_ids[1])


def test_bench_accuracy_ensemble_over_two_partitions(tmp_path, capsys):
    out = tmp_path / "bench.json"
    assert main(["bench", "accuracy", "--dataset", "digits", "--image-size", "8",
                 "--network", "linear", "--loss", "contrastive", "--folds", "2",
                 "--val-identities", "2", "--time-budget", "0.3", "--ensemble", "2",
                 "--split-seeds", "0,1", "--no-baseline", "--json", str(out)]) == 0
    result = json.loads(out.read_text())
    assert result["ensemble"] == 2 and result["split_seeds"] == [0, 1]
    assert [(f["split_seed"], f["fold"]) for f in result["folds"]] == [(0, 0), (0, 1), (1, 0),
                                                                       (1, 1)]
    for fold in result["folds"]:
        assert len(fold["member_eer"]) == 2 and 0.0 <= fold["eer"] <= 1.0
    assert set(result["by_split"]) == {"0", "1"}
    assert result["mean_member_eer"] is not None
    # the two partitions put different people in the first fold's test set
    assert result["folds"][0]["test_identities"] != result["folds"][2]["test_identities"]


@pytest.mark.slow
def test_module_entry_point(run_root):
    done = subprocess.run([sys.executable, "-m", "lab", "train", *TINY, "--json", "--quiet"],
                          cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout.strip().splitlines()[-1])["status"] == "done"
