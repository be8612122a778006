"""Device and precision choice (with a mocked torch.cuda), and reproducibility that holds."""

from __future__ import annotations

import threading
import time

import pytest
import torch
import torch.nn.functional as F

from lab.core.config import RunConfig
from lab.learn import devices, reproducibility
from lab.learn.devices import choose_device, precision_for, supports

CUDA13_ARCHES = ["sm_75", "sm_80", "sm_86", "sm_90", "sm_100", "sm_120", "compute_120"]


def _fake_gpu(monkeypatch, capability, name="Fake GPU", arches=CUDA13_ARCHES):
    cards = capability if isinstance(capability, list) else [capability]
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: len(cards))
    monkeypatch.setattr(torch.cuda, "get_device_capability", lambda i=0: cards[i or 0])
    monkeypatch.setattr(torch.cuda, "get_device_name", lambda i=0: f"{name} {i or 0}")
    monkeypatch.setattr(torch.cuda, "get_arch_list", lambda: arches)


@pytest.mark.parametrize("capability,usable", [((6, 1), False), ((7, 0), False),
                                               ((7, 5), True), ((8, 6), True), ((12, 0), True),
                                               ((13, 0), True)])  # 13.0 through compute_120 PTX
def test_supported_capabilities_follow_the_wheels_architectures(monkeypatch, capability, usable):
    monkeypatch.setattr(torch.cuda, "get_arch_list", lambda: CUDA13_ARCHES)
    assert supports(capability) is usable


def test_an_old_card_is_skipped_with_the_reason(monkeypatch):
    _fake_gpu(monkeypatch, (6, 1), name="Tesla P100")
    choice = choose_device("auto")
    assert choice.device.type == "cpu" and choice.precision == "float32"
    assert "Tesla P100 0 (compute capability 6.1)" in choice.reason
    assert "no GPU kernels below compute capability 7.5" in choice.reason
    assert choose_device("cuda").device.type == "cpu"  # a config asking for cuda still runs


def test_turing_trains_in_float32_and_ampere_in_bfloat16(monkeypatch):
    _fake_gpu(monkeypatch, (7, 5), name="Tesla T4")
    choice = choose_device("auto")
    assert choice.device.type == "cuda" and choice.precision == "float32"
    assert "emulated" in choice.reason and "7.5" in choice.reason
    assert precision_for(torch.device("cuda")) == "float32"
    _fake_gpu(monkeypatch, (8, 0), name="A100")
    choice = choose_device("auto")
    assert choice.precision == "bfloat16" and choice.autocast_dtype is torch.bfloat16
    assert "native" in choice.reason
    assert precision_for(torch.device("cuda")) == "bfloat16"


def test_the_first_usable_card_is_chosen(monkeypatch):
    _fake_gpu(monkeypatch, [(6, 1), (8, 9)])
    choice = choose_device("auto")
    assert choice.device == torch.device("cuda", 1) and choice.precision == "bfloat16"


