"""Reports that open anywhere: a run, a comparison, a lesson or a leaderboard as one HTML file.

A student hands in a report; a teacher opens it on a laptop without Metric Lab, without the
internet. So the file carries everything: the configuration, the loss's formula (MathML, which
browsers draw natively, with the LaTeX beside it), the figures of merit, the seed, the command
that reproduces the run, and interactive plotly figures with plotly.js itself inside the file.

plotly.js is 4.8 MB; inlined as it is, a report weighs 5 MB before a single figure. By default
it is stored gzip-compressed and base64-encoded (1.96 MB) and unpacked in the browser with the
standard ``DecompressionStream`` (Chrome/Edge 80+, Firefox 113+, Safari 16.4+); ``plain_js=True``
inlines it uncompressed for older browsers. A Content-Security-Policy in the page forbids every
request (no script, style, font or image may come from anywhere but the file itself), so a
report can neither phone home nor break when offline.

Every string that came from a user (run names, messages, dataset folders) is escaped with
``html.escape`` before it enters the page; figure data is JSON whose ``<``, ``>`` and ``&`` are
written as ``\\u003c`` escapes, so no value can close the ``<script>`` that holds it.
"""

from __future__ import annotations

import base64
import dataclasses
import datetime
import functools
import gzip
import html
import json
import shlex
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from lab.core.config import RunConfig
from lab.learn.runs import RunStore
from lab.metric.energy import energy_bound
from lab.metric.loss_specs import LOSSES
from lab.views.lessons import seed_spread, spread_sentence
from lab.views.margin_view import energy_margin
from lab.views.run_view import config_differences, live_map, probe_history, verification_at
from lab.viz.curves import loss_curve
from lab.viz.energies import energy_histogram
from lab.viz.maps import embedding_map
from lab.viz.roc import roc_curves
from lab.viz.style import style

CSP = ("default-src 'none'; script-src 'unsafe-inline' 'unsafe-eval'; "
       "style-src 'unsafe-inline'; img-src data: blob:; font-src data:")


@functools.cache
def _plotly_js() -> str:
    from plotly.offline import get_plotlyjs

    return get_plotlyjs()


@functools.cache
def _plotly_js_packed() -> str:
    return base64.b64encode(gzip.compress(_plotly_js().encode("utf-8"), 9, mtime=0)).decode()


def _script_json(obj: Any) -> str:
    """JSON that is safe inside a <script> element (no '</script>' can appear in it)."""
    text = obj if isinstance(obj, str) else json.dumps(obj, default=_default)
    return text.replace("<", "\\u003c").replace(">", "\\u003e").replace("&", "\\u0026")


def _default(value: Any) -> Any:
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, np.ndarray):
        return value.tolist()
    raise TypeError(f"not JSON serialisable: {type(value).__name__}")


def esc(value: Any) -> str:
    """Any value as HTML text (never markup)."""
    return html.escape("" if value is None else str(value), quote=True)


def _fmt(value: Any) -> str:
    if isinstance(value, bool) or value is None:
        return "—" if value is None else str(value)
    if isinstance(value, float):
        return f"{value:.4g}"
    return str(value)


