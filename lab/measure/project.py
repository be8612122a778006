"""2-D maps of embeddings (UMAP, PCA, t-SNE), stable across the frames of an animation.

Why these choices:
- UMAP (McInnes et al. 2018) keeps clusters apart and is the default; PCA is instant and is shown
  while UMAP warms up; t-SNE (van der Maaten & Hinton 2008) is there for comparison.
- UMAP is fed an exact k-nearest-neighbour graph computed here with numpy. For fewer than 4,096
  points umap-learn otherwise builds the full distance matrix by calling its numba distance from
  Python once per pair (4 million calls, ~10 s at 2,000 points on a 2-core CPU).
- UMAP starts from PCA (or from the previous frame), never from its spectral layout: that is
  faster on small data, compiles less code, and lets an animation warm-start each frame.
- umap-learn's numba functions are not cached on disk, so every new process compiled them again
  (~18 s for the first fit). `warm_up_umap` turns numba's on-disk cache on for them before their
  first call and points NUMBA_CACHE_DIR at data/cache/numba before umap is imported.
- `align_to` (orthogonal Procrustes with reflection, scale and translation) removes the
  arbitrary rotation/flip between frames, so points do not jump around.

umap is imported lazily: `import lab.measure.project` stays fast.
"""

from __future__ import annotations

import os
import sys
import threading
import time
import warnings
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from lab.core import settings
from lab.core.settings import data_root

METHODS = ("umap", "pca", "tsne")
MIN_POINTS_FOR_NEIGHBOURS = 5  # fewer (distinct) points than this: every method falls back to PCA

EXACT_KNN_MAX_POINTS = 20_000
_warm_lock = threading.Lock()
_umap_ready = False
_warm_up_seconds: float | None = None


def numba_cache_dir() -> Path:
    """Where numba keeps compiled machine code between processes (data/cache/numba)."""
    return data_root() / "cache" / "numba"


def _validate(embeddings: np.ndarray) -> np.ndarray:
    x = np.asarray(embeddings, dtype=np.float32)
    if x.ndim == 1:
        x = x[:, None]
    if x.ndim != 2:
        raise ValueError(f"embeddings must be [N, D], got shape {x.shape}")
    if not np.isfinite(x).all():
        bad = int((~np.isfinite(x)).any(axis=1).sum())
        raise ValueError(
            f"{bad} embedding(s) contain NaN or inf (did training diverge?); cannot draw a map"
        )
    return x


def _pca(x: np.ndarray) -> np.ndarray:
    """PCA to 2-D; pads with zeros when there are fewer than two directions of variance."""
    n, dim = x.shape
    out = np.zeros((n, 2), dtype=np.float64)
    if n < 2:
        return out
    centred = x.astype(np.float64) - x.mean(axis=0, dtype=np.float64)
    if not np.any(np.abs(centred) > 1e-12):
        return out  # identical points: one spot, honestly drawn as one spot
    # Eigenvectors of the D x D covariance: cheaper than an SVD of the N x D data for N >> D.
    covariance = centred.T @ centred / max(n - 1, 1)
    _, vectors = np.linalg.eigh(covariance)
    k = min(2, dim)
    out[:, :k] = centred @ vectors[:, ::-1][:, :k]
    # Deterministic sign: the largest-magnitude coordinate of each axis is positive.
    for j in range(k):
        column = out[:, j]
        if column[np.argmax(np.abs(column))] < 0:
            out[:, j] = -column
    return out


