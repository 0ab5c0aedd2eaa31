"""Imported first by every benchmark: `python bench/<name>.py` works with any Python 3, as the
issues write it, by running the script again under the project's own environment (`.venv`, made by
`make install` or `make run`)."""

from __future__ import annotations

import os
import sys
from pathlib import Path

VENV = Path(__file__).resolve().parent.parent / ".venv"

if Path(sys.prefix).resolve() != VENV.resolve():
    python = VENV / "bin" / "python"
    if not python.exists():
        sys.exit(f"{VENV} is missing: run `make install` first")
    os.execv(str(python), [str(python), *sys.argv])
