"""Entry point: no arguments (or only a data spec / run directory to open) -> window, else CLI."""

from __future__ import annotations

import sys
from pathlib import Path


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    from app.cli import COMMANDS

    if argv and (argv[0] in COMMANDS or argv[0].startswith("-")):
        from app.cli import main as cli_main
        return cli_main(argv)
    if argv and not _opens_in_window(argv[0]):
        print(f"error: unknown command {argv[0]!r}; the commands are {', '.join(COMMANDS)}, or give a run "
              f"directory, a data file or folder, or a built-in data set to open in the window "
              f"(python main.py --help)", file=sys.stderr)
        return 2
    from app.gui.app import run_window  # Qt is imported only on this path
    return run_window(argv)


def _opens_in_window(word: str) -> bool:
    """A run directory, a data file or folder, or a built-in data set name (torch-free check)."""
    from app.core.data import BUILTIN_DATASETS

    return word in BUILTIN_DATASETS or Path(word).expanduser().exists()


if __name__ == "__main__":
    sys.exit(main())
