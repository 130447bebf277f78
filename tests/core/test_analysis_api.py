"""The one analysis API (app/core/analysis/api.py): keyed on (model, data, split), cancellable
between chunks, the same numbers as the engine's own functions; and app/gui holds no numerics."""

from __future__ import annotations

import ast
from pathlib import Path

import numpy as np
import pytest
import torch

from app.core.analysis import api
from app.core.analysis.pca_baseline import compare_on_split, fit_pca, pca_error_curve
from app.core.config import DataConfig, ModelConfig
from app.core.data import load_dataset
from app.core.models import build_model

GUI = Path(__file__).resolve().parents[2] / "app" / "gui"
FORBIDDEN_MODULES = ("sklearn", "umap", "openTSNE", "scipy", "numba", "pynndescent")
FORBIDDEN_NUMPY = ("linalg", "cov", "corrcoef", "histogram", "histogram2d", "fft", "polyfit", "lstsq")


@pytest.fixture(scope="module")
def digits():
    return load_dataset(DataConfig(spec="digits"))


@pytest.fixture(scope="module")
def model(digits):
    torch.manual_seed(0)
    return build_model(ModelConfig(kind="vae", latent_dim=3, hidden=(16,)), digits.sample_shape, "image", "bce").eval()


def _gui_trees():
    for path in sorted(GUI.rglob("*.py")):
        yield path, ast.parse(path.read_text(), str(path))


def test_gui_imports_no_learning_library_and_no_analysis_module_but_the_api():
    problems = []
    for path, tree in _gui_trees():
        for node in ast.walk(tree):
            if isinstance(node, ast.Import):
                names = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom) and node.module:
                names = [node.module]
            else:
                continue
            for name in names:
                if name.split(".")[0] in FORBIDDEN_MODULES:
                    problems.append(f"{path.name}:{node.lineno} imports {name}")
                if name.startswith("app.core.analysis") and name != "app.core.analysis.api":
                    problems.append(f"{path.name}:{node.lineno} imports {name} instead of app.core.analysis.api")
    assert problems == []


def test_gui_contains_no_numerical_analysis_code():
    """No statistics or linear algebra in the window: it draws what the core computed."""
    problems = []
    for path, tree in _gui_trees():
        for node in ast.walk(tree):
            if isinstance(node, ast.Attribute) and node.attr in FORBIDDEN_NUMPY:
                base = node.value
                owner = base.id if isinstance(base, ast.Name) else getattr(base, "attr", "")
                if owner in ("np", "numpy", "torch"):
                    problems.append(f"{path.name}:{node.lineno} uses {owner}.{node.attr}")
    assert problems == []


def test_split_and_subject(digits, model):
    split = api.Split.of(DataConfig(val_fraction=0.3, split_seed=4))
    assert split == api.Split(0.3, 4) and api.Split.of(None) == api.Split(0.2, 0)
    train_idx, val_idx = split.indices(digits)
    assert np.array_equal(val_idx, digits.split(0.3, 4)[1])
    # A model trained on everything is measured on the usual fifth.
    assert len(api.Split(0.0, 0).indices(digits)[1]) == round(0.2 * digits.n)
    assert "held-out" in split.describe(len(val_idx)) and f"{len(val_idx):,}" in split.describe(len(val_idx))
    other = build_model(ModelConfig(kind="ae", latent_dim=2, hidden=(8,)), (1, 4, 4), "image", "bce")
    with pytest.raises(api.DataError, match="1x4x4"):
        api.Subject(other, digits).check_fits()


def test_pca_comparison_matches_the_engine(digits, model):
    subject = api.Subject(model, digits, api.Split(0.2, 0))
    report = api.pca_comparison(subject)
    train_idx, val_idx = digits.split(0.2, 0)
    engine = compare_on_split(model, digits, train_idx, val_idx)
    assert np.isclose(report.model_error, engine.model_error, rtol=1e-6)
    curve = pca_error_curve(fit_pca(digits.x[train_idx], None, seed=0), digits.x[val_idx])
    assert np.allclose(report.curve.errors, curve.errors, rtol=1e-6)
    assert report.k == 3 and report.n_heldout == len(val_idx) and report.probes is not None
    assert report.originals.shape == (8, 1, 8, 8) and "held-out" in report.split


def test_chunked_encoding_equals_one_pass(digits, model):
    from app.core.session import encode_all

    whole = encode_all(model, digits.x)
    chunked = api.encode(model, digits.x)
    assert np.allclose(whole.codes, chunked.codes, atol=1e-6) and np.allclose(whole.neg_elbo, chunked.neg_elbo,
                                                                              rtol=1e-5)


def test_should_stop_stops_between_chunks(digits, model):
    calls = []

    def stop_after_two():
        calls.append(1)
        return len(calls) > 2

    with pytest.raises(api.Cancelled):
        api.encode(model, np.concatenate([digits.x] * 3), should_stop=stop_after_two)
    assert len(calls) == 3          # stopped at the third check, not after encoding everything
    with pytest.raises(api.Cancelled):
        api.pca_comparison(api.Subject(model, digits), should_stop=lambda: True)


def test_scores_csv_names_the_data_rows():
    text = api.scores_csv(np.array([1.0, 2.0]), None, 1.5)
    assert text.splitlines() == ["index,score,label,flagged", "0,1,,0", "1,2,,1"]
