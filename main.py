"""Latent Explorer: `python main.py` opens the window; `python main.py COMMAND ...` runs headless."""

import sys

from app.__main__ import main

if __name__ == "__main__":
    sys.exit(main())
