"""A headless Streamlit client: what one browser tab sends and receives, without drawing it.

Only the classroom load test uses it (``python -m loadtest --client protocol``).
Thirty real browser pages cost the 2-core test machine more than the server they are meant to
load: in a classroom every student draws the charts on their own laptop, so the server only ever
pays for the script runs and the websocket traffic. This client speaks the same protocol as
Streamlit's web frontend on ``/_stcore/stream`` (protobuf ``BackMsg`` up, ``ForwardMsg`` down):

- it asks for a page the way a tab opening ``/train?...`` does (``rerun_script`` with the query
  string and the page name), and keeps the page script hash the server answers with;
- it learns the widgets from the deltas (a button or toggle by its label) and presses them the way
  the frontend does (a trigger value for a button, a bool value for a toggle, every widget value it
  has set sent again on each rerun);
- it runs the ``st.fragment(run_every=...)`` timers the server asks for (``auto_rerun`` /
  ``stop_auto_rerun``), so a live training view polls exactly as it would in a browser;
- it records every full script run: when it ended and the text of its elements, so a test can
  wait for "this text is on the page" and time an interaction from click to finished rerun.

The server is the real ``streamlit run app.py``; nothing here is mocked.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from dataclasses import dataclass, field

FULL_RUN_FINISHED = "FINISHED_SUCCESSFULLY"


@dataclass
class PageRun:
    """One full script run as the client saw it: its text and when it finished."""

    text: bytearray = field(default_factory=bytearray)
    finished_at: float | None = None
    status: str = ""


class StreamlitClient:
    """One simulated browser tab on a Streamlit server (async; one per student)."""

    def __init__(self, base_url: str, page: str = "", query: str = ""):
        self.ws_url = base_url.replace("http://", "ws://").rstrip("/") + "/_stcore/stream"
        self.page = page
        self.query = query
        self.page_script_hash = ""
        self.widgets: dict[str, tuple[str, str]] = {}  # label -> (kind, widget id)
        self._values: dict[str, object] = {}  # widget id -> value sent on every rerun
        self._defaults: dict[str, bool] = {}  # toggle id -> the value the page drew it with
        self._timers: dict[str, asyncio.Task] = {}  # fragment id -> auto-rerun loop
        self._socket = None
        self._reader: asyncio.Task | None = None
        self._changed = asyncio.Event()
        self.current = PageRun()  # the full run being received
        self.finished: list[PageRun] = []  # full runs that ended, oldest first
        self.seen = bytearray()  # everything any delta has shown (fragment runs included)
        self.messages = 0
        self.errors: list[str] = []
        self.closed = False

    # -- connection ---------------------------------------------------------------------------
    async def open(self, timeout: float = 60.0) -> None:
        import websockets

        self._socket = await websockets.connect(
            self.ws_url, subprotocols=["streamlit"], max_size=None, open_timeout=timeout,
            ping_interval=None, close_timeout=2)  # a busy server must not hold up the exit
        self._reader = asyncio.create_task(self._read())
        await self.rerun()

    async def close(self) -> None:
        self.closed = True
        for task in self._timers.values():
            task.cancel()
        self._timers.clear()
        if self._socket is not None:
            with contextlib.suppress(Exception):
                await self._socket.close()
        if self._reader is not None:
            self._reader.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await self._reader

    # -- what the user does -------------------------------------------------------------------
    async def rerun(self, trigger: str | None = None, fragment_id: str = "",
                    auto: bool = False) -> None:
        """Send ``rerun_script`` with every widget value set so far (+ a button's trigger)."""
        from streamlit.proto.BackMsg_pb2 import BackMsg

        msg = BackMsg()
        state = msg.rerun_script
        state.query_string = self.query
        state.page_name = self.page
        state.page_script_hash = self.page_script_hash
        state.fragment_id = fragment_id
        state.is_auto_rerun = auto
        for widget_id, value in self._values.items():
            widget = state.widget_states.widgets.add()
            widget.id = widget_id
            if isinstance(value, bool):
                widget.bool_value = value
            elif isinstance(value, int | float):
                widget.double_value = float(value)
            else:
                widget.string_value = str(value)
        if trigger is not None:
            widget = state.widget_states.widgets.add()
            widget.id = trigger
            widget.trigger_value = True
        await self._socket.send(msg.SerializeToString())

    async def click(self, label: str) -> None:
        """Press the button labelled ``label`` (KeyError if the page has none)."""
        _, widget_id = self.widgets[label]
        await self.rerun(trigger=widget_id)

    async def toggle(self, label: str) -> bool:
        """Flip the toggle or checkbox labelled ``label``; returns its new value."""
        _, widget_id = self.widgets[label]
        value = not bool(self._values.get(widget_id, self._defaults.get(widget_id, False)))
        self._values[widget_id] = value
        await self.rerun()
        return value

    async def wait_for_text(self, text: str, timeout: float) -> None:
        """Until some delta has shown ``text`` (TimeoutError after ``timeout`` s)."""
        await self.wait_for_any([text], timeout)

    async def wait_for_any(self, texts: list[str], timeout: float, since: int = 0) -> str:
        """The first of ``texts`` that a delta shows (after byte ``since`` of everything seen)."""
        needles = [t.encode() for t in texts]
        deadline = time.monotonic() + timeout
        while True:
            for text, needle in zip(texts, needles, strict=True):
                if self.seen.find(needle, since) >= 0:
                    return text
            await self._wait_change(deadline)

    async def wait_for_run(self, after: int, timeout: float) -> PageRun:
        """The first full run to finish after ``after`` runs had finished."""
        deadline = time.monotonic() + timeout
        while len(self.finished) <= after:
            await self._wait_change(deadline)
        return self.finished[after]

    def page_text(self, limit: int = 600) -> str:
        """The readable text of the last finished full run (for reports of what a user saw)."""
        import re

        run = self.finished[-1] if self.finished else self.current
        words = re.findall(rb"[^\x00-\x1f]{12,}", bytes(run.text))
        return " | ".join(w.decode("utf-8", "replace") for w in words)[:limit]

    async def _wait_change(self, deadline: float) -> None:
        if self.closed:
            raise ConnectionError("; ".join(self.errors) or "connection closed")
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            raise TimeoutError("the page did not show it in time")
        self._changed.clear()
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._changed.wait(), timeout=remaining)

    # -- what the server sends ----------------------------------------------------------------
    async def _read(self) -> None:
        from streamlit.proto.ForwardMsg_pb2 import ForwardMsg

        try:
            async for data in self._socket:
                msg = ForwardMsg()
                msg.ParseFromString(data)
                self.messages += 1
                self._handle(msg, data)
                self._changed.set()
        except Exception as error:  # noqa: BLE001 - reported through wait_* as closed
            self.errors.append(f"{type(error).__name__}: {error}")
        finally:
            self.closed = True
            self._changed.set()

    def _handle(self, msg, data: bytes) -> None:
        kind = msg.WhichOneof("type")
        if kind == "new_session":
            if not msg.metadata.run.fragment_ids:  # a full run starts: the page is redrawn
                self.current = PageRun()
                for task in self._timers.values():
                    task.cancel()
                self._timers.clear()
        elif kind == "delta":
            self.seen += data
            self.current.text += data
            if msg.delta.WhichOneof("type") == "new_element":
                self._learn_widget(msg.delta.new_element)
        elif kind == "script_finished":
            if not msg.metadata.run.fragment_ids:
                from streamlit.proto.ForwardMsg_pb2 import ForwardMsg

                self.current.finished_at = time.monotonic()
                self.current.status = ForwardMsg.ScriptFinishedStatus.Name(msg.script_finished)
                self.finished.append(self.current)
                self.current = PageRun()
        elif kind == "auto_rerun":
            fragment_id, interval = msg.auto_rerun.fragment_id, msg.auto_rerun.interval
            if fragment_id in self._timers:
                self._timers[fragment_id].cancel()
            self._timers[fragment_id] = asyncio.get_running_loop().create_task(
                self._auto_rerun(fragment_id, interval))
        elif kind == "stop_auto_rerun":
            for fragment_id in msg.stop_auto_rerun.fragment_ids:
                task = self._timers.pop(fragment_id, None)
                if task is not None:
                    task.cancel()
        elif kind == "navigation":  # st.navigation says which page this is (its script hash)
            self.page_script_hash = msg.navigation.page_script_hash or self.page_script_hash
        elif kind == "page_info_changed":  # the script changed st.query_params: the URL follows
            self.query = msg.page_info_changed.query_string
        elif kind == "page_not_found":
            self.errors.append(f"page not found: {self.page!r}")

    def _learn_widget(self, element) -> None:
        kind = element.WhichOneof("type")
        if kind in ("button", "checkbox"):
            widget = getattr(element, kind)
            self.widgets[widget.label] = (kind, widget.id)
            if kind != "button":
                self._defaults[widget.id] = bool(widget.default)

    async def _auto_rerun(self, fragment_id: str, interval: float) -> None:
        """The frontend's ``run_every`` timer: ask for the fragment again every ``interval``."""
        while not self.closed:
            await asyncio.sleep(interval)
            with contextlib.suppress(Exception):
                await self.rerun(fragment_id=fragment_id, auto=True)
