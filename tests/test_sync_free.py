"""A training step never waits for the device: mining and losses on the batch layout.

On a GPU, any call whose result's size or value the host must know (``nonzero``, a boolean
mask index, ``torch.unique``, ``.item()``, ``.tolist()``, ``bool(tensor)``, a copy to the CPU)
stops the host until the device has caught up. None of these appear in a CPU-only profile,
so this test runs the step under a TorchFunctionMode that raises on each of them: it fails
here, without a GPU, wherever a CUDA step would sync. The values still equal those of the
readable index-tuple miners, which tests/test_losses.py and tests/test_mining.py check
against pytorch-metric-learning.
"""

from __future__ import annotations

import pytest
import torch
from torch.overrides import TorchFunctionMode

from lab.core.config import RunConfig
from lab.learn.criterion import build_criterion
from lab.learn.train import _Accumulator
from lab.metric.energy import energy_matrix
from lab.metric.layout import LayoutCache, layout_of, pattern
from lab.metric.loss_specs import LOSSES
from lab.metric.mining import (
    MINERS,
    MinedPairs,
    MinedTriplets,
    all_pairs,
    mine,
    mine_batch,
    random_triplets,
    semihard_triplets,
)

SYNCING = {"nonzero", "argwhere", "unique", "unique_consecutive", "masked_select", "item",
           "tolist", "__bool__", "__int__", "__float__", "__index__", "cpu", "numpy",
           "nonzero_static"}


class NoHostSync(TorchFunctionMode):
    """Raises on every torch call that makes the host wait for the device."""

    def __torch_function__(self, func, types, args=(), kwargs=None):
        name = getattr(func, "__name__", "")
        if name in SYNCING:
            raise AssertionError(f"host sync in a training step: {name}")
        if name in ("__getitem__", "__setitem__") and _has_bool_index(args[1]):
            raise AssertionError(f"boolean-mask indexing in a training step ({name})")
        if name == "to" and any(str(a) == "cpu" for a in (*args[1:], *(kwargs or {}).values())):
            raise AssertionError("copy to the host in a training step")
        return func(*args, **(kwargs or {}))


def _has_bool_index(index) -> bool:
    parts = index if isinstance(index, tuple) else (index,)
    return any(isinstance(p, torch.Tensor) and p.dtype == torch.bool for p in parts)


def _batch(p=4, k=3, dim=6, seed=0, dtype=torch.float64):
    generator = torch.Generator().manual_seed(seed)
    labels = torch.randperm(20, generator=generator)[:p].repeat_interleave(k)  # P x K
    embeddings = torch.randn(p * k, dim, generator=generator, dtype=dtype)
    return torch.nn.functional.normalize(embeddings, dim=1), labels


def test_the_mode_catches_the_miners_that_sync():
    """The index-tuple miners (nonzero) and the old empty-set NaN would fail under it."""
    embeddings, labels = _batch()
    with NoHostSync(), pytest.raises(AssertionError, match="host sync"):
        all_pairs(labels)
    energies = energy_matrix(embeddings, "l2")
    with NoHostSync(), pytest.raises(AssertionError):
        semihard_triplets(energies, labels, 0.5)
    values = torch.rand(5)
    with NoHostSync(), pytest.raises(AssertionError, match="boolean-mask"):
        values[values > 0.5]
    with NoHostSync(), pytest.raises(AssertionError, match="item"):
        values.sum().item()


def _config(loss: str, miner: str) -> RunConfig:
    spec = LOSSES[loss]
    return RunConfig(loss=loss, miner=miner, embedding_dim=6, margin=spec.default_margin,
                     energy=spec.default_energy)


@pytest.mark.parametrize("loss", list(LOSSES))
@pytest.mark.parametrize("miner", MINERS)
def test_a_step_makes_no_host_sync(loss, miner):
    embeddings, labels = _batch(dtype=torch.float32)
    criterion = build_criterion(_config(loss, miner), num_classes=20)
    layout = criterion.layouts.get(labels, "cpu")  # the trainer does this once, on the host
    generator = torch.Generator().manual_seed(0)
    raw = embeddings.clone().requires_grad_(True)
    optimizer = torch.optim.Adam([raw, *criterion.parameters()], lr=0.01)
    acc = _Accumulator(torch.device("cpu"))
    with NoHostSync():
        output = criterion(raw, labels, generator, layout)
        optimizer.zero_grad()
        output.loss.backward()
        acc.add(output.loss, output, len(labels), at=1)
    optimizer.step()  # Adam reads its step count, a host tensor on every device: no sync
    assert torch.isfinite(output.loss) and torch.isfinite(raw.grad).all()
    assert acc.read()[0] == pytest.approx(float(output.loss.detach()))


def _index_form(loss: str, miner: str, embeddings, labels, generator):
    """The loss through the readable miners (index tuples), as tests/test_losses.py checks it
    against pytorch-metric-learning."""
    config = _config(loss, miner)
    spec = LOSSES[loss]
    energies = energy_matrix(embeddings.detach(), config.energy)
    indices = mine(miner, spec.kind, energies, labels, config.margin, generator)
    return spec.function(embeddings, labels, indices=indices, **spec.arguments(config))


