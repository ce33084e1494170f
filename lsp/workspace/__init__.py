"""The workspace index: every source file of the workspace, walked in the background, summarised with
tree-sitter (definitions, imports), persisted in the user's cache and kept current by file events, so that a
completion sees the definitions the code uses from files that are not open.

Pure code over files: no pygls here (``lsp/features/workspace.py`` wires it to the client).
"""

from .index import WorkspaceIndex
from .retrieval import WorkspaceDefinitions, related_definitions
from .walker import WalkLimits, find_root

__all__ = ["WalkLimits", "WorkspaceDefinitions", "WorkspaceIndex", "find_root", "related_definitions"]
