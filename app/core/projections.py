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
from dataclasses import dataclass
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
    # UMAP: layout epochs. umap-learn takes 500 up to 10,000 codes and 200 above; 200 for all:
    # on the 10,000 x 20 MNIST codes of bench/codes.py (seeded, so serial) the layout took 8.7 s
    # with 500 epochs and 3.5 s with 200, trustworthiness (k = 5) 0.9799 against 0.9776.
    "n_epochs": 200,
    "seed": None,  # the window passes the run's seed: maps and trustworthiness repeat exactly
    # (UMAP is serial with a seed, as umap-learn requires; None lets it use every thread)
    "n_jobs": None,  # threads for UMAP/t-SNE; None = every core (see default_n_jobs)
    # UMAP/t-SNE of more codes than this: fitted on a seeded random sample of this many, the
    # rest placed into that map (UMAP's transform, openTSNE's prepare_partial). PCA uses all.
    "fit_max_points": 20_000,
}

# t-SNE's first phase (van der Maaten 2014; openTSNE's and scikit-learn's default).
EARLY_EXAGGERATION_ITER = 250
# From this many codes t-SNE uses FFT gradients, below it Barnes-Hut (faster on small sets).
TSNE_FFT_MIN_POINTS = 5_000
# Trustworthiness is O(N^2) in memory and time: estimate it on a seeded subsample.
TRUSTWORTHINESS_MAX_POINTS = 2000
# The smallest fit sample allowed: fewer points cannot carry the map of many more.
FIT_MIN_POINTS = 500
# Codes placed into a fitted map per step; progress and the cancel check come between steps.
PLACE_CHUNK_POINTS = 50_000

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
    merged["n_epochs"] = as_int("n_epochs", 1)
    merged["fit_max_points"] = as_int("fit_max_points", FIT_MIN_POINTS)
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

    # What the method is fitted on: all codes, or a sample of fit_max_points of them.
    fit_n = fit_sample_size(method, n, p)
    sample = f" in its fit sample (fit_max_points={p['fit_max_points']:,})" if fit_n < n else ""
    raise_cap = " or raise fit_max_points" if fit_n < n else ""
    if method == "umap" and fit_n <= p["n_neighbors"]:
        hint = f"lower n_neighbors to at most {fit_n - 1}{raise_cap}" if fit_n >= 3 else "use PCA"
        raise ProjectionError(
            f"UMAP with n_neighbors={p['n_neighbors']} needs more than {p['n_neighbors']} codes{sample}, "
            f"got {fit_n}; {hint}"
        )
    if method in ("tsne", "tsne-sklearn") and fit_n <= 3 * p["perplexity"]:
        largest = (fit_n - 1) // 3
        hint = (f"lower the perplexity to at most {largest}{raise_cap}" if largest >= 2
                else "use PCA for so few codes")
        raise ProjectionError(
            f"t-SNE with perplexity {p['perplexity']:g} needs more than {3 * p['perplexity']:g} codes{sample}, "
            f"got {fit_n}; {hint}"
        )


# --------------------------------------------------------------------------------------------
# Projection
# --------------------------------------------------------------------------------------------


# Sampled fits: what places the codes left out of the sample, in the caption's words.
PLACED_WITH = {"umap": "UMAP's transform", "tsne": "openTSNE's prepare_partial + optimize"}


@dataclass(frozen=True)
class FitInfo:
    """What a map was fitted on: all ``n_points`` codes, or a seeded sample of ``fit_points``
    with the rest placed into the fitted map (UMAP and t-SNE above ``fit_max_points``)."""

    method: str
    n_points: int
    fit_points: int

    @property
    def sampled(self) -> bool:
        return self.fit_points < self.n_points

    @property
    def placed_with(self) -> str:
        """'' when every code was fitted; else what placed the rest (see PLACED_WITH)."""
        return PLACED_WITH.get(self.method, "") if self.sampled else ""

    def caption(self) -> str:
        """A line for the map, '' when every code was fitted, e.g. "UMAP fitted on 20,000 of
        1,000,000 codes (a seeded sample); the rest placed with UMAP's transform"."""
        if not self.sampled:
            return ""
        return (f"{LABELS.get(self.method, self.method)} fitted on {self.fit_points:,} of {self.n_points:,} "
                f"codes (a seeded sample); the rest placed with {self.placed_with}")

    def as_dict(self) -> dict[str, Any]:
        """Plain str/int values (what the projection process sends with its result)."""
        return {"method": self.method, "n_points": self.n_points, "fit_points": self.fit_points,
                "placed_with": self.placed_with, "caption": self.caption()}


