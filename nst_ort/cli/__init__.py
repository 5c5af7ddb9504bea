"""The command line: app.py registers the commands and maps errors to exit codes; options.py
declares every option once; one module per command group (model, stylize, studies, bundle)."""

from nst_ort.cli.app import app, main

__all__ = ["app", "main"]