def exact_knn(x: np.ndarray, k: int, block: int = 1024) -> tuple[np.ndarray, np.ndarray]:
    """Exact k nearest neighbours (Euclidean) with each point its own first neighbour, as
    umap-learn expects: (indices int64 [N, k], distances float32 [N, k]). Rows are done in
    blocks so memory stays at block x N."""
    x64 = x.astype(np.float64)
    n = len(x64)
    sq = np.einsum("ij,ij->i", x64, x64)
    indices = np.empty((n, k), dtype=np.int64)
    distances = np.empty((n, k), dtype=np.float32)
    for start in range(0, n, block):
        rows = slice(start, min(start + block, n))
        d2 = sq[rows, None] + sq[None, :] - 2.0 * (x64[rows] @ x64.T)
        np.maximum(d2, 0.0, out=d2)
        local = np.arange(d2.shape[0])
        d2[local, local + start] = -1.0  # self first, even among duplicates
        idx = np.argpartition(d2, k - 1, axis=1)[:, :k]
        part = np.take_along_axis(d2, idx, axis=1)
        order = np.argsort(part, axis=1, kind="stable")
        indices[rows] = np.take_along_axis(idx, order, axis=1)
        distances[rows] = np.sqrt(np.maximum(np.take_along_axis(part, order, axis=1), 0.0))
    return indices, distances


def _umap_epochs(n: int, warm_start: bool) -> int:
    """Optimisation epochs: enough for small maps to settle, few enough for ≤ 1 s at 2,000."""
    base = 200 if n <= 1000 else 120 if n <= 3000 else 100
    return base // 2 if warm_start else base


def _enable_umap_disk_cache() -> int:
    """Turn numba's on-disk cache on for umap-learn's jitted functions (they are declared without
    cache=True). Must run before their first call; returns how many were switched."""
    try:
        from numba.core.caching import NullCache
        from numba.core.registry import CPUDispatcher
    except ImportError:  # a numba without these internals: no cache, just slower first fits
        return 0
    count = 0
    for name, module in list(sys.modules.items()):
        if not (name == "umap" or name.startswith("umap.")) or module is None:
            continue
        for value in list(vars(module).values()):
            if (
                isinstance(value, CPUDispatcher)
                and isinstance(value._cache, NullCache)
                and not value.signatures  # never compiled yet: safe to switch
            ):
                value.enable_caching()
                count += 1
    return count


def _import_umap():
    """Import umap-learn with numba's cache pointed at data/cache/numba (set before import)."""
    if "umap" not in sys.modules:
        cache = numba_cache_dir()
        if "NUMBA_CACHE_DIR" not in os.environ:
            try:
                cache.mkdir(parents=True, exist_ok=True)
                os.environ["NUMBA_CACHE_DIR"] = str(cache)
            except OSError:
                pass  # read-only data dir: numba falls back to __pycache__ or no cache
        if "numba" in sys.modules:
            # numba read its config at import; make a late NUMBA_CACHE_DIR count too.
            from numba.core import config as numba_config

            numba_config.CACHE_DIR = os.environ.get("NUMBA_CACHE_DIR", numba_config.CACHE_DIR)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        import umap
        import umap.layouts
        import umap.spectral
        import umap.umap_
        import umap.utils  # noqa: F401
    _enable_umap_disk_cache()
    return umap


def _umap(x: np.ndarray, seed: int, init: np.ndarray | None) -> np.ndarray:
    umap = _import_umap()
    n = len(x)
    k = min(15, n - 1)
    # Exact neighbours up to EXACT_KNN_MAX_POINTS (seconds at 20,000); beyond, umap's NN-descent.
    knn = exact_knn(x, k) + (None,) if n <= EXACT_KNN_MAX_POINTS else (None, None, None)
    warm = init is not None
    start = np.asarray(init, dtype=np.float32) if warm else _pca(x).astype(np.float32)
    if np.ptp(start, axis=0).min() <= 0:  # a degenerate start (a line or a point): spread it
        rng = np.random.default_rng(seed)
        start = start + rng.normal(scale=1e-3, size=start.shape).astype(np.float32)
    reducer = umap.UMAP(
        n_components=2,
        n_neighbors=k,
        min_dist=0.1,
        init=start,
        n_epochs=_umap_epochs(n, warm),
        learning_rate=0.5 if warm else 1.0,  # a warm start should move, not scramble
        random_state=seed,
        precomputed_knn=knn,
        low_memory=True,
        n_jobs=1,
        verbose=False,
    )
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # "no search index: transform unavailable" etc.
        coords = reducer.fit_transform(x)
    return np.asarray(coords, dtype=np.float64)


