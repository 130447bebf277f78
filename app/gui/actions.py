"""The window's actions, declared once: each builds its menu entry and its line in the keyboard
shortcuts dialog, so the two can never disagree.

An action names the window method it triggers (`slot`) and the attribute it is kept in (`name`,
e.g. window.train_action); the menus are built in the order given here.
"""

from __future__ import annotations

from dataclasses import dataclass

from PySide6.QtGui import QAction, QKeySequence

Key = QKeySequence.StandardKey


@dataclass(frozen=True)
class ActionSpec:
    menu: str                   # "&File", "&Training", "&View", "&Help"
    text: str
    slot: str                   # the window method it calls
    name: str = ""              # window attribute holding the QAction ("" for none)
    shortcuts: tuple = ()       # key strings or QKeySequence.StandardKey values
    tip: str = ""
    separator_before: bool = False


ACTIONS = (
    ActionSpec("&File", "Open data file…", "ask_open_data_file", "open_file_action", ("Ctrl+Shift+O",),
               "Open a .npz, .npy, .csv or IDX (.gz) data file"),
    ActionSpec("&File", "Open data folder…", "ask_open_data_folder", "open_folder_action", (),
               "Open a folder of images or of IDX files"),
    ActionSpec("&File", "Open run…", "ask_open_run", "open_run_action", (Key.Open,),
               "Open a run directory saved by the window or the command line", separator_before=True),
    ActionSpec("&File", "Save run as…", "ask_save_run", "save_run_action", (Key.Save,),
               "Save the current model, its settings and history as a run directory"),
    ActionSpec("&File", "Quit", "close", "", (Key.Quit,), "Close the window", separator_before=True),
    ActionSpec("&Training", "Train", "start_training", "train_action", ("Ctrl+T",),
               "Train a new model with the panel's settings"),
    ActionSpec("&Training", "Pause / resume", "space_pressed", "pause_action", ("Space",),
               "Pause or resume training (when not typing in a field)"),
    ActionSpec("&Training", "Stop", "stop_training", "stop_action", ("Ctrl+.", "Esc"),
               "Stop training, keeping the model trained so far"),
    ActionSpec("&View", "Reset layout", "reset_layout", "", (), "Put every panel back where it started"),
    ActionSpec("&Help", "Keyboard shortcuts", "show_shortcuts", "", (Key.HelpContents,)),
    ActionSpec("&Help", "About Latent Explorer", "show_about"),
)

# Shortcuts that are not actions, for the dialog only.
OTHER_SHORTCUTS = (("Click a legend entry", "Hide or show that loss curve"),)


def key_sequences(spec: ActionSpec) -> list[QKeySequence]:
    return [QKeySequence(key) for key in spec.shortcuts]


def build_actions(window, menus: dict) -> dict[str, QAction]:
    """QActions for ACTIONS in `menus` (title -> QMenu), each set as window.<name> when named;
    returns them by menu text."""
    built = {}
    for spec in ACTIONS:
        menu = menus[spec.menu]
        if spec.separator_before:
            menu.addSeparator()
        action = QAction(spec.text, window)
        action.setShortcuts(key_sequences(spec))
        action.setToolTip(spec.tip or spec.text)
        action.setStatusTip(spec.tip or spec.text)
        action.triggered.connect(lambda _=False, slot=spec.slot: getattr(window, slot)())
        menu.addAction(action)
        if spec.name:
            setattr(window, spec.name, action)
        built[spec.text] = action
    return built


def shortcut_rows() -> list[tuple[str, str]]:
    """(keys, what they do) for the shortcuts dialog, from the same declarations as the menus."""
    rows = []
    for spec in ACTIONS:
        keys = [QKeySequence(k).toString(QKeySequence.SequenceFormat.NativeText) for k in spec.shortcuts]
        if keys:
            rows.append((" or ".join(keys), spec.tip or spec.text))
    return rows + list(OTHER_SHORTCUTS)
