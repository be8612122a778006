"""Class challenges: hidden people, checks of submitted runs, scoring and the leaderboard."""

from __future__ import annotations

import json

import pytest
import torch

from lab.core.config import RunConfig
from lab.data import load_for_config
from lab.data.splits import held_out_identities, split_for_config
from lab.learn.runs import RunStore
from lab.learn.train import Trainer
from lab.learn.training_run import train_run
from lab.measure.evaluate import evaluate_embeddings
from lab.views import challenge as ch

KEY = "teacher-secret"
BASE = RunConfig(num_identities=16, images_per_identity=4, image_size=16, val_identities=2,
                 test_identities=3, network="mlp", embedding_dim=8, epochs=1, seed=0)


@pytest.fixture
def key(monkeypatch):
    monkeypatch.setenv("METRIC_LAB_TEACHER_KEY", KEY)
    return KEY


@pytest.fixture
def setup(key, tmp_path):
    runs = RunStore(tmp_path / "runs")
    store = ch.ChallengeStore(tmp_path / "challenges")
    made = store.save_new(ch.new_challenge(key, "Lowest EER", BASE, ("loss", "margin", "seed",
                                                                     "lr"), 30, 4))
    return runs, store, made


def student_run(runs, challenge, token, **changes):
    config = challenge.student_config(BASE.replace(**changes), ch.student_hash(token))
    run, _ = train_run(config, runs, name=token, time_budget=challenge.time_budget)
    return runs.load(run.id)


def test_hidden_people_are_never_trained_validated_or_probed(setup):
    _, _, challenge = setup
    config = challenge.student_config(BASE, "x")
    hidden = set(held_out_identities(config, 16))
    assert len(hidden) == 4
    split = split_for_config(config, 16)
    parts = [set(split.train), set(split.val), set(split.test)]
    assert [len(p) for p in parts] == [7, 2, 3]
    assert set().union(*parts) == set(range(16)) - hidden
    trainer = Trainer(config)
    labels = trainer.faceset.labels
    assert not hidden & set(trainer.probe_labels.tolist())
    assert not hidden & set(trainer.seen_labels.tolist())
    assert not hidden & set(labels[trainer.test_index].tolist())
    hidden_rows = set(torch.nonzero(torch.isin(labels, torch.tensor(sorted(hidden))))
                      .flatten().tolist())
    assert not hidden_rows & set(trainer.probe_indices.tolist())
    # Without a holdout the same people seed splits all 16 people.
    assert len(split_for_config(BASE, 16).test) == 3


def test_only_the_teacher_creates_hides_and_closes(setup, key):
    _, store, challenge = setup
    with pytest.raises(ch.ChallengeError, match="teacher key"):
        ch.new_challenge("wrong", "x", BASE, ("loss",), 30, 4)
    with pytest.raises(ch.ChallengeError, match="teacher key"):
        store.set_closed(challenge.id, True, "")
    with pytest.raises(ch.ChallengeError, match="teacher key"):
        store.set_hidden(challenge.id, "20260101-000000-abcdef", True, None)
    assert not store.load(challenge.id).closed
    with pytest.raises(ch.ChallengeError, match="not a challenge link"):
        store.load("../../etc/passwd")


def test_the_student_config_cannot_lift_the_limits(setup):
    _, _, challenge = setup
    asked = BASE.replace(loss="triplet", margin=0.3, image_size=64, num_identities=200,
                         dataset="digits", extra={"holdout": None})
    config = challenge.student_config(asked, "owner")
    assert (config.loss, config.margin) == ("triplet", 0.3)  # editable: kept
    assert (config.image_size, config.num_identities, config.dataset) == (16, 16, "synthetic")
    assert config.extra["holdout"]["count"] == 4


