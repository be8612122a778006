"""Benchmarks run once on tiny sizes (--quick): they work and write valid JSON. No time is
ever asserted (benchmarks are not tests); the slow ones are marked slow."""

from __future__ import annotations

import json
import os
import sys

import pytest

from lab import bench, cli
from lab.bench import common, dashboard, memory
from lab.bench import throughput as bench_train

CHROMIUM = os.environ.get("METRIC_LAB_CHROMIUM", "/usr/bin/chromium")


def run_bench(tmp_path, *args) -> dict:
    out = tmp_path / "result.json"
    assert cli.main(["bench", *args, "--json", str(out)]) == 0
    result = json.loads(out.read_text())
    machine = result["machine"]
    for key in ("cpu_model", "cpu_count", "ram_gb", "device", "versions", "load_average"):
        assert key in machine, key
    assert machine["versions"]["torch"]
    return result


def test_registry_has_every_bench():
    assert {"accuracy", "dashboard", "train", "train-grid", "umap", "sweep", "verify",
            "memory", "inside"} <= set(bench.BENCHES)


def test_timing_helpers(monkeypatch):
    assert common.median([3.0, 1.0, 2.0, None]) == 2.0
    assert common.median([]) is None
    assert common.timings([{"a": 1.0, "b": 4.0}, {"a": 3.0}]) == {"a": 2.0, "b": 4.0}
    # The clock subtracts the start from the end of each counter, wall and CPU apart: fake
    # counters make the expected differences exact (no real time is asserted).
    wall, cpu = iter([10.0, 12.5]), iter([3.0, 3.25])
    monkeypatch.setattr(common.time, "perf_counter", lambda: next(wall))
    monkeypatch.setattr(common.time, "process_time", lambda: next(cpu))
    with common.Clock() as clock:
        pass
    assert clock.wall == 2.5 and clock.cpu == 0.25


def test_dashboard_quick(tmp_path):
    result = run_bench(tmp_path, "dashboard", "--quick")
    assert set(result["wall_s"]) == set(dashboard.DASHBOARD_PARTS)
    # total = the sum of the parts (one run in --quick: its median is itself)
    assert result["total_wall_s"] == pytest.approx(sum(result["wall_s"].values()), abs=1e-3)
    first = result["first_run"]
    # each of the 6 parts and the total rounded to 1 ms: at most 3.5 ms apart
    assert first["total_wall_s"] == pytest.approx(sum(first["wall_s"].values()), abs=4e-3)
    # the quick lesson: 12 - 2 - 4 = 6 training people x 4 images, P x K = 16: one step per
    # epoch, 2 epochs
    assert result["steps"] == 2 and result["config"]["epochs"] == 2
    assert 0.0 < result["test_eer"] < 1.0 and 0.0 < result["test_auc"] <= 1.0


def test_train_grid_quick(tmp_path):
    result = run_bench(tmp_path, "train-grid", "--quick", "--networks", "linear", "--losses",
                       "contrastive", "arcface")
    rows = result["rows"]
    assert [(r["network"], r["loss"], r["miner"]) for r in rows] == [
        ("linear", "contrastive", "all"), ("linear", "arcface", None)]
    assert all(r["images_per_s"] > 0 and r["s_per_epoch"] > 0 for r in rows)


def test_inside_quick(tmp_path):
    result = run_bench(tmp_path, "inside", "--quick")
    assert result["epochs"] == 2 and result["epoch_wall_s"] > 0
    assert result["health_per_epoch"]["wall_s"] > 0
    assert result["inspection"]["wall_s"] > 0 and result["inspection"]["mined_items"] > 0
    assert result["inspection"]["per_epoch_s"] == 0.0  # on demand, never in the loop
    reference = result["reference"]
    assert reference["available"] is False or reference["per_photo_s"] > 0


def test_sweep_quick(tmp_path):
    result = run_bench(tmp_path, "sweep", "--quick")
    assert result["k"] == 2
    for key in ("one_wall_s", "sequential_wall_s", "batched_wall_s"):
        assert result[key] > 0
    assert result["max_eer_difference"] < 1e-6  # the same training both ways