def fit_sample_size(method: str, n: int, params: Mapping[str, Any] | None = None) -> int:
    """How many of ``n`` codes ``method`` is fitted on with these settings: ``fit_max_points``
    for UMAP and t-SNE above it, else ``n`` (PCA and scikit-learn's t-SNE always use all)."""
    method = _check_method(method)
    p = resolve_params(method, params)
    n = int(n)
    return min(n, p["fit_max_points"]) if method in PLACED_WITH else n


def fit_sample(n: int, params: Mapping[str, Any]) -> np.ndarray | None:
    """Sorted indices of the seeded sample a method is fitted on, None when it fits all ``n``.
    The run's seed picks it (0 without one), so the same codes give the same sample."""
    cap = int(params["fit_max_points"])
    if n <= cap:
        return None
    seed = 0 if params.get("seed") is None else int(params["seed"])
    return np.sort(np.random.default_rng(seed).choice(n, size=cap, replace=False))


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
    UMAP and t-SNE of more than ``fit_max_points`` codes are fitted on a seeded sample and the
    rest placed into it; :func:`project_with_info` also says so.
    """
    return project_with_info(codes, method, params, progress, should_stop)[0]


def project_with_info(
    codes: np.ndarray,
    method: str,
    params: Mapping[str, Any] | None = None,
    progress: ProgressFn | None = None,
    should_stop: StopFn | None = None,
) -> tuple[np.ndarray, FitInfo]:
    """:func:`project`, and the :class:`FitInfo` that says how many codes the map was fitted on."""
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
        return np.column_stack([codes[:, 0], np.zeros(n, dtype=np.float32)]), FitInfo(method, n, n)

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
    return embedding, FitInfo(method, n, fit_sample_size(method, n, p))


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
    sample = fit_sample(n, p)
    fit_codes = codes if sample is None else codes[sample]
    fit_n = len(fit_codes)
    # Share of the progress bar for the fit; the placing of the rest gets the remainder. A
    # placed code costs roughly a tenth of a fitted one (30 transform epochs against 200-500,
    # one neighbour query instead of a graph and no spectral start).
    fit_share = 1.0 if sample is None else fit_n / (fit_n + 0.1 * (n - fit_n))
    first = "" if _umap_has_run else " (the first run compiles UMAP: up to a minute)"
    of = "" if sample is None else f" (a seeded sample of {n:,})"
    report(0.05 * fit_share, f"UMAP: finding neighbours of {fit_n:,} codes{of}{first}", force=True)

    def on_epoch(done: int, total: int) -> None:
        if stop():
            raise ProjectionCancelled()
        report(fit_share * (0.2 + 0.8 * done / max(total, 1)), f"UMAP: layout, epoch {done}/{total}")

    # UMAP has no callbacks, but it drives a tqdm bar over the layout epochs, and tqdm_kwds is
    # public API: point the bar at a stream we parse, which gives progress and a cancel point.
    epochs = _TqdmEpochStream(on_epoch)
    seed = p["seed"]
    # One job: joblib refuses worker processes inside the projection process anyway.
    search = None
    if fit_n <= EXACT_KNN_MAX_POINTS:
        search = _ExactIndex(fit_codes)
        precomputed = search.neighbor_graph(p["n_neighbors"])
    reducer = umap.UMAP(
        precomputed_knn=precomputed if search is not None else (None, None, None),
        n_components=2,
        n_neighbors=p["n_neighbors"],
        min_dist=p["min_dist"],
        n_epochs=p["n_epochs"],
        random_state=seed,
        # A seed makes UMAP serial (reproducible); without one it uses every thread.
        n_jobs=1 if seed is not None else p["n_jobs"],
        # The same seed for placing the rest: a chunk lands the same way every time.
        transform_seed=42 if seed is None else seed,
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
        embedding = reducer.fit_transform(fit_codes)
    _umap_has_run = True
    if epochs.cancelled:  # raised inside tqdm but swallowed somewhere on the way out
        raise ProjectionCancelled()
    if sample is None:
        return embedding
    return _umap_place_rest(reducer, codes, sample, embedding, search, epochs, fit_share, report, stop)


def _umap_place_rest(reducer, codes, sample, fitted, search, epochs, fit_share, report, stop) -> np.ndarray:
    """Place the codes outside the fit ``sample`` with UMAP's ``transform``, chunk by chunk.

    umap-learn's transform needs a neighbour index of the fitted codes. Its own (pynndescent)
    compiles for 40-80 s in every process (numba cannot cache it), so the fit got exact
    neighbours and transform gets the same exact search (:class:`_ExactIndex`) in that index's
    place. Set here for small samples too: umap-learn would otherwise keep a dense chunk x sample
    distance matrix per call.
    """
    n = len(codes)
    # transform() runs n_epochs // 3 epochs when n_epochs is set; None gives umap-learn's own
    # choice for placing (30 epochs per chunk above 10,000 codes, 100 below), as before n_epochs.
    reducer.n_epochs = None
    if search is not None:  # else a sample past EXACT_KNN_MAX_POINTS: pynndescent's index is there
        reducer._knn_search_index = search
        reducer._small_data = False
    rest = np.setdiff1d(np.arange(n), sample, assume_unique=True)
    out = np.empty((n, 2), dtype=np.float32)
    out[sample] = fitted
    chunks = _chunks(rest, PLACE_CHUNK_POINTS)
    placed = 0
    for chunk in chunks:
        if stop():
            raise ProjectionCancelled()
        done_before = placed

        def on_epoch(done: int, total: int, done_before=done_before, size=len(chunk)) -> None:
            if stop():
                raise ProjectionCancelled()
            fraction = (done_before + size * done / max(total, 1)) / len(rest)
            report(fit_share + (1 - fit_share) * fraction,
                   f"UMAP: placing the other {len(rest):,} codes with transform, {done_before + size * done // max(total, 1):,} placed")

        epochs.set_on_epoch(on_epoch)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            out[chunk] = reducer.transform(codes[chunk])
        if epochs.cancelled:
            raise ProjectionCancelled()
        placed += len(chunk)
        report(fit_share + (1 - fit_share) * placed / len(rest),
               f"UMAP: placing the other {len(rest):,} codes with transform, {placed:,} placed")
    return out


def _chunks(indices: np.ndarray, size: int) -> list[np.ndarray]:
    """``indices`` in nearly equal consecutive pieces of at most ``size``."""
    count = max(1, math.ceil(len(indices) / size))
    return [piece for piece in np.array_split(indices, count) if len(piece)]


class _ExactIndex:
    """Exact Euclidean neighbours (scikit-learn) of the fitted codes, for UMAP's fit and for its
    ``transform``, which asks its search index for ``query(X, k, epsilon=...)`` -> (indices,
    distances) and whether its trees are angular."""

    _angular_trees = False

    def __init__(self, codes: np.ndarray):
        from sklearn.neighbors import NearestNeighbors

        self._codes = codes
        self._search = NearestNeighbors()
        self._search.fit(codes)

    def neighbor_graph(self, n_neighbors: int) -> tuple[np.ndarray, np.ndarray, "_ExactIndex"]:
        """UMAP's ``precomputed_knn`` of the fitted codes (see :func:`exact_neighbors`)."""
        indices, distances, _ = exact_neighbors(self._codes, n_neighbors, search=self._search)
        return indices, distances, self

    def query(self, data: np.ndarray, k: int, epsilon: float = 0.0) -> tuple[np.ndarray, np.ndarray]:
        k = min(int(k), len(self._codes))
        distances, indices = self._search.kneighbors(np.asarray(data, dtype=np.float32), n_neighbors=k)
        return indices.astype(np.int32), distances.astype(np.float32)


