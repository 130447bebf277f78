"""Entry point: no arguments (or only a data spec / run directory to open) -> window, else CLI."""

from __future__ import annotations

import sys


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    from app.cli import COMMANDS

    if argv and (argv[0] in COMMANDS or argv[0].startswith("-")):
        from app.cli import main as cli_main
        return cli_main(argv)
    from app.gui.app import run_window  # Qt is imported only on this path
    return run_window(argv)


if __name__ == "__main__":
    sys.exit(main())
