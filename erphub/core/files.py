"""Files erphub creates hold customers' personal data and credentials: only their owner may read them.

`private_dir` and `private_file` set 0700 / 0600 on what erphub makes (the store, Prefect's home and
database, logs); `private_umask` makes every file a process creates from then on private as well,
including those another library (SQLite's -wal and -shm, Prefect's database) writes for us.
`lookups_beside` is where a mapping's code tables are: next to it, never in the installed package.
"""

from __future__ import annotations

import contextlib
import os
from pathlib import Path

PRIVATE_UMASK = 0o077


def private_umask() -> int:
    """From now on, new files are 0600 and new folders 0700; returns the previous umask."""
    return os.umask(PRIVATE_UMASK)


def private_dir(path: Path) -> Path:
    """Create `path` (and missing parents) as 0700; a folder that exists is left as its owner set it."""
    missing = []
    for folder in (path, *path.parents):
        if folder.exists():
            break
        missing.append(folder)
    path.mkdir(parents=True, exist_ok=True)
    for folder in missing:
        with contextlib.suppress(OSError):
            folder.chmod(0o700)
    return path


def private_file(path: Path) -> None:
    """Make a file erphub created readable by its owner only (a no-op for a file that is not there)."""
    with contextlib.suppress(FileNotFoundError):
        path.chmod(0o600)


def lookups_beside(mapping: Path) -> Path:
    """The `lookups/` folder that goes with a mapping file: the nearest one in the mapping's folder or up
    to two above it (`mappings/lookups/` beside `mappings/<pair>/<entity>.yaml` or
    `mappings/processes/<erp>/<entity>.yaml`). Never the installed package's, unless the mapping is the
    package's: a deployment's mappings read the deployment's tables."""
    folder = mapping.resolve().parent
    for candidate in (folder / "lookups", folder.parent / "lookups", folder.parent.parent / "lookups"):
        if candidate.is_dir():
            return candidate
    return folder.parent / "lookups"  # absent: a mapping that uses a table says where it looked
