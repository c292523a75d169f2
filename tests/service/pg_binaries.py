"""Debian's Postgres binaries, for a throwaway cluster (the tests' ``postgres.py`` and
``bench/load.py``): where they are, and how to run them as the ``postgres`` user."""

from __future__ import annotations

import os
import shutil
from pathlib import Path


def bindir() -> Path | None:
    """The newest Postgres installed (``/usr/lib/postgresql/<version>/bin``), else PATH's."""
    found = sorted(Path("/usr/lib/postgresql").glob("*/bin/initdb"))
    if found:
        return found[-1].parent
    initdb = shutil.which("initdb")
    return Path(initdb).parent if initdb else None


def as_owner(command: list[str], data: Path) -> list[str]:
    """initdb refuses to run as root: then the cluster belongs to the ``postgres`` user."""
    if os.geteuid() != 0:
        return command
    shutil.chown(data, "postgres")
    return ["runuser", "-u", "postgres", "--", *command]