# Up to this many codes UMAP gets exact neighbours from scikit-learn instead of pynndescent:
# under a second for 10,000 x 20 and no numba at all, where pynndescent's NN-descent cannot be
# cached by numba ("uses dynamic globals": it takes the metric as a function argument) and cost
# 40-80 s of compilation in every new process. Exact neighbours are also what UMAP itself uses
# below 4,096 points.
EXACT_KNN_MAX_POINTS = 60_000


def exact_neighbors(codes: np.ndarray, n_neighbors: int, n_jobs: int = 1,
                    search=None) -> tuple[np.ndarray, np.ndarray, None]:
    """UMAP's ``precomputed_knn``: (indices, distances) of each code's ``n_neighbors`` nearest
    codes, Euclidean, the code itself first (as umap-learn requires), and no search index.
    ``search``: a scikit-learn NearestNeighbors already fitted on ``codes``, to reuse."""
    from sklearn.neighbors import NearestNeighbors

    k = min(int(n_neighbors), len(codes))
    if search is None:
        search = NearestNeighbors(n_jobs=n_jobs).fit(codes)
    # Without a query, scikit-learn leaves each point out of its own list even among duplicates.
    distances, indices = (search.kneighbors(n_neighbors=k - 1) if k > 1
                          else (np.zeros((len(codes), 0)), np.zeros((len(codes), 0), int)))
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

    def set_on_epoch(self, on_epoch: Callable[[int, int], None]) -> None:
        """The next bars (UMAP's transform drives one per call) report here instead."""
        self._on_epoch = on_epoch

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

    n = len(codes)
    sample = fit_sample(n, p)
    fit_codes = codes if sample is None else codes[sample]
    fit_n = len(fit_codes)
    # Progress: a placed code costs roughly a tenth of a fitted one (50 iterations against 750).
    fit_share = 1.0 if sample is None else fit_n / (fit_n + 0.1 * (n - fit_n))
    of = "" if sample is None else f" (a seeded sample of {n:,})"
    report(0.02 * fit_share, f"t-SNE: finding neighbours of {fit_n:,} codes{of}", force=True)
    monitor = _TsneMonitor(p["n_iter"], lambda f, text: report(f * fit_share, text), stop)
    tsne = openTSNE.TSNE(
        n_components=2,
        perplexity=p["perplexity"],
        n_iter=p["n_iter"],
        early_exaggeration_iter=EARLY_EXAGGERATION_ITER,
        initialization="pca",
        # FFT-interpolated gradients (Linderman et al. 2019): linear in N, but with a fixed
        # grid cost: on 300 codes 11 s against Barnes-Hut's 0.6 s.
        negative_gradient_method="fft" if fit_n >= TSNE_FFT_MIN_POINTS else "bh",
        **TSNE_SPEED_SETTINGS,
        neighbors="exact" if fit_n <= TSNE_EXACT_KNN_MAX_POINTS else "auto",
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
        embedding = tsne.fit(fit_codes)
    if sample is None:
        return np.asarray(embedding)
    return _tsne_place_rest(embedding, codes, sample, fit_share, report, stop)


# The t-SNE settings chosen for speed at equal quality (issue 12), measured on the 10,000 x 20
# MNIST codes of bench/codes.py, one thread, CPU seconds of the optimisation (load 3-10, so
# compare within a run); trustworthiness (k = 5, 2,000-point subsamples seeded 0 and 1):
#   FFT, ints_in_interval=1 (openTSNE's default): 50.9 s, 0.9894 / 0.9896
#   FFT, ints_in_interval=2:                      15.2 s, 0.9890 / 0.9888
#   FFT, ints_in_interval=2, exact neighbours:    15.9 s, 0.9893 / 0.9899
#   FFT, ints_in_interval=3 / 4:                  14.9 / 13.3 s, 0.9892 / 0.9888, 0.9892 / 0.9883
#   Barnes-Hut:                                   52.8 s, 0.9897 / 0.9893
# Why: after early exaggeration the map spreads to ~170 units across, and with one interval per
# unit openTSNE's FFT grid grows to 170 x 170 boxes (x 3 interpolation points each way): the
# last 100 iterations took 7 s per 50. Two units per interval keep it at 63 x 63 boxes; beyond
# that openTSNE's 50-box minimum takes over and little is gained. The grid's FFT is
# single-threaded in openTSNE (n_jobs only splits the attractive forces and the neighbours).
TSNE_SPEED_SETTINGS = {"ints_in_interval": 2}
# Up to this many fitted codes t-SNE's neighbours are exact (scikit-learn): 0.9-1.7 s on
# 10,000 x 20 against Annoy's 4.7-6.9 s, and exact. Above it openTSNE's own choice (Annoy).
TSNE_EXACT_KNN_MAX_POINTS = 60_000
# Placing codes into a fitted t-SNE map: openTSNE's transform() settings (Poličar et al. 2019:
# perplexity 5 among 25 neighbours, median initialisation, a small learning rate, clipped
# gradients), run here by hand per chunk so progress and cancelling work between chunks, but
# 50 iterations instead of its 250: the median start does most of the work. Measured placing
# 8,000 MNIST codes into a map of 2,000 (load 8): 5-NN label accuracy of the placed codes
# against the fitted ones 0.820 with no iteration, 0.843 after 50 (4.4 s), 0.847 after 250
# (26.9 s): five times the time for 0.004, and a million codes need every second.
TSNE_PLACE = {"perplexity": 5, "k": 25, "n_iter": 50, "learning_rate": 0.1, "exaggeration": 1.5,
              "momentum": 0.8, "max_grad_norm": 0.25}


def _tsne_place_rest(fitted, codes, sample, fit_share, report, stop) -> np.ndarray:
    """Place the codes outside the fit ``sample`` into the fitted openTSNE map ``fitted``
    (``prepare_partial`` + ``optimize``: each new code moves against the fixed map, the new codes
    ignore each other), chunk by chunk, with progress and a cancel check every 10 iterations."""
    n = len(codes)
    rest = np.setdiff1d(np.arange(n), sample, assume_unique=True)
    out = np.empty((n, 2), dtype=np.float32)
    out[sample] = np.asarray(fitted)
    placed = 0
    iters = TSNE_PLACE["n_iter"]
    for chunk in _chunks(rest, PLACE_CHUNK_POINTS):
        if stop():
            raise ProjectionCancelled()
        done_before = placed

        def on_step(iteration: int, error: float, embedding, done_before=done_before, size=len(chunk)) -> bool:
            if stop():
                raise ProjectionCancelled()  # raised, not returned: see _TsneMonitor
            fraction = (done_before + size * min(iteration, iters) / iters) / len(rest)
            report(fit_share + (1 - fit_share) * fraction,
                   f"t-SNE: placing the other {len(rest):,} codes, "
                   f"{done_before + size * min(iteration, iters) // iters:,} placed")
            return False

        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            partial = fitted.prepare_partial(codes[chunk], initialization="median", k=TSNE_PLACE["k"],
                                             perplexity=TSNE_PLACE["perplexity"])
            if stop():
                raise ProjectionCancelled()
            partial = partial.optimize(
                n_iter=iters, learning_rate=TSNE_PLACE["learning_rate"],
                exaggeration=TSNE_PLACE["exaggeration"], momentum=TSNE_PLACE["momentum"],
                max_grad_norm=TSNE_PLACE["max_grad_norm"], inplace=True, propagate_exception=True,
                callbacks=on_step, callbacks_every_iters=10,
            )
        out[chunk] = np.asarray(partial)
        placed += len(chunk)
        report(fit_share + (1 - fit_share) * placed / len(rest),
               f"t-SNE: placing the other {len(rest):,} codes, {placed:,} placed")
    return out


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

    Venna & Kaski (2001), computed as scikit-learn's ``sklearn.manifold.trustworthiness`` does
    (its distances, its neighbour search, its normalisation; tests/core/test_projections.py
    checks equality), but without its full argsort of the N x N distances: only the ranks of the
    map's k neighbours are needed, counted as 1 + the codes closer in the input space. On 2,000
    points: 0.03 s against 0.15 s, which every finished map waited for. The measure is quadratic,
    so at most ``max_points`` points (a seeded random subset) are scored. ``n_neighbors`` is
    lowered for tiny sets, as the measure needs ``n_neighbors < N / 2``.
    """

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
    return _trustworthiness_by_ranks(codes.astype(np.float64), embedding.astype(np.float64), k)


def _trustworthiness_by_ranks(codes: np.ndarray, embedding: np.ndarray, k: int) -> float:
    """scikit-learn's trustworthiness formula; a neighbour's rank counted instead of sorted for."""
    from sklearn.metrics import pairwise_distances
    from sklearn.neighbors import NearestNeighbors

    n = len(codes)
    distances = pairwise_distances(codes)
    np.fill_diagonal(distances, np.inf)   # a point is not its own neighbour (as scikit-learn)
    map_neighbors = NearestNeighbors(n_neighbors=k).fit(embedding).kneighbors(return_distance=False)
    to_neighbors = np.take_along_axis(distances, map_neighbors, axis=1)                 # (n, k)
    # rank of j among i's input-space neighbours (1 = nearest), one row of i at a time per k
    ranks = 1 + np.stack([(distances < to_neighbors[:, [j]]).sum(axis=1) for j in range(k)], axis=1)
    penalty = np.clip(ranks - k, 0, None).sum(dtype=np.float64)
    return float(1.0 - penalty * (2.0 / (n * k * (2.0 * n - 3.0 * k - 1.0))))


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

