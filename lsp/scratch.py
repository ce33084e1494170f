"""Files the server writes for the user to read (explanations shown with ``window/showDocument``).

They live in a folder private to the server process (``mkdtemp``: no other user's files, no clashes
between servers) whose name carries the process id. The folder outlives the process, since an editor may
still show its files; the next server that writes one removes the folders of processes that are gone,
so they do not pile up in the temporary directory.
"""

from __future__ import annotations

import logging
import os
import re
import shutil
import tempfile
from pathlib import Path

__all__ = ["PREFIX", "ScratchFolder"]

log = logging.getLogger(__name__)

PREFIX = "codellama-lsp-"
_OWNED = re.compile(re.escape(PREFIX) + r"(\d+)-")
_UNSAFE = re.compile(r"[\W_]+")  # a run of anything but letters and digits becomes one "-"


class ScratchFolder:
    """One server's folder of files for the user; created on the first write."""

    def __init__(self, parent: str | None = None) -> None:
        self._parent = parent  # None: the system's temporary directory
        self._path: Path | None = None

    @property
    def path(self) -> Path | None:
        return self._path

    def write(self, name: str, text: str) -> Path | None:
        """Write ``text`` to the file ``name`` (made safe as a file name, ``.md`` added), replacing an earlier
        one of that name; None when it cannot be written (logged)."""
        try:
            if self._path is None or not self._path.is_dir():
                self._path = Path(tempfile.mkdtemp(prefix=f"{PREFIX}{os.getpid()}-", dir=self._parent))
                sweep(self._path.parent)
            safe = _UNSAFE.sub("-", name.lower()).strip("-")[:60] or "explanation"
            path = self._path / f"{safe}.md"
            path.write_text(text, encoding="utf-8")
            return path
        except OSError as error:
            log.warning("cannot write %s for the editor: %s", name, error)
            return None


def sweep(parent: Path) -> None:
    """Remove the scratch folders in ``parent`` of this user's server processes that have exited."""
    if os.name != "posix":  # os.kill(pid, 0) is a liveness probe on POSIX only
        return
    try:
        entries = list(parent.iterdir())
    except OSError:
        return
    for entry in entries:
        match = _OWNED.match(entry.name)
        if match is None or int(match.group(1)) == os.getpid():
            continue
        try:
            if entry.is_symlink() or not entry.is_dir() or entry.stat().st_uid != os.getuid():
                continue
        except OSError:
            continue
        if not _alive(int(match.group(1))):
            shutil.rmtree(entry, ignore_errors=True)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except OSError:  # (PermissionError: it exists, as another user's process)
        return True
    return True
