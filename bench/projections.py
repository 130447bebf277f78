"""PCA, UMAP and t-SNE of 10,000 latent codes (20-d) through the app's projection process, beside
the same libraries called directly in this process with the same settings, and UMAP's first-fit
cost in a fresh projection process.

The codes: the MNIST test set encoded by the 784-400-20 VAE after 3 epochs (bench/codes.py).
Settings are the window's defaults (projection_view.py / projections.DEFAULT_PARAMS): UMAP
n_neighbors 15, min_dist 0.1, seed 0 (the run's seed; serial, as umap-learn makes seeded runs),
exact scikit-learn neighbours; openTSNE perplexity 30, 250 + 500 iterations, PCA initialisation,
FFT gradients, seed 0, n_jobs = every core; scikit-learn PCA with 2 components. Trustworthiness
(projections.trustworthiness, 2,000-point seeded subsample, k = 5) is printed beside each map.

- umap_cold_s: a new ProjectionService (a freshly spawned child, no warm-up asked) from start() to
  the UMAP embedding back in this process. The numba on-disk cache is warm: the app has run before.
- "app" times: ProjectionService.submit() to the "done" event received here, so the transfer both
  ways (codes to a .npy file, the embedding back through the pipe) is included; the child's own
  compute seconds are printed beside them. "direct" times: the library's fit in this process.
- The app and direct runs ALTERNATE (direct first, then app; the next round the other way round),
  after an untimed warm-up on each side (UMAP: the cold fits above; PCA and t-SNE: a fit of 500
  codes, for the imports); overhead ratio = median app / median direct.

    python bench/projections.py [--umap-rounds 2] [--tsne-rounds 3] [--quick]

Prints a table and, last, one line of JSON with the figures.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import time
import warnings
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import numpy as np  # noqa: E402

from bench.codes import mnist_codes  # noqa: E402
from bench.common import machine_line, print_table  # noqa: E402
from app.core import projections  # noqa: E402
from app.core.projection_service import ProjectionService, numba_cache_dir  # noqa: E402


def load_text() -> str:
    one, five, fifteen = os.getloadavg()
    return f"load average {one:.2f} / {five:.2f} / {fifteen:.2f} (1/5/15 min)"


def app_params(method: str) -> dict:
    """What the projection view submits for 10,000 codes."""
    if method == "umap":
        return {"n_neighbors": 15, "min_dist": 0.1, "seed": 0}
    if method == "tsne":
        return {"perplexity": 30.0, "seed": 0}
    return {"seed": 0}


def direct(method: str, codes: np.ndarray) -> np.ndarray:
    """The library itself, with the settings projections.py passes, minus progress and cancelling."""
    p = projections.resolve_params(method, app_params(method))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        if method == "pca":
            from sklearn.decomposition import PCA
            return PCA(n_components=2, random_state=0).fit_transform(codes)
        if method == "umap":
            umap = projections.import_umap()
            knn = projections.exact_neighbors(codes, p["n_neighbors"])
            return umap.UMAP(n_components=2, n_neighbors=p["n_neighbors"], min_dist=p["min_dist"],
                             n_epochs=p["n_epochs"], random_state=p["seed"], n_jobs=1, precomputed_knn=knn, verbose=False).fit_transform(codes)
        import openTSNE
        return np.asarray(openTSNE.TSNE(n_components=2, perplexity=p["perplexity"], n_iter=p["n_iter"],
                                        early_exaggeration_iter=projections.EARLY_EXAGGERATION_ITER,
                                        initialization="pca", n_jobs=p["n_jobs"], random_state=p["seed"],
                                        negative_gradient_method="fft", verbose=False,
                                        **projections.TSNE_SPEED_SETTINGS, neighbors="exact").fit(codes))


TRUST: dict[str, float] = {}   # method -> trustworthiness of its last map, computed in the child


def through_service(service: ProjectionService, method: str, codes: np.ndarray) -> tuple[float, float]:
    """(wall seconds from submit to the result received here, the child's own seconds)."""
    start = time.perf_counter()
    job = service.submit(codes, method, app_params(method))
    while True:
        for event in service.poll(timeout=0.05):
            if event[1] != job:
                continue
            if event[0] == "done":
                TRUST[method] = float(event[4])
                return time.perf_counter() - start, float(event[3])
            if event[0] in ("error", "cancelled"):
                raise SystemExit(f"{method} failed in the projection process: {event}")


def library_defaults(method: str, codes: np.ndarray) -> tuple[float, float]:
    """(seconds, trustworthiness) of the library with its own defaults where projections.py
    chose others for speed: umap-learn's 500 layout epochs up to 10,000 codes, openTSNE's
    ints_in_interval=1 and Annoy neighbours. The speed settings are worth what this shows."""
    p = projections.resolve_params(method, app_params(method))
    start = time.perf_counter()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        if method == "umap":
            umap = projections.import_umap()
            knn = projections.exact_neighbors(codes, p["n_neighbors"])
            embedding = umap.UMAP(n_components=2, n_neighbors=p["n_neighbors"], min_dist=p["min_dist"],
                                  random_state=p["seed"], n_jobs=1, precomputed_knn=knn,
                                  verbose=False).fit_transform(codes)
        else:
            import openTSNE
            embedding = np.asarray(openTSNE.TSNE(
                n_components=2, perplexity=p["perplexity"], n_iter=p["n_iter"],
                early_exaggeration_iter=projections.EARLY_EXAGGERATION_ITER, initialization="pca",
                n_jobs=p["n_jobs"], random_state=p["seed"], negative_gradient_method="fft",
                verbose=False).fit(codes))
    seconds = time.perf_counter() - start
    return seconds, projections.trustworthiness(codes, embedding, seed=0)


def timed_direct(method: str, codes: np.ndarray) -> float:
    start = time.perf_counter()
    direct(method, codes)
    return time.perf_counter() - start


def main(argv=None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--umap-rounds", type=int, default=2)
    parser.add_argument("--tsne-rounds", type=int, default=3)   # one ~15 s timing a side gave ratios of 0.87-1.15
    parser.add_argument("--pca-rounds", type=int, default=5)
    parser.add_argument("--quick", action="store_true",
                        help="400 stand-in codes, PCA and t-SNE only, no UMAP (smoke test; not a measurement)")
    args = parser.parse_args(argv)
    if args.quick:   # clustered stand-in codes: no model to train
        rng = np.random.default_rng(0)
        codes = rng.normal(size=(10, 20))[rng.integers(0, 10, 400)] + rng.normal(scale=0.3, size=(400, 20))
    else:
        codes, _ = mnist_codes()
    codes = np.ascontiguousarray(codes, dtype=np.float32)
    rounds = {"pca": args.pca_rounds, "umap": args.umap_rounds, "tsne": args.tsne_rounds}
    methods = ("pca", "tsne") if args.quick else ("pca", "umap", "tsne")
    load_before = load_text()

    service = ProjectionService()
    cold: dict[str, float] = {}
    times: dict[str, dict[str, list[float]]] = {m: {"app": [], "direct": [], "child": []} for m in methods}
    try:
        start = time.perf_counter()
        service.start()
        if "umap" in methods:
            _, cold["umap_child"] = through_service(service, "umap", codes)   # also warms this child up
            cold["umap"] = time.perf_counter() - start
            start = time.perf_counter()
            direct("umap", codes)                                           # warms this process up
            cold["umap_direct"] = time.perf_counter() - start
        for method in methods:
            if method != "umap":   # untimed warm-up of both sides on a few codes (imports, caches)
                through_service(service, method, codes[:500] if len(codes) > 500 else codes)
                direct(method, codes[:500] if len(codes) > 500 else codes)
            for r in range(max(1, rounds[method])):
                sides = ("direct", "app") if r % 2 == 0 else ("app", "direct")
                for side in sides:
                    if side == "direct":
                        times[method]["direct"].append(timed_direct(method, codes))
                    else:
                        wall, child = through_service(service, method, codes)
                        times[method]["app"].append(wall)
                        times[method]["child"].append(child)
    finally:
        service.close()
    defaults = {} if args.quick else {m: library_defaults(m, codes) for m in ("umap", "tsne")}

    med = {m: {side: statistics.median(v) for side, v in t.items()} for m, t in times.items()}
    figures = {
        "pca_s": round(med["pca"]["app"], 3),
        "pca_direct_s": round(med["pca"]["direct"], 3),
        "umap_s": round(med["umap"]["app"], 2) if "umap" in med else None,
        "umap_direct_s": round(med["umap"]["direct"], 2) if "umap" in med else None,
        "umap_overhead_ratio": round(med["umap"]["app"] / med["umap"]["direct"], 3) if "umap" in med else None,
        "tsne_s": round(med["tsne"]["app"], 2),
        "tsne_direct_s": round(med["tsne"]["direct"], 2),
        "tsne_overhead_ratio": round(med["tsne"]["app"] / med["tsne"]["direct"], 3),
        "umap_cold_s": round(cold["umap"], 1) if cold else None,
        "umap_cold_direct_s": round(cold["umap_direct"], 1) if cold else None,
        "projection_codes": int(len(codes)),
        "pca_trust": round(TRUST["pca"], 4),
        "umap_trust": round(TRUST["umap"], 4) if "umap" in TRUST else None,
        "tsne_trust": round(TRUST["tsne"], 4),
        "n_jobs": projections.default_n_jobs(),
    }
    for m, (seconds, trust) in defaults.items():
        figures[f"{m}_library_defaults_s"] = round(seconds, 2)
        figures[f"{m}_library_defaults_trust"] = round(trust, 4)
    print(machine_line())
    print(f"{load_before} before; {load_text()} after")
    print(f"{len(codes):,} codes of {codes.shape[1]} dimensions; n_jobs = {projections.default_n_jobs()}; "
          f"numba cache {numba_cache_dir()}")
    rows = []
    for m in methods:
        t = times[m]
        rows.append([m, len(t["app"]), " ".join(f"{x:.3f}" for x in t["app"]),
                     " ".join(f"{x:.3f}" for x in t["child"]), " ".join(f"{x:.3f}" for x in t["direct"]),
                     f"{med[m]['app'] / med[m]['direct']:.3f}"])
    print_table(["method", "rounds", "app s (submit->received)", "in child s", "direct s", "app / direct"], rows)
    print("trustworthiness (k = 5, computed in the projection process): "
          + ", ".join(f"{m} {TRUST[m]:.4f}" for m in methods if m in TRUST))
    if cold:
        print(f"UMAP's first fit: {cold['umap']:.1f} s in a fresh projection process (spawn included; the child "
              f"itself {cold['umap_child']:.1f} s), {cold['umap_direct']:.1f} s as the first fit in this process; "
              f"both with the numba cache warm")
    for m, (seconds, trust) in defaults.items():
        print(f"{m} with the library's own defaults (see library_defaults): {seconds:.2f} s, "
              f"trustworthiness {trust:.4f}")
    print(json.dumps(figures))
    return figures


if __name__ == "__main__":
    main()
