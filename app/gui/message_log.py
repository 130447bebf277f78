"""Every message the window raised (info, warnings, errors), with the time, in one dock.

The status bar shows a message for a few seconds; this keeps them, so nothing reported during a
long run (a model warning, a skipped file, a failed projection) is lost.
"""

from __future__ import annotations

import html
import time

from PySide6.QtWidgets import QPlainTextEdit, QWidget

from app.gui.state import ExplorerState

COLOURS = {"info": "#333333", "warning": "#8a5a00", "error": "#b00020"}
MAX_LINES = 2000


class MessageLog(QPlainTextEdit):
    def __init__(self, state: ExplorerState, parent: QWidget | None = None):
        super().__init__(parent)
        self.setReadOnly(True)
        self.setMaximumBlockCount(MAX_LINES)
        self.setToolTip("Messages from this session, newest last")
        self.setPlaceholderText("Messages (loading, training, warnings, errors) appear here.")
        state.messageRaised.connect(self.add)

    def add(self, level: str, text: str) -> None:
        """Append a line; the log follows new lines unless the user scrolled up to read older ones."""
        bar = self.verticalScrollBar()
        following = bar.value() >= bar.maximum() - 4
        stamp = time.strftime("%H:%M:%S")
        colour = COLOURS.get(level, COLOURS["info"])
        prefix = "" if level == "info" else f"{level}: "
        self.appendHtml(f"<span style='color:#888'>{stamp}</span> "
                        f"<span style='color:{colour}'>{html.escape(prefix + text)}</span>")
        if following:
            bar.setValue(bar.maximum())
