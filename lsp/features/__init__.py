"""One module per LSP feature; each has `register(server)`. Handlers stay short: they translate between
the protocol and `lsp.assistant`."""