def test_no_gpu_and_an_explicit_cpu(monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    monkeypatch.setattr(torch.backends.mps, "is_available", lambda: False)
    assert choose_device("auto").device.type == "cpu"
    assert "no usable GPU" in choose_device("auto").reason
    assert choose_device("cuda").reason.startswith("No CUDA device here")
    assert choose_device("cpu").precision == "float32"
    assert devices.pick_device("mps").type == "cpu"


def test_home_shows_the_device_and_why(monkeypatch):
    from pathlib import Path

    from streamlit.testing.v1 import AppTest

    _fake_gpu(monkeypatch, (7, 0), name="Tesla V100")
    root = Path(__file__).resolve().parents[1]
    at = AppTest.from_file(str(root / "app.py"), default_timeout=60).run()
    assert not at.exception
    text = " ".join(str(c.value) for c in at.caption) + " ".join(
        str(m.value) for m in at.metric)
    assert "Tesla V100 0 (compute capability 7.0)" in text and "CPU" in text
    assert "Reproducible on this device" in text


# ---------------------------------------------------------------- reproducibility


def test_the_matmul_pooling_equals_adaptive_pooling():
    from lab.learn.models import adaptive_avg_pool_matmul

    for h, w, size in [(7, 9, 4), (16, 16, 4), (5, 3, 1), (3, 3, 4)]:
        x = torch.randn(2, 3, h, w, dtype=torch.float64)
        assert torch.allclose(adaptive_avg_pool_matmul(x, size), F.adaptive_avg_pool2d(x, size),
                              atol=1e-12)


def _weights(trainer) -> dict[str, torch.Tensor]:
    return {**trainer.model.state_dict(), **{f"head.{k}": v for k, v in
                                             trainer.criterion.state_dict().items()}}


def test_two_trainers_started_together_get_the_weights_their_seeds_give_alone(monkeypatch):
    """Trainer B seeding the global RNG while trainer A is between its model and its head
    would give A a head drawn from B's stream; the seeding lock makes A finish first."""
    import lab.learn.criterion
    from lab.data import load_for_config
    from lab.learn.train import Trainer

    config = RunConfig(dataset="synthetic", num_identities=10, images_per_identity=3,
                       image_size=12, network="mlp", embedding_dim=8, loss="arcface",
                       val_identities=2, test_identities=2)
    faces = load_for_config(config)
    alone = {seed: _weights(Trainer(config.replace(seed=seed), faces, probes=False))
             for seed in (1, 2)}
    assert not torch.equal(alone[1]["head.weight"], alone[2]["head.weight"])
    real = lab.learn.criterion.build_criterion

    def slow_criterion(*args, **kwargs):
        time.sleep(0.2)  # the other thread gets its turn here
        return real(*args, **kwargs)

    monkeypatch.setattr(lab.learn.criterion, "build_criterion", slow_criterion)
    together: dict[int, dict] = {}
    start = threading.Barrier(2)

    def build(seed: int) -> None:
        start.wait()
        together[seed] = _weights(Trainer(config.replace(seed=seed), faces, probes=False))

    threads = [threading.Thread(target=build, args=(seed,)) for seed in (1, 2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    for seed in (1, 2):
        for name, value in alone[seed].items():
            assert torch.equal(together[seed][name], value), (seed, name)


def test_seeding_leaves_the_global_rng_as_it_was():
    torch.manual_seed(123)
    expected = torch.rand(3)
    torch.manual_seed(123)
    with reproducibility.seeded(5):
        torch.rand(10)
    assert torch.equal(torch.rand(3), expected)


def test_a_run_records_device_precision_and_versions():
    record = reproducibility.record(torch.device("cpu"), "float32")
    assert record["device"] == "cpu" and record["precision"] == "float32"
    assert record["torch"] == torch.__version__ and record["threads"] >= 1
    assert reproducibility.REPRODUCIBLE.startswith("Reproducible on this device")


def test_configure_on_cuda_sets_deterministic_kernels(monkeypatch):
    calls = []
    monkeypatch.setattr(reproducibility, "_CONFIGURED", set())
    monkeypatch.setattr(torch, "use_deterministic_algorithms",
                        lambda on, warn_only=False: calls.append((on, warn_only)))
    cudnn, matmul = torch.backends.cudnn, torch.backends.cuda.matmul
    saved = (cudnn.deterministic, cudnn.benchmark, cudnn.allow_tf32, matmul.allow_tf32)
    try:
        cudnn.deterministic, cudnn.benchmark = False, True
        cudnn.allow_tf32 = matmul.allow_tf32 = True
        reproducibility.configure(torch.device("cpu"))
        assert calls == []  # nothing global changes for a CPU run
        reproducibility.configure(torch.device("cuda"))
        reproducibility.configure(torch.device("cuda"))
        assert calls == [(True, True)]
        assert cudnn.deterministic and not cudnn.benchmark
        assert not cudnn.allow_tf32 and not matmul.allow_tf32
    finally:
        (cudnn.deterministic, cudnn.benchmark, cudnn.allow_tf32, matmul.allow_tf32) = saved
