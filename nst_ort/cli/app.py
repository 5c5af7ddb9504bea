"""The `nst-ort` command: its commands, registered once each, and how errors become exit codes.

A command module parses its options, builds the config and calls the API; this module turns what
comes back into one line and an exit code: 0 done, 1 the run failed, 2 bad input, 130
interrupted (README, "When things go wrong").
"""

from __future__ import annotations

import sys
from typing import Annotated

import typer

from nst_ort import errors
from nst_ort.cli import batch, bundle, model, studies, stylize, video
from nst_ort.cli.options import as_options
from nst_ort.cli.progress import err
from nst_ort.errors import NstError

try:  # Typer 0.26 and later vendor click; its usage errors derive from TyperException
    from typer import TyperException as UsageError
except ImportError:  # earlier Typers raise click's own
    from click import ClickException as UsageError

app = typer.Typer(
    add_completion=False,
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    help="Neural style transfer (Gatys, Ecker & Bethge 2015) on ONNX Runtime.",
)
STATE = {"debug": False}


@app.callback()
def _main(
    debug: Annotated[bool, typer.Option("--debug", help="Show Python tracebacks on errors.")] = False,
) -> None:
    STATE["debug"] = debug


app.command("export")(model.export_command)
app.command("info")(model.info_command)
app.command("stylize")(stylize.stylize_command)
app.command("resume")(stylize.resume_command)
app.add_typer(studies.reconstruct_app, name="reconstruct")
app.command("sweep")(studies.sweep_command)
app.command("batch")(batch.batch_command)
app.command("bundle")(bundle.bundle_command)
app.command("run-bundle")(bundle.run_bundle_command)
app.command("video")(video.video_command)


def _print_error(message: str) -> None:
    # Messages quote what the user typed; a control or line-separator character in it (e.g.
    # U+0085) would break the one-line promise, so such characters are shown escaped.
    line = "".join(c if c.isprintable() else ascii(c)[1:-1] for c in message)
    err.print(f"error: {line}", highlight=False, markup=False, soft_wrap=True)


def main(argv: list[str] | None = None) -> None:
    """Run the command line (`argv`, default sys.argv[1:]) and exit with its code."""
    STATE["debug"] = False
    try:
        code = app(args=argv, prog_name="nst-ort", standalone_mode=False)  # returns a typer.Exit's code
    except NstError as exc:
        if STATE["debug"]:
            raise
        _print_error(as_options(str(exc)))
        sys.exit(exc.exit_code)
    except typer.Exit as exc:
        sys.exit(exc.exit_code)
    except (KeyboardInterrupt, typer.Abort):
        err.print("interrupted", highlight=False)
        sys.exit(errors.INTERRUPTED)
    except UsageError as exc:  # a mistyped option or command: click's message and usage line
        show = getattr(exc, "show", None)
        if show is None:
            _print_error(exc.format_message())
        else:
            show()
        sys.exit(exc.exit_code)
    except Exception as exc:
        if STATE["debug"]:
            raise
        _print_error(f"{type(exc).__name__}: {exc} (run with --debug for the traceback)")
        sys.exit(errors.FAILURE)
    sys.exit(code if isinstance(code, int) else 0)