def _tsne(x: np.ndarray, seed: int, init: np.ndarray | None) -> np.ndarray:
    from sklearn.manifold import TSNE

    n = len(x)
    start = np.asarray(init, dtype=np.float64) if init is not None else _pca(x)
    scale = float(np.std(start[:, 0]))
    start = start / scale * 1e-4 if scale > 0 else start  # sklearn's own PCA init scale
    tsne = TSNE(
        n_components=2,
        perplexity=float(min(30.0, max(2.0, (n - 1) / 3.0))),
        init=start.astype(np.float32),
        learning_rate="auto",
        # A warm start is already spread out: no early exaggeration, fewer iterations.
        early_exaggeration=12.0 if init is None else 1.0,
        max_iter=500 if init is None else 300,
        random_state=seed,
        method="barnes_hut",
        n_jobs=1,
    )
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return np.asarray(tsne.fit_transform(x), dtype=np.float64)


def _distinct_rows(x: np.ndarray) -> int:
    """Number of distinct rows (a collapsed embedding, e.g. the naive loss, has one)."""
    rows = np.ascontiguousarray(x).view(np.dtype((np.void, x.dtype.itemsize * x.shape[1])))
    return len(np.unique(rows.reshape(-1)))


def project(
    embeddings: np.ndarray,
    method: str = "umap",
    seed: int = 0,
    init: np.ndarray | None = None,
) -> np.ndarray:
    """Map embeddings [N, D] to 2-D points [N, 2] with UMAP, PCA or t-SNE.

    `init` ([N, 2], e.g. the previous frame) warm-starts UMAP and t-SNE. With fewer than five
    distinct points, neighbour graphs mean nothing, so every method falls back to PCA; identical
    points land on one spot. The same inputs and seed give the same map.
    """
    if method not in METHODS:
        raise ValueError(f"unknown projection method {method!r}; choose one of {METHODS}")
    x = _validate(embeddings)
    n = len(x)
    if init is not None:
        init = np.asarray(init, dtype=np.float64)
        if init.shape != (n, 2) or not np.isfinite(init).all():
            init = None  # a stale or broken previous frame: start afresh rather than fail
    if n == 0:
        return np.zeros((0, 2))
    few = MIN_POINTS_FOR_NEIGHBOURS
    if method == "pca" or n < few or _distinct_rows(x) < few:
        return _pca(x)
    from threadpoolctl import threadpool_limits

    # Import first: threadpool_limits only reaches OpenMP/BLAS libraries already loaded.
    if method == "umap":
        _import_umap()
    else:
        import sklearn.manifold  # noqa: F401
    # One thread: the app trains while it maps, and on a busy 2-core CPU OpenMP/BLAS threads
    # spinning against each other made t-SNE ten times slower (14.5 s vs 1.5 s CPU, 500 points).
    with threadpool_limits(limits=1):
        if method == "umap":
            return _umap(x, seed, init)
        return _tsne(x, seed, init)


def align_to(reference: np.ndarray, current: np.ndarray) -> np.ndarray:
    """`current` moved onto `reference` by the similarity transform (rotation or reflection,
    uniform scale, translation) that minimises the squared distance: orthogonal Procrustes.

    A map is only defined up to such a transform, so applying it changes nothing a student can
    read, yet stops an animation from spinning and flipping between frames.
    """
    from scipy.linalg import orthogonal_procrustes

    ref = np.asarray(reference, dtype=np.float64)
    cur = np.asarray(current, dtype=np.float64)
    if ref.shape != cur.shape:
        raise ValueError(f"cannot align {cur.shape} onto {ref.shape}: shapes must match")
    if len(cur) == 0:
        return cur.copy()
    ref_mean, cur_mean = ref.mean(axis=0), cur.mean(axis=0)
    ref_c, cur_c = ref - ref_mean, cur - cur_mean
    cur_norm = float(np.sum(cur_c**2))
    if cur_norm <= 1e-24 or float(np.sum(ref_c**2)) <= 1e-24:
        return cur_c + ref_mean  # nothing to rotate: only move it to the same place
    rotation, singular_sum = orthogonal_procrustes(cur_c, ref_c)
    scale = singular_sum / cur_norm
    return scale * cur_c @ rotation + ref_mean


