"""The analysis tabs of the window (issue 4): PCA baseline, anomalies, disentanglement,
restoration and a table of runs, gathered in `AnalysisView(state, parent=None)` for one dock.
The numbers come from app.core.analysis; computations.py adapts it to what the window holds."""

from app.gui.analysis.analysis_view import AnalysisView

__all__ = ["AnalysisView"]
