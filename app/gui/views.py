"""The exploring views the main window docks, in one place so the window does not need to know
their modules. Imported when the window is built, not at start-up of the process, so their own
imports (and those of their helpers) stay out of the command line's way."""

from __future__ import annotations

from PySide6.QtWidgets import QWidget

from app.gui.state import ExplorerState


def build_views(state: ExplorerState, parent: QWidget | None = None,
                warm_up_projections: bool = True) -> list[tuple[str, QWidget]]:
    """(dock title, view) for each view that reads the shared state; where each docks is
    app/gui/default_layout.py's (the window starts them all on the right). warm_up_projections=False skips compiling UMAP in the projection process ahead of use (tests)."""
    from app.gui.projection_view import ProjectionView
    from app.gui.reconstruction_view import ReconstructionView
    from app.gui.traversal_view import TraversalView
    from app.gui.analysis import AnalysisView

    return [
        ("Latent projections", ProjectionView(state, parent, warm_up=warm_up_projections)),
        ("Reconstructions", ReconstructionView(state, parent)),
        ("Latent traversal", TraversalView(state, parent)),
        ("Analysis", AnalysisView(state, parent)),
        ("Search", _search_view(state, parent)),
    ]


def _search_view(state: ExplorerState, parent: QWidget | None) -> QWidget:
    """The hyperparameter-search dock (app/gui/search_view.py): fixed settings from the training
    panel, trials opened through the window's open-run path."""
    from app.gui.search_view import SearchView, window_configs

    configs = (lambda: window_configs(parent)) if hasattr(parent, "training_panel") else None
    return SearchView(state, parent, configs=configs, open_run=getattr(parent, "open_run", None))
