"""Where reactpal keeps its files: one data directory, always an absolute path.

``DATA_DIR`` when set; otherwise the ``data/`` directory of the source checkout the packages
run from (the README's install: a clone, then ``make``), found from this file's location, not
from the working directory; otherwise, for an installed wheel, ``$XDG_DATA_HOME/reactpal``
(``~/.local/share/reactpal``). The run store (``runs.db``) and the assembled model
(``models/``) live in it unless ``DATABASE_URL`` / ``MODEL_CACHE_DIR`` say otherwise.
"""

from __future__ import annotations

import os
from pathlib import Path

_CHECKOUT = Path(__file__).resolve().parent.parent


def default_data_dir() -> Path:
    configured = os.environ.get("DATA_DIR")
    if configured:
        return Path(configured).expanduser().resolve()
    if (_CHECKOUT / "pyproject.toml").is_file() and (_CHECKOUT / "service").is_dir():
        return _CHECKOUT / "data"
    base = os.environ.get("XDG_DATA_HOME") or Path.home() / ".local" / "share"
    return Path(base).expanduser().resolve() / "reactpal"


def default_model_cache_dir() -> Path:
    configured = os.environ.get("MODEL_CACHE_DIR")
    if configured:
        return Path(configured).expanduser().resolve()
    return default_data_dir() / "models"
