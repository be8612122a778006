"""The classroom load test, small: a few simulated students on one real streamlit server.

`python -m lab bench classroom --sessions 30` is the full figure (benchmarks/results/
classroom-cpu.json); this runs the same code with fewer sessions so the suite checks that every
student gets a result, no run is lost, idle pages answer, and the server is gone afterwards.
"""

from __future__ import annotations

import pytest

from lab import classroom

pytestmark = [pytest.mark.slow, pytest.mark.browser]
SESSIONS = 4  # the full 30 is `python -m lab bench classroom`; CI keeps a small, robust class


@pytest.fixture(scope="module")
def result():
    if not classroom.CHROMIUM.exists():
        pytest.skip(f"Debian chromium not found at {classroom.CHROMIUM}")
    pytest.importorskip("playwright")
    return classroom.bench_classroom(sessions=SESSIONS, slots=2, hard_timeout=540)


def test_every_student_gets_a_result_and_no_run_is_lost(result):
    assert result["sessions_failed"] == [] and result["all_finished"]
    assert result["sessions_done"] == SESSIONS
    assert result["runs_done"] == result["runs_in_store"] == SESSIONS and result["none_lost"]
    assert result["total_seconds"] < 540


def test_idle_pages_answer_while_others_train(result):
    latency = result["latency_seconds"]
    assert latency["probes"] >= 1 and latency["p50"] is not None
    assert latency["p50"] < 30  # generous: this box has 2 shared cores
    assert 0 <= latency["timed_out"] <= latency["probes"] // 2


def test_the_server_is_stopped_afterwards(result):
    import subprocess

    listing = subprocess.run(["ps", "-eo", "args"], capture_output=True, text=True).stdout
    assert f"--server.port {result.get('port', -1)}" not in listing


def test_percentile():
    assert classroom.percentile([], 50) is None
    assert classroom.percentile([1.0, 2.0, 3.0, 4.0], 50) == 2.5
    assert classroom.percentile([5.0], 95) == 5.0
