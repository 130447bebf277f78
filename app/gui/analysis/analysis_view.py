"""The analysis dock: one tab per claim an autoencoder makes, each checked with numbers on the
user's own data (issue 4). The tabs share nothing but the window's ExplorerState."""

from __future__ import annotations

from PySide6.QtWidgets import QTabWidget, QWidget

from app.gui.analysis.anomaly_view import AnomalyView
from app.gui.analysis.disentanglement_view import DisentanglementView
from app.gui.analysis.few_labels_view import FewLabelsView
from app.gui.analysis.pca_compare_view import PCACompareView
from app.gui.analysis.restoration_view import RestorationView
from app.gui.analysis.runs_table_view import RunsTableView
from app.gui.state import ExplorerState


class AnalysisView(QTabWidget):
    def __init__(self, state: ExplorerState, parent: QWidget | None = None):
        super().__init__(parent)
        self.state = state
        self.pca_tab = PCACompareView(state)
        self.anomaly_tab = AnomalyView(state)
        self.disentanglement_tab = DisentanglementView(state)
        self.restoration_tab = RestorationView(state)
        self.runs_tab = RunsTableView(state)
        self.few_labels_tab = FewLabelsView(state)
        for tab, title, tip in (
                (self.pca_tab, "vs PCA", "Held-out reconstruction error and features: the autoencoder against "
                                         "PCA with as many components as latent dimensions"),
                (self.anomaly_tab, "Anomalies", "Samples the model reconstructs badly: histogram, threshold, "
                                                "gallery, CSV, and ROC AUC against PCA with labels"),
                (self.disentanglement_tab, "Disentanglement", "KL and activity per dimension; MIG, DCI and SAP "
                                                              "with ground-truth factors"),
                (self.restoration_tab, "Denoise / inpaint", "Corrupt held-out images and let the model restore "
                                                            "them, with PSNR"),
                (self.runs_tab, "Compare runs", "Saved runs side by side: the β trade-off in one table"),
                (self.few_labels_tab, "Few labels", "Codes as features with few labels: accuracy against labels "
                                                    "per class, codes vs PCA vs raw inputs vs the fine-tuned encoder")):
            self.setTabToolTip(self.addTab(tab, title), tip)

    @property
    def tabs(self) -> list:
        return [self.widget(i) for i in range(self.count())]
