"""The window's dialogs in one place: errors and information (non-blocking, closed with the window),
file and folder choosers that remember the last folder, "Save the trained model?" before a model
is replaced or the window closes, and the offer to reopen a crashed session's autosave."""

from __future__ import annotations

import time
from pathlib import Path

from PySide6.QtCore import Qt
from PySide6.QtWidgets import QFileDialog, QMessageBox, QWidget

import app
from app.gui.actions import shortcut_rows

ASK = QMessageBox.StandardButton
DATA_FILE_FILTER = ("Data files (*.npz *.npy *.csv *.tsv *.txt *.gz *-ubyte);;NumPy (*.npz *.npy);;"
                    "CSV / text (*.csv *.tsv *.txt);;IDX (*.gz *-ubyte);;All files (*)")


class WindowDialogs:
    def __init__(self, window: QWidget):
        self.window = window
        self.boxes: list[QMessageBox] = []    # open non-blocking dialogs, closed with the window

    def keep(self, box: QMessageBox) -> QMessageBox:
        """Open a non-blocking dialog, kept until it closes."""
        box.setAttribute(Qt.WidgetAttribute.WA_DeleteOnClose)
        box.finished.connect(lambda _=0, b=box: self.boxes.remove(b) if b in self.boxes else None)
        self.boxes.append(box)
        box.open()
        return box

    def close_all(self) -> None:
        for box in list(self.boxes):
            box.close()

    def error(self, text: str) -> QMessageBox:
        box = QMessageBox(QMessageBox.Icon.Warning, "Latent Explorer", text, ASK.Ok, self.window)
        box.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        return self.keep(box)

    def info(self, title: str, html_text: str) -> QMessageBox:
        box = QMessageBox(QMessageBox.Icon.Information, title, html_text, ASK.Ok, self.window)
        box.setTextFormat(Qt.TextFormat.RichText)
        return self.keep(box)

    def shortcuts(self) -> QMessageBox:
        rows = "".join(f"<tr><td style='padding-right:16px'><b>{keys}</b></td><td>{text}</td></tr>"
                       for keys, text in shortcut_rows())
        return self.info("Keyboard shortcuts", f"<table>{rows}</table>")

    def about(self) -> QMessageBox:
        import PySide6
        import pyqtgraph
        return self.info(
            "About Latent Explorer",
            f"<h3>Latent Explorer {app.__version__}</h3>"
            "<p>Train autoencoders and look inside them: live losses, latent projections (PCA, UMAP, "
            "t-SNE), reconstructions and latent traversals.</p>"
            f"<p>PySide6 {PySide6.__version__}, pyqtgraph {pyqtgraph.__version__}. "
            "Run <code>python main.py --help</code> for the command line.</p>")

    # --- files ----------------------------------------------------------------------------------
    def ask_path(self, title: str, folder: bool) -> str:
        """A file (data) or folder chooser starting beside the last one chosen; "" when cancelled."""
        from app.gui.export import last_folder, remember_folder
        path = (QFileDialog.getExistingDirectory(self.window, title, last_folder()) if folder
                else QFileDialog.getOpenFileName(self.window, title, last_folder(), DATA_FILE_FILTER)[0])
        if path:
            remember_folder(path)
        return path

    def ask_run_folder(self, record, spec: str = "run") -> str:
        from app.gui.export import ask_save_path
        return ask_save_path(self.window, "Save run as (a folder is created)",
                             Path(f"{spec}-{record.model_cfg.kind}").name, "Run folder (*)")

    def ask_save_model(self, record, what: str, save, before_saving=lambda: True) -> bool:
        """Save / Discard / Cancel before a trained, unsaved model is replaced (`what`: "closing",
        "training a new one"); before_saving() (stop training: save a finished step) then
        save(record, path) write it. Returns whether to go on; nothing is stopped on Cancel."""
        answer = QMessageBox.question(
            self.window, "Latent Explorer", f"Save the trained model before {what}?\n\n{record.model_cfg.kind}, "
            f"{record.epochs_trained} epochs, not saved yet.", ASK.Save | ASK.Discard | ASK.Cancel, ASK.Save)
        if answer == ASK.Discard:
            return True
        if answer != ASK.Save or not before_saving():
            return False
        path = self.ask_run_folder(record, record.data_cfg.spec)
        return bool(path) and save(record, path)

    # --- recovery -------------------------------------------------------------------------------
    def offer_autosave(self, latest, reopen, discard) -> QMessageBox:
        """Open / Discard / Ignore the autosave of a session that died while training."""
        box = QMessageBox(QMessageBox.Icon.Question, "Latent Explorer",
                          f"Latent Explorer closed unexpectedly while training "
                          f"{latest.info.get('label') or 'a model'} (autosaved "
                          f"{time.strftime('%Y-%m-%d %H:%M', time.localtime(latest.saved_at))}).\n\n"
                          f"Reopen the last autosave?", ASK.Open | ASK.Discard | ASK.Ignore, self.window)
        box.setInformativeText(f"It is kept in {latest.session_dir} until you discard it.")

        def answered(button) -> None:
            role = box.standardButton(button)
            if role == ASK.Open:
                reopen(latest)
            elif role == ASK.Discard:
                discard(latest)

        box.buttonClicked.connect(answered)
        return self.keep(box)
