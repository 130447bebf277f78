"""The analysis tabs of the window (issue 4): PCA baseline, anomalies, disentanglement,
restoration and a table of runs, gathered in `AnalysisView(state, parent=None)` for one dock.
The numbers come from the core's one analysis API, app/core/analysis/api.py; the tabs hold only widgets."""

from app.gui.analysis.analysis_view import AnalysisView

__all__ = ["AnalysisView"]