def test_three_students_ranked_by_hidden_eer_and_every_abuse_refused(setup, key, tmp_path):
    runs, store, challenge = setup
    made = [student_run(runs, challenge, f"student{k}", seed=k, loss=loss)
            for k, loss in enumerate(("contrastive", "triplet", "arcface"))]
    entries = [store.submit(challenge.id, run, f"Student {k}", f"student{k}", now=1000.0 + k)
               for k, run in enumerate(made)]
    # The score is the EER on the hidden people, computed here independently.
    faces = load_for_config(made[0].config)
    hidden = held_out_identities(made[0].config, faces.num_identities)
    rows = torch.isin(faces.labels, torch.tensor(hidden))
    emb = made[0].load_model("cpu")(faces.images[rows]).detach().numpy()
    labels = faces.labels[rows].numpy()
    expected = evaluate_embeddings(emb, labels, "l2", seed=challenge.holdout_seed)
    assert entries[0].eer == pytest.approx(expected.eer)
    assert entries[0].auc == pytest.approx(expected.auc)
    assert set(labels) == set(hidden) and len(labels) == 16
    board = ch.leaderboard(store.load(challenge.id))
    assert [r["EER %"] for r in board] == sorted(r["EER %"] for r in board)
    assert {r["name"] for r in board} == {"Student 0", "Student 1", "Student 2"}

    def refused(run, match, name="Again", token="student0", now=2000.0):
        with pytest.raises(ch.ChallengeError, match=match):
            store.submit(challenge.id, run, name, token, now=now)

    refused(made[0], "one entry per run")
    theirs = student_run(runs, challenge, "student1", seed=11)
    refused(theirs, "trained yourself", token="student0", now=2100.0)  # someone else's run
    outside = runs.load(train_run(BASE.replace(image_size=24, extra=dict(
        challenge.student_config(BASE, ch.student_hash("student9")).extra)), runs)[0].id)
    refused(outside, "image_size must stay 16", token="student9", now=2200.0)
    lazy = student_run(runs, challenge, "student8")
    history = lazy.path / "history.jsonl"
    lines = [json.loads(line) for line in history.read_text().splitlines()]
    lines[-1]["elapsed"] = 500.0  # as if it trained far past the budget
    history.write_text("".join(json.dumps(line) + "\n" for line in lines))
    refused(runs.load(lazy.id), "more than the challenge's 30 s", token="student8",
            now=2300.0)
    lines[-1]["elapsed"] = 1.0
    lines[-1]["changes"] = {"margin": 3.0}  # margin is the students', image size is not
    history.write_text("".join(json.dumps(line) + "\n" for line in lines))
    assert not ch.run_problems(challenge, runs.load(lazy.id))
    lines[-1]["changes"] = {"margin": 3.0, "weight_decay": 0.5}
    history.write_text("".join(json.dumps(line) + "\n" for line in lines))
    assert ch.run_problems(challenge, runs.load(lazy.id)) == [
        "The run changed weight_decay while it trained; this challenge fixes it."]
    plain = runs.load(train_run(BASE, runs)[0].id)
    refused(plain, "not trained in this challenge", token="student7", now=2400.0)
    imported = runs.load(runs.import_zip(runs.export_zip(made[2].id)).id)
    refused(imported, "trained on this server", token="student2", now=2500.0)
    refused(made[2], "Choose a name", name="   ", token="student6", now=2600.0)
    refused(made[2], "at most 40", name="x" * 41, token="student6", now=2700.0)
    for t in range(3):  # a fourth try within a minute is refused before any check
        with pytest.raises(ch.ChallengeError):
            store.submit(challenge.id, made[0], "Spam", "spammer", now=3000.0 + t)
    refused(made[0], "a minute", name="Spam", token="spammer", now=3010.0)
    refused(made[0], "a minute", name="spam", token="other", now=3020.0)  # same name

    store.set_hidden(challenge.id, board[0]["run"], True, key)
    shown = ch.leaderboard(store.load(challenge.id))
    assert [r["name"] for r in shown] == [r["name"] for r in board[1:]]
    assert len(ch.leaderboard(store.load(challenge.id), include_hidden=True)) == 3
    store.set_closed(challenge.id, True, key)
    late = student_run(runs, challenge, "student5")
    refused(late, "closed", token="student5", now=4000.0)


def test_csv_neutralises_formulas():
    rows = [{"rank": 1, "name": "=HYPERLINK(\"http://x\")", "EER %": 3.5},
            {"rank": 2, "name": "Ada", "EER %": -1.0}]
    text = ch.to_csv(rows)
    assert "'=HYPERLINK" in text and "\nrank" not in text
    assert text.splitlines()[2] == "2,Ada,-1.0"


def test_names_are_cleaned_not_trusted():
    assert ch.clean_name("  <b>Ada</b>\n\x00 L ") == "<b>Ada</b> L"  # text, shown escaped
    with pytest.raises(ch.ChallengeError):
        ch.clean_name("\n\t")
