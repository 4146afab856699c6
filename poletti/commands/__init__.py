"""The CLI commands beyond check and fmt, one module each (see poletti/cli.py)."""
