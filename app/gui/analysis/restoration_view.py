"""Denoising and inpainting: corrupt held-out samples (Gaussian noise, random masking, a missing
block), pass them through the model, and show corrupted / restored / original side by side with PSNR.

Any model can be asked; a `denoising` autoencoder was trained for exactly this. For masks and blocks
an "inpainted" row keeps the known pixels and takes only the missing ones from the model, which is
how inpainting is usually judged. Images only: PSNR and a picture grid mean little for table rows.
"""

from __future__ import annotations

import numpy as np
from PySide6.QtWidgets import QComboBox, QDoubleSpinBox, QGridLayout, QLabel, QWidget

from app.gui.analysis.common import AnalysisTab, big_label, fmt
from app.core.analysis.api import CORRUPTIONS, N_RESTORATION_SCORED, N_SHOWN, Restoration, restoration
from app.gui.image_grid import ImageGrid
from app.gui.reconstruction_view import sample_name
from app.gui.state import ExplorerState

# kind -> (label, level label, maximum, default, step, tooltip)
CORRUPTION_SETTINGS = {
    "gaussian": ("Gaussian noise", "σ", 2.0, 0.3, 0.05,
                 "Add N(0, σ²) noise to every value (clipped back to [0, 1])"),
    "mask": ("Random mask", "fraction", 1.0, 0.5, 0.05, "Set this fraction of the pixels to zero at random"),
    "block": ("Missing block", "side", 0.95, 0.4, 0.05,
              "Zero one square block per image whose side is this fraction of the image's side"),
}


class RestorationView(AnalysisTab):
    no_model_text = ("Train or load a model to see how it restores corrupted samples (any kind works; a "
                     "`denoising` autoencoder is trained for it).")
    compute_text = "Corrupt && restore"
    compute_tip = (f"Corrupt {N_RESTORATION_SCORED} held-out samples, reconstruct them with the model and measure "
                   f"PSNR; the first {N_SHOWN} are shown")

    def __init__(self, state: ExplorerState, parent: QWidget | None = None):
        super().__init__(state, parent)
        self.result: Restoration | None = None
        self.indices = np.zeros(0, np.int64)
        self._settings = ("gaussian", 0.3)     # (kind, level) of the result being computed

        self.kind_box = QComboBox()
        for kind in CORRUPTIONS:
            self.kind_box.addItem(CORRUPTION_SETTINGS[kind][0], kind)
        self.kind_box.currentIndexChanged.connect(self._kind_changed)
        self.level_label = QLabel()
        self.level_box = QDoubleSpinBox()
        self.level_box.setDecimals(2)
        for widget in (QLabel("Corruption:"), self.kind_box, self.level_label, self.level_box):
            self.controls.insertWidget(self.controls.count() - 3, widget)
        self._kind_changed()

        self.psnr_labels = {key: big_label(scale=1.5) for key in ("corrupted", "restored", "inpainted")}
        self.psnr_titles = {"corrupted": QLabel("Corrupted vs original"), "restored": QLabel("Restored vs original"),
                            "inpainted": QLabel("Inpainted vs original")}
        self.psnr_titles["inpainted"].setToolTip("Known pixels kept, missing ones from the model")
        self.gain_label = QLabel()
        numbers = QGridLayout()
        for col, key in enumerate(("corrupted", "restored", "inpainted")):
            numbers.addWidget(self.psnr_titles[key], 0, col)
            numbers.addWidget(self.psnr_labels[key], 1, col)
        numbers.addWidget(self.gain_label, 2, 0, 1, 3)
        self.grid = ImageGrid(export_name="restoration.png", scale=4)
        self.grid.exported.connect(lambda path: state.info(f"Saved {path}"))
        self.grid.exportFailed.connect(self.show_error)
        self.body_layout.addLayout(numbers)
        self.body_layout.addWidget(self.grid, 1)
        self.refresh()

    @property
    def kind(self) -> str:
        return self.kind_box.currentData()

    def set_corruption(self, kind: str, level: float) -> None:
        self.kind_box.setCurrentIndex(CORRUPTIONS.index(kind))
        self.level_box.setValue(level)

    def _kind_changed(self, _index: int = 0) -> None:
        _, level_name, maximum, default, step, tip = CORRUPTION_SETTINGS[self.kind]
        self.level_label.setText(level_name)
        self.level_box.setRange(0.0, maximum)
        self.level_box.setSingleStep(step)
        self.level_box.setValue(default)
        self.kind_box.setToolTip(tip)
        self.level_box.setToolTip(tip)

    # --- computing ----------------------------------------------------------------------------
    def requirement(self) -> str | None:
        data = self.state.data
        if data is not None and data.modality != "image":
            return (f"Denoising and inpainting are shown for images; {data.name} holds {data.modality} samples. "
                    "(The engine's restore() works on any data, but PSNR and a picture grid say little about "
                    "table rows or sequences, so this tab does not offer it.)")
        return super().requirement()

    def cheap(self) -> bool:
        return True     # a few hundred samples through the model

    def compute(self) -> None:
        if self.requirement() is not None:
            return
        subject, self._settings = self.subject(), (self.kind, float(self.level_box.value()))
        kind, level = self._settings
        self.run_in_background(lambda task: restoration(subject, kind, level, should_stop=task.should_stop),
                               on_result=self.show_result, what="Corrupting and restoring held-out samples…")

    def clear_results(self) -> None:
        self.result = None
        self.grid.show_message("Nothing to show yet.")

    # --- drawing ------------------------------------------------------------------------------
    def show_result(self, outcome: tuple[Restoration, np.ndarray]) -> None:
        result, indices = outcome
        self.result, self.indices = result, indices
        summary = result.summary()
        self.psnr_labels["corrupted"].setText(f"{fmt(summary['psnr_corrupted'], 3)} dB")
        self.psnr_labels["restored"].setText(f"{fmt(summary['psnr_restored'], 3)} dB")
        has_inpainted = result.inpainted is not None
        for widget in (self.psnr_labels["inpainted"], self.psnr_titles["inpainted"]):
            widget.setVisible(has_inpainted)
        if has_inpainted:
            self.psnr_labels["inpainted"].setText(f"{fmt(summary['psnr_inpainted'], 3)} dB")
        gain = summary["psnr_restored"] - summary["psnr_corrupted"]
        self.gain_label.setText(f"Mean PSNR over {summary['n']} held-out samples (higher is better): the model "
                                f"{'improves' if gain > 0 else 'does not improve'} on the corrupted input by "
                                f"{gain:+.2f} dB.")
        shown = min(N_SHOWN, len(indices))
        rows = [result.corrupted[:shown], result.restored[:shown]]
        labels = ["corrupted", "restored"]
        if has_inpainted:
            rows.append(result.inpainted[:shown])
            labels.append("inpainted")
        rows.append(result.original[:shown])
        labels.append("original")
        psnr_rows = {"corrupted": result.psnr_corrupted, "restored": result.psnr_restored,
                     "inpainted": result.psnr_inpainted}

        def tooltip(row: int, col: int) -> str:
            what = labels[row]
            text = f"{sample_name(self.state, int(indices[col]))}: {what}"
            values = psnr_rows.get(what)
            return text + (f"\nPSNR {fmt(values[col], 3)} dB" if values is not None else "")

        self.grid.set_grid(np.stack(rows), row_labels=labels, cell_tooltip=tooltip)
        kind, level = self._settings
        self.grid.set_caption(f"{CORRUPTION_SETTINGS[kind][0].lower()}, {CORRUPTION_SETTINGS[kind][1]} {level:g}; "
                              f"first {shown} of {summary['n']} held-out samples")
        self.finished("")
