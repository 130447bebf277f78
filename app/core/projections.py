"""2-D projections of latent codes: PCA, UMAP and t-SNE as plain functions.

Everything here is a pure function of its arguments, testable with no thread, process or window
(the Orange3 pattern): long-running methods take a ``progress(fraction, text)`` callback and a
``should_stop()`` predicate, and raise :class:`ProjectionCancelled` when asked to stop.
The heavy libraries (scikit-learn, umap-learn, openTSNE) are imported inside the functions that
need them: ``import umap`` alone costs ~14 s on a cold 2-core machine (docs/DESIGN.md, "Known traps").

The window does not call :func:`project` for UMAP/t-SNE on a thread: UMAP's numba kernels hold
the GIL. It goes through :mod:`app.core.projection_service`, which runs this module in a spawned
child process.
"""

from __future__ import annotations

import math
import os
import re
import time
import warnings
from typing import Any, Callable, Mapping

import numpy as np

from app.core.errors import ProjectionError

METHODS = ("pca", "umap", "tsne")
# scikit-learn's exact-gradient t-SNE: the reference the benchmark compares openTSNE against.
REFERENCE_METHODS = ("tsne-sklearn",)
ALL_METHODS = METHODS + REFERENCE_METHODS

LABELS = {"pca": "PCA", "umap": "UMAP", "tsne": "t-SNE", "tsne-sklearn": "t-SNE (scikit-learn)"}

# Settings a caller may pass in ``params``; each method reads the ones it understands, so the
# window can keep one settings dict for all three views.
DEFAULT_PARAMS: dict[str, Any] = {
    "n_neighbors": 15,  # UMAP: size of the local neighbourhood
    "min_dist": 0.1,  # UMAP: how tightly points may pack
    "perplexity": 30.0,  # t-SNE: effective number of neighbours
    "n_iter": 500,  # t-SNE: iterations after the 250 of early exaggeration
    "seed": None,  # the window passes the run's seed: maps and trustworthiness repeat exactly
    # (UMAP is serial with a seed, as umap-learn requires; None lets it use every thread)
    "n_jobs": None,  # threads for UMAP/t-SNE; None = every core (see default_n_jobs)
}

# t-SNE's first phase (van der Maaten 2014; openTSNE's and scikit-learn's default).
EARLY_EXAGGERATION_ITER = 250
# From this many codes t-SNE uses FFT gradients, below it Barnes-Hut (faster on small sets).
TSNE_FFT_MIN_POINTS = 5_000
# Trustworthiness is O(N^2) in memory and time: estimate it on a seeded subsample.
TRUSTWORTHINESS_MAX_POINTS = 2000

ProgressFn = Callable[[float, str], None]
StopFn = Callable[[], bool]


class ProjectionCancelled(Exception):
    """The caller asked to stop (``should_stop()`` returned True). Not an error: nothing to show."""


# --------------------------------------------------------------------------------------------
# Validation
# --------------------------------------------------------------------------------------------


