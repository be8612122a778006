"""Trainings on a simulated Ray cluster (ray.cluster_utils.Cluster: a head that trains
nothing and 2 worker nodes of 1 CPU, all on 127.0.0.1, no dashboard, 80 MB object stores).

One cluster for the whole module (starting nodes is the slow part); it is shut down at the
end whatever happens, and a watchdog shuts it down if the module runs past its time limit.
The test that kills a node and the one that loses the head come last.
"""

from __future__ import annotations

import threading
import time

import pytest

from lab.core.config import RunConfig
from lab.learn.jobs import TrainingJob, TrainingLimiter
from lab.learn.runs import RunStore
from lab.runners.checkpoint import load_checkpoint

pytestmark = pytest.mark.slow
ray = pytest.importorskip("ray")

TINY = RunConfig(dataset="digits", network="mlp", embedding_dim=8, epochs=4, test_identities=3,
                 val_identities=2, p_identities=5, k_images=4, steps_per_epoch=3, seed=1)
OBJECT_STORE = 80 * 2**20
MODULE_LIMIT_S = 900  # the watchdog's limit for the whole module (672 s seen at load 25)
LOOPBACK = "127.0.0.1"


@pytest.fixture(scope="module")
def cluster():
    from ray.cluster_utils import Cluster

    from lab.runners.ray_runner import _keep_loopback

    _keep_loopback(LOOPBACK)
    head = {"num_cpus": 0, "node_ip_address": LOOPBACK, "include_dashboard": False,
            "object_store_memory": OBJECT_STORE,
            # notice a dead node in about 1.5 s instead of 30
            "_system_config": {"health_check_initial_delay_ms": 0,
                               "health_check_period_ms": 500,
                               "health_check_failure_threshold": 3}}
    made = _start(lambda: Cluster(initialize_head=True, head_node_args=head))
    done = threading.Event()

    def watchdog() -> None:
        if not done.wait(MODULE_LIMIT_S):
            _shut_down(made)

    threading.Thread(target=watchdog, daemon=True).start()
    try:
        for _ in range(2):
            _start(lambda: made.add_node(num_cpus=1, node_ip_address=LOOPBACK,
                                         object_store_memory=OBJECT_STORE))
        made.wait_for_nodes()
        yield made
    finally:
        done.set()
        _shut_down(made)


def _start(make, attempts: int = 3):
    """Ray gives a starting node a fixed 30 s to register; on a loaded shared machine that is
    sometimes not enough, so try again (Ray's reaper ends what it started with this process)."""
    for attempt in range(attempts):
        try:
            return make()
        except Exception as error:  # noqa: BLE001 - "node timed out during startup"
            if "timed out during startup" not in str(error) or attempt == attempts - 1:
                raise
    return None


def _shut_down(made) -> None:
    """Disconnect, then stop every node (Cluster.shutdown refuses while this process is still
    connected, so disconnect again if a late call of a finished test reconnected)."""
    for _ in range(3):
        ray.shutdown()
        try:
            made.shutdown()
            return
        except ValueError:
            continue


@pytest.fixture(scope="module")
def runner(cluster):
    from lab.runners.ray_runner import RayRunner

    return RayRunner.connect(cluster.address)


def _wait_for(condition, timeout: float = 120.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.05)


def test_every_node_reports_the_loopback_address(cluster, runner):
    assert cluster.address.startswith(f"{LOOPBACK}:")
    nodes = [n for n in ray.nodes() if n["Alive"]]
    assert len(nodes) == 3
    assert {n["NodeManagerAddress"] for n in nodes} == {LOOPBACK}
    assert ray.util.get_node_ip_address() == LOOPBACK
    assert runner.limiter.slots == 2  # 2 CPUs, 1 per training
    assert "2 trainings at once" in runner.banner()[1]


def test_a_run_on_the_cluster_matches_the_local_run(runner, run_root):
    store = RunStore(run_root)
    local = TrainingJob(TINY, store=store, limiter=TrainingLimiter(1)).start()
    assert local.wait(120) and local.status == "done", local.message
    remote = runner.training_job(TINY, store=store).start()
    assert remote.wait(180), remote.status
    assert remote.status == "done", remote.message
    assert remote.where == f"Ray node {LOOPBACK}"
    a, b = store.load(local.run_id), store.load(remote.run_id)
    assert [r["loss"] for r in a.history] == pytest.approx([r["loss"] for r in b.history],
                                                            rel=1e-6)
    for key in ("eer", "auc"):
        assert a.metrics["test"][key] == pytest.approx(b.metrics["test"][key], rel=1e-6)
    assert b.load_model() is not None and load_checkpoint(b).epoch == TINY.epochs


