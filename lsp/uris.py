"""URIs and paths, in one place: what a `file:` URI names, the URI of a path, and whether a path lies inside
the workspace folders.

Paths are POSIX-style (``c:/x/y.py`` for a Windows drive), so ``posixpath`` handles them on every system.
A URI's dot segments are resolved (RFC 3986, 5.2.4): ``file:///w/../etc/x`` names ``/etc/x``, never a path
that only looks as if it were inside ``/w``.
"""

from __future__ import annotations

import os
import posixpath
from collections.abc import Iterable
from urllib.parse import quote, unquote, urlparse

__all__ = ["inside", "path_to_uri", "shown_path", "uri_to_path"]


def uri_to_path(uri: str) -> str:
    """The file system path of a ``file:`` URI, else the path part of the URI (or the URI itself)."""
    parsed = urlparse(uri)
    if parsed.scheme == "file":
        path = unquote(parsed.path)
        if len(path) >= 3 and path[0] == "/" and path[2] == ":" and path[1].isalpha():
            path = path[1:]  # file:///c:/x -> c:/x
        if path:
            path = posixpath.normpath(path)
        if parsed.netloc and parsed.netloc != "localhost":
            path = f"//{parsed.netloc}{path}"
        return path
    if parsed.scheme and parsed.path:
        return unquote(parsed.path)
    return uri


def path_to_uri(path: str) -> str:
    """A ``file:`` URI for an absolute path as :func:`uri_to_path` gives them (POSIX, or ``c:/x``)."""
    return ("file://" if path.startswith("/") else "file:///") + quote(path, safe="/:")


def inside(path: str, folders: Iterable[str]) -> bool:
    """Whether ``path`` lies in one of ``folders`` (paths or ``file:`` URIs), after resolving ``..`` and
    symbolic links: a link inside the workspace that points out of it is outside."""
    real = _real(path)
    for folder in folders:
        base = _real(uri_to_path(folder) if "://" in folder else folder)
        if real == base or real.startswith(base.rstrip("/") + "/"):
            return True
    return False


def shown_path(path: str, root: str | None) -> str:
    """A path as the user (and the model) should read it: relative to the workspace root when inside it."""
    base = (root or "").rstrip("/")
    return path[len(base) + 1 :] if base and path.startswith(base + "/") else path


def _real(path: str) -> str:
    return os.path.realpath(posixpath.normpath(path)).replace(os.sep, "/")