def project_frames(
    list_of_embeddings: Sequence[np.ndarray],
    method: str = "umap",
    seed: int = 0,
) -> list[np.ndarray]:
    """2-D maps of the same points at successive epochs, each warm-started from the previous
    frame (UMAP, t-SNE) and aligned to it, so an animation shows movement, not re-layouts."""
    frames: list[np.ndarray] = []
    previous: np.ndarray | None = None
    for embeddings in list_of_embeddings:
        points = project(embeddings, method=method, seed=seed, init=previous)
        if previous is not None and previous.shape == points.shape:
            points = align_to(previous, points)
        frames.append(points)
        previous = points
    return frames


def warm_up_umap() -> float:
    """Import umap and fit a tiny map, so numba's JIT is compiled (or loaded from the on-disk
    cache, data/cache/numba) before a user asks for a map. Call it from a background thread at
    app start; safe to call many times. Returns the seconds it took (0 after the first time)."""
    global _umap_ready, _warm_up_seconds
    with _warm_lock:
        if _umap_ready:
            return 0.0
        start = time.perf_counter()
        rng = np.random.default_rng(0)
        x = rng.normal(size=(40, 8)).astype(np.float32)
        x[:20] += 4.0
        _umap(x, seed=0, init=None)
        _umap(x, seed=0, init=_pca(x))  # the warm-start path compiles the same code
        _umap_ready = True
        _warm_up_seconds = time.perf_counter() - start
        return _warm_up_seconds


def umap_ready() -> bool:
    """True once `warm_up_umap` finished in this process (the page may then offer UMAP)."""
    return _umap_ready


# --- benchmark and command line --------------------------------------------------------------

_FIRST_MAP_SCRIPT = """
import json, time
t0 = time.perf_counter()
from lab.measure import project as P
P._import_umap()
t1 = time.perf_counter()
P.warm_up_umap()
t2 = time.perf_counter()
import numpy as np
rng = np.random.default_rng(0)
x = (np.repeat(rng.normal(size=(100, 64)) * 3, 20, axis=0) + rng.normal(size=(2000, 64)))
t3 = time.perf_counter()
P.project(x.astype("float32"), "umap")
t4 = time.perf_counter()
print(json.dumps({"import_umap_s": t1 - t0, "warm_up_s": t2 - t1, "first_map_2000_s": t4 - t3}))
"""


def _first_map_in_new_process(cache_dir: str | None) -> dict:
    """Import umap, warm up and draw a 2,000-point map in a fresh Python process."""
    import json
    import subprocess

    env = dict(os.environ)
    if cache_dir is not None:
        env["NUMBA_CACHE_DIR"] = cache_dir
    env["PYTHONPATH"] = str(settings.REPO_ROOT) + os.pathsep + env.get("PYTHONPATH", "")
    started = time.perf_counter()
    done = subprocess.run([sys.executable, "-c", _FIRST_MAP_SCRIPT], capture_output=True,
                          text=True, env=env, cwd=settings.REPO_ROOT, timeout=900)  # fmt: skip
    if done.returncode != 0:
        return {"error": done.stderr[-500:]}
    result = {k: round(v, 3) for k, v in json.loads(done.stdout.strip().splitlines()[-1]).items()}
    result["process_s"] = round(time.perf_counter() - started, 3)
    return result


