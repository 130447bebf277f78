"""Does each latent dimension capture one ground-truth factor? MIG, DCI and SAP.

All three work on the deterministic (mean) codes and a factor array (N, F), as in
disentanglement_lib (Locatello et al. 2019), whose conventions are followed:

- MIG, Mutual Information Gap (Chen et al. 2018, "Isolating Sources of Disentanglement in VAEs"):
  each code dimension is discretised into 20 equal-width histogram bins, each factor into its
  distinct values; for every factor, the gap between the two code dimensions sharing the most
  mutual information with it, divided by the factor's entropy; averaged over factors.
- DCI disentanglement (Eastwood & Williams 2018, "A Framework for the Quantitative Evaluation of
  Disentangled Representations"), as disentanglement_lib's dci.py: an importance matrix R (K codes x
  F factors) from one gradient-boosted model per factor: a GradientBoostingClassifier for a discrete
  factor (informativeness = held-out accuracy, as disentanglement_lib), a GradientBoostingRegressor
  only for a continuous one (held-out R^2); `method="lasso"` is the linear variant (|Lasso
  coefficients|, R^2). Each code's disentanglement is 1 - entropy of its normalised row (log base F),
  weighted by the code's share of the total importance; completeness the same per factor (columns,
  log base K). When the codes predict the factors no better than chance (mean informativeness above
  chance < 0.05), D and C are NaN: the importances of noise say nothing about disentanglement.
- SAP, Separated Attribute Predictability (Kumar et al. 2018, "Variational Inference of Disentangled
  Latent Concepts from Unlabeled Observations"): a score matrix of how well each single code
  dimension predicts each factor: for a discrete factor the held-out accuracy of a linear SVM (the
  version disentanglement_lib runs on dSprites), for a continuous one the squared correlation; the
  mean over factors of the gap between the two best dimensions.

Discrete or continuous (factor_kinds): a factor with at most 64 distinct values is discrete, as
disentanglement_lib treats every dSprites factor (so all five of our `shapes` factors, categorical
shape and circular rotation included); the result says which model and which SAP version scored
each factor (`dci_models`, `sap_versions`).

All metrics sub-sample to at most 10,000 points (seeded) for speed.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass, field

import numpy as np

from app.core.errors import DataError

N_BINS = 20
MAX_SAMPLES = 10000
MAX_FACTOR_VALUES = 64   # a factor with more distinct values than this is treated as continuous and binned


def _check(codes: np.ndarray, factors: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    codes = np.asarray(codes, np.float64)
    factors = np.asarray(factors, np.float64)
    if factors.ndim == 1:
        factors = factors[:, None]
    if codes.ndim != 2 or len(codes) != len(factors):
        raise DataError(f"codes {codes.shape} and factors {factors.shape} must be (N, K) and (N, F) with the same N")
    if len(codes) < 10:
        raise DataError(f"disentanglement metrics need at least 10 samples with factors, got {len(codes)}")
    if not (np.isfinite(codes).all() and np.isfinite(factors).all()):
        raise DataError("the codes or factors contain NaN or Inf values")
    return codes, factors


def subsample(n: int, limit: int = MAX_SAMPLES, seed: int = 0) -> np.ndarray:
    """Sorted indices of at most `limit` of n samples (all of them when n <= limit)."""
    if n <= limit:
        return np.arange(n)
    return np.sort(np.random.default_rng(seed).choice(n, limit, replace=False))


def histogram_discretize(values: np.ndarray, bins: int = N_BINS) -> np.ndarray:
    """Each column into `bins` equal-width bins, exactly as disentanglement_lib's
    _histogram_discretize: np.digitize(v, np.histogram(v, bins)[1][:-1]) -> values 1..bins."""
    values = np.asarray(values, np.float64)
    out = np.zeros(values.shape, np.int64)
    for j in range(values.shape[1]):
        column = values[:, j]
        out[:, j] = np.digitize(column, np.histogram(column, bins)[1][:-1])
    return out


def discretize_factors(factors: np.ndarray, max_values: int = MAX_FACTOR_VALUES, bins: int = N_BINS) -> np.ndarray:
    """Each factor as the index of its distinct value; a factor with more than max_values distinct
    values (a continuous one) is binned like the codes."""
    factors = np.asarray(factors, np.float64)
    out = np.zeros(factors.shape, np.int64)
    for j in range(factors.shape[1]):
        values, inverse = np.unique(factors[:, j], return_inverse=True)
        out[:, j] = inverse if len(values) <= max_values else histogram_discretize(factors[:, j:j + 1], bins)[:, 0]
    return out


def mutual_info_matrix(discrete_codes: np.ndarray, discrete_factors: np.ndarray) -> np.ndarray:
    """(K, F) mutual information in nats (sklearn.metrics.mutual_info_score)."""
    from sklearn.metrics import mutual_info_score

    k, f = discrete_codes.shape[1], discrete_factors.shape[1]
    m = np.zeros((k, f))
    for i in range(k):
        for j in range(f):
            m[i, j] = mutual_info_score(discrete_factors[:, j], discrete_codes[:, i])
    return m


def factor_entropies(discrete_factors: np.ndarray) -> np.ndarray:
    """(F,) entropy in nats of each discretised factor, as I(f; f)."""
    from sklearn.metrics import mutual_info_score

    return np.array([mutual_info_score(discrete_factors[:, j], discrete_factors[:, j])
                     for j in range(discrete_factors.shape[1])])


@dataclass
class MIGResult:
    score: float                    # mean over factors with non-zero entropy
    per_factor: np.ndarray          # (F,) normalised gap (NaN for a constant factor)
    mi: np.ndarray                  # (K, F) mutual information, nats
    entropy: np.ndarray             # (F,) factor entropies, nats
    best_dim: np.ndarray            # (F,) code dimension with the most information about each factor

    @property
    def normalised_mi(self) -> np.ndarray:
        """(K, F) MI divided by each factor's entropy (0..1)."""
        with np.errstate(divide="ignore", invalid="ignore"):
            return np.where(self.entropy > 0, self.mi / np.where(self.entropy > 0, self.entropy, 1.0), 0.0)


