"""Projections (PCA, UMAP, t-SNE) as pure functions, and the spawned process that runs them.

UMAP's first fit in a fresh process compiles ~30 s of numba code, so UMAP runs once here, in the
service, on 300 points. Everything else uses PCA and t-SNE on a few hundred or thousand codes.
"""

from __future__ import annotations

import multiprocessing
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import psutil
import pytest

from app.core.errors import LatentExplorerError, ProjectionError
from app.core.projection_service import ProjectionService, numba_cache_dir
from app.core.projections import (
    ALL_METHODS,
    METHODS,
    ProjectionCancelled,
    FitInfo,
    check_codes,
    fit_sample,
    fit_sample_size,
    project,
    project_with_info,
    resolve_params,
    trustworthiness,
)

ROOT = Path(__file__).resolve().parents[2]
TERMINAL = ("done", "error", "cancelled")


# ----------------------------------------------------------------------------------------------
# Data and helpers
# ----------------------------------------------------------------------------------------------


def clusters(n_per: int = 100, dims: int = 10, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Three well separated Gaussian blobs: (3 n_per, dims) float32 codes and their labels."""
    rng = np.random.default_rng(seed)
    centers = rng.normal(scale=8.0, size=(3, dims))
    codes = np.concatenate([c + rng.normal(size=(n_per, dims)) for c in centers]).astype(np.float32)
    return codes, np.repeat(np.arange(3), n_per)


def knn_accuracy(embedding: np.ndarray, labels: np.ndarray, k: int = 5) -> float:
    """Leave-one-out k-NN accuracy of the labels in the 2-D map: does it keep the clusters apart?"""
    distances = ((embedding[:, None, :] - embedding[None, :, :]) ** 2).sum(-1)
    np.fill_diagonal(distances, np.inf)
    neighbours = np.argsort(distances, axis=1)[:, :k]
    votes = np.array([np.bincount(labels[row], minlength=3).argmax() for row in neighbours])
    return float((votes == labels).mean())


def wait_for(service: ProjectionService, job_id: int, until, timeout: float = 60.0) -> list[tuple]:
    """Poll until ``until(event)`` holds for an event of ``job_id``; returns that job's events."""
    seen: list[tuple] = []
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        for event in service.poll(timeout=0.5):
            if event[1] == job_id:
                seen.append(event)
                if until(event):
                    return seen
    raise AssertionError(f"job {job_id}: condition not met within {timeout} s; saw {seen[-3:]}")


def finished(event: tuple) -> bool:
    return event[0] in TERMINAL


def spawned_children() -> list[psutil.Process]:
    """Our multiprocessing children, not counting multiprocessing's own resource tracker."""
    result = []
    for child in psutil.Process().children(recursive=True):
        try:
            cmdline = " ".join(child.cmdline())
        except (psutil.NoSuchProcess, psutil.ZombieProcess, psutil.AccessDenied):
            continue
        if "resource_tracker" not in cmdline:
            result.append(child)
    return result


def gone(pid: int) -> bool:
    try:
        return psutil.Process(pid).status() == psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return True


@pytest.fixture(scope="module")
def service():
    with ProjectionService() as svc:
        yield svc


# ----------------------------------------------------------------------------------------------
# Pure functions
# ----------------------------------------------------------------------------------------------


def test_module_imports_no_heavy_library():
    code = (
        "import sys, app.core.projections, app.core.projection_service\n"
        "heavy = [m for m in ('umap', 'openTSNE', 'numba', 'sklearn', 'torch', 'PySide6') if m in sys.modules]\n"
        "print(','.join(heavy))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == ""


def test_methods_and_reference_method():
    assert METHODS == ("pca", "umap", "tsne")
    assert "tsne-sklearn" in ALL_METHODS
    assert issubclass(ProjectionError, LatentExplorerError)
    assert not issubclass(ProjectionCancelled, LatentExplorerError)


def test_pca_shape_dtype_and_determinism():
    codes, _ = clusters()
    first = project(codes.astype(np.float64), "pca")
    second = project(codes, "pca")
    assert first.shape == (300, 2) and first.dtype == np.float32
    np.testing.assert_allclose(first, second, rtol=1e-4, atol=1e-4)


def test_pca_of_a_2d_latent_is_fine():
    codes, _ = clusters(dims=2)
    embedding = project(codes, "pca")
    assert embedding.shape == (300, 2)
    # A rotation of the codes: pairwise distances are kept.
    assert trustworthiness(codes, embedding) > 0.999


def test_pca_trustworthiness_near_one_on_a_plane_in_10d():
    rng = np.random.default_rng(1)
    plane = rng.uniform(-1, 1, size=(1000, 2))
    basis = np.linalg.qr(rng.normal(size=(10, 10)))[0][:2]  # two orthonormal directions in 10-D
    codes = (plane @ basis + 1e-4 * rng.normal(size=(1000, 10))).astype(np.float32)
    assert trustworthiness(codes, project(codes, "pca")) > 0.99


def test_tsne_separates_three_clusters_and_reports_progress():
    codes, labels = clusters()
    progress: list[tuple[float, str]] = []
    embedding = project(codes, "tsne", {"seed": 0}, progress=lambda f, t: progress.append((f, t)))
    assert embedding.shape == (300, 2) and embedding.dtype == np.float32
    assert knn_accuracy(embedding, labels) > 0.9
    fractions = [f for f, _ in progress]
    assert fractions == sorted(fractions) and fractions[0] == 0.0 and fractions[-1] == 1.0
    assert all(isinstance(text, str) and text for _, text in progress)


def test_sklearn_tsne_reference_separates_three_clusters():
    codes, labels = clusters()
    embedding = project(codes, "tsne-sklearn", {"seed": 0, "n_iter": 250})
    assert embedding.shape == (300, 2) and embedding.dtype == np.float32
    assert knn_accuracy(embedding, labels) > 0.9


def test_tsne_stops_when_asked():
    codes, _ = clusters(n_per=200)
    calls = {"n": 0}
    progress: list[float] = []

    def should_stop() -> bool:
        calls["n"] += 1
        return calls["n"] > 3  # the start check, then two optimisation callbacks

    start = time.perf_counter()
    with pytest.raises(ProjectionCancelled):
        project(codes, "tsne", {"n_iter": 5000}, progress=lambda f, t: progress.append(f), should_stop=should_stop)
    assert time.perf_counter() - start < 30  # 5,250 iterations would take far longer
    assert calls["n"] == 4


def test_should_stop_before_starting():
    codes, _ = clusters()
    with pytest.raises(ProjectionCancelled):
        project(codes, "pca", should_stop=lambda: True)


@pytest.mark.parametrize("method", ALL_METHODS)
def test_one_dimensional_latent_is_shown_on_a_line(method):
    z = np.linspace(-2, 2, 7, dtype=np.float32)[:, None]  # too few for UMAP/t-SNE: not needed
    notes: list[str] = []
    embedding = project(z, method, progress=lambda f, t: notes.append(t))
    assert embedding.shape == (7, 2) and embedding.dtype == np.float32
    np.testing.assert_array_equal(embedding[:, 0], z[:, 0])
    np.testing.assert_array_equal(embedding[:, 1], 0)
    assert any("1-D" in note for note in notes)


def test_check_codes_counts_nan_values():
    codes, _ = clusters()
    codes[:4, :3] = np.nan
    with pytest.raises(ProjectionError, match="12 NaN values .* diverged; retrain with a lower learning rate"):
        check_codes(codes, "pca", None)


def test_check_codes_reports_infinite_values():
    codes, _ = clusters()
    codes[0, 0] = np.inf
    codes[1, 1] = np.nan
    with pytest.raises(ProjectionError, match="1 NaN and 1 infinite values"):
        project(codes, "tsne")


@pytest.mark.parametrize(
    ("codes", "method", "params", "pattern"),
    [
        (np.zeros((0, 4)), "pca", None, "no codes"),
        (np.ones((1, 4)), "pca", None, "single code"),
        (np.ones((50, 4)), "pca", None, "all 50 codes are identical.*collapsed"),
        (np.arange(10 * 4).reshape(10, 4), "umap", None, "n_neighbors=15 needs more than 15 codes, got 10; lower n_neighbors to at most 9"),
        (np.arange(10 * 4).reshape(10, 4), "umap", {"n_neighbors": 5}, None),
        (np.arange(50 * 4).reshape(50, 4), "tsne", None, "perplexity 30 needs more than 90 codes, got 50; lower the perplexity to at most 16"),
        (np.arange(50 * 4).reshape(50, 4), "tsne-sklearn", {"perplexity": 16}, None),
        (np.arange(3 * 4).reshape(3, 4), "tsne", None, "use PCA"),
        (np.arange(12).reshape(3, 2, 2), "pca", None, "table"),
        (np.array([["a", "b"], ["c", "d"]]), "pca", None, "must be numbers"),
        (np.arange(8).reshape(4, 2), "isomap", None, "unknown projection method"),
        (np.arange(8).reshape(4, 2), "pca", {"perplexty": 5}, "unknown projection setting 'perplexty'"),
        (np.arange(8).reshape(4, 2), "umap", {"n_neighbors": 1}, "n_neighbors must be"),
        (np.arange(8).reshape(4, 2), "umap", {"min_dist": 2.0}, "min_dist must be"),
        (np.arange(8).reshape(4, 2), "tsne", {"perplexity": 0}, "perplexity must be"),
        (np.arange(8).reshape(4, 2), "tsne", {"n_jobs": 0}, "n_jobs"),
        (np.arange(8).reshape(4, 2), "umap", {"fit_max_points": 100}, "fit_max_points must be a whole number of at least 500"),
        (np.arange(8).reshape(4, 2), "tsne", {"fit_max_points": 2.5e4}, "fit_max_points must be"),
        (np.arange(1000 * 4).reshape(1000, 4), "umap", {"n_neighbors": 600, "fit_max_points": 500},
         r"n_neighbors=600 needs more than 600 codes in its fit sample \(fit_max_points=500\), got 500; "
         "lower n_neighbors to at most 499 or raise fit_max_points"),
        (np.arange(1000 * 4).reshape(1000, 4), "tsne", {"perplexity": 200, "fit_max_points": 500},
         "in its fit sample.*lower the perplexity to at most 166 or raise fit_max_points"),
    ],
)
def test_check_codes_messages(codes, method, params, pattern):
    if pattern is None:
        check_codes(codes, method, params)
        return
    with pytest.raises(ProjectionError, match=pattern) as info:
        check_codes(codes, method, params)
    assert "\n" not in str(info.value)


def test_identical_one_dimensional_codes_are_still_a_collapse():
    with pytest.raises(ProjectionError, match="identical"):
        project(np.full((20, 1), 0.5, dtype=np.float32), "umap")


def test_resolve_params_defaults_and_overrides():
    params = resolve_params("umap", {"n_neighbors": np.int64(30), "seed": 3, "min_dist": None})
    assert params["n_neighbors"] == 30 and params["seed"] == 3 and params["min_dist"] == 0.1
    assert resolve_params("tsne")["perplexity"] == 30.0


def test_trustworthiness_subsamples_large_sets_and_checks_inputs():
    rng = np.random.default_rng(0)
    codes = rng.normal(size=(6000, 3)).astype(np.float32)
    start = time.perf_counter()
    value = trustworthiness(codes, codes[:, :2])
    assert 0.5 < value <= 1.0
    assert time.perf_counter() - start < 20
    assert trustworthiness(codes[:6], codes[:6, :2], n_neighbors=5) <= 1.0  # k lowered to 2
    with pytest.raises(ProjectionError, match="map has 5 points"):
        trustworthiness(codes[:6], codes[:5, :2])


@pytest.mark.parametrize("n, dims, k", [(300, 10, 5), (1000, 20, 5), (120, 3, 12)])
def test_trustworthiness_equals_scikit_learns(n, dims, k):
    """Ours counts ranks instead of sorting; the value must be scikit-learn's, on clustered codes
    and maps good and bad."""
    from sklearn.manifold import trustworthiness as sklearn_trustworthiness

    codes, _ = blobs(n, dims=dims, seed=n)
    rng = np.random.default_rng(k)
    for embedding in (codes[:, :2], codes[:, :2] + rng.normal(scale=3.0, size=(n, 2)), rng.normal(size=(n, 2))):
        ours = trustworthiness(codes, embedding, n_neighbors=k, max_points=n)
        reference = sklearn_trustworthiness(codes.astype(np.float64), embedding.astype(np.float64), n_neighbors=k)
        assert ours == pytest.approx(reference, abs=1e-12)


# ----------------------------------------------------------------------------------------------
# The projection process
# ----------------------------------------------------------------------------------------------


def test_service_pca_done_event(service):
    codes, _ = clusters()
    job = service.submit(codes, "pca")
    events = wait_for(service, job, finished)
    assert events[0][0] == "progress" and events[0][2] == 0.0
    kind, job_id, embedding, seconds, trust, info = events[-1]
    assert (kind, job_id) == ("done", job)
    # How many codes the map was fitted on travels with it (all of them here: no caption).
    assert info == {"method": "pca", "n_points": 300, "fit_points": 300, "placed_with": "", "caption": ""}
    assert isinstance(embedding, np.ndarray) and embedding.shape == (300, 2) and embedding.dtype == np.float32
    assert isinstance(seconds, float) and seconds >= 0
    np.testing.assert_allclose(embedding, project(codes, "pca"), rtol=1e-4, atol=1e-4)
    # trustworthiness comes with the map, computed in the child (never on the window's threads)
    assert trust == pytest.approx(trustworthiness(codes, embedding), abs=1e-9)
    # The child loads no Qt (it does not even re-run the parent's __main__) and uses our cache.
    assert service.child_info["qt_modules"] == []
    assert service.child_info["numba_cache_dir"] == str(numba_cache_dir())


def test_service_error_event_for_nan_codes_and_keeps_going(service):
    codes, _ = clusters()
    codes[0, 0] = np.nan
    pid = service.pid
    job = service.submit(codes, "tsne")
    kind, job_id, message = wait_for(service, job, finished)[-1]
    assert (kind, job_id) == ("error", job)
    assert "1 NaN values" in message and "\n" not in message
    with pytest.raises(ProjectionError, match="NaN"):
        service.run_sync(codes, "pca", timeout=60)
    assert service.run_sync(codes[1:], "pca", timeout=60).shape == (299, 2)
    assert service.pid == pid


def test_service_unknown_method_is_an_error_event(service):
    job = service.submit(np.ones((5, 2)), "mds")
    assert wait_for(service, job, finished, timeout=5)[-1][0] == "error"


def test_service_cancels_running_tsne_at_its_next_callback(service):
    codes = np.random.default_rng(0).normal(size=(2000, 10)).astype(np.float32)
    pid = service.pid
    job = service.submit(codes, "tsne", {"n_iter": 5000})
    wait_for(service, job, lambda e: e[0] == "progress" and e[2] > 0.1, timeout=120)  # optimising
    start = time.monotonic()
    service.cancel(job)
    assert wait_for(service, job, finished, timeout=60)[-1] == ("cancelled", job)
    assert time.monotonic() - start < 15
    assert service.pid == pid  # stopped from inside: the child (and its warm state) lives on


def test_service_cancelling_a_queued_job_reports_at_once(service):
    slow = service.submit(np.random.default_rng(1).normal(size=(2000, 10)).astype(np.float32), "tsne", {"n_iter": 5000})
    queued = service.submit(clusters()[0], "pca")
    service.cancel(queued)
    assert ("cancelled", queued) in service.poll()
    service.cancel(slow)
    assert wait_for(service, slow, finished, timeout=60)[-1] == ("cancelled", slow)
    # Nothing more about the queued job turns up later.
    after = service.submit(clusters()[0], "pca")
    wait_for(service, after, finished)
    assert all(event[1] != queued for event in service.poll(timeout=0.5))


def test_service_cancel_uninterruptible_job_restarts_the_child(service):
    codes = np.random.default_rng(2).normal(size=(3000, 10)).astype(np.float32)
    old_pid = service.pid
    job = service.submit(codes, "tsne-sklearn", {"n_iter": 5000})
    # behind it (t-SNE ranks with t-SNE; a PCA would overtake it): must survive the restart
    waiting = service.submit(clusters()[0], "tsne")
    wait_for(service, job, lambda e: e[0] == "progress", timeout=60)
    service.cancel(job)
    events = service.poll()
    assert ("cancelled", job) in events
    assert gone(old_pid)
    assert service.alive and service.pid != old_pid
    done = wait_for(service, waiting, finished, timeout=120)[-1]
    assert done[0] == "done" and done[2].shape == (300, 2)


def test_service_runs_the_fastest_waiting_job_first():
    from collections import deque

    from app.core.projection_service import _take_next_job

    def order(methods, umap_ready):
        jobs = deque((i, "path", m, {}) for i, m in enumerate(methods))
        return [_take_next_job(jobs, umap_ready)[2] for _ in methods]

    assert order(["tsne", "umap", "pca"], umap_ready=True) == ["pca", "umap", "tsne"]
    assert order(["umap", "tsne", "pca"], umap_ready=False) == ["pca", "tsne", "umap"]


@pytest.mark.skipif(sys.platform == "win32", reason="SIGKILL is POSIX")
def test_killed_child_reports_error_and_next_submit_works():
    codes = np.random.default_rng(3).normal(size=(2000, 10)).astype(np.float32)
    with ProjectionService() as service:
        job = service.submit(codes, "tsne", {"n_iter": 5000})
        wait_for(service, job, lambda e: e[0] == "progress", timeout=60)
        old_pid = service.pid
        os.kill(old_pid, signal.SIGKILL)
        kind, job_id, message = wait_for(service, job, finished, timeout=30)[-1]
        assert (kind, job_id) == ("error", job)
        assert "stopped unexpectedly" in message and "SIGKILL" in message
        assert not service.alive
        embedding = service.run_sync(clusters()[0], "pca", timeout=60)
        assert embedding.shape == (300, 2) and service.pid != old_pid


def test_run_sync_timeout_cancels_and_raises():
    codes = np.random.default_rng(4).normal(size=(2000, 10)).astype(np.float32)
    with ProjectionService() as service:
        with pytest.raises(ProjectionError, match="did not finish within 1 s"):
            service.run_sync(codes, "tsne", {"n_iter": 5000}, timeout=1)
        assert service.pending == []


def test_close_leaves_no_process_and_no_files():
    service = ProjectionService()
    service.start()
    service.run_sync(clusters()[0], "pca", timeout=60)
    pid = service.pid
    tmpdir = Path(service._tmpdir)
    assert tmpdir.is_dir()
    service.warmup()  # busy compiling UMAP: close must not wait for it
    service.submit(clusters()[0], "tsne")
    start = time.monotonic()
    service.close()
    assert time.monotonic() - start < 5
    assert not service.alive and gone(pid)
    assert all(p.pid != pid for p in multiprocessing.active_children())
    assert all(p.pid != pid for p in spawned_children())
    assert not tmpdir.exists()
    service.close()  # idempotent
    with pytest.raises(ProjectionError, match="closed"):
        service.start()


@pytest.mark.slow
def test_service_umap_once():
    """The one UMAP fit of the suite: the first in a fresh process, numba compilation included."""
    codes, labels = clusters()
    progress: list[tuple[float, str]] = []
    with ProjectionService() as service:
        embedding = service.run_sync(codes, "umap", {"n_neighbors": 15}, timeout=300,
                                     progress=lambda f, t: progress.append((f, t)))
        assert embedding.shape == (300, 2) and embedding.dtype == np.float32
        assert knn_accuracy(embedding, labels) > 0.9
        assert any("epoch" in text for _, text in progress)  # real progress from the layout

        # Cancelling during the layout stops at the next epoch: the warm child survives.
        pid = service.pid
        job = service.submit(np.random.default_rng(5).normal(size=(2000, 10)).astype(np.float32), "umap")
        wait_for(service, job, lambda e: e[0] == "progress" and "epoch" in e[3], timeout=300)
        service.cancel(job)
        assert wait_for(service, job, finished, timeout=60)[-1] == ("cancelled", job)
        assert service.pid == pid
    assert gone(pid)


# ----------------------------------------------------------------------------------------------
# Reproducible maps, exact neighbours, numba's cache (issue 11 / issue 12)
# ----------------------------------------------------------------------------------------------


def test_seeded_umap_and_tsne_repeat_exactly_with_their_trustworthiness():
    codes, _ = clusters(n_per=70)
    for method in ("umap", "tsne"):
        first = project(codes, method, {"seed": 7})
        second = project(codes, method, {"seed": 7})
        np.testing.assert_array_equal(first, second)
        assert trustworthiness(codes, first, seed=7) == trustworthiness(codes, second, seed=7)
    other = project(codes, "tsne", {"seed": 8})
    assert not np.array_equal(other, project(codes, "tsne", {"seed": 7}))


def test_exact_neighbours_put_each_code_first_even_among_duplicates():
    from sklearn.neighbors import NearestNeighbors

    from app.core.projections import exact_neighbors

    codes, _ = clusters(n_per=40)
    codes[5] = codes[6]   # a duplicate pair: each must still list itself first
    indices, distances, index = exact_neighbors(codes, 15)
    assert index is None and indices.shape == distances.shape == (120, 15)
    np.testing.assert_array_equal(indices[:, 0], np.arange(120))
    assert (distances[:, 0] == 0).all() and (np.diff(distances, axis=1) >= -1e-6).all()
    reference = NearestNeighbors(n_neighbors=15).fit(codes).kneighbors(codes)[0]
    np.testing.assert_allclose(np.sort(distances, axis=1), reference, atol=1e-4)


def test_numba_caching_is_switched_on_once_per_function():
    from numba.core.caching import NullCache
    from numba.core.dispatcher import Dispatcher

    from app.core.projections import enable_numba_caching, import_umap

    import_umap()
    assert enable_numba_caching(("umap", "pynndescent")) == 0   # import_umap did it already
    from umap import layouts

    serial = layouts._nb_optimize_layout_euclidean_single_epoch
    parallel = layouts._nb_optimize_layout_euclidean_single_epoch_parallel
    assert not isinstance(serial._cache, NullCache) and isinstance(parallel._cache, NullCache)
    assert isinstance(layouts.clip, Dispatcher) and not isinstance(layouts.clip._cache, NullCache)


# ----------------------------------------------------------------------------------------------
# Large inputs: UMAP and t-SNE fitted on a seeded sample, the rest placed into it (issue 14)
# ----------------------------------------------------------------------------------------------


def blobs(n: int, n_classes: int = 5, dims: int = 10, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """``n`` codes in ``n_classes`` well separated Gaussian blobs, with their labels."""
    rng = np.random.default_rng(seed)
    centers = rng.normal(scale=8.0, size=(n_classes, dims))
    labels = rng.integers(0, n_classes, n)
    return (centers[labels] + rng.normal(size=(n, dims))).astype(np.float32), labels


def test_fit_sample_size_and_the_seeded_sample():
    assert resolve_params("umap")["fit_max_points"] == 20_000
    assert fit_sample_size("umap", 1_000_000) == 20_000
    assert fit_sample_size("tsne", 1_000_000, {"fit_max_points": 5000}) == 5000
    assert fit_sample_size("tsne", 300) == 300
    assert fit_sample_size("pca", 1_000_000) == 1_000_000   # PCA always uses every code
    assert fit_sample_size("tsne-sklearn", 1_000_000) == 1_000_000
    params = resolve_params("umap", {"fit_max_points": 2000, "seed": 4})
    assert fit_sample(2000, params) is None
    sample = fit_sample(50_000, params)
    assert len(sample) == 2000 and len(np.unique(sample)) == 2000 and (np.diff(sample) > 0).all()
    np.testing.assert_array_equal(sample, fit_sample(50_000, params))      # seeded: repeats
    assert not np.array_equal(sample, fit_sample(50_000, {**params, "seed": 5}))
    info = FitInfo("umap", 1_000_000, 20_000)
    assert info.sampled and info.caption() == (
        "UMAP fitted on 20,000 of 1,000,000 codes (a seeded sample); the rest placed with UMAP's transform")
    assert FitInfo("tsne", 300, 300).caption() == "" and FitInfo("tsne", 300, 300).placed_with == ""


@pytest.mark.slow
@pytest.mark.parametrize("method", ["umap", "tsne"])
def test_large_input_is_fitted_on_a_sample_and_the_rest_placed(method):
    n, cap = 50_000, 2000
    codes, labels = blobs(n)
    params = {"seed": 3, "fit_max_points": cap}
    texts: list[str] = []
    embedding, info = project_with_info(codes, method, params, progress=lambda f, t: texts.append(t))
    assert embedding.shape == (n, 2) and embedding.dtype == np.float32 and np.isfinite(embedding).all()
    assert (info.n_points, info.fit_points, info.sampled) == (n, cap, True)
    assert f"fitted on 2,000 of 50,000 codes" in info.caption()
    assert any("placing the other 48,000 codes" in t for t in texts)

    # The sampled codes are exactly where a direct fit on the sample puts them.
    sample = fit_sample(n, resolve_params(method, params))
    np.testing.assert_array_equal(embedding[sample], project(codes[sample], method, params))
    # The placed codes land in their own cluster: their 5 nearest fitted codes in the map agree.
    from sklearn.neighbors import KNeighborsClassifier

    rest = np.setdiff1d(np.arange(n), sample)
    agreement = KNeighborsClassifier(5).fit(embedding[sample], labels[sample]).score(embedding[rest], labels[rest])
    assert agreement > 0.98


@pytest.mark.parametrize("method", ["umap", "tsne"])
def test_cancelling_while_placing_the_rest(method):
    codes, _ = blobs(20_000)
    placing = {"seen": 0}

    def progress(fraction: float, text: str) -> None:
        if "placing" in text:
            placing["seen"] += 1

    def should_stop() -> bool:
        return placing["seen"] > 0

    start = time.perf_counter()
    with pytest.raises(ProjectionCancelled):
        project(codes, method, {"seed": 0, "fit_max_points": 500}, progress=progress, should_stop=should_stop)
    assert placing["seen"] == 1   # stopped at the first check after placing began
    assert time.perf_counter() - start < 300


def test_below_the_fit_cap_nothing_changes():
    codes, _ = clusters(n_per=200)
    for method in ("umap", "tsne"):
        default, info = project_with_info(codes, method, {"seed": 2})
        capped = project(codes, method, {"seed": 2, "fit_max_points": len(codes)})
        np.testing.assert_array_equal(default, capped)
        assert info == FitInfo(method, 600, 600) and info.caption() == ""


def test_service_done_event_says_the_map_was_fitted_on_a_sample(service):
    codes, _ = blobs(3000)
    job = service.submit(codes, "tsne", {"seed": 0, "fit_max_points": 500, "perplexity": 10})
    event = wait_for(service, job, finished, timeout=300)[-1]
    assert event[0] == "done" and event[2].shape == (3000, 2)
    info = event[5]
    assert (info["n_points"], info["fit_points"], info["method"]) == (3000, 500, "tsne")
    assert info["caption"] == ("t-SNE fitted on 500 of 3,000 codes (a seeded sample); the rest placed with "
                               "openTSNE's prepare_partial + optimize")
