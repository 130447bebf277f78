"""Suite-wide settings: no display, no network, deterministic threads."""

import os

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
os.environ.setdefault("MPLBACKEND", "Agg")

import pytest


@pytest.fixture(autouse=True, scope="session")
def private_autosave_folder(tmp_path_factory):
    """Autosaves made by tests go to a temporary folder, never the user's cache."""
    os.environ["LATENT_EXPLORER_AUTOSAVE_DIR"] = str(tmp_path_factory.mktemp("autosave"))
    yield
