"""The classroom load test: ``python -m loadtest --sessions 30 --json OUT``.

A real ``streamlit run app.py`` on 127.0.0.1 (its own empty run store, at most
``--slots`` trainings at once), and N students. A student is either

- ``--client protocol`` (the default): a headless tab speaking Streamlit's own websocket protocol
  (``loadtest.st_client``): the server does everything it does for a browser (script runs, fragment
  polling, widget state, the training job), but nothing is drawn. In a classroom each student's
  laptop draws its own charts; on this 2-core machine 30 chromium pages drawing plotly charts
  take both cores (load ~32) from the server they are meant to load;
- ``--client browser``: a Playwright context in ONE headless chromium (real rendering; right
  for a handful of students, as the test suite does, and a slow but passing 30).

Each opens the Train page with the students' settings in the URL (``--query``; by default none,
so they train the app's default Run, what a class does first), presses Run, and waits for its
result ("Verification of people never seen in
training"). Meanwhile idle sessions (queued or finished) are poked: the Presenter switch is
flipped and the time until the page shows the change is the interaction latency students feel
while the server is busy. Everything is bounded: a hard time limit, then the browser and the
server are stopped whatever happened. The result says whether every session got its result and
every run is in the store (none lost), with p50/p95 latency, the total time and the load average.

``--runner ray`` starts a simulated 2-node Ray cluster (``ray.cluster_utils.Cluster``: a head that
trains nothing and 2 worker nodes of 1 CPU, all on 127.0.0.1, no dashboard) and points the server
at it, so the trainings run in Ray actors and the server only serves pages; ``--runner local``
(the default) trains in the server's process. The figures include the server process's own CPU
time, which is what moves between the two.

Why the async Playwright API: 30 pages driven from one thread without one slow page holding up
the others.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import random
import re
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from collections.abc import Awaitable, Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
CHROMIUM = Path(os.environ.get("METRIC_LAB_CHROMIUM", "/usr/bin/chromium"))
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync", "--no-first-run",
                 "--disable-dev-shm-usage", "--disable-quic"]
# The students' settings: none, i.e. the app's default Run (lab.core.config.RunConfig).
QUERY = ""
# A short lesson for the test suite: synthetic faces, 12 identities x 4 images of 16 px, an MLP,
# 2 epochs.
SHORT_QUERY = ("dataset=synthetic&num_identities=12&images_per_identity=4&image_size=16"
         "&val_identities=2&test_identities=4&network=mlp&embedding_dim=16&epochs=2")
RESULT_TEXT = "Verification of people never seen in training"
# What the Train page shows once Run has been taken: queued, starting, training, or done.
RUN_TAKEN_TEXTS = ("Every training slot is busy", "Preparing the data and the network",
                   "images/s", RESULT_TEXT)
CLICK_PATIENCE_S = 60.0  # a student who sees nothing happen clicks Run again, this long after
CONTROL_TEXT = "Unseen test identities"  # a control label: hidden in presenter mode
MAX_SESSIONS = 60
CLIENTS = ("protocol", "browser")
RUNNERS = ("local", "ray")
RUN_LABEL = "Run"
PRESENTER_LABEL = "Presenter mode"

BENCH_HELP = "N simulated students on one streamlit server: all finish, latency p50/p95"


def percentile(values: list[float], q: float) -> float | None:
    """The q-th percentile (0-100) by linear interpolation; None for no values."""
    if not values:
        return None
    ordered = sorted(values)
    position = (len(ordered) - 1) * q / 100
    low = int(position)
    high = min(low + 1, len(ordered) - 1)
    return ordered[low] + (ordered[high] - ordered[low]) * (position - low)


def run_coroutine(coroutine: Awaitable[Any]) -> Any:
    """``asyncio.run``, also from a thread whose event loop is already running: Playwright's sync
    API (the browser tests' session fixture) keeps one in pytest's main thread, so a test run
    after them used to fail with "asyncio.run() cannot be called from a running event loop"."""
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return asyncio.run(coroutine)
    with ThreadPoolExecutor(1) as pool:
        return pool.submit(asyncio.run, coroutine).result()


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class Server:
    """``streamlit run app.py`` on 127.0.0.1 with its own run store; ``stop()`` always ends it."""

    def __init__(self, runs: Path, log: Path, slots: int | None = None,
                 ray_address: str | None = None):
        self.port = _free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        env = {**os.environ, "METRIC_LAB_RUNS": str(runs)}
        env.pop("METRIC_LAB_RAY_ADDRESS", None)
        if ray_address is not None:
            env["METRIC_LAB_RAY_ADDRESS"] = ray_address
        if slots is not None:  # trainings at once; None keeps the app's own default
            env["METRIC_LAB_MAX_TRAININGS"] = str(slots)
        self._log = open(log, "w")  # noqa: SIM115 - closed in stop()
        self.process = subprocess.Popen(
            [sys.executable, "-m", "streamlit", "run", "app.py", "--server.address",
             "127.0.0.1", "--server.port", str(self.port), "--server.headless", "true",
             "--browser.gatherUsageStats", "false"],
            cwd=ROOT, env=env, stdout=self._log, stderr=subprocess.STDOUT)
        self.log = log

    def wait_healthy(self, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"streamlit exited: {self.log.read_text()[-2000:]}")
            try:
                with urllib.request.urlopen(f"{self.url}/_stcore/health", timeout=2) as reply:
                    if reply.status == 200:
                        return
            except OSError:
                time.sleep(0.5)
        raise RuntimeError(f"streamlit did not answer in {timeout:.0f} s")

    def cpu_seconds(self) -> float | None:
        """User + system CPU time of the server process so far (Linux /proc), or None."""
        try:
            fields = Path(f"/proc/{self.process.pid}/stat").read_text().rsplit(")", 1)[1].split()
            return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
        except (OSError, ValueError, IndexError):
            return None

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        self._log.close()


class Session:
    """One simulated student."""

    def __init__(self, number: int):
        self.number = number
        self.page = None  # a Playwright page (browser client)
        self.client = None  # a StreamlitClient (protocol client)
        self.state = "new"  # new -> open -> training -> done | failed
        self.opened_s: float | None = None  # page load, from the start of the bench
        self.result_s: float | None = None  # Run pressed -> result shown
        self.result_at: float | None = None  # result shown, from the start of the bench
        self.error: str | None = None
        self.presenter = False
        self.busy = False  # a latency probe is using this page
        self.last_page = ""  # what a failed session's page last showed
        self.clicks = 0  # Run presses (more than 1: the page showed nothing after a press)


def _describe(error: BaseException) -> str:
    lines = str(error).splitlines()
    return f"{type(error).__name__}: {lines[0][:200] if lines else ''}"


async def _wait_app(page, timeout_ms: float) -> None:
    await page.wait_for_selector('[data-testid="stApp"]', timeout=timeout_ms)
    await page.get_by_role("button", name=RUN_LABEL).wait_for(timeout=timeout_ms)


async def _play(session: Session, t0: float, open_page: Callable[[], Awaitable[None]],
                run_to_result: Callable[[], Awaitable[None]]) -> None:
    """One student, whatever the client: open Train, press Run, wait for the result; the
    timings and the state go into ``session``."""
    try:
        await open_page()
        session.opened_s = time.monotonic() - t0
        session.state = "open"
        pressed = time.monotonic()
        session.state = "training"
        await run_to_result()
        session.result_s = time.monotonic() - pressed
        session.result_at = time.monotonic() - t0
        session.state = "done"
    except Exception as error:  # noqa: BLE001 - one failed student is a figure, not a crash
        session.state = "failed"
        session.error = _describe(error)


async def _press_until_taken(session: Session, press: Callable[[], Awaitable[Awaitable[Any]]],
                             timeout_s: float, patience_error: type[BaseException]) -> None:
    """Press Run like a person, whatever the client: when the page shows nothing of the run
    within ``CLICK_PATIENCE_S`` (``press`` clicks and returns that wait), press again, at most
    3 times and within ``timeout_s``. The presses are counted in ``session.clicks``."""
    started = time.monotonic()
    while True:
        shown = await press()
        session.clicks += 1
        try:
            await shown
            return
        except patience_error:
            if session.clicks >= 3 or time.monotonic() - started > timeout_s:
                raise


async def _student(session: Session, browser, url: str, t0: float, timeout_ms: float,
                   stagger: float, query: str) -> None:
    await asyncio.sleep(stagger)

    async def open_page() -> None:
        context = await browser.new_context(viewport={"width": 1280, "height": 900})
        page = await context.new_page()
        page.set_default_timeout(timeout_ms)
        session.page = page
        await page.goto(f"{url}/train?{query}", timeout=timeout_ms)
        await _wait_app(page, timeout_ms)

    async def run_to_result() -> None:
        from playwright.async_api import TimeoutError as PlaywrightTimeout

        page = session.page
        taken = page.get_by_text(re.compile("|".join(map(re.escape, RUN_TAKEN_TEXTS)))).first

        async def press() -> Awaitable[Any]:
            await page.get_by_role("button", name=RUN_LABEL).click()
            return taken.wait_for(timeout=CLICK_PATIENCE_S * 1000)

        await _press_until_taken(session, press, timeout_ms / 1000, PlaywrightTimeout)
        await page.get_by_text(RESULT_TEXT).first.wait_for(timeout=timeout_ms)

    await _play(session, t0, open_page, run_to_result)


async def _probe(session: Session, timeout_ms: float) -> float | None:
    """Flip the Presenter switch; seconds until the controls disappear (or come back)."""
    page = session.page
    session.busy = True
    try:
        control = page.get_by_text(CONTROL_TEXT)
        shown = await control.count() > 0
        start = time.monotonic()
        await page.get_by_text("Presenter mode").first.click(timeout=timeout_ms)
        await control.first.wait_for(state="detached" if shown else "visible",
                                     timeout=timeout_ms)
        return time.monotonic() - start
    except Exception:  # noqa: BLE001 - a probe that times out is counted as such
        return None
    finally:
        session.busy = False


# -- protocol clients -----------------------------------------------------------------------------
async def _protocol_student(session: Session, url: str, t0: float, timeout: float,
                            stagger: float, query: str) -> None:
    from loadtest.st_client import StreamlitClient

    await asyncio.sleep(stagger)
    client = session.client = StreamlitClient(url, page="train", query=query)

    async def open_page() -> None:
        await client.open(timeout=timeout)
        await client.wait_for_run(0, timeout)

    async def run_to_result() -> None:
        async def press() -> Awaitable[Any]:
            since = len(client.seen)
            await client.click(RUN_LABEL)
            return client.wait_for_any(list(RUN_TAKEN_TEXTS), CLICK_PATIENCE_S, since)

        await _press_until_taken(session, press, timeout, TimeoutError)
        await client.wait_for_text(RESULT_TEXT, timeout)

    await _play(session, t0, open_page, run_to_result)


async def _protocol_probe(session: Session, timeout_ms: float) -> float | None:
    """Flip Presenter mode; seconds until a finished rerun shows the page in the new mode."""
    client = session.client
    session.busy = True
    try:
        before = len(client.finished)
        start = time.monotonic()
        presenter = await client.toggle(PRESENTER_LABEL)
        deadline = start + timeout_ms / 1000
        while True:
            run = await client.wait_for_run(before, deadline - time.monotonic())
            before += 1
            controls = CONTROL_TEXT.encode() in run.text
            if run.status == "FINISHED_SUCCESSFULLY" and controls != presenter:
                return run.finished_at - start
    except Exception:  # noqa: BLE001 - a probe that times out is counted as such
        return None
    finally:
        session.busy = False


async def _drive_protocol(url: str, sessions: list[Session], latencies: list[dict], t0: float,
                          hard_timeout: float, probe_gap: float, ramp: float, seed: int,
                          query: str) -> None:
    try:
        await _run_class(sessions, latencies, t0, hard_timeout, probe_gap, seed, _protocol_probe,
                         lambda s, stagger: _protocol_student(s, url, t0, hard_timeout, stagger,
                                                              query),
                         ramp)
    finally:
        tabs = [s for s in sessions if s.client is not None]
        for session in tabs:
            if session.state != "done":
                session.last_page = session.client.page_text()
        await asyncio.gather(*(s.client.close() for s in tabs), return_exceptions=True)


async def _run_class(sessions: list[Session], latencies: list[dict], t0: float,
                     hard_timeout: float, probe_gap: float, seed: int,
                     probe: Callable[[Session, float], Awaitable[float | None]],
                     student: Callable[[Session, float], Awaitable[None]], ramp: float) -> None:
    """Start every student (spread over ``ramp`` s), probe idle ones until all are done or the
    hard limit is reached; whatever is unfinished then is marked failed."""
    stop = asyncio.Event()
    prober = asyncio.create_task(_prober(sessions, latencies, t0, stop, probe_gap,
                                         min(hard_timeout * 1000, 30_000), seed, probe))
    students = [asyncio.create_task(student(s, ramp * i / max(len(sessions), 1)))
                for i, s in enumerate(sessions)]
    remaining = hard_timeout - (time.monotonic() - t0)
    done, pending = await asyncio.wait(students, timeout=max(remaining, 1))
    for task in pending:
        task.cancel()
    for session in sessions:
        if session.state not in ("done", "failed"):
            session.state, session.error = "failed", "hard time limit reached"
    stop.set()
    await asyncio.wait([prober], timeout=2)
    prober.cancel()


async def _prober(sessions: list[Session], latencies: list[dict], t0: float,
                  stop: asyncio.Event, gap: float, timeout_ms: float, seed: int,
                  probe: Callable[[Session, float], Awaitable[float | None]]) -> None:
    rng = random.Random(seed)
    while not stop.is_set():
        training = [s for s in sessions if s.state == "training"]
        idle = [s for s in sessions if s.state in ("open", "training", "done") and not s.busy
                and (s.page is not None or s.client is not None)]
        if idle and training:  # only while the server is busy training someone
            session = rng.choice(idle)
            seconds = await probe(session, timeout_ms)
            latencies.append({"at_s": round(time.monotonic() - t0, 2),
                              "session": session.number, "state": session.state,
                              "seconds": None if seconds is None else round(seconds, 3),
                              "running": sum(s.state == "training" for s in sessions)})
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), timeout=gap)


async def _drive(url: str, sessions: list[Session], latencies: list[dict], t0: float,
                 hard_timeout: float, probe_gap: float, ramp: float, seed: int,
                 query: str) -> None:
    from playwright.async_api import async_playwright

    timeout_ms = hard_timeout * 1000
    async with async_playwright() as playwright:
        browser = await playwright.chromium.launch(executable_path=str(CHROMIUM),
                                                   args=CHROMIUM_ARGS)
        try:
            await _run_class(sessions, latencies, t0, hard_timeout, probe_gap, seed, _probe,
                             lambda s, stagger: _student(s, browser, url, t0, timeout_ms, stagger,
                                                         query),
                             ramp)
            for session in sessions:  # what a failed student's page last showed
                if session.state != "done" and session.page is not None:
                    with contextlib.suppress(Exception):
                        text = await session.page.inner_text("body", timeout=5000)
                        session.last_page = text[-2000:]
        finally:
            await browser.close()


def bench_classroom(sessions: int = 30, slots: int = 2, hard_timeout: float = 1200,
                    probe_gap: float = 0.5, ramp: float = 10.0, seed: int = 0,
                    keep: Path | None = None, client: str = "protocol", query: str = QUERY,
                    runner: str = "local") -> dict[str, Any]:
    """Run the classroom load test and return its figures (see the module docstring)."""
    if client not in CLIENTS:
        raise ValueError(f"client must be one of {', '.join(CLIENTS)}")
    if runner not in RUNNERS:
        raise ValueError(f"runner must be one of {', '.join(RUNNERS)}")
    if client == "browser" and not CHROMIUM.exists():
        raise RuntimeError(f"chromium not found at {CHROMIUM} (apt-get install chromium)")
    if not 1 <= sessions <= MAX_SESSIONS:
        raise ValueError(f"sessions must be between 1 and {MAX_SESSIONS}")
    from lab.learn.runs import RunStore

    work = Path(tempfile.mkdtemp(prefix="metric-lab-classroom-"))
    runs = work / "runs"
    runs.mkdir()
    load_before = os.getloadavg()
    sampler = LoadSampler()
    t0, wall0 = time.monotonic(), time.time()
    cluster = SimulatedCluster() if runner == "ray" else None
    server = None
    app_cpu = None
    people = [Session(i) for i in range(sessions)]
    latencies: list[dict] = []
    try:
        server = Server(runs, work / "streamlit.log", slots,
                        ray_address=None if cluster is None else cluster.address)
        server.wait_healthy(min(180, hard_timeout))
        started = time.monotonic()
        cpu_before = server.cpu_seconds()
        drive = _drive if client == "browser" else _drive_protocol
        run_coroutine(drive(server.url, people, latencies, started,
                            hard_timeout - (started - t0), probe_gap, ramp, seed, query))
        cpu_after = server.cpu_seconds()
        if cpu_before is not None and cpu_after is not None:
            app_cpu = {"seconds": round(cpu_after - cpu_before, 1),
                       "cores_busy": round((cpu_after - cpu_before)
                                           / max(time.monotonic() - started, 1e-9), 2)}
    finally:
        if server is not None:
            server.stop()
        if cluster is not None:
            cluster.shutdown()
    total = time.monotonic() - t0
    load_after = os.getloadavg()
    load_during = sampler.stop()
    infos = RunStore(runs).list()
    timeline = []
    for info in infos:
        try:
            meta = json.loads((info.path / "run.json").read_text())
            timeline.append({"created_s": round(meta["created"] - wall0, 1),
                             "finished_s": round(meta["updated"] - wall0, 1),
                             "status": info.status, "message": info.message})
        except (OSError, ValueError, KeyError):
            timeline.append({"status": info.status})
    log_tail = (work / "streamlit.log").read_text(errors="replace")[-3000:]
    if keep is not None:
        keep.mkdir(parents=True, exist_ok=True)
        shutil.copy(work / "streamlit.log", keep / "streamlit.log")
    shutil.rmtree(work, ignore_errors=True)

    measured = [x["seconds"] for x in latencies if x["seconds"] is not None]
    results = [s.result_s for s in people if s.result_s is not None]
    opened = [s.opened_s for s in people if s.opened_s is not None]
    done_runs = [i for i in infos if i.status == "done"]
    from lab.bench.common import machine

    return {
        "bench": "classroom",
        "sessions": sessions, "slots": slots, "client": client, "query": query,
        "runner": runner,
        "cluster": None if cluster is None else cluster.description,
        "app_process_cpu": app_cpu,
        "port": server.port,
        "all_finished": all(s.state == "done" for s in people),
        "sessions_done": sum(s.state == "done" for s in people),
        "sessions_failed": [{"session": s.number, "error": s.error, "page": s.last_page}
                            for s in people if s.state != "done"],
        "run_pressed_again": [{"session": s.number, "clicks": s.clicks} for s in people
                              if s.clicks > 1],
        "runs_in_store": len(infos), "runs_done": len(done_runs),
        "none_lost": len(done_runs) == sessions,
        "total_seconds": round(total, 1),
        "last_result_seconds": _round(max((s.result_at for s in people
                                           if s.result_at is not None), default=None), 1),
        "latency_seconds": {
            "what": "idle session flips the Presenter switch while others train: click -> "
                    "page shows the change",
            "probes": len(latencies), "timed_out": len(latencies) - len(measured),
            "p50": _round(percentile(measured, 50)), "p95": _round(percentile(measured, 95)),
            "max": _round(max(measured) if measured else None),
        },
        "page_open_seconds": {"p50": _round(percentile(opened, 50)),
                              "p95": _round(percentile(opened, 95))},
        "run_to_result_seconds": {"p50": _round(percentile(results, 50)),
                                  "p95": _round(percentile(results, 95)),
                                  "max": _round(max(results) if results else None),
                                  "mean": _round(statistics.fmean(results) if results
                                                 else None)},
        "load_average_before": [round(x, 2) for x in load_before],
        "load_average_after": [round(x, 2) for x in load_after],
        "load_average_during": load_during,
        "machine": machine(),
        "server_log_tail": log_tail if not all(s.state == "done" for s in people) else "",
        "runs": sorted(timeline, key=lambda r: r.get("created_s", 0)),
        "probes": latencies,
    }


class SimulatedCluster:
    """Ray's multi-node simulator on this machine: a head that trains nothing and 2 worker nodes
    of 1 CPU, every node on 127.0.0.1, no dashboard, small object stores; ``shutdown()`` always
    ends it (and Ray's reaper ends it with this process)."""

    NODES, CPUS, OBJECT_STORE = 2, 1, 80 * 2**20

    def __init__(self):
        from ray.cluster_utils import Cluster

        from lab.runners.ray_runner import _keep_loopback

        _keep_loopback("127.0.0.1")
        self.cluster = Cluster(initialize_head=True, head_node_args={
            "num_cpus": 0, "node_ip_address": "127.0.0.1", "include_dashboard": False,
            "object_store_memory": self.OBJECT_STORE})
        try:
            for _ in range(self.NODES):
                self.cluster.add_node(num_cpus=self.CPUS, node_ip_address="127.0.0.1",
                                      object_store_memory=self.OBJECT_STORE)
            self.cluster.wait_for_nodes()
        except BaseException:
            self.cluster.shutdown()
            raise
        self.address = self.cluster.address
        self.description = {"address": self.address, "worker_nodes": self.NODES,
                            "cpus_per_node": self.CPUS, "head_cpus": 0,
                            "simulator": "ray.cluster_utils.Cluster"}

    def shutdown(self) -> None:
        self.cluster.shutdown()


class LoadSampler:
    """The machine's 1-minute load average every ``every`` s while the test runs (the machine
    is shared: a figure measured at load 2 and one at load 15 are not the same figure)."""

    def __init__(self, every: float = 10.0):
        self.samples: list[float] = []
        self.every = every
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._sample, args=(every,), daemon=True)
        self._thread.start()

    def _sample(self, every: float) -> None:
        while True:
            self.samples.append(os.getloadavg()[0])
            if self._stop.wait(every):
                return

    def stop(self) -> dict[str, Any]:
        self._stop.set()
        self._thread.join(5)
        values = self.samples
        return {"every_s": self.every, "samples": len(values),
                "min": _round(min(values), 2) if values else None,
                "mean": _round(statistics.fmean(values), 2) if values else None,
                "max": _round(max(values), 2) if values else None}


def _round(value: float | None, digits: int = 3) -> float | None:
    return None if value is None else round(value, digits)


def bench_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--sessions", type=int, default=30, help="simulated students")
    parser.add_argument("--slots", type=int, default=2,
                        help="METRIC_LAB_MAX_TRAININGS for the server (trainings at once)")
    parser.add_argument("--timeout", type=float, default=1200,
                        help="hard limit for the whole test, seconds")
    parser.add_argument("--probe-gap", type=float, default=0.5,
                        help="seconds between two latency probes")
    parser.add_argument("--ramp", type=float, default=10.0,
                        help="students open the page spread over this many seconds")
    parser.add_argument("--client", choices=CLIENTS, default="protocol",
                        help="protocol: headless websocket tabs (default); browser: chromium pages")
    parser.add_argument("--query", default=QUERY,
                        help="the students' settings, as the Train page's URL query "
                             "(default: none, the app's default Run)")
    parser.add_argument("--runner", choices=RUNNERS, default="local",
                        help="local: trainings in the server's process; ray: on a simulated "
                             "2-node Ray cluster on 127.0.0.1")
    parser.add_argument("--json", dest="json_out", help="write the result here")


def bench_run(args: argparse.Namespace) -> dict[str, Any]:
    result = bench_classroom(args.sessions, args.slots, args.timeout, args.probe_gap, args.ramp,
                             client=args.client, query=args.query.lstrip("?"),
                             runner=args.runner)
    latency = result["latency_seconds"]
    print(f"{result['sessions_done']}/{result['sessions']} sessions got their result, "
          f"{result['runs_done']} runs done in the store, {result['total_seconds']} s; "
          f"idle interaction p50 {latency['p50']} s, p95 {latency['p95']} s "
          f"({latency['probes']} probes)", file=sys.stderr)
    return result
