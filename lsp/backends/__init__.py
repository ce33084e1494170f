"""Model backends: one protocol, several engines (TGI, OpenAI-compatible servers, an embedded model)."""

from lsp.backends.base import Backend, GenerationRequest, ModelInfo

__all__ = ["Backend", "GenerationRequest", "ModelInfo"]
