"""Helpers shared by the main-window tests: a window with digits loaded and dialogs collected
instead of shown, and a small, fast model in the training form."""

from __future__ import annotations

from app.gui.app import configure_pyqtgraph


def make_window(qtbot, monkeypatch, load: str | None = "digits", wait: bool = True):
    """A shown MainWindow whose error dialogs land in `window.errors` (a list of texts)."""
    from app.gui.main_window import MainWindow

    configure_pyqtgraph()
    window = MainWindow(load_builtin=load, warm_up_projections=False)
    window.confirm_close = False
    window.errors = []
    monkeypatch.setattr(window, "show_error", window.errors.append)
    qtbot.addWidget(window)
    # The views are built just after the window appears, and the data arrives on a worker.
    qtbot.waitUntil(lambda: bool(window.views), timeout=60_000)
    if load and wait:
        qtbot.waitUntil(lambda: window.state.data is not None and window.busy is False, timeout=60_000)
    window.show()
    return window


def small_model(window, epochs: int = 2, **train) -> None:
    """A VAE small enough to train an epoch of digits in a fraction of a second."""
    model = window.training_panel.model_form.widgets
    model["kind"].setCurrentIndex(model["kind"].findData(train.pop("kind", "vae")))
    model["hidden"].setText("64")
    model["latent_dim"].setValue(4)
    form = window.training_panel.train_form.widgets
    form["epochs"].setValue(epochs)
    form["device"].setCurrentIndex(form["device"].findData("cpu"))
    for name, value in train.items():
        widget = form[name] if name in form else model[name]
        if hasattr(widget, "findData") and widget.findData(value) >= 0:
            widget.setCurrentIndex(widget.findData(value))
        else:
            widget.setValue(value)