def test_pause_step_stop_and_the_queue_while_the_cluster_is_full(runner, run_root):
    store = RunStore(run_root)
    long = TINY.replace(epochs=200)
    first = runner.training_job(long, store=store, start_paused=True).start()
    second = runner.training_job(long, store=store, start_paused=True).start()
    _wait_for(lambda: first.status == "paused" and second.status == "paused")
    third = runner.training_job(long, store=store).start()
    _wait_for(lambda: third.queue_position is not None)
    assert [r.epoch for r in first.snapshot()] == [1]  # Step: one epoch, then paused
    # Both CPUs hold a (paused) training: the third waits first in the app's queue.
    assert third.status == "queued" and third.queue_position == 1
    first.step()
    _wait_for(lambda: len(first.snapshot()) == 2 and first.status == "paused")
    first.resume()
    _wait_for(lambda: len(first.snapshot()) >= 4)
    first.pause()
    _wait_for(lambda: first.status == "paused")
    held = len(first.snapshot())
    time.sleep(1.0)
    assert len(first.snapshot()) == held  # paused: no epoch trains
    first.stop()
    assert first.wait(60) and first.status == "stopped"
    _wait_for(lambda: third.status in ("loading", "running"))  # its slot was freed
    nodes = {first.node_id, second.node_id}
    assert len(nodes) == 2  # one training per 1-CPU node
    for job in (second, third):
        job.stop()
        assert job.wait(60)
    run = store.load(first.run_id)
    assert run.status == "stopped" and len(run.history) == held + 1
    _wait_for(lambda: ray.available_resources().get("CPU") == 2)  # the actors are gone


def test_a_sweep_fans_out_to_several_actors(runner, run_root):
    store = RunStore(run_root)
    configs = [TINY.replace(margin=m, extra={"sweep": "margins"}) for m in (0.5, 1.0)]
    sweep = runner.sweep_job(configs, store=store).start()
    assert sweep.wait(240) and sweep.done == 2
    assert len({job.node_id for job in sweep.jobs}) == 2  # side by side
    assert sorted(i.status for i in store.list()) == ["done", "done"]


def test_killing_the_node_of_a_running_training_leaves_an_interrupted_resumable_run(
        cluster, runner, run_root, monkeypatch):
    monkeypatch.setenv("METRIC_LAB_CHECKPOINT_EVERY", "2")
    store = RunStore(run_root)
    config = TINY.replace(epochs=40, steps_per_epoch=20)
    job = runner.training_job(config, store=store).start()
    _wait_for(lambda: job.checkpoint_epoch >= 2)
    node_id = job.node_id
    node = next(n for n in cluster.worker_nodes if n.node_id == node_id)
    cluster.remove_node(node, allow_graceful=False)
    assert job.wait(120)
    assert job.status == "interrupted", (job.status, job.message)
    assert "Ray worker" in job.message and "Resume" in job.message
    run = store.load(job.run_id)
    assert run.status == "interrupted"
    checkpoint = load_checkpoint(run)
    assert checkpoint.epoch >= 2 and checkpoint.source == "checkpoint"
    assert f"epoch {checkpoint.epoch}" in run.message
    run.load_model()  # the weights load
    runner.refresh_slots()
    assert runner.limiter.slots == 1  # one node left
    resumed = runner.training_job(config, store=store, resume_id=job.run_id).start()
    assert resumed.wait(240) and resumed.status == "done", resumed.message
    run = store.load(job.run_id)
    assert [r["epoch"] for r in run.history] == list(range(1, config.epochs + 1))


def test_losing_the_head_interrupts_runs_and_sends_new_ones_local(cluster, runner, run_root,
                                                                  monkeypatch):
    """The head's GCS dies, as when the head machine goes down: nothing tells the app, and the
    worker nodes (and the actor on one of them) live on for a while. Within HEAD_SILENT_S the
    runner finds the head silent: the run in flight is interrupted with the cluster's sentence
    (no worker has died yet, so no other sentence can come first), the run still queued behind
    it trains on this server, and so does every new run.

    Only the GCS is killed: the test's process is a driver on the head's raylet, and Ray ends a
    driver whose raylet dies, so that raylet must outlive the disconnect (it gives the GCS 60 s,
    Ray's gcs_rpc_server_reconnect_timeout_s; the runner leaves after about 10). Nor does the
    test call ray.shutdown() first, as it used to: an app that disconnects itself while a run
    waits in ray.get is not a lost head, and that wait could hang past the test's limit."""
    from lab.runners.ray_runner import HEAD_SILENT_S

    monkeypatch.setenv("METRIC_LAB_MAX_TRAININGS", "1")  # the second run waits in the queue
    store = RunStore(run_root)
    job = runner.training_job(TINY.replace(epochs=400, steps_per_epoch=20), store=store).start()
    _wait_for(lambda: job.status == "running" and len(job.snapshot()) >= 1)
    queued = runner.training_job(TINY, store=store).start()
    _wait_for(lambda: queued.queue_position == 1)
    lost_at = time.monotonic()
    cluster.head_node.kill_gcs_server()
    assert job.wait(HEAD_SILENT_S + 30)
    assert time.monotonic() - lost_at < HEAD_SILENT_S + 15
    assert job.status == "interrupted", job.message
    assert "stopped answering" in job.message
    assert store.load(job.run_id).status == "interrupted"
    assert runner.lost and runner.banner()[0] == "warning"
    assert queued.wait(120) and queued.status == "done", queued.message
    assert queued.where == "this server" and store.load(queued.run_id).status == "done"
    after = runner.training_job(TINY, store=store)
    assert type(after) is TrainingJob  # new runs train on this server
    _wait_for(lambda: not ray.is_initialized(), timeout=30)  # the app left the lost cluster
