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
