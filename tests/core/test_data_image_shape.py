"""Flattened images: (N, D) rows in [0, 1] read as images with --image-shape, and a hint without it."""

import numpy as np
import pytest

from app.core.config import DataConfig, ModelConfig, TrainConfig
from app.core.data import load_dataset
from app.core.errors import ConfigError, DataError


@pytest.fixture
def flat_digits(tmp_path):
    """scikit-learn's digits flattened to (N, 64) in [0, 1], as fetch_openml('mnist_784') gives MNIST."""
    digits = load_dataset(DataConfig(spec="digits"))
    path = tmp_path / "flat.npz"
    np.savez(path, x=digits.x.reshape(digits.n, -1), y=digits.y)
    return path, digits


def test_flat_rows_are_a_table_with_a_hint_then_images_with_image_shape(flat_digits):
    path, digits = flat_digits
    table = load_dataset(DataConfig(spec=str(path)))
    assert table.modality == "tabular" and table.default_loss == "mse"
    assert "--image-shape 8x8 would read each row as a 8x8 image" in table.summary()
    images = load_dataset(DataConfig(spec=str(path), image_shape="8x8"))
    assert images.modality == "image" and images.sample_shape == (1, 8, 8) and images.default_loss == "bce"
    assert np.array_equal(images.x, digits.x) and images.hints == []
    assert images.options["image_shape"] == "8x8"
    assert load_dataset(DataConfig(spec=str(path), image_shape="1x8x8")).sample_shape == (1, 8, 8)


def test_bce_trains_on_flat_rows_read_as_images(flat_digits):
    from app.core.session import prepare_training
    from app.core.trainer import train_to_end

    path, _ = flat_digits
    prepared = prepare_training(DataConfig(spec=str(path), image_shape="8x8"),
                                ModelConfig(kind="vae", latent_dim=2, hidden=(16,), loss="bce"),
                                TrainConfig(epochs=1, batch_size=64, device="cpu"))
    assert prepared.model.loss_kind == "bce"
    assert train_to_end(prepared.trainer).ok


def test_csv_rows_as_rgb_images(tmp_path):
    rng = np.random.default_rng(0)
    x = rng.random((5, 3 * 4 * 4))
    (tmp_path / "rgb.csv").write_text("\n".join(",".join(f"{v:.6f}" for v in row) for row in x) + "\n")
    ds = load_dataset(DataConfig(spec=str(tmp_path / "rgb.csv"), image_shape="3x4x4"))
    assert ds.modality == "image" and ds.sample_shape == (3, 4, 4) and ds.normalisation == {}
    assert np.allclose(ds.x.reshape(5, -1), x, atol=1e-6)


def test_wrong_shapes_and_values_are_refused_with_the_fix(flat_digits, tmp_path):
    path, _ = flat_digits
    with pytest.raises(DataError, match="cannot be 1x9x9 images"):
        load_dataset(DataConfig(spec=str(path), image_shape="9x9"))
    with pytest.raises(ConfigError, match="HxW or CxHxW"):
        load_dataset(DataConfig(spec=str(path), image_shape="8 by 8"))
    np.savez(tmp_path / "wide.npz", x=np.linspace(-2, 2, 64 * 10).reshape(10, 64))
    assert load_dataset(DataConfig(spec=str(tmp_path / "wide.npz"))).hints == []      # not in [0, 1]: no hint
    with pytest.raises(DataError, match="scale them to"):
        load_dataset(DataConfig(spec=str(tmp_path / "wide.npz"), image_shape="8x8"))
    with pytest.raises(DataError, match="does not apply"):
        load_dataset(DataConfig(spec="digits", image_shape="28x28"))