def mig(codes: np.ndarray, factors: np.ndarray, bins: int = N_BINS, max_samples: int = MAX_SAMPLES,
        seed: int = 0) -> MIGResult:
    codes, factors = _check(codes, factors)
    idx = subsample(len(codes), max_samples, seed)
    codes, factors = codes[idx], factors[idx]
    d_codes = histogram_discretize(codes, bins)
    d_factors = discretize_factors(factors, bins=bins)
    m = mutual_info_matrix(d_codes, d_factors)
    entropy = factor_entropies(d_factors)
    ordered = np.sort(m, axis=0)[::-1]                       # (K, F), largest first
    second = ordered[1] if len(ordered) > 1 else np.zeros(m.shape[1])
    with np.errstate(divide="ignore", invalid="ignore"):
        per_factor = np.where(entropy > 0, (ordered[0] - second) / np.where(entropy > 0, entropy, 1.0), np.nan)
    valid = per_factor[np.isfinite(per_factor)]
    return MIGResult(score=float(valid.mean()) if len(valid) else float("nan"), per_factor=per_factor, mi=m,
                     entropy=entropy, best_dim=np.argmax(m, axis=0))


# ---------------------------------------------------------------------------------------------
# Which factors are discrete
# ---------------------------------------------------------------------------------------------
MAX_DISCRETE_VALUES = MAX_FACTOR_VALUES   # more distinct values than this: a continuous factor