@pytest.mark.parametrize("loss", [n for n, s in LOSSES.items() if s.kind != "classifier"])
@pytest.mark.parametrize("miner", MINERS)
@pytest.mark.parametrize("seed", [0, 1])
def test_the_layout_form_equals_the_index_form(loss, miner, seed):
    embeddings, labels = _batch(seed=seed)
    first = embeddings.clone().requires_grad_(True)
    second = embeddings.clone().requires_grad_(True)
    criterion = build_criterion(_config(loss, miner), 20)
    layout = layout_of(labels)
    with NoHostSync():
        ours = criterion(first, labels, torch.Generator().manual_seed(seed), layout)
    reference = _index_form(loss, miner, second, labels, torch.Generator().manual_seed(seed))
    for name in ("loss", "active_fraction", "mean_genuine", "mean_impostor"):
        a, b = float(getattr(ours, name).detach()), float(getattr(reference, name).detach())
        assert a == pytest.approx(b, rel=1e-9, abs=1e-12), name
    ours.loss.backward()
    reference.loss.backward()
    assert torch.allclose(first.grad, second.grad, rtol=1e-9, atol=1e-12)


def _triplet_set(mined: MinedTriplets, layout):
    mask = torch.broadcast_to(mined.mask, layout.triplet_ok.shape)
    return {(a, int(layout.positives[a, q]), int(layout.negatives[a, m]))
            for a, q, m in torch.nonzero(mask).tolist()}


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_masked_semihard_is_the_semihard_set(seed):
    embeddings, labels = _batch(seed=seed)
    layout = layout_of(labels)
    energies = energy_matrix(embeddings, "sqeuclidean")
    mined = mine_batch("semihard", "triplet", embeddings, "sqeuclidean", layout, 1.0)
    expected = set(zip(*[t.tolist() for t in semihard_triplets(energies, labels, 1.0)],
                       strict=True))
    assert expected and _triplet_set(mined, layout) == expected
    pairs = mine_batch("semihard", "pair", embeddings, "sqeuclidean", layout, 1.0)
    assert isinstance(pairs, MinedPairs)
    genuine = {(int(layout.first[k]), int(layout.second[k]))
               for k in torch.nonzero(pairs.genuine_mask).flatten().tolist()}
    assert genuine == {(min(a, p), max(a, p)) for a, p, _ in expected}  # unordered, once


def test_random_triplets_are_drawn_on_the_generators_device_without_a_copy():
    _, labels = _batch()
    layout = layout_of(labels)
    first = random_triplets(labels, torch.Generator().manual_seed(3), n=9)
    again = random_triplets(labels, torch.Generator().manual_seed(3), n=9)
    assert all(torch.equal(a, b) for a, b in zip(first, again, strict=True))
    triplets = set(zip(*[t.tolist() for t in first], strict=True))
    assert len(triplets) == 9
    all_of_them = _triplet_set(MinedTriplets(torch.zeros(1), torch.zeros(1), layout.triplet_ok),
                               layout)
    assert triplets <= all_of_them and len(all_of_them) == layout.triplets == 12 * 2 * 9


def test_a_pk_layout_is_computed_once_whoever_the_identities_are():
    cache = LayoutCache()
    for seed in range(5):
        _, labels = _batch(p=4, k=3, seed=seed)
        layout = cache.get(labels, "cpu")
    assert cache.built == 1
    assert pattern(torch.tensor([7, 7, 3, 3])) == pattern(torch.tensor([2, 2, 9, 9]))
    assert layout.genuine_pairs == 4 * 3 and layout.impostor_pairs == 66 - 12
    assert layout.positives.shape == (12, 2) and layout.negatives.shape == (12, 9)
    assert bool(layout.positive_ok.all()) and bool(layout.negative_ok.all())
    cache.get(torch.arange(6), "cpu")  # another pattern: a second layout
    assert cache.built == 2


def test_ragged_batches_pad_and_mask():
    labels = torch.tensor([0, 0, 0, 1, 2, 2])  # identity 1 has no positive
    layout = layout_of(labels)
    assert layout.positives.shape == (6, 2) and layout.negatives.shape == (6, 5)
    assert layout.positive_ok[3].tolist() == [False, False]
    assert layout.triplets == 3 * 2 * 3 + 2 * 1 * 4


def test_the_trainer_builds_one_layout_and_names_a_nan_with_its_step():
    from lab.learn.train import Trainer

    config = RunConfig(dataset="synthetic", num_identities=12, images_per_identity=4,
                       image_size=12, network="mlp", embedding_dim=8, val_identities=2,
                       test_identities=2, epochs=2, p_identities=4, k_images=2,
                       steps_per_epoch=3, miner="random")
    trainer = Trainer(config, probes=False, evaluate=False)
    reports = list(trainer.fit())
    assert reports[-1].status == "done" and trainer.criterion.layouts.built == 1
    acc = _Accumulator(torch.device("cpu"))
    out = type("Out", (), {"active_fraction": 0.0, "mean_genuine": 1.0, "mean_impostor": 2.0})
    for step, value in enumerate([1.0, 2.0, float("nan"), float("inf")], start=1):
        acc.add(torch.tensor(value), out, 8, at=step)
    acc.read()
    assert acc.bad_step == 3  # the first non-finite step, read once
