"""``python -m lab bench gpu``: without CUDA it says so and runs its CPU parts."""

from __future__ import annotations

import json

import pytest
import torch

from lab.bench.gpu import _CountSyncCalls


def test_the_sync_counter_counts_what_would_wait_for_a_gpu():
    values = torch.rand(6)
    with _CountSyncCalls() as mode:
        values[values > 0.5]
        values.sum().item()
        torch.nonzero(values)
        values * 2  # no sync
    assert mode.calls == {"boolean-mask indexing": 1, "item": 1, "nonzero": 1}


@pytest.mark.slow
def test_bench_gpu_runs_its_cpu_parts_and_writes_json(tmp_path, monkeypatch):
    from lab.cli import main

    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    out = tmp_path / "gpu.json"
    assert main(["bench", "gpu", "--quick", "--skip", "dashboard", "images", "sweep",
                 "--json", str(out)]) == 0
    result = json.loads(out.read_text())
    assert result["cuda"] is False and "No usable CUDA GPU here" in result["note"]
    parts = result["parts"]
    assert set(parts) == {"syncs", "sessions", "oom", "determinism"}
    assert all(row["sync_calls"] == 0 for row in parts["syncs"].values())
    assert parts["sessions"]["done"] == 3 and parts["sessions"]["trainers_alive_after"] == 0
    assert parts["oom"]["simulated"] and parts["oom"]["status"] == "done"
    assert parts["oom"]["p_final"] == parts["oom"]["p_first"] // 2
    assert parts["determinism"]["same_figures"]
    assert parts["determinism"]["largest_weight_difference"] == 0.0