def test_lessons_quick(tmp_path):
    """The lessons bench on one seed (cut to 1 epoch of 2 steps): the conditions lesson as the
    derivation gives it, one trained lesson with every variant's figures and its spread."""
    from lab.views.lessons import LESSONS

    result = run_bench(tmp_path, "lessons", "--quick", "--seeds", "5,6")
    assert result["bench"] == "lessons" and result["seeds"] == [5]
    conditions = result["lessons"]["conditions"]
    assert conditions["held"] == 1 and not conditions["trains"]
    trained = [entry for entry in result["lessons"].values() if entry["trains"]]
    assert len(trained) == 1
    (entry,) = trained
    lesson = LESSONS[entry["key"]]
    (seed,) = entry["per_seed"]
    assert seed["seed"] == 5 and set(seed["figures"]) == set(lesson.labels)
    for label, figures in seed["figures"].items():
        assert figures["steps"] == 2, label  # 1 epoch of 2 steps, every variant alike
        spread = entry["spread"][label]["eer"]
        assert spread["n"] == 1 and spread["std"] == 0.0
        assert spread["mean"] == pytest.approx(figures["eer"])
    with pytest.raises(SystemExit, match="no such lesson"):
        cli.main(["bench", "lessons", "--lessons", "nope"])


def test_spread_is_mean_and_population_std():
    from lab.bench.lessons import spread

    assert spread([0.1, 0.3, None, float("nan")]) == pytest.approx(
        {"mean": 0.2, "std": 0.1, "min": 0.1, "max": 0.3, "n": 2})
    assert spread([None]) is None


@pytest.mark.slow
def test_umap_quick(tmp_path):
    result = run_bench(tmp_path, "umap", "--quick")
    assert set(result["warm"]) == {"umap_200", "pca_200", "tsne_200"}
    assert "import_umap_s" in result["first_map_cached"]
    in_app = result["first_map_in_app"]
    assert in_app["points"] > 0 and in_app["frames"] >= 1 and in_app["first_map_s"] > 0


@pytest.mark.slow
def test_verify_quick(tmp_path, att_dir):
    result = run_bench(tmp_path, "verify", "--quick", "--att-dir", str(att_dir))
    assert result["bench"] == "verify"
    timing = result["student"]["att_pgm"]
    # the stages a verification goes through; the total spans each (laps of one clock, so in
    # every call total >= each stage, hence also their medians over the repeats)
    assert {"crop", "embed", "decide", "total"} <= set(timing)
    # (process CPU seconds are not a lap: two threads can spend more than the wall time)
    assert all(timing["total"] >= v for k, v in timing.items()
               if k not in ("total", "cpu_seconds"))


@pytest.mark.slow
@pytest.mark.skipif(not os.path.exists(CHROMIUM), reason=f"chromium not found at {CHROMIUM}")
@pytest.mark.skipif(sys.platform != "linux", reason="reads /proc/PID/status")
def test_memory_quick(tmp_path):
    pytest.importorskip("playwright")
    result = run_bench(tmp_path, "memory", "--quick")
    assert set(result["runs"]) == {"1", "2"}
    for figures in result["runs"].values():
        assert figures["peak_rss_mib"] > 0
        assert set(figures["pages"]) == set(memory.MEMORY_PAGES)


def test_the_lab_library_knows_nothing_of_streamlit():
    """Pages and the load test (loadtest/) use Streamlit; the library itself never imports it."""
    import re
    from pathlib import Path

    lab = Path(__file__).resolve().parents[1] / "lab"
    offenders = [str(p) for p in lab.rglob("*.py")
                 if re.search(r"^\s*(import|from)\s+streamlit\b", p.read_text(), re.M)]
    assert offenders == []


def test_train_quick_old_and_new_path(tmp_path):
    result = run_bench(tmp_path, "train", "--quick", "--profile-steps", "2", "--bf16")
    assert len(result["rows"]) == 2
    for row in result["rows"]:
        assert set(row["paths"]) == {"old", "new"}
        assert row["paths"]["old"]["train_path"] == "baseline"
        assert row["paths"]["new"]["train_path"] == "fast"
        for path in row["paths"].values():
            assert path["images_per_s"] > 0 and path["fraction_of_matmul_peak"] > 0
        assert set(row["profile"]["new"]["ms_per_step"]) == set(bench_train.CATEGORIES)
        assert row["bf16"]["float32"]["cpu_ms_per_step"] > 0
        assert row["bf16"]["bfloat16"]["cpu_ms_per_step"] > 0
    assert all(peak["matmul_gflops"] > 0 for peak in result["peaks"].values())


def test_step_flops_of_the_linear_metric():
    """One step of the linear metric E = ||Wx - Wy||: the forward x Wᵀ is 2·N·F·D FLOPs and the
    backward needs only the weight's gradient (2·N·F·D); the contrastive loss adds no matmul."""
    from lab.data import load_for_config

    config = dashboard._quick_config(network="linear")
    faceset = load_for_config(config)
    n, features = config.p_identities * config.k_images, 3 * 16 * 16
    assert bench_train.step_flops(config, faceset) == 4 * n * features * config.embedding_dim
