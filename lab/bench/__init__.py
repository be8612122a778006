"""Benchmarks -> JSON: ``python -m lab bench NAME ...``, one module per benchmark.

A registry (lab.bench.common): each bench is a function ``run(args) -> dict`` plus a function
that adds its options; ``register`` adds one. Every result records the machine, the device, the
torch version and the date, so results can be compared run to run.

- ``accuracy`` (lab.bench.accuracy): identity-fold cross-validation of one loss. For each of K
  folds the test identities (about N/K of them) are never seen in training; the network trains
  for at most ``--time-budget`` seconds, then test EER, AUC, TAR@FAR, rank-1 and d′ are
  measured, with the threshold chosen on validation identities. The raw-pixel baseline is
  evaluated on the same folds. ``--split-seeds`` repeats the folds over other partitions of the
  people (a single partition's figure is partly the luck of who is in it); ``--ensemble K``
  trains K nets per fold at once, one thread each, and judges their embeddings side by side.

Speed (every figure is the median of ``--repeats`` where a run is short, with wall and
process-CPU seconds, the load average before and after, and the machine and library versions):

- ``dashboard`` (lab.bench.dashboard): the default lesson from pressing Run to loss curve +
  embedding map + histograms + ROC on screen, in parts: data, train, embed, evaluate, project
  (PCA live map every epoch, the first UMAP map after warm-up), figures (the plotly figures the
  Train page builds).
- ``train`` (lab.bench.throughput): FLOPs, peak, fraction of peak, images/s, profile; old vs
  new path.
- ``train-grid`` (lab.bench.train_grid): images/s and s/epoch of each network x loss x miner at
  the default batch.
- ``umap`` (lab.bench.maps): first map in a new process (with and without numba's on-disk
  cache, in subprocesses), the first map in the app's own order of events (warm-up thread at
  the first page view, Run at once, then the run's map), warm UMAP / PCA / t-SNE maps of 500,
  2,000 and 10,000 points (lab.measure.project.benchmark).
- ``sweep`` (lab.bench.sweep): K margins trained one after another vs together
  (lab.learn.batched).
- ``verify`` (lab.bench.verify): end-to-end verification time, student and reference model.
- ``memory`` (lab.bench.memory): peak RSS (VmHWM) of a streamlit app process with 1 and with 10
  runs, its pages opened by chromium.
- ``gpu`` (lab.bench.gpu), ``crossdomain`` (lab.bench.crossdomain), ``inside``
  (lab.bench.inside) and ``lessons`` (lab.bench.lessons): see their modules.

``--quick`` runs each on tiny sizes (tests check that it works and writes JSON; never a time).
"""

from lab.bench import (  # noqa: F401  (importing a benchmark's module registers it)
    accuracy,
    crossdomain,
    dashboard,
    gpu,
    inside,
    lessons,
    maps,
    memory,
    sweep,
    throughput,
    train_grid,
    verify,
)
from lab.bench.common import BENCHES, add_parser

__all__ = ["BENCHES", "add_parser"]
