"""A class challenge in a real browser: the teacher reads the key from the server's console,
sets a challenge, three students open its link, train and submit, the leaderboard (presenter
mode) ranks them by hidden-people EER, a run outside the limits is refused, the teacher hides
one entry and closes the challenge. Screenshots: setup, presenter leaderboard."""

from __future__ import annotations

import json
import os
import re
import shutil
import time
from pathlib import Path

import pytest

from lab.views.challenge import ChallengeStore
from loadtest.classroom import Server

pytestmark = [pytest.mark.slow, pytest.mark.browser]
EXCEPTION = '[data-testid="stException"]'


def shoot(page, tmp_path: Path, name: str) -> None:
    path = tmp_path / f"{name}.png"
    page.screenshot(path=str(path), full_page=True)
    target = os.environ.get("METRIC_LAB_SHOTS")
    if target:
        Path(target).mkdir(parents=True, exist_ok=True)
        shutil.copy(path, Path(target) / path.name)


def settle(page) -> None:
    page.wait_for_selector('[data-testid="stApp"]')
    page.wait_for_function(
        "() => !document.querySelector('[data-testid=\"stStatusWidget\"]')", timeout=90_000)


def fill_number(page, label: str, value: int) -> None:
    box = page.get_by_label(label, exact=True)
    box.fill(str(value))
    box.press("Tab")


@pytest.fixture
def server(tmp_path, monkeypatch):
    monkeypatch.delenv("METRIC_LAB_TEACHER_KEY", raising=False)  # the server makes its own
    monkeypatch.setenv("METRIC_LAB_CHALLENGES", str(tmp_path / "challenges"))
    (tmp_path / "runs").mkdir()
    running = Server(tmp_path / "runs", tmp_path / "streamlit.log")
    try:
        running.wait_healthy(120)
        yield running
    finally:
        running.stop()


def test_a_class_challenge_in_the_browser(server, browser, tmp_path):
    new = lambda: browser.new_context(viewport={"width": 1400, "height": 1000})  # noqa: E731
    teacher = new().new_page()
    teacher.set_default_timeout(60_000)
    teacher.goto(f"{server.url}/challenge")
    settle(teacher)
    deadline = time.monotonic() + 30
    while "teacher key:" not in server.log.read_text() and time.monotonic() < deadline:
        time.sleep(0.5)
    key = re.search(r"teacher key: (\S+)", server.log.read_text()).group(1)
    teacher.get_by_label("Teacher key", exact=True).fill("not the key")
    teacher.get_by_label("Teacher key", exact=True).press("Enter")
    teacher.get_by_text("That is not the teacher key.").wait_for()
    teacher.get_by_label("Teacher key", exact=True).fill(key)
    teacher.get_by_label("Teacher key", exact=True).press("Enter")
    teacher.get_by_role("button", name="Create the challenge").wait_for()
    fill_number(teacher, "Identities (synthetic faces)", 16)
    fill_number(teacher, "Images per identity (synthetic faces)", 4)
    fill_number(teacher, "Hidden people (score the leaderboard)", 4)
    fill_number(teacher, "Validation people (students tune on them)", 3)
    fill_number(teacher, "Time budget per run (seconds)", 30)
    teacher.get_by_role("button", name="Create the challenge").click()
    teacher.get_by_text("Share this link with the class").wait_for(timeout=90_000)
    [challenge] = ChallengeStore(tmp_path / "challenges").list()
    link = f"{server.url}/challenge?join={challenge.id}"
    teacher.get_by_text(link).first.wait_for()
    assert teacher.locator(EXCEPTION).count() == 0
    shoot(teacher, tmp_path, "challenge-setup")

    def student(name: str, seed: int, loss: str = "contrastive", before_submit=None):
        page = new().new_page()
        page.set_default_timeout(60_000)
        # The link, with settings a student chose; image_size=64 is not theirs to change.
        page.goto(f"{server.url}/train?join={challenge.id}&network=mlp&epochs=2&seed={seed}"
                  f"&loss={loss}&image_size=64")
        settle(page)
        page.get_by_text(re.compile("Challenge:.*30 s of training per run")).wait_for()
        page.get_by_role("button", name=re.compile(r"(^|\s)Run$")).click()
        page.get_by_text("Verification of people never seen in training").wait_for(
            timeout=180_000)
        page.get_by_role("link", name="Submit a run to the challenge").click()
        page.get_by_role("button", name="Submit to the challenge").wait_for()
        if before_submit is not None:
            before_submit()
        page.get_by_label("Your name on the leaderboard", exact=True).fill(name)
        page.get_by_role("button", name="Submit to the challenge").click()
        return page

    for k, (name, loss) in enumerate((("Ada", "contrastive"), ("Grace", "triplet"),
                                      ("<b>Linus</b>", "arcface"))):
        page = student(name, k, loss)
        page.get_by_text(re.compile("Entered with .* EER on the hidden people")).wait_for(
            timeout=60_000)
        assert page.locator(EXCEPTION).count() == 0
        page.context.close()
    stored = ChallengeStore(tmp_path / "challenges").load(challenge.id)
    assert {json.loads((tmp_path / "runs" / e.run_id / "config.json").read_text())[
        "image_size"] for e in stored.entries} == {32}  # the link could not lift the limit

    # A run past the time budget (its history says so) is refused with the reason.
    def stretch_the_history() -> None:
        newest = max((tmp_path / "runs").iterdir(), key=lambda p: p.stat().st_mtime)
        history = newest / "history.jsonl"
        lines = [json.loads(line) for line in history.read_text().splitlines()]
        lines[-1]["elapsed"] = 400.0
        history.write_text("".join(json.dumps(x) + "\n" for x in lines))

    page = student("Late", 9, before_submit=stretch_the_history)
    page.get_by_text(re.compile("more than the challenge's 30 s")).wait_for(timeout=60_000)
    page.context.close()
    late = ChallengeStore(tmp_path / "challenges")
    assert len(late.load(challenge.id).entries) == 3

    board = new().new_page()
    board.goto(f"{server.url}/leaderboard?c={challenge.id}&presenter=1")
    settle(board)
    board.locator("table.lb tbody tr").nth(2).wait_for(timeout=30_000)
    names = [row.locator("td").nth(1).inner_text()
             for row in board.locator("table.lb tbody tr").all()]
    ranked = sorted(late.load(challenge.id).entries, key=lambda e: (e.eer, e.train_seconds))
    assert names == [e.name for e in ranked]
    assert "<b>Linus</b>" in names  # shown as text, not as markup
    shoot(board, tmp_path, "leaderboard-presenter")

    # The teacher hides the top entry and closes the challenge.
    teacher.get_by_role("link", name="Open the leaderboard").first.click()
    teacher.get_by_role("button", name="Close the challenge").wait_for()
    teacher.get_by_role("button", name="Hide this entry").click()
    settle(teacher)
    teacher.get_by_role("button", name="Close the challenge").click()
    teacher.get_by_role("button", name="Reopen the challenge").wait_for()
    final = late.load(challenge.id)
    assert final.closed and sum(e.hidden for e in final.entries) == 1
    board.wait_for_function("document.querySelectorAll('table.lb tbody tr').length === 2",
                            timeout=30_000)
    board.get_by_text(re.compile("closed, no more submissions")).wait_for(timeout=30_000)
    shoot(board, tmp_path, "leaderboard-closed")
