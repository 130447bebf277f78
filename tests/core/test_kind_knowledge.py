"""Model-kind knowledge lives in the core (app/core/config.py, app/core/models): app/gui holds no
list of model kinds, so a new kind needs no GUI edit (docs/DESIGN.md, "Where to add things")."""

import ast
from pathlib import Path

from app.core.config import MLP_KINDS, MODEL_FIELD_KINDS, MODEL_KINDS, TRAIN_FIELD_KINDS, ModelConfig, TrainConfig

GUI = Path(__file__).resolve().parents[2] / "app" / "gui"


def test_app_gui_contains_no_tuple_or_list_of_model_kind_names():
    found = []
    for path in GUI.rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, (ast.Tuple, ast.List, ast.Set)):
                names = [e.value for e in node.elts if isinstance(e, ast.Constant) and isinstance(e.value, str)]
                if len([n for n in names if n in MODEL_KINDS]) >= 2:
                    found.append(f"{path.relative_to(GUI)}:{node.lineno} {names}")
    assert found == []


def test_the_kind_tables_name_real_kinds_and_real_settings():
    assert set(MLP_KINDS) <= set(MODEL_KINDS)
    model_fields = {f for f in ModelConfig.__dataclass_fields__}
    for name, kinds in MODEL_FIELD_KINDS.items():
        assert name in model_fields and set(kinds) <= set(MODEL_KINDS), name
    for name, kinds in TRAIN_FIELD_KINDS.items():
        assert name in TrainConfig.__dataclass_fields__ and set(kinds) <= set(MODEL_KINDS), name


def test_check_fits_is_the_one_shape_check():
    import numpy as np
    import pytest

    from app.core.data.dataset import Dataset
    from app.core.errors import DataError

    class Model:
        input_shape = (1, 8, 8)

    data = Dataset(name="d", spec="d", x=np.zeros((3, 1, 8, 8), np.float32), modality="image")
    assert data.fits(Model()) and data.check_fits(Model()) is None
    Model.input_shape = (1, 28, 28)
    with pytest.raises(DataError, match="samples are 1x8x8 but the model expects 1x28x28"):
        data.check_fits(Model())


def test_kind_tables_are_read_from_each_fields_metadata():
    """One source of truth: option(..., kinds=...) on the field; the tables are derived from it."""
    import dataclasses

    from app.core.config import applies, field_kinds

    assert MODEL_FIELD_KINDS == field_kinds(ModelConfig) and TRAIN_FIELD_KINDS == field_kinds(TrainConfig)
    assert MODEL_FIELD_KINDS["hidden"] == MLP_KINDS and MODEL_FIELD_KINDS["noise_level"] == ("denoising",)
    fields = {f.name: f for f in dataclasses.fields(ModelConfig)}
    assert applies(fields["beta"], "vae") and not applies(fields["beta"], "ae")
    assert applies(fields["latent_dim"], "rnn-ae")   # no kinds: every kind
    # shown_if: the KL target only matters for the KL sparsity penalty
    assert applies(fields["sparsity_target"], "sparse", {"sparsity": "kl"})
    assert not applies(fields["sparsity_target"], "sparse", {"sparsity": "l1"})
    warmup = {f.name: f for f in dataclasses.fields(TrainConfig)}["kl_warmup_epochs"]
    assert not applies(warmup, "vae", {"kl_anneal": "none"}) and applies(warmup, "vae", {"kl_anneal": "linear"})


def test_has_prior_and_variational_are_class_attributes_of_the_models():
    from app.core.config import VARIATIONAL_KINDS
    from app.core.models import MODEL_CLASSES

    for kind, cls in MODEL_CLASSES.items():
        assert cls.variational == (kind in VARIATIONAL_KINDS), kind
        assert cls.has_prior == (kind in VARIATIONAL_KINDS or kind == "aae"), kind


def test_train_help_names_the_kinds_each_setting_applies_to():
    from app.cli import build_parser

    parser = build_parser()
    train = next(a for a in parser._actions if a.dest == "command").choices["train"]
    flags = {a.option_strings[0]: a.help for a in train._actions if a.option_strings}
    assert flags["--noise-level"].endswith("[kinds: denoising]")
    assert "[kinds: vae, beta-tcvae, conv-vae]" in flags["--beta"]
    assert flags["--sparsity-target"].endswith("[kinds: sparse; with --sparsity kl]")
    assert "kinds:" not in flags["--latent-dim"] and "kinds:" not in flags["--epochs"]
