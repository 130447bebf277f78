"""The window's default dock arrangement and sizes, made for a laptop screen (1440x900) upwards.

    +----------+---------------------------------------------------------+
    | Data     | [Latent projections] [Latent traversal] [Analysis]      |
    |          |   three maps side by side, each at least 300 px square  |
    +----------+   at 1440x900 (the tab you look at gets the room)       |
    | Training +----------------------------------+----------------------+
    |          | [Loss curves] [Messages]         | Reconstructions      |
    +----------+----------------------------------+----------------------+

The settings column is as wide as the training form needs and no wider. The big views share one
tabbed area, because a person looks at one of them at a time and each needs the width; the two
views that follow training (loss curves, reconstructions) stay visible below, side by side.
The user's own arrangement (QSettings) replaces all this; LAYOUT_VERSION rejects the arrangements
saved by older versions, whose maps were ~200 px wide.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from PySide6.QtCore import QEvent, QObject, Qt, QTimer
from PySide6.QtWidgets import QDockWidget, QMainWindow

LAYOUT_VERSION = 2          # saveState/restoreState version: bump when the default changes a lot
SETTINGS_MIN_WIDTH = 300    # the settings column, at least (the form's own width when it needs more)
SETTINGS_MAX_SHARE = 0.27   # ... and at most this share of the window
MAP_OVERHEAD_PX = 190       # projection dock height beyond a map's plot: dock title, tabs, controls, map title, status
TOP_MIN_SHARE, TOP_MAX_SHARE = 0.52, 0.64   # the tabbed views' share of the right column's height
SPLIT_HANDLES_PX = 12       # dock separators and frames across the right column
PREVIEW_WIDTH = 190         # the projection view's hovered-sample preview, right of the maps
DATA_MIN_HEIGHT = 200       # the data panel with a loaded data set's summary (digits: 7 rows)
MAPS_SHOWN = 3              # PCA, UMAP, t-SNE (the raw latent plane only for a 2-D code)


@dataclass
class DefaultDocks:
    """What apply_sizes needs: the two settings docks, the tabbed views (first is raised), the
    docks below them, and the projection view (for its maps' share of the width)."""
    data: QDockWidget
    training: QDockWidget
    tabbed: list[QDockWidget] = field(default_factory=list)
    below: list[QDockWidget] = field(default_factory=list)
    raised: list[QDockWidget] = field(default_factory=list)
    projection_view: object | None = None


def arrange(window: QMainWindow, by_kind: dict[str, QDockWidget], loss: QDockWidget, log: QDockWidget,
            data: QDockWidget, training: QDockWidget) -> DefaultDocks:
    """Split and tabify the docks (all already in the right-hand area) into the default arrangement."""
    top = [by_kind[k] for k in ("ProjectionView", "TraversalView", "AnalysisView", "SearchView") if k in by_kind]
    reconstructions = by_kind.get("ReconstructionView")
    anchor = top[0] if top else loss
    if top:
        window.splitDockWidget(anchor, loss, Qt.Orientation.Vertical)
    for dock in top[1:]:
        window.tabifyDockWidget(anchor, dock)
    if reconstructions is not None:
        window.splitDockWidget(loss, reconstructions, Qt.Orientation.Horizontal)
    window.tabifyDockWidget(loss, log)
    raised = [d for d in (anchor, loss) if d is not None]
    for dock in raised:
        dock.raise_()
    projection = by_kind.get("ProjectionView")
    return DefaultDocks(data, training, top, [loss] + ([reconstructions] if reconstructions else []), raised,
                        projection.widget() if projection is not None else None)


def settings_width(docks: DefaultDocks, window_width: int) -> int:
    """As wide as the training form (and the data panel) ask, within the bounds above."""
    wanted = max(docks.training.widget().minimumSizeHint().width(), docks.data.widget().minimumSizeHint().width())
    return int(min(max(wanted + 8, SETTINGS_MIN_WIDTH), window_width * SETTINGS_MAX_SHARE))


def _height_at(widget, width: int) -> int:
    """The height a widget wants at this width: wrapped labels (the data summary) need more than
    their one-line size hint says."""
    layout = widget.layout()
    if layout is not None and layout.hasHeightForWidth():
        return max(layout.totalHeightForWidth(width), widget.sizeHint().height())
    return widget.sizeHint().height()


def top_height(right_width: int, right_height: int) -> int:
    """Tall enough for square maps across the width, within the shares above."""
    map_side = (right_width - PREVIEW_WIDTH - SPLIT_HANDLES_PX) // MAPS_SHOWN
    wanted = map_side + MAP_OVERHEAD_PX
    return int(min(max(wanted, right_height * TOP_MIN_SHARE), right_height * TOP_MAX_SHARE))


def apply_sizes(window: QMainWindow, docks: DefaultDocks) -> None:
    """Dock sizes only take once the window has its size, so this runs when it is first shown
    (and on View > Reset layout); once more after the event loop's next turn, because sizes given
    before the dock area's first layout pass are lost (the settings column came out 492 px)."""
    _apply_sizes(window, docks)
    QTimer.singleShot(0, lambda: _apply_sizes(window, docks))


def _apply_sizes(window: QMainWindow, docks: DefaultDocks) -> None:
    for dock in docks.raised:
        dock.raise_()
    width = settings_width(docks, window.width())
    # Its few lines, uncut (the summary arrives after this runs: room for ~7 rows); the form takes the rest.
    data_height = max(_height_at(docks.data.widget(), width), DATA_MIN_HEIGHT) + 28
    window.resizeDocks([docks.data, docks.training], [data_height, max(window.height() - data_height, 200)],
                       Qt.Orientation.Vertical)
    window.resizeDocks([docks.data], [width], Qt.Orientation.Horizontal)
    central_height = window.height() - window.menuBar().height() - window.statusBar().height()
    right_width = window.width() - width - SPLIT_HANDLES_PX
    if docks.tabbed and docks.below:
        top = top_height(right_width, central_height)
        window.resizeDocks([docks.tabbed[0], docks.below[0]], [top, central_height - top], Qt.Orientation.Vertical)
    if len(docks.below) == 2:
        # The loss curves get the larger part: their legend sits beside the plot.
        share = int(right_width * 0.56)
        window.resizeDocks(docks.below, [share, right_width - share], Qt.Orientation.Horizontal)
    _share_projection_width(docks.projection_view, right_width)


def _share_projection_width(view, right_width: int) -> None:
    """The maps take the projection view's width; the hovered-sample preview keeps a slim column.
    The maps' splitter lays itself out again (equal shares, ~280 px maps at 1440x900) when it first
    shows behind the "no model yet" page and when a panel is shown or hidden, so the share is kept
    on every such change until the user drags a handle."""
    splitter = getattr(view, "splitter", None)
    if splitter is None or splitter.count() < 2:
        return
    if getattr(splitter, "_default_share", None) is None:
        keeper = _KeepMapShare(splitter)
        splitter._default_share = keeper
        splitter.installEventFilter(keeper)
        splitter.splitterMoved.connect(keeper.user_moved)
    splitter._default_share.active = True
    if splitter.isVisible():
        share_splitter(splitter)


def share_splitter(splitter) -> None:
    panels = [splitter.widget(i) for i in range(splitter.count() - 1)]
    shown = [p for p in panels if not p.isHidden()] or panels[:MAPS_SHOWN]
    width = splitter.width()
    side = max((width - PREVIEW_WIDTH - splitter.handleWidth() * len(shown)) // max(len(shown), 1), 1)
    splitter.setSizes([side if p in shown else 0 for p in panels] + [width - side * len(shown)])


class _KeepMapShare(QObject):
    """Re-applies the maps' share when the splitter is resized or its panels change, until the
    user moves a handle (View > Reset layout turns it on again)."""

    def __init__(self, splitter):
        super().__init__(splitter)
        self.active = True
        self._pending = False

    def user_moved(self, *_args) -> None:
        self.active = False

    def eventFilter(self, watched, event) -> bool:  # noqa: N802 - Qt override
        if (self.active and not self._pending and watched.isVisible()
                and event.type() in (QEvent.Type.Resize, QEvent.Type.Show, QEvent.Type.LayoutRequest)):
            self._pending = True   # once per turn of the event loop, after the splitter's own layout
            QTimer.singleShot(0, lambda: self._apply(watched))
        return False

    def _apply(self, splitter) -> None:
        self._pending = False
        if self.active:
            splitter.blockSignals(True)   # setSizes is not a user's move
            share_splitter(splitter)
            splitter.blockSignals(False)
