"""The docs tools live in tools/ (outside the package's layers): loaded here by path."""

import importlib
import sys
from pathlib import Path

TOOLS = Path(__file__).resolve().parents[3] / "tools"


def load(name: str):
    if str(TOOLS) not in sys.path:
        sys.path.insert(0, str(TOOLS))
    return importlib.import_module(name)