def factor_kinds(factors: np.ndarray, discrete: bool | list[bool] | None = None) -> list[str]:
    """'discrete' or 'continuous' per factor. None decides from the data: a factor with at most
    MAX_DISCRETE_VALUES distinct values is discrete (every dSprites factor, as disentanglement_lib
    treats them; our shapes' shape, scale, rotation, x and y); more values make it continuous."""
    f = factors.shape[1]
    if discrete is None:
        return ["discrete" if len(np.unique(factors[:, j])) <= MAX_DISCRETE_VALUES else "continuous"
                for j in range(f)]
    flags = [bool(discrete)] * f if isinstance(discrete, bool) else [bool(v) for v in discrete]
    if len(flags) != f:
        raise DataError(f"{len(flags)} discrete flags for {f} factors; give one per factor")
    return ["discrete" if flag else "continuous" for flag in flags]


def _train_test(max_samples: int, test_fraction: float, seed: int, n: int
                ) -> tuple[np.ndarray, np.ndarray]:
    idx = subsample(n, max_samples, seed)
    order = np.random.default_rng(seed + 1).permutation(idx)
    n_test = max(1, int(round(len(order) * test_fraction)))
    return order[n_test:], order[:n_test]


# ---------------------------------------------------------------------------------------------
# DCI
# ---------------------------------------------------------------------------------------------
MIN_INFORMATIVENESS = 0.05   # below this (above chance) the importances describe noise: D, C = NaN


def _entropy_rows(p: np.ndarray, base: int) -> np.ndarray:
    """Entropy of each row of a non-negative matrix after normalising it, log base `base`
    (scipy.stats.entropy with the 1e-11 floor disentanglement_lib adds)."""
    from scipy.stats import entropy

    if base < 2:
        return np.zeros(len(p))
    return entropy(p.T + 1e-11, base=base)


@dataclass
class DCIResult:
    disentanglement: float           # NaN when the codes predict no factor (informativeness ~ chance)
    completeness: float              # NaN likewise
    informativeness: float           # mean held-out score: accuracy (discrete), R^2 (continuous)
    importance: np.ndarray           # (K, F)
    per_code: np.ndarray             # (K,) disentanglement of each code dimension
    per_factor: np.ndarray           # (F,) completeness of each factor
    factor_kinds: list[str] = field(default_factory=list)       # 'discrete' | 'continuous' per factor
    per_factor_informativeness: np.ndarray | None = None         # (F,) accuracy or R^2
    above_chance: float = float("nan")   # mean over factors of the score above its chance level (0..1)
    method: str = "gbt"

    @property
    def models(self) -> list[str]:
        """What predicted each factor, for the report."""
        if self.method == "lasso":
            return ["lasso regressor (R^2)"] * len(self.factor_kinds)
        return ["gradient-boosted classifier (accuracy)" if kind == "discrete" else
                "gradient-boosted regressor (R^2)" for kind in self.factor_kinds]


def _chance_accuracy(labels_train: np.ndarray, labels_test: np.ndarray) -> float:
    """Accuracy of always predicting the training split's most frequent value."""
    values, counts = np.unique(labels_train, return_counts=True)
    return float(np.mean(labels_test == values[np.argmax(counts)]))