class Report:
    """An HTML page assembled from escaped parts and plotly figures (``html()`` returns it)."""

    def __init__(self, title: str, subtitle: str = ""):
        self.title = title
        self.parts: list[str] = [f"<h1>{esc(title)}</h1>"]
        if subtitle:
            self.parts.append(f'<p class="sub">{esc(subtitle)}</p>')
        self.figures: list[tuple[str, str]] = []  # (div id, figure JSON)

    def heading(self, text: str, level: int = 2) -> None:
        self.parts.append(f"<h{level}>{esc(text)}</h{level}>")

    def paragraph(self, text: str, css: str = "") -> None:
        klass = f' class="{esc(css)}"' if css else ""
        self.parts.append(f"<p{klass}>{esc(text)}</p>")

    def table(self, rows: Sequence[dict], columns: Sequence[str] | None = None) -> None:
        if not rows:
            self.paragraph("(nothing to show)", "note")
            return
        columns = list(columns or rows[0].keys())
        head = "".join(f"<th>{esc(c)}</th>" for c in columns)
        body = "".join("<tr>" + "".join(f"<td>{esc(_fmt(row.get(c)))}</td>" for c in columns)
                       + "</tr>" for row in rows)
        self.parts.append(f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>")

    def pairs(self, items: Iterable[tuple[str, Any]]) -> None:
        """A two-column table of name -> value."""
        body = "".join(f"<tr><th>{esc(k)}</th><td>{esc(_fmt(v))}</td></tr>" for k, v in items)
        self.parts.append(f'<table class="pairs"><tbody>{body}</tbody></table>')

    def code(self, text: str) -> None:
        self.parts.append(f"<pre><code>{esc(text)}</code></pre>")

    def formula(self, loss: str) -> None:
        """The loss's formula as MathML (drawn by the browser), its LaTeX and its source."""

        spec = LOSSES.get(loss)
        if spec is None:
            self.paragraph(f"Unknown loss {loss!r}.", "note")
            return
        self.parts.append(f"<p><b>{esc(spec.title)}</b></p>")
        try:
            from latex2mathml.converter import convert

            self.parts.append(f'<div class="formula">{convert(spec.latex, display="block")}'
                              "</div>")
        except Exception:  # noqa: BLE001 - the LaTeX below still says it
            pass
        self.parts.append(f'<details><summary>LaTeX</summary><pre><code>{esc(spec.latex)}'
                          "</code></pre></details>")
        self.paragraph(spec.source, "note")

    def figure(self, fig, caption: str = "") -> None:
        import plotly.io as pio

        div = f"fig{len(self.figures)}"
        self.figures.append((div, pio.to_json(fig, validate=False, pretty=False)))
        self.parts.append(f'<figure><div id="{div}" class="plot"></div>'
                          + (f"<figcaption>{esc(caption)}</figcaption>" if caption else "")
                          + "</figure>")

    def html(self, plain_js: bool = False) -> str:
        made = datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%d %H:%M UTC")
        data = "".join(f'<script type="application/json" class="figure-data" '
                       f'data-target="{div}">{_script_json(spec)}</script>'
                       for div, spec in self.figures)
        if plain_js:
            library = f"<script>{_plotly_js()}</script>"
        else:
            library = (f'<script type="text/plain" id="plotly-packed">{_plotly_js_packed()}'
                       "</script>")
        return (
            "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">"
            f'<meta http-equiv="Content-Security-Policy" content="{CSP}">'
            '<meta name="viewport" content="width=device-width, initial-scale=1">'
            f"<title>{esc(self.title)}</title><style>{_STYLE}</style></head><body>"
            f'<main>{"".join(self.parts)}'
            f'<p id="report-status" class="note"></p>'
            f'<footer>Made by Metric Lab on {esc(made)}. This file is self-contained: it needs '
            "no network and no Metric Lab to open.</footer></main>"
            f"{library}{data}<script>{_LOADER}</script></body></html>\n"
        )


_STYLE = """
body{font-family:system-ui,-apple-system,Segoe UI,Roboto,sans-serif;margin:0;color:#1f2328;
background:#fff}main{max-width:1100px;margin:0 auto;padding:24px 32px 48px}
h1{font-size:1.7rem;margin-bottom:.2rem}h2{margin-top:2rem;border-bottom:1px solid #d0d7de;
padding-bottom:.2rem}.sub,.note,figcaption,footer{color:#57606a;font-size:.9rem}
table{border-collapse:collapse;margin:.6rem 0;font-size:.9rem}th,td{border:1px solid #d0d7de;
padding:4px 8px;text-align:left;vertical-align:top}thead th{background:#f6f8fa}
table.pairs th{background:#f6f8fa;font-weight:600}pre{background:#f6f8fa;padding:10px;
overflow-x:auto;white-space:pre-wrap;word-break:break-all}.formula{font-size:1.3rem;
margin:.6rem 0}figure{margin:1rem 0}.plot{width:100%;min-height:420px}
footer{margin-top:3rem}
"""

# Unpack plotly.js when it is packed, then draw every figure; the page says when it cannot.
# body[data-figures] = "drawn" | "failed" tells a test (or a curious reader) how it went.
_LOADER = """
(async function () {
  const status = document.getElementById('report-status');
  try {
    if (!window.Plotly) {
      const packed = document.getElementById('plotly-packed');
      if (typeof DecompressionStream === 'undefined') {
        throw new Error('this browser cannot unpack the figures (it needs DecompressionStream: '
          + 'Chrome 80+, Firefox 113+, Safari 16.4+); ask for a report made with --plain-js');
      }
      const text = atob(packed.textContent.trim());
      const bytes = new Uint8Array(text.length);
      for (let i = 0; i < text.length; i++) bytes[i] = text.charCodeAt(i);
      const stream = new Blob([bytes]).stream().pipeThrough(new DecompressionStream('gzip'));
      (0, eval)(await new Response(stream).text());
    }
    for (const node of document.querySelectorAll('script.figure-data')) {
      const spec = JSON.parse(node.textContent);
      const div = document.getElementById(node.dataset.target);
      await Plotly.newPlot(div, spec.data, spec.layout || {},
                           {responsive: true, displaylogo: false});
      div.dataset.drawn = '1';
    }
    document.body.dataset.figures = 'drawn';
  } catch (error) {
    status.textContent = 'The figures could not be drawn: ' + error.message;
    document.body.dataset.figures = 'failed';
  }
})();
"""


# ---- what goes in a report ----------------------------------------------------------------------

# `lab train --loss X` brings X's own energy and margin, so those are written out even when they
# equal RunConfig's defaults; the seed always is, so a reader sees it.
ALWAYS_WRITTEN = ("loss", "energy", "margin", "seed")


def reproduce_command(config: RunConfig, name: str | None = None) -> str:
    """The `python -m lab train` command line that trains this config again (the fields that
    differ from the defaults, and ALWAYS_WRITTEN)."""
    default = RunConfig()
    words = ["python", "-m", "lab", "train"]
    for f in dataclasses.fields(RunConfig):
        value = getattr(config, f.name)
        if f.name == "extra":
            for key, item in sorted((value or {}).items()):
                words += ["--extra", f"{key}={json.dumps(item, sort_keys=True)}"]
            continue
        if value == getattr(default, f.name) and f.name not in ALWAYS_WRITTEN:
            continue
        flag = "--" + f.name.replace("_", "-")
        if isinstance(value, bool):
            words.append(flag if value else "--no-" + f.name.replace("_", "-"))
        else:
            words += [flag, "none" if value is None else str(value)]
    if name:
        words += ["--name", name]
    return " ".join(shlex.quote(word) for word in words)


def merit_rows(metrics: dict) -> list[tuple[str, Any]]:
    """The figures of merit of a run's metrics.json, as (name, shown value) pairs."""
    test = metrics.get("test") or {}
    tar = test.get("tar_at_far") or {}

    def pct(value):
        return None if not isinstance(value, int | float) else f"{100 * value:.2f} %"

    rows = [("test EER", pct(test.get("eer"))), ("test AUC", test.get("auc")),
            ("TAR at FAR 10 %", pct(tar.get("0.1"))), ("TAR at FAR 1 %", pct(tar.get("0.01"))),
            ("TAR at FAR 0.1 %", pct(tar.get("0.001"))), ("d′", test.get("dprime")),
            ("rank-1", pct(test.get("rank1"))),
            ("balanced accuracy at the validation threshold", pct(test.get("test_accuracy"))),
            ("threshold (energy, chosen on validation people)", test.get("threshold")),
            ("genuine / impostor test pairs",
             f"{test.get('genuine_pairs', '?')} / {test.get('impostor_pairs', '?')}"),
            ("training seconds", metrics.get("train_seconds")),
            ("device", metrics.get("device"))]
    val = metrics.get("val") or {}
    if val:
        rows.append(("validation EER", pct(val.get("eer"))))
    return rows


def _train_seconds(run) -> float | None:
    history = run.history
    value = history[-1].get("elapsed") if history else None
    return float(value) if isinstance(value, int | float) else None


def _run_figures(report: Report, run) -> dict | None:
    """Loss curve, embedding map, energy histogram and ROC of one run; returns its ROC curve."""

    config, history = run.config, run.history
    if history:
        report.figure(loss_curve([h.get("epoch", k + 1) for k, h in enumerate(history)],
                                       [h.get("loss") for h in history],
                                       active_fraction=[h.get("active_fraction")
                                                        for h in history],
                                       title="Training loss"),
                      "Loss per epoch; active = the share of pairs or triplets that still "
                      "contribute to the loss.")
    probes = probe_history(run)
    if probes is None or probes.rounds == 0:
        report.paragraph("This run saved no embeddings, so no map, histogram or ROC.", "note")
        return None
    last = probes.rounds - 1
    unseen = ~probes.is_seen if probes.is_seen is not None else np.ones(len(probes.labels), bool)
    emb = probes.at(last)
    points = live_map(emb, seed=config.seed)
    report.figure(embedding_map(points, probes.labels, seen_mask=~unseen,
                                      title=f"Embedding after epoch {probes.epochs[last]:g} "
                                      "(PCA)"),
                  "Colour = identity; open diamonds = people never seen in training, filled "
                  "circles = a few training people.")
    verification = verification_at(probes, last, config.energy, config.data_seed)
    if verification is None:
        report.paragraph("Too few unseen identities among the saved probes for a ROC.", "note")
        return None
    bound = energy_bound(config.energy, emb.shape[1]) if config.normalize else None
    margin = energy_margin(config.loss, config.margin)  # not α: lab.views.margin_view
    report.figure(energy_histogram(verification.genuine_energies,
                                         verification.impostor_energies, margin=margin,
                                         threshold=verification.threshold,
                                         dprime=verification.dprime, eer=verification.eer,
                                         x_range=(0, bound) if bound else None,
                                         title="Energies of unseen test pairs"),
                  "Genuine (same person) and impostor pair energies of the test people among "
                  "the saved probe images; the threshold was chosen on validation people.")
    curve = {"name": esc(run.name), "fpr": verification.fpr, "tpr": verification.tpr,
             "auc": verification.auc, "eer": verification.eer}
    report.figure(roc_curves([curve]), "Verification ROC on the test people (probe "
                  "images; metrics.json's figures above use every test image).")
    return curve


def add_run(report: Report, run, level: int = 2) -> dict | None:
    """One run's section: figures of merit, seeds, command, configuration, loss and figures."""
    config = run.config
    report.heading(f"Run {run.name}", level)
    report.pairs([("id", run.id), ("status", run.status), ("message", run.message or "—"),
                  ("dataset", config.dataset), ("loss", config.loss),
                  ("margin", config.margin), ("network", config.network),
                  ("miner", config.miner)])
    report.heading("Figures of merit (people never seen in training)", level + 1)
    metrics = dict(run.metrics)
    metrics.setdefault("train_seconds", _train_seconds(run))
    report.pairs(merit_rows(metrics))
    for note in (metrics.get("test") or {}).get("notes", []):
        report.paragraph(note, "note")
    report.heading("Seed and the command that reproduces it", level + 1)
    report.pairs([("seed (weights, batches)", config.seed),
                  ("people seed (who is train / validation / test)", config.data_seed)])
    report.code(reproduce_command(config, run.name))
    report.heading("The loss", level + 1)
    report.formula(config.loss)
    report.heading("Figures", level + 1)
    curve = _run_figures(report, run)
    report.heading("Configuration", level + 1)
    report.pairs(sorted(config.to_dict().items()))
    return curve


def run_report(runs: Sequence, title: str | None = None) -> Report:
    """One run, or a comparison of several (their table and ROC curves first)."""

    if not runs:
        raise ValueError("a report needs at least one run")
    if len(runs) == 1:
        report = Report(title or f"Metric Lab run: {runs[0].name}",
                        f"{runs[0].config.loss} on {runs[0].config.dataset}")
        add_run(report, runs[0])
        return report
    report = Report(title or f"Metric Lab: {len(runs)} runs compared")
    report.heading("The runs")
    varies = config_differences([r.config for r in runs])
    report.paragraph("What differs between them: " + (", ".join(varies) or "nothing but "
                     "their names") + ".")
    rows = []
    for run in runs:
        test = run.metrics.get("test") or {}
        tar = test.get("tar_at_far") or {}
        rows.append({"name": run.name, "id": run.id, "loss": run.config.loss,
                     "margin": run.config.margin, **{k: getattr(run.config, k) for k in varies
                                                     if k not in ("loss", "margin")},
                     "EER %": None if test.get("eer") is None else round(100 * test["eer"], 2),
                     "AUC": test.get("auc"),
                     "TAR@FAR 1 %": None if tar.get("0.01") is None
                     else round(100 * tar["0.01"], 2),
                     "train s": _train_seconds(run)})
    report.table(rows)
    roc_at = len(report.parts)
    curves = [c for c in (add_run(report, run) for run in runs) if c is not None]
    if curves:  # the overlaid ROC goes right under the table
        tail, report.parts = report.parts[roc_at:], report.parts[:roc_at]
        report.figure(roc_curves(curves, title="ROC of every run on its test people"))
        report.parts += tail
    return report


def lesson_report(lesson, result, runs: Sequence = ()) -> Report:
    """A lesson's claim, what was measured, its verdict, the ROC per variant and each run."""

    report = Report(f"Metric Lab lesson: {lesson.title}", lesson.source)
    report.heading("The claim")
    report.paragraph(lesson.claim)
    report.heading("What the app measured")
    report.paragraph(("As the paper claims: " if result.passed else "Not this time: ")
                     + result.sentence + ".")

    spread = seed_spread(lesson.key) if lesson.trains else None
    if spread is not None:  # the same figures the Lessons page shows beside the live run
        report.paragraph(spread_sentence(lesson, spread), "note")
    rows = [{"variant": v.label, "status": v.figures.get("status"),
             "EER %": None if v.figures.get("eer") is None else round(100 * v.figures["eer"], 2),
             "AUC": v.figures.get("auc"), "d′": v.figures.get("dprime"),
             "final loss": v.figures.get("final_loss"), "run": v.run_id}
            for v in result.variants]
    report.table(rows)
    curves = [{"name": esc(v.label), "fpr": v.fpr, "tpr": v.tpr, "auc": v.figures.get("auc"),
               "eer": v.figures.get("eer")} for v in result.variants if v.fpr is not None]
    if curves:
        report.figure(roc_curves(curves, title="ROC on unseen people, one curve per "
                                       "variant"))
    for note in result.notes:
        report.paragraph(note, "note")
    for run in runs:
        add_run(report, run)
    return report


def leaderboard_report(title: str, rows: Sequence[dict], columns: Sequence[str],
                       about: Sequence[tuple[str, Any]] = ()) -> Report:
    """A challenge's leaderboard: its settings, the ranked table and EER against time."""
    import plotly.graph_objects as go


    report = Report(f"Leaderboard: {title}", "Scored on hidden people nobody trained or tuned on")
    if about:
        report.pairs(about)
    report.table(rows, columns)
    scored = [r for r in rows if isinstance(r.get("EER %"), int | float)]
    if scored:
        fig = go.Figure(go.Scatter(
            x=[r.get("train s") for r in scored], y=[r["EER %"] for r in scored],
            mode="markers+text", text=[esc(r.get("name", "")) for r in scored],
            textposition="top center", marker={"size": 11}))
        fig.update_layout(title="Test EER against training time", xaxis_title="training s",
                          yaxis_title="EER on hidden people (%)")
        report.figure(style(fig))
    return report


# ---- the command line ------------------------------------------------------------------------

def write(report: Report, out: str | Path, plain_js: bool = False) -> int:
    data = report.html(plain_js=plain_js).encode("utf-8")
    Path(out).write_bytes(data)
    return len(data)


def cmd_report(args) -> int:
    store = RunStore(args.runs) if args.runs else RunStore()
    runs = [store.load(run_id) for run_id in args.run]
    size = write(run_report(runs, title=args.title), args.out, plain_js=args.plain_js)
    print(f"report {args.out} ({size / 1e6:.2f} MB, {len(runs)} run(s))")
    return 0


def add_parser(subparsers) -> None:
    parser = subparsers.add_parser("report", help="one self-contained HTML report of one run "
                                   "or a comparison of several (opens offline)")
    parser.add_argument("run", nargs="+", help="run id(s) (see `python -m lab runs`)")
    parser.add_argument("--out", default="report.html", help="the HTML file to write")
    parser.add_argument("--title", help="the report's title")
    parser.add_argument("--plain-js", action="store_true",
                        help="inline plotly.js uncompressed (5 MB more; for browsers without "
                             "DecompressionStream)")
    parser.add_argument("--runs", help="run store folder (default $METRIC_LAB_RUNS or data/runs)")
    parser.set_defaults(func=cmd_report)
