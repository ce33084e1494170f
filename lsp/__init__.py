"""codellama-lsp: a language server that brings CodeLlama-70B-Instruct (served by TGI) into editors."""

__version__ = "0.1.0"
