"""`python -m lsp` is the same as the `codellama-lsp` command."""

from lsp.cli import main

if __name__ == "__main__":
    raise SystemExit(main())
