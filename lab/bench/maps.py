"""`python -m lab bench umap`: the first map after app start, cold and cached, and warm UMAP /
PCA / t-SNE maps."""

from __future__ import annotations

import argparse

from lab.bench.common import _common_arguments, _finish, _python_subprocess, _start, register
from lab.measure.project import benchmark


# -- umap -----------------------------------------------------------------------------------
def _umap_arguments(parser: argparse.ArgumentParser) -> None:
    _common_arguments(parser, repeats=3)
    parser.add_argument("--sizes", type=int, nargs="+", default=[500, 2000, 10000])
    parser.add_argument("--cold", action=argparse.BooleanOptionalAction, default=True,
                        help="also time a first map with an empty numba cache (1-2 minutes)")


# The app's own order of events in a fresh process: the first page view starts UMAP's warm-up
# thread (ui.warm_up_umap_in_background), the user presses Run at once on the default lesson,
# then opens Embeddings, which maps every epoch of the run (project_frames, warm-started).
_APP_FIRST_MAP_SCRIPT = """
import json, threading, time
t0 = time.perf_counter()
import lab.learn.train, lab.measure.evaluate
from lab.measure import project
from lab.core.config import RunConfig
warm = threading.Thread(target=project.warm_up_umap, daemon=True)
warm.start()
t_view = time.perf_counter()
config = RunConfig() if "__SIZE__" == "full" else RunConfig(
    num_identities=12, images_per_identity=4, image_size=16, val_identities=2,
    test_identities=4, epochs=2, network="mlp")
reports = list(lab.learn.train.Trainer(config).fit())
frames = [r.probe_embeddings for r in reports if r.probe_embeddings is not None]
t_ask = time.perf_counter()
ready_before = project.umap_ready()
first = project.project(frames[-1], "umap", seed=config.seed)
t_first = time.perf_counter()
project.project_frames(frames, method="umap", seed=config.seed)
t_all = time.perf_counter()
print(json.dumps({"imports_s": t_view - t0, "run_s": t_ask - t_view,
                  "umap_ready_when_asked": ready_before, "points": len(first),
                  "frames": len(frames), "first_map_s": t_first - t_ask,
                  "all_frames_s": t_all - t_first, "view_to_first_map_s": t_first - t_view}))
"""


@register("umap", "first map after app start (cold, cached) and warm UMAP / PCA / t-SNE maps",
          _umap_arguments)
def umap_bench(args: argparse.Namespace) -> dict:
    result = _start(args, "umap")
    sizes = [200] if args.quick else args.sizes
    figures = benchmark(sizes=sizes, repeats=1 if args.quick else args.repeats,
                        cold=args.cold and not args.quick)
    figures.pop("bench", None)
    figures["project_machine"] = figures.pop("machine", None)
    result.update(figures)
    # What a user of the app waits for: the first UMAP of a run trained right after start.
    result["first_map_in_app"] = _python_subprocess(
        _APP_FIRST_MAP_SCRIPT.replace("__SIZE__", "quick" if args.quick else "full"))
    warm = figures.get("warm", {})
    in_app = result["first_map_in_app"].get("first_map_s")
    result["summary"] = ("umap: " + ", ".join(f"{k} {v['wall_s']:.2f} s" for k, v in warm.items())
                         + (f"; first map in the app after Run {in_app:.2f} s"
                            if in_app is not None else ""))
    return _finish(result)