def _clustered(n: int, dim: int = 64, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    centres = rng.normal(size=(max(n // 20, 1), dim)) * 3
    return (centres[np.arange(n) % len(centres)] + rng.normal(size=(n, dim))).astype(np.float32)


def benchmark(
    sizes: Sequence[int] = (500, 2000, 10000),
    tsne_max: int = 2000,
    repeats: int = 3,
    cold: bool = False,
) -> dict:
    """Timings for issue 7's `umap` benchmark: first map in a new process (with the on-disk numba
    cache; `cold` also with an empty one, ~1-2 minutes), then warm maps (median of `repeats`,
    wall and CPU seconds) for UMAP, PCA and t-SNE on clustered data of each size."""
    import platform
    import tempfile
    from importlib.metadata import version

    result: dict = {
        "bench": "umap",
        "machine": {"platform": platform.platform(), "python": platform.python_version(),
                    "cpu_count": os.cpu_count(), "load_average_1min": os.getloadavg()[0],
                    "date": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())},
        "versions": {p: version(p) for p in ("umap-learn", "numba", "pynndescent",
                                             "scikit-learn", "numpy")},
    }  # fmt: skip
    if cold:
        with tempfile.TemporaryDirectory() as empty:
            result["first_map_no_cache"] = _first_map_in_new_process(empty)
    cache = os.environ.get("NUMBA_CACHE_DIR") or str(numba_cache_dir())
    _first_map_in_new_process(cache)  # make sure the cache is filled
    result["first_map_cached"] = _first_map_in_new_process(cache)
    warm_up_umap()
    warm: dict = {}
    for method in METHODS:
        for n in sizes:
            if method == "tsne" and n > tsne_max:
                continue
            x = _clustered(n)
            walls, cpus = [], []
            for _ in range(repeats if n <= 2000 or method == "pca" else 1):
                wall, cpu = time.perf_counter(), time.process_time()
                project(x, method, seed=0)
                walls.append(time.perf_counter() - wall)
                cpus.append(time.process_time() - cpu)
            warm[f"{method}_{n}"] = {"wall_s": round(float(np.median(walls)), 3),
                                     "cpu_s": round(float(np.median(cpus)), 3)}  # fmt: skip
    result["warm"] = warm
    result["machine"]["load_average_after"] = os.getloadavg()[0]
    return result


def add_parser(subparsers) -> None:
    """`python -m lab project warm-up | bench [--json OUT] [--cold]`."""
    parser = subparsers.add_parser("project", help="2-D maps: warm up UMAP's JIT, benchmark")
    actions = parser.add_subparsers(dest="project_action", required=True)
    warm = actions.add_parser("warm-up", help="compile UMAP's numba code into data/cache/numba")
    warm.set_defaults(func=_cli_warm_up)
    bench = actions.add_parser("bench", help="time UMAP / PCA / t-SNE maps (JSON)")
    bench.add_argument("--json", dest="json_out", metavar="OUT", help="write the result here")
    bench.add_argument("--sizes", type=int, nargs="+", default=[500, 2000, 10000])
    bench.add_argument("--repeats", type=int, default=3)
    bench.add_argument("--cold", action="store_true",
                       help="also time a first map with an empty numba cache (1-2 minutes)")
    bench.set_defaults(func=_cli_bench)


def _cli_warm_up(args) -> int:
    seconds = warm_up_umap()
    print(f"UMAP ready in {seconds:.1f} s (numba cache: {os.environ.get('NUMBA_CACHE_DIR')})")
    return 0


def _cli_bench(args) -> int:
    import json

    result = benchmark(sizes=args.sizes, repeats=args.repeats, cold=args.cold)
    text = json.dumps(result, indent=1)
    if args.json_out:
        Path(args.json_out).parent.mkdir(parents=True, exist_ok=True)
        Path(args.json_out).write_text(text + "\n")
        print(f"wrote {args.json_out}")
    print(text)
    return 0