def resolve_params(method: str, params: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """``params`` merged over :data:`DEFAULT_PARAMS`, validated; ProjectionError names the bad one."""
    method = _check_method(method)
    merged = dict(DEFAULT_PARAMS)
    for key, value in (params or {}).items():
        if key not in DEFAULT_PARAMS:
            known = ", ".join(DEFAULT_PARAMS)
            raise ProjectionError(f"unknown projection setting {key!r}; expected one of {known}")
        if value is not None or key in ("seed", "n_jobs"):
            merged[key] = value

    def as_int(key: str, low: int) -> int:
        value = merged[key]
        if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < low:
            raise ProjectionError(f"{key} must be a whole number of at least {low}, got {value!r}")
        return int(value)

    def as_float(key: str, low: float, high: float, low_inclusive: bool = True) -> float:
        value = merged[key]
        ok = isinstance(value, (int, float, np.integer, np.floating)) and not isinstance(value, bool)
        if ok:
            value = float(value)
            ok = math.isfinite(value) and (value >= low if low_inclusive else value > low) and value <= high
        if not ok:
            bracket = "[" if low_inclusive else "("
            raise ProjectionError(f"{key} must be a number in {bracket}{low:g}, {high:g}], got {merged[key]!r}")
        return value

    merged["n_neighbors"] = as_int("n_neighbors", 2)
    merged["min_dist"] = as_float("min_dist", 0.0, 1.0)  # UMAP requires min_dist <= spread (1.0)
    merged["perplexity"] = as_float("perplexity", 0.0, 1e6, low_inclusive=False)
    merged["n_iter"] = as_int("n_iter", 1)
    if merged["seed"] is not None:
        merged["seed"] = as_int("seed", 0)
    n_jobs = default_n_jobs() if merged["n_jobs"] is None else merged["n_jobs"]
    if isinstance(n_jobs, bool) or not isinstance(n_jobs, (int, np.integer)) or n_jobs == 0:
        raise ProjectionError(f"n_jobs must be a non-zero whole number (-1 = all cores), got {n_jobs!r}")
    merged["n_jobs"] = int(n_jobs)
    return merged


def check_codes(codes: np.ndarray, method: str, params: Mapping[str, Any] | None = None) -> None:
    """Raise ProjectionError, with a one-line fix, if ``method`` cannot project these codes.

    A 1-D latent space (K == 1) passes: :func:`project` shows it directly on a line.
    """
    method = _check_method(method)
    p = resolve_params(method, params)
    codes = _as_array(codes)
    n, k = codes.shape
    if n == 0 or k == 0:
        raise ProjectionError(f"there are no codes to project (shape {n} x {k}); encode some data first")

    finite = np.isfinite(codes)
    if not finite.all():
        n_nan = int(np.isnan(codes).sum())
        n_inf = int(codes.size - finite.sum()) - n_nan
        parts = [f"{n_nan} NaN" if n_nan else "", f"{n_inf} infinite" if n_inf else ""]
        what = " and ".join(part for part in parts if part)
        raise ProjectionError(
            f"the codes contain {what} values — the model diverged; retrain with a lower learning rate"
        )
    if n == 1:
        raise ProjectionError("a single code cannot be projected; encode at least a few samples")
    if not (codes != codes[0]).any():
        raise ProjectionError(
            f"all {n} codes are identical: the model collapsed to a single point; retrain it "
            "(lower the KL weight / beta, or check the data)"
        )
    if k == 1:
        return  # shown directly on a line; no method-specific limits apply

    if method == "umap" and n <= p["n_neighbors"]:
        hint = f"lower n_neighbors to at most {n - 1}" if n >= 3 else "use PCA"
        raise ProjectionError(
            f"UMAP with n_neighbors={p['n_neighbors']} needs more than {p['n_neighbors']} codes, "
            f"got {n}; {hint}"
        )
    if method in ("tsne", "tsne-sklearn") and n <= 3 * p["perplexity"]:
        largest = (n - 1) // 3
        hint = f"lower the perplexity to at most {largest}" if largest >= 2 else "use PCA for so few codes"
        raise ProjectionError(
            f"t-SNE with perplexity {p['perplexity']:g} needs more than {3 * p['perplexity']:g} codes, "
            f"got {n}; {hint}"
        )


# --------------------------------------------------------------------------------------------
# Projection
# --------------------------------------------------------------------------------------------


def project(
    codes: np.ndarray,
    method: str,
    params: Mapping[str, Any] | None = None,
    progress: ProgressFn | None = None,
    should_stop: StopFn | None = None,
) -> np.ndarray:
    """Project latent codes ``(N, K)`` to a 2-D embedding ``(N, 2)`` float32.

    ``method`` is one of :data:`ALL_METHODS`; ``params`` overrides :data:`DEFAULT_PARAMS`.
    ``progress(fraction, text)`` is called at most ~10 times a second; ``should_stop()`` is polled
    between steps (t-SNE: every 10 iterations; UMAP: between layout epochs) and makes this raise
    :class:`ProjectionCancelled`. Raises ProjectionError for codes it cannot project.
    A 1-D latent space is returned as ``[z, 0]`` whatever the method.
    """
    method = _check_method(method)
    p = resolve_params(method, params)
    codes = np.ascontiguousarray(_as_array(codes), dtype=np.float32)  # (N, K)
    check_codes(codes, method, p)
    report = _Reporter(progress)
    stop = should_stop or (lambda: False)
    if stop():
        raise ProjectionCancelled()

    n, k = codes.shape
    if k == 1:
        report(1.0, "the latent space is 1-D: shown directly on a line (x = z, y = 0)", force=True)
        return np.column_stack([codes[:, 0], np.zeros(n, dtype=np.float32)])

    runner = {"pca": _pca, "umap": _umap, "tsne": _tsne_opentsne, "tsne-sklearn": _tsne_sklearn}[method]
    try:
        embedding = runner(codes, p, report, stop)
    except (ProjectionCancelled, ProjectionError):
        raise
    except MemoryError:
        raise ProjectionError(
            f"not enough memory for {LABELS[method]} of {n:,} codes; project a subset or use PCA"
        ) from None
    except ImportError as exc:
        raise ProjectionError(
            f"{LABELS[method]} is unavailable ({exc}); install the project's requirements"
        ) from None

    embedding = np.ascontiguousarray(embedding, dtype=np.float32)  # (N, 2)
    if embedding.shape != (n, 2) or not np.isfinite(embedding).all():
        raise ProjectionError(
            f"{LABELS[method]} produced invalid coordinates for these codes; try PCA or other settings"
        )
    report(1.0, f"{LABELS[method]} done", force=True)
    return embedding


def _pca(codes: np.ndarray, p: dict, report: "_Reporter", stop: StopFn) -> np.ndarray:
    from sklearn.decomposition import PCA

    report(0.0, f"PCA of {len(codes):,} codes", force=True)
    # A fixed random_state keeps the (rarely used) randomized solver deterministic too;
    # scikit-learn's svd_flip fixes the signs.
    return PCA(n_components=2, random_state=0 if p["seed"] is None else p["seed"]).fit_transform(codes)


_umap_has_run = False  # the first fit in a process compiles UMAP's numba kernels (~30 s)
_CACHED_LIBRARIES = ("umap", "pynndescent")


def import_umap():
    """``import umap`` with numba's disk cache switched on for its kernels; returns the module.

    umap-learn 0.5 declares nearly all of its ~120 numba functions (and pynndescent some 60 of
    its ~240) without ``cache=True``, so every new process compiled them again: 40-65 s before
    the first map even with a warm cache folder. numba's ``Dispatcher.enable_caching()`` is
    public API and does for a dispatcher what ``cache=True`` does at its definition; it must run
    before the first call compiles anything. A function wrapped by two dispatchers (umap's layout
    epoch, serial and parallel) gets it for the serial one only, as both would share one cache
    file; closures made at run time and functions numba refuses to cache ("dynamic globals":
    pynndescent's NN-descent, which :func:`exact_neighbors` makes unnecessary) compile as before.
    """
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # numba/umap import chatter
        import umap
    enable_numba_caching(_CACHED_LIBRARIES)
    return umap


def enable_numba_caching(packages) -> int:
    """Turn on numba's disk cache for the module-level numba functions of ``packages`` that lack
    it; returns how many were switched on (0 on later calls)."""
    import sys

    from numba.core.dispatcher import Dispatcher
    from numba.core.caching import NullCache

    by_function: dict[int, dict[int, Any]] = {}
    for name, module in list(sys.modules.items()):
        if module is None or name.split(".")[0] not in packages:
            continue
        for value in list(vars(module).values()):
            if isinstance(value, Dispatcher):
                by_function.setdefault(id(value.py_func), {})[id(value)] = value
    switched = 0
    for dispatchers in by_function.values():
        if any(not isinstance(d._cache, NullCache) for d in dispatchers.values()):
            continue   # one of them caches already: a second would share (and clobber) its files
        # One per function: the serial one, which seeded UMAP (what the window runs) uses.
        dispatcher = min(dispatchers.values(), key=lambda d: bool(d.targetoptions.get("parallel")))
        try:
            dispatcher.enable_caching()
        except Exception:  # noqa: BLE001 - numba cannot cache this one: it compiles as before
            continue
        switched += 1
    return switched


def _umap(codes: np.ndarray, p: dict, report: "_Reporter", stop: StopFn) -> np.ndarray:
    global _umap_has_run
    report(0.0, "loading UMAP", force=True)
    umap = import_umap()
    if stop():
        raise ProjectionCancelled()

    n = len(codes)
    first = "" if _umap_has_run else " (the first run compiles UMAP: up to a minute)"
    report(0.05, f"UMAP: finding neighbours of {n:,} codes{first}", force=True)

    def on_epoch(done: int, total: int) -> None:
        if stop():
            raise ProjectionCancelled()
        report(0.2 + 0.8 * done / max(total, 1), f"UMAP: layout, epoch {done}/{total}")

    # UMAP has no callbacks, but it drives a tqdm bar over the layout epochs, and tqdm_kwds is
    # public API: point the bar at a stream we parse, which gives progress and a cancel point.
    epochs = _TqdmEpochStream(on_epoch)
    seed = p["seed"]
    # One job: joblib refuses worker processes inside the projection process anyway.
    precomputed = exact_neighbors(codes, p["n_neighbors"]) if n <= EXACT_KNN_MAX_POINTS else None
    reducer = umap.UMAP(
        precomputed_knn=precomputed or (None, None, None),
        n_components=2,
        n_neighbors=p["n_neighbors"],
        min_dist=p["min_dist"],
        random_state=seed,
        # A seed makes UMAP serial (reproducible); without one it uses every thread.
        n_jobs=1 if seed is not None else p["n_jobs"],
        verbose=False,
        tqdm_kwds={
            "disable": False,
            "file": epochs,
            "bar_format": "{n}/{total}",
            "mininterval": 0.1,
            "ascii": True,
            "leave": False,
        },
    )
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # "graph is not fully connected", n_jobs overrides, ...
        embedding = reducer.fit_transform(codes)
    _umap_has_run = True
    if epochs.cancelled:  # raised inside tqdm but swallowed somewhere on the way out
        raise ProjectionCancelled()
    return embedding


# Up to this many codes UMAP gets exact neighbours from scikit-learn instead of pynndescent:
# under a second for 10,000 x 20 and no numba at all, where pynndescent's NN-descent cannot be
# cached by numba ("uses dynamic globals": it takes the metric as a function argument) and cost
# 40-80 s of compilation in every new process. Exact neighbours are also what UMAP itself uses
# below 4,096 points.
EXACT_KNN_MAX_POINTS = 60_000


def exact_neighbors(codes: np.ndarray, n_neighbors: int, n_jobs: int = 1) -> tuple[np.ndarray, np.ndarray, None]:
    """UMAP's ``precomputed_knn``: (indices, distances) of each code's ``n_neighbors`` nearest
    codes, Euclidean, the code itself first (as umap-learn requires), and no search index."""
    from sklearn.neighbors import NearestNeighbors

    k = min(int(n_neighbors), len(codes))
    search = NearestNeighbors(n_neighbors=max(1, k - 1), n_jobs=n_jobs).fit(codes)
    # Without a query, scikit-learn leaves each point out of its own list even among duplicates.
    distances, indices = search.kneighbors() if k > 1 else (np.zeros((len(codes), 0)), np.zeros((len(codes), 0), int))
    own = np.arange(len(codes))[:, None]
    return (np.hstack([own, indices]).astype(np.int32),
            np.hstack([np.zeros_like(own, dtype=np.float32), distances.astype(np.float32)]), None)


class _TqdmEpochStream:
    """A file-like sink for tqdm that parses ``n/total`` and hands it to ``on_epoch``.

    ``on_epoch`` may raise (ProjectionCancelled); that happens once, then writes are ignored so
    tqdm's clean-up on the way out does not raise again.
    """

    encoding = "utf-8"
    _numbers = re.compile(r"(\d+)/(\d+)")

    def __init__(self, on_epoch: Callable[[int, int], None]):
        self._on_epoch = on_epoch
        self.cancelled = False

    def write(self, text: str) -> int:
        if not self.cancelled:
            found = self._numbers.findall(text)
            if found:
                done, total = found[-1]
                try:
                    self._on_epoch(int(done), int(total))
                except ProjectionCancelled:
                    self.cancelled = True
                    raise
        return len(text)

    def flush(self) -> None:
        pass


class _TsneMonitor:
    """openTSNE callback: progress over both optimisation phases, and the cancel point."""

    def __init__(self, n_iter: int, report: "_Reporter", stop: StopFn):
        self.total = EARLY_EXAGGERATION_ITER + n_iter
        self.phase = -1
        self.report = report
        self.stop = stop

    def optimization_about_to_start(self) -> None:  # openTSNE calls this before each phase
        self.phase += 1

    def __call__(self, iteration: int, error: float, embedding: np.ndarray) -> bool:
        if self.stop():
            # Raised, not returned True: openTSNE's fit() would swallow its own interrupt and
            # return the half-optimised map as if it were finished.
            raise ProjectionCancelled()
        done = iteration + (EARLY_EXAGGERATION_ITER if self.phase >= 1 else 0)
        stage = "early exaggeration" if self.phase < 1 else "optimising"
        self.report(0.1 + 0.9 * done / self.total, f"t-SNE: {stage}, iteration {done}/{self.total} (KL {error:.3f})")
        return False


def _tsne_opentsne(codes: np.ndarray, p: dict, report: "_Reporter", stop: StopFn) -> np.ndarray:
    report(0.0, "loading t-SNE", force=True)
    import openTSNE

    report(0.02, f"t-SNE: finding neighbours of {len(codes):,} codes", force=True)
    monitor = _TsneMonitor(p["n_iter"], report, stop)
    tsne = openTSNE.TSNE(
        n_components=2,
        perplexity=p["perplexity"],
        n_iter=p["n_iter"],
        early_exaggeration_iter=EARLY_EXAGGERATION_ITER,
        initialization="pca",
        # FFT-interpolated gradients (Linderman et al. 2019): linear in N and parallel over
        # n_jobs threads, but with a fixed grid cost: on 300 codes 11 s against Barnes-Hut's 0.6 s.
        negative_gradient_method="fft" if len(codes) >= TSNE_FFT_MIN_POINTS else "bh",
        n_jobs=p["n_jobs"],
        random_state=p["seed"],
        callbacks=monitor,
        # Each callback makes openTSNE evaluate the KL divergence too; every 10 iterations keeps
        # that cheap while a cancel lands within a fraction of a second on 10k codes.
        callbacks_every_iters=10,
        verbose=False,
    )
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        embedding = tsne.fit(codes)
    return np.asarray(embedding)


def _tsne_sklearn(codes: np.ndarray, p: dict, report: "_Reporter", stop: StopFn) -> np.ndarray:
    import inspect

    from sklearn.manifold import TSNE

    n_iter_key = "max_iter" if "max_iter" in inspect.signature(TSNE).parameters else "n_iter"
    report(0.05, f"t-SNE (scikit-learn) of {len(codes):,} codes: no progress until it finishes", force=True)
    tsne = TSNE(
        n_components=2,
        perplexity=p["perplexity"],
        init="pca",
        learning_rate="auto",
        random_state=p["seed"],
        n_jobs=p["n_jobs"],
        **{n_iter_key: EARLY_EXAGGERATION_ITER + p["n_iter"]},
    )
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return tsne.fit_transform(codes)


# --------------------------------------------------------------------------------------------
# Quality
# --------------------------------------------------------------------------------------------


def trustworthiness(
    codes: np.ndarray, embedding: np.ndarray, n_neighbors: int = 5, max_points: int = TRUSTWORTHINESS_MAX_POINTS,
    seed: int = 0,
) -> float:
    """How well the 2-D map keeps each code's nearest neighbours (1.0 = perfectly), in [0, 1].

    scikit-learn's ``trustworthiness`` is quadratic, so at most ``max_points`` points (a seeded
    random subset) are scored. ``n_neighbors`` is lowered for tiny sets, as the measure needs
    ``n_neighbors < N / 2``.
    """
    from sklearn.manifold import trustworthiness as sk_trustworthiness

    codes = _as_array(codes)
    embedding = _as_array(embedding, name="embedding")
    if len(codes) != len(embedding):
        raise ProjectionError(
            f"the map has {len(embedding)} points but there are {len(codes)} codes; project again"
        )
    if not (np.isfinite(codes).all() and np.isfinite(embedding).all()):
        raise ProjectionError("trustworthiness needs finite codes and coordinates (found NaN or infinite values)")
    n = len(codes)
    if n > max_points:
        keep = np.sort(np.random.default_rng(seed).choice(n, size=max_points, replace=False))
        codes, embedding, n = codes[keep], embedding[keep], max_points
    k = min(int(n_neighbors), (n - 1) // 2)
    if k < 1:
        raise ProjectionError(f"trustworthiness needs at least 3 points, got {n}")
    return float(sk_trustworthiness(codes.astype(np.float64), embedding.astype(np.float64), n_neighbors=k))


# --------------------------------------------------------------------------------------------
# Helpers
# --------------------------------------------------------------------------------------------


def default_n_jobs() -> int:
    """Threads for UMAP and t-SNE: every core this process may use (openTSNE's FFT gradients and
    neighbour search scale with them; issue 12 asks for n_jobs = the CPU count).

    Small sets are the exception the projection view makes (TSNE_SINGLE_THREAD_BELOW there):
    measured on a busy 2-core machine, openTSNE on 300 codes took 1.7 s with one thread and
    15-33 s with two, because its threads meet at a barrier every iteration.
    """
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except (AttributeError, OSError):
        return max(1, os.cpu_count() or 1)


def _check_method(method: str) -> str:
    if not isinstance(method, str) or method.strip().lower() not in ALL_METHODS:
        raise ProjectionError(f"unknown projection method {method!r}; choose one of {', '.join(ALL_METHODS)}")
    return method.strip().lower()


def _as_array(values: Any, name: str = "codes") -> np.ndarray:
    try:
        array = np.asarray(values)
    except Exception:
        raise ProjectionError(f"the {name} are not a numeric array") from None
    if array.dtype.kind not in "biuf":
        raise ProjectionError(f"the {name} must be numbers, got values of type {array.dtype}")
    if array.ndim != 2:
        raise ProjectionError(f"the {name} must be a table (points x dimensions), got shape {array.shape}")
    return array


class _Reporter:
    """Forward progress only when it moved enough to matter (Orange3's rule): >= 1 % and >= 0.1 s."""

    def __init__(self, callback: ProgressFn | None, min_step: float = 0.01, min_interval: float = 0.1):
        self._callback = callback
        self._min_step = min_step
        self._min_interval = min_interval
        self._last_fraction = -1.0
        self._last_time = -math.inf

    def __call__(self, fraction: float, text: str, force: bool = False) -> None:
        if self._callback is None:
            return
        fraction = min(max(float(fraction), 0.0), 1.0)
        now = time.monotonic()
        moved = fraction - self._last_fraction >= self._min_step and now - self._last_time >= self._min_interval
        if force or moved:
            self._last_fraction, self._last_time = fraction, now
            self._callback(fraction, text)

