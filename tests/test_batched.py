"""lab.learn.batched: K configs trained together give the runs they give one after another."""

from __future__ import annotations

import dataclasses

import pytest
import torch

from lab.core.config import RunConfig
from lab.data import load_for_config
from lab.learn.batched import BatchedTrainer, batch_problem, prefer_batched, train_runs_batched
from lab.learn.runs import RunStore
from lab.learn.train import Trainer


def tiny(**changes) -> RunConfig:
    base = RunConfig(num_identities=10, images_per_identity=4, image_size=12, val_identities=2,
                     test_identities=3, epochs=2, p_identities=4, k_images=2,
                     extra={"width": 4})
    return base.replace(**changes)


def test_batch_problem_allows_only_loss_parameters():
    assert batch_problem([tiny(margin=0.5), tiny(margin=1.0, loss="triplet")]) is None
    assert batch_problem([tiny(), tiny(extra={"width": 4, "sweep": "s1"})]) is None
    assert "lr" in batch_problem([tiny(), tiny(lr=0.1)])
    assert "width" in batch_problem([tiny(), tiny(extra={"width": 8})])
    assert "extra" in batch_problem([tiny(), tiny(extra={"m": 0.5})])
    assert batch_problem([tiny(augment=True, miner="random")]) is not None
    assert batch_problem([]) == "no configs"
    with pytest.raises(ValueError, match="differ in network"):
        BatchedTrainer([tiny(), tiny(network="mlp")])


def test_prefer_batched_only_on_cuda():
    assert prefer_batched(torch.device("cuda"))
    assert not prefer_batched(torch.device("cpu"))


@pytest.mark.parametrize("network", ["cnn", "mlp"])
def test_batched_equals_sequential(network):
    configs = [tiny(network=network, margin=0.3), tiny(network=network, margin=1.0),
               tiny(network=network, loss="triplet", miner="semihard", margin=0.2,
                    energy="sqeuclidean"),
               tiny(network=network, loss="arcface", margin=0.5, energy="cosine")]
    faces = load_for_config(configs[0])
    batched = BatchedTrainer(configs, faces)
    last = list(batched.fit())[-1]
    for k, config in enumerate(configs):
        trainer = Trainer(config, faces)
        final = list(trainer.fit())[-1]
        assert last[k].status == final.status == "done"
        assert last[k].loss == pytest.approx(final.loss, rel=1e-4, abs=1e-6)
        assert abs(last[k].probe_embeddings - final.probe_embeddings).max() < 1e-4
        for name, value in trainer.model.state_dict().items():
            other = batched.trainers[k].model.state_dict()[name]
            assert torch.allclose(value.float(), other.float(), atol=1e-4), name
        assert last[k].metrics["test"]["eer"] == pytest.approx(final.metrics["test"]["eer"],
                                                               abs=1e-6)


def test_train_runs_batched_saves_each_run(tmp_path):
    configs = [tiny(margin=m, extra={"width": 4, "sweep": "s"}) for m in (0.5, 1.0)]
    store = RunStore(tmp_path)
    seen = []
    runs, batched = train_runs_batched(configs, store=store, names=["a", "b"],
                                       on_report=lambda k, r: seen.append((k, r.epoch)))
    assert sorted(seen) == [(0, 1), (0, 2), (1, 1), (1, 2)]
    infos = {i.name: i for i in store.list()}
    assert set(infos) == {"a", "b"}
    for run, config in zip(runs, configs, strict=True):
        loaded = store.load(run.id)
        assert loaded.status == "done"
        assert loaded.config.margin == config.margin
        assert len(loaded.history) == 2
        assert loaded.probes()["embeddings"].shape[0] == 3  # epochs 0, 1, 2
        assert "eer" in loaded.metrics["test"]
        model = loaded.load_model()
        assert model(torch.rand(2, 3, 12, 12)).shape == (2, 32)


def test_stop_ends_every_model(tmp_path):
    batched = BatchedTrainer([tiny(epochs=5, margin=m) for m in (0.5, 1.0)], evaluate=False)
    reports = []
    for epoch_reports in batched.fit():
        reports.append(epoch_reports)
        batched.stop()
    assert len(reports) == 2  # the stop lands during epoch 2
    assert [r.status for r in reports[-1]] == ["stopped", "stopped"]


def test_a_diverging_model_drops_out_and_keeps_its_last_good_weights():
    batched = BatchedTrainer([tiny(epochs=3, margin=m) for m in (0.5, 1.0)], evaluate=False)
    criterion = batched.trainers[1].criterion
    forward = criterion.forward
    epoch = {"n": 0}

    def poisoned(embeddings, labels, *args):
        output = forward(embeddings, labels, *args)
        if epoch["n"] >= 1:  # finite in epoch 1, NaN from epoch 2 on
            output = dataclasses.replace(output, loss=output.loss * float("nan"))
        return output

    criterion.forward = poisoned
    last = [None, None]
    for reports in batched.fit():
        epoch["n"] += 1
        for k, report in enumerate(reports):
            if report is not None:
                last[k] = report
    assert last[0].status == "done" and last[0].epoch == 3
    assert last[1].status == "diverged" and last[1].epoch == 1
    assert "last good epoch" in last[1].message
    assert all(torch.isfinite(p).all() for p in batched.trainers[1].model.parameters())


def test_sweep_job_batched_path_saves_every_run(tmp_path):
    from lab.learn.jobs import SweepJob, TrainingLimiter

    configs = [tiny(margin=m, extra={"width": 4, "sweep": "sw"}) for m in (0.5, 1.0, 1.5)]
    store = RunStore(tmp_path)
    sweep = SweepJob(configs, store=store, limiter=TrainingLimiter(1), batched=True).start()
    assert sweep.wait(timeout=120)
    assert sweep.together and sweep.done == 3 and not sweep.message
    infos = store.list()
    assert sorted(i.name for i in infos) == ["sw contrastive m=0.5", "sw contrastive m=1",
                                             "sw contrastive m=1.5"]
    assert all(i.status == "done" for i in infos)


def test_sweep_job_stays_sequential_on_cpu_by_default(tmp_path):
    from lab.learn.jobs import SweepJob, TrainingLimiter

    configs = [tiny(epochs=1, margin=m, device="cpu") for m in (0.5, 1.0)]
    sweep = SweepJob(configs, store=RunStore(tmp_path), limiter=TrainingLimiter(1)).start()
    assert sweep.wait(timeout=120)
    assert sweep.together is False and sweep.done == 2 and len(sweep.jobs) == 2
