"""What the pages show, computed from a saved run's probe embeddings."""

import numpy as np

from lab.config import RunConfig
from lab.runs import RunStore
from lab.train import train_run
from lab.views import probe_history, seen_mask, verification_at

TINY = RunConfig(dataset="digits", network="mlp", embedding_dim=8, epochs=2, test_identities=3,
                 val_identities=2, p_identities=5, k_images=4, steps_per_epoch=3, seed=2)


def test_maps_hold_seen_and_unseen_identities_but_metrics_only_unseen(run_root):
    run, trainer = train_run(TINY, store=RunStore(run_root))
    history = probe_history(RunStore(run_root).load(run.id))
    seen = seen_mask(history)
    assert history.embeddings.shape[:2] == (3, len(history.labels))  # epochs 0, 1, 2
    train_ids = set(trainer.split.train)
    assert seen.any() and set(history.labels[seen]) <= train_ids
    assert not set(history.labels[~seen]) & train_ids
    assert not (history.is_test & seen).any()
    result = verification_at(history, history.rounds - 1, TINY.energy, TINY.seed)
    _, counts = np.unique(history.labels[history.is_test], return_counts=True)
    assert len(result.genuine_energies) == int(np.sum(counts * (counts - 1) // 2))
