"""`python -m lab bench memory`: peak RSS of the streamlit app process with 1 and with 10
trained runs."""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from lab.bench.common import _finish, _start, register
from lab.bench.dashboard import _quick_config
from lab.core import settings
from lab.core.config import RunConfig
from lab.learn.runs import RunStore
from lab.learn.training_run import train_run

# -- memory ---------------------------------------------------------------------------------
MEMORY_PAGES = ("train", "embeddings", "energies", "compare")
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync", "--no-first-run",
                 "--disable-dev-shm-usage"]


def _memory_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--json", dest="json_out", metavar="OUT",
                        help="write the result to this JSON file")
    parser.add_argument("--quick", action="store_true", help="a tiny run, 1 and 2 runs")
    parser.add_argument("--runs", type=int, nargs="+", default=[1, 10],
                        help="run counts to measure (default 1 10)")
    parser.add_argument("--chromium", default=settings.chromium())


def _proc_status_kib(pid: int, field: str) -> int | None:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith(field + ":"):
                return int(line.split()[1])
    except (OSError, ValueError):
        pass
    return None


def _free_port() -> int:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _fill_store(root: Path, count: int, config: RunConfig) -> None:
    """``count`` finished runs: one trained, the others imported copies of it (same size)."""

    store = RunStore(root)
    existing = store.list()
    if not existing:
        train_run(config, store=store)
        existing = store.list()
    data = store.export_zip(existing[0].id)
    for _ in range(count - len(existing)):
        store.import_zip(data)


def app_peak_rss(runs_root: Path, chromium: str, pages=MEMORY_PAGES, log: Path | None = None
                 ) -> dict:
    """Start ``streamlit run app.py`` on this store, open ``pages`` in chromium (each until the
    app stops running), and read the server process's peak (VmHWM) and current RSS."""
    import urllib.request

    from playwright.sync_api import sync_playwright

    root = settings.REPO_ROOT
    port = _free_port()
    url = f"http://127.0.0.1:{port}"
    env = {**os.environ, "METRIC_LAB_RUNS": str(runs_root)}
    out = open(log or os.devnull, "w")  # noqa: SIM115 - closed below
    process = subprocess.Popen(
        [sys.executable, "-m", "streamlit", "run", "app.py", "--server.address", "127.0.0.1",
         "--server.port", str(port), "--server.headless", "true",
         "--browser.gatherUsageStats", "false"],
        cwd=root, env=env, stdout=out, stderr=subprocess.STDOUT)
    result: dict = {"pages": {}}
    try:
        deadline = time.monotonic() + 180
        while True:
            if process.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError("streamlit did not start")
            try:
                with urllib.request.urlopen(f"{url}/_stcore/health", timeout=2):
                    break
            except OSError:
                time.sleep(0.5)
        result["after_start_mib"] = round(_proc_status_kib(process.pid, "VmRSS") / 1024, 1)
        with sync_playwright() as playwright:
            browser = playwright.chromium.launch(executable_path=chromium, args=CHROMIUM_ARGS)
            page = browser.new_context(viewport={"width": 1400, "height": 1000}).new_page()
            page.set_default_timeout(120_000)
            for name in pages:
                started = time.perf_counter()
                page.goto(f"{url}/{name}")
                page.wait_for_selector('[data-testid="stApp"]')
                page.wait_for_timeout(500)
                page.wait_for_function(
                    "() => !document.querySelector('[data-testid=\"stStatusWidget\"]')")
                page.wait_for_timeout(1000)
                result["pages"][name] = {
                    "seconds": round(time.perf_counter() - started, 2),
                    "rss_mib": round(_proc_status_kib(process.pid, "VmRSS") / 1024, 1)}
            browser.close()
        result["peak_rss_mib"] = round(_proc_status_kib(process.pid, "VmHWM") / 1024, 1)
        result["rss_mib"] = round(_proc_status_kib(process.pid, "VmRSS") / 1024, 1)
    finally:
        process.terminate()
        try:
            process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
        out.close()
    return result


@register("memory", "peak RSS of the streamlit app process with 1 and with 10 trained runs",
          _memory_arguments)
def memory(args: argparse.Namespace) -> dict:
    result = _start(args, "memory")
    counts = [1, 2] if args.quick else sorted(args.runs)
    config = _quick_config() if args.quick else RunConfig()
    result.update({"pages": list(MEMORY_PAGES), "config": config.to_dict(), "runs": {},
                   "goal_mib_one_run": 1536})
    with tempfile.TemporaryDirectory() as folder:
        store = Path(folder) / "runs"
        for count in counts:
            _fill_store(store, count, config)
            result["runs"][str(count)] = app_peak_rss(store, args.chromium,
                                                      log=Path(folder) / f"app-{count}.log")
    result["summary"] = "memory: " + ", ".join(
        f"{n} run(s) peak {r['peak_rss_mib']:.0f} MiB" for n, r in result["runs"].items())
    return _finish(result)