def importance_matrix(codes_train: np.ndarray, factors_train: np.ndarray, codes_test: np.ndarray,
                      factors_test: np.ndarray, method: str = "gbt", seed: int = 0,
                      n_estimators: int = 50, lasso_alpha: float = 0.02, kinds: list[str] | None = None
                      ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(K, F) importances, (F,) held-out scores and (F,) the same above chance (0 = chance, 1 = perfect).

    method 'gbt' follows disentanglement_lib's _compute_importance_gbt: per discrete factor a
    GradientBoostingClassifier scored by accuracy (chance = the majority value's share); per
    continuous factor a GradientBoostingRegressor scored by R^2 (chance = 0). 'lasso' is the
    linear variant of Eastwood & Williams 2018 (a Lasso on each standardised factor, R^2)."""
    from sklearn.ensemble import GradientBoostingClassifier, GradientBoostingRegressor
    from sklearn.linear_model import Lasso
    from sklearn.preprocessing import StandardScaler

    if method not in ("gbt", "lasso"):
        raise ValueError(f"DCI method {method!r} is not gbt or lasso")
    kinds = kinds or ["continuous"] * factors_train.shape[1]
    scaler = StandardScaler().fit(codes_train)
    x_train, x_test = scaler.transform(codes_train), scaler.transform(codes_test)
    f_mean, f_std = factors_train.mean(0), factors_train.std(0)
    f_std = np.where(f_std > 0, f_std, 1.0)
    y_train, y_test = (factors_train - f_mean) / f_std, (factors_test - f_mean) / f_std
    k, f = codes_train.shape[1], factors_train.shape[1]
    importance, score, above = np.zeros((k, f)), np.zeros(f), np.zeros(f)
    for j in range(f):
        if method == "gbt" and kinds[j] == "discrete":
            values, labels = np.unique(np.concatenate([factors_train[:, j], factors_test[:, j]]), return_inverse=True)
            l_train, l_test = labels[:len(x_train)], labels[len(x_train):]
            if len(values) < 2 or len(np.unique(l_train)) < 2:
                continue                      # a constant factor: nothing to predict, importance 0
            model = GradientBoostingClassifier(n_estimators=n_estimators, max_depth=3, random_state=seed)
            model.fit(x_train, l_train)
            importance[:, j] = np.abs(model.feature_importances_)
            score[j] = float(np.mean(model.predict(x_test) == l_test))
            chance = _chance_accuracy(l_train, l_test)
            above[j] = (score[j] - chance) / (1.0 - chance) if chance < 1.0 else 0.0
            continue
        if method == "gbt":
            model = GradientBoostingRegressor(n_estimators=n_estimators, max_depth=3, random_state=seed)
            model.fit(x_train, y_train[:, j])
        else:
            model = Lasso(alpha=lasso_alpha, random_state=seed)
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                model.fit(x_train, y_train[:, j])
        importance[:, j] = np.abs(model.feature_importances_ if method == "gbt" else model.coef_)
        score[j] = model.score(x_test, y_test[:, j]) if np.var(y_test[:, j]) > 0 else 0.0
        above[j] = score[j]
    return importance, score, np.clip(above, 0.0, 1.0)


def dci(codes: np.ndarray, factors: np.ndarray, method: str = "gbt", max_samples: int = MAX_SAMPLES,
        test_fraction: float = 0.2, seed: int = 0, discrete: bool | list[bool] | None = None,
        n_estimators: int = 50) -> DCIResult:
    """DCI (Eastwood & Williams 2018) as disentanglement_lib computes it; D and C are NaN when the
    codes predict the factors no better than chance (importances of noise are not disentanglement)."""
    codes, factors = _check(codes, factors)
    kinds = factor_kinds(factors, discrete)
    train, test = _train_test(max_samples, test_fraction, seed, len(codes))
    importance, score, above = importance_matrix(codes[train], factors[train], codes[test], factors[test], method,
                                                 seed, n_estimators=n_estimators, kinds=kinds)
    k, f = importance.shape
    per_code = 1.0 - _entropy_rows(importance, f) if f > 1 else np.ones(k)
    per_factor = 1.0 - _entropy_rows(importance.T, k) if k > 1 else np.ones(f)
    informative = float(np.mean(above)) >= MIN_INFORMATIVENESS and importance.sum() > 0
    if informative:
        code_share = importance.sum(1) / importance.sum()
        factor_share = importance.sum(0) / importance.sum()
        d, c = float((per_code * code_share).sum()), float((per_factor * factor_share).sum())
    else:
        d = c = float("nan")
    return DCIResult(disentanglement=d, completeness=c, informativeness=float(np.mean(score)), importance=importance,
                     per_code=per_code, per_factor=per_factor, factor_kinds=kinds, per_factor_informativeness=score,
                     above_chance=float(np.mean(above)), method=method)


# ---------------------------------------------------------------------------------------------
# SAP
# ---------------------------------------------------------------------------------------------
@dataclass
class SAPResult:
    score: float
    per_factor: np.ndarray     # (F,) gap between the two most predictive dimensions
    matrix: np.ndarray         # (K, F) predictability of each factor from each single dimension
    factor_kinds: list[str] = field(default_factory=list)   # which SAP version scored each factor

    @property
    def versions(self) -> list[str]:
        return ["discrete (LinearSVC accuracy)" if kind == "discrete" else "continuous (R^2)"
                for kind in self.factor_kinds]


def sap(codes: np.ndarray, factors: np.ndarray, discrete: bool | list[bool] | None = None,
        max_samples: int = MAX_SAMPLES, test_fraction: float = 0.2, seed: int = 0) -> SAPResult:
    """SAP as disentanglement_lib's _compute_score_matrix: discrete factors score the held-out
    accuracy of a LinearSVC(C=0.01, balanced) on each single dimension (the version
    disentanglement_lib runs on dSprites); continuous ones R^2 = cov(z, f)^2 / (var z var f) on
    the training part. discrete=None picks per factor (factor_kinds)."""
    codes, factors = _check(codes, factors)
    kinds = factor_kinds(factors, discrete)
    train, test = _train_test(max_samples, test_fraction, seed, len(codes))
    k, f = codes.shape[1], factors.shape[1]
    matrix = np.zeros((k, f))
    z, y = codes[train], factors[train]
    zc, yc = z - z.mean(0), y - y.mean(0)
    cov = zc.T @ yc / len(z)                                            # (K, F)
    var_z, var_y = (zc ** 2).mean(0), (yc ** 2).mean(0)
    for j in range(f):
        if kinds[j] == "discrete":
            matrix[:, j] = _svm_scores(codes, factors[:, j], train, test, seed)
        else:
            ok = (var_z > 1e-12) & (var_y[j] > 1e-12)
            matrix[:, j] = np.where(ok, cov[:, j] ** 2 / np.where(ok, var_z * var_y[j], 1.0), 0.0)
    ordered = np.sort(matrix, axis=0)[::-1]
    per_factor = ordered[0] - (ordered[1] if k > 1 else 0.0)
    return SAPResult(score=float(per_factor.mean()), per_factor=per_factor, matrix=matrix, factor_kinds=kinds)


def _svm_scores(codes, factor, train, test, seed) -> np.ndarray:
    from sklearn.svm import LinearSVC

    _, labels = np.unique(factor, return_inverse=True)
    scores = np.zeros(codes.shape[1])
    if len(np.unique(labels[train])) < 2:
        return scores
    for i in range(codes.shape[1]):
        model = LinearSVC(C=0.01, class_weight="balanced", random_state=seed)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            model.fit(codes[train, i:i + 1], labels[train])
        scores[i] = float(np.mean(model.predict(codes[test, i:i + 1]) == labels[test]))
    return scores


# ---------------------------------------------------------------------------------------------
# Everything together, and labels for the traversal grid
# ---------------------------------------------------------------------------------------------
def factor_per_dimension(mig_result: MIGResult, factor_names: list[str] | None = None,
                         active: np.ndarray | None = None, min_normalised_mi: float = 0.1
                         ) -> list[tuple[str | None, float]]:
    """For each code dimension: (the factor it best explains, its MI with it / the factor's
    entropy), or (None, score) when it explains no factor by at least min_normalised_mi or is inactive."""
    nmi = mig_result.normalised_mi                                   # (K, F)
    names = list(factor_names or [f"factor {j}" for j in range(nmi.shape[1])])
    out = []
    for i in range(nmi.shape[0]):
        j = int(np.argmax(nmi[i]))
        score = float(nmi[i, j])
        usable = score >= min_normalised_mi and (active is None or bool(active[i]))
        out.append((names[j] if usable else None, score))
    return out


@dataclass
class DisentanglementReport:
    factor_names: list[str]
    mig: MIGResult
    dci: DCIResult | None
    sap: SAPResult | None
    dimension_labels: list[tuple[str | None, float]]
    kl_per_dim: np.ndarray | None = None
    active: np.ndarray | None = None
    extra: dict = field(default_factory=dict)

    def table(self) -> list[dict]:
        """One row per factor: entropy, best dimension, its MI, the gap, completeness, SAP gap."""
        rows = []
        for j, name in enumerate(self.factor_names):
            rows.append({
                "factor": name, "entropy": float(self.mig.entropy[j]), "best_dim": int(self.mig.best_dim[j]),
                "best_mi": float(self.mig.mi[self.mig.best_dim[j], j]),
                "mig": _num(self.mig.per_factor[j]),
                "dci_completeness": None if self.dci is None else float(self.dci.per_factor[j]),
                "dci_informativeness": None if self.dci is None else _num(self.dci.per_factor_informativeness[j]),
                "sap": None if self.sap is None else float(self.sap.per_factor[j]),
                "kind": (self.dci or self.sap).factor_kinds[j] if (self.dci or self.sap) else None,
            })
        return rows

    def to_dict(self) -> dict:
        """JSON-ready summary (the fields `evaluate --json` reports)."""
        out = {
            "mig": _num(self.mig.score),
            "mig_per_factor": {n: _num(v) for n, v in zip(self.factor_names, self.mig.per_factor)},
            "mutual_information": self.mig.mi.tolist(),
            "best_dim_per_factor": {n: int(d) for n, d in zip(self.factor_names, self.mig.best_dim)},
            "factor_per_dim": [name for name, _ in self.dimension_labels],
        }
        if self.dci is not None:
            out.update(dci_disentanglement=_num(self.dci.disentanglement), dci_completeness=_num(self.dci.completeness),
                       dci_informativeness=_num(self.dci.informativeness),
                       dci_informativeness_above_chance=_num(self.dci.above_chance),
                       dci_models={n: m for n, m in zip(self.factor_names, self.dci.models)})
        if self.sap is not None:
            out["sap"] = _num(self.sap.score)
            out["sap_versions"] = {n: v for n, v in zip(self.factor_names, self.sap.versions)}
        return out


def _num(value) -> float | None:
    value = float(value)
    return value if np.isfinite(value) else None


def disentanglement_report(codes: np.ndarray, factors: np.ndarray, factor_names: list[str] | None = None,
                           logvar: np.ndarray | None = None, with_dci: bool = True, with_sap: bool = True,
                           dci_method: str = "gbt", max_samples: int = MAX_SAMPLES, seed: int = 0,
                           discrete: bool | list[bool] | None = None) -> DisentanglementReport:
    """MIG, DCI and SAP together; `discrete` says per factor which DCI model and SAP version to use
    (None: factor_kinds decides from the data)."""
    from app.core.latent import dimension_stats

    codes, factors = _check(codes, factors)
    names = list(factor_names or [f"factor {j}" for j in range(factors.shape[1])])
    idx = subsample(len(codes), max_samples, seed)
    codes, factors = codes[idx], factors[idx]
    logvar = None if logvar is None else np.asarray(logvar)[idx]
    stats = dimension_stats(codes, logvar)
    mig_result = mig(codes, factors, max_samples=max_samples, seed=seed)
    return DisentanglementReport(
        factor_names=names, mig=mig_result,
        dci=dci(codes, factors, method=dci_method, max_samples=max_samples, seed=seed, discrete=discrete)
        if with_dci else None,
        sap=sap(codes, factors, discrete, max_samples=max_samples, seed=seed) if with_sap else None,
        dimension_labels=factor_per_dimension(mig_result, names, stats.active),
        kl_per_dim=stats.kl, active=stats.active)
