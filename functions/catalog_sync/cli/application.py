"""The Typer application, how every command's body runs (its failures turned into messages and exit codes), and
the entry point."""

from __future__ import annotations

import functools
import sys
import traceback
from collections.abc import Callable
from typing import Any

import typer
from rich.markup import escape

from catalog_sync.adapters.embedders.minilm import EmbedderUnavailable
from catalog_sync.adapters.local.lance_index import LocalIndexError
from catalog_sync.adapters.local.writer_lock import WriterBusy
from catalog_sync.cli.console import err, write_json
from catalog_sync.cli.errors import CommandError, ExitCode, Interrupted
from catalog_sync.formats.records import CatalogFormatError
from catalog_sync.models.config import ConfigError
from catalog_sync.services.sync_report import BadCatalog

app = typer.Typer(
    name="catalog-sync",
    help="Keep a vector index exactly in step with a product catalog, doing the minimum work.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)

CommandBody = Callable[..., ExitCode]


def command(body: CommandBody) -> Callable[..., None]:
    """A command from its body, which returns its exit code: known failures become a message on stderr (and, under
    --json, one JSON error object on stdout) and their exit code. The parameters are the body's, for Typer."""

    @functools.wraps(body)
    def run(**options: Any) -> None:
        json_output = bool(options.get("json_output", False))
        try:
            code = body(**options)
        except CommandError as exc:
            _fail(json_output, "error", str(exc), exc.code)
        except WriterBusy as exc:
            _fail(json_output, "busy", str(exc), ExitCode.BUSY)
        except Interrupted as exc:
            run_id = exc.run.run_id if exc.run else None
            _fail(json_output, "interrupted", str(exc), ExitCode.INTERRUPTED, run_id=run_id)
        except KeyboardInterrupt:
            _fail(json_output, "interrupted", "stopped by Ctrl+C: nothing was changed", ExitCode.INTERRUPTED)
        except (BadCatalog, CatalogFormatError, ConfigError) as exc:
            _fail(json_output, "bad input", str(exc), ExitCode.BAD_INPUT)
        except OSError as exc:
            where = f" {exc.filename}" if exc.filename else ""
            _fail(json_output, "bad input", f"cannot use{where}: {exc.strerror or exc}", ExitCode.BAD_INPUT)
        except (EmbedderUnavailable, LocalIndexError) as exc:
            _fail(json_output, "error", str(exc), ExitCode.FAILED)
        raise typer.Exit(int(code or ExitCode.OK))

    return run


def _fail(json_output: bool, label: str, message: str, code: ExitCode, **extra: Any) -> None:
    if json_output:
        write_json({"error": message, "exit_code": int(code), **{k: v for k, v in extra.items() if v is not None}})
    err.print(f"[bold red]{label}:[/] {escape(message)}", highlight=False)
    raise typer.Exit(int(code))


def _json_requested(argv: list[str]) -> bool:
    """Whether the command line asks for JSON (before a `--`, after which everything is an argument)."""
    return "--json" in (argv[: argv.index("--")] if "--" in argv else argv)


def main() -> None:
    # Click reports usage errors with exit code 2, which here means "held back by the guard": map them to 3.
    # Under --json every error is also one JSON object on stdout, usage errors and unexpected ones included.
    json_output = _json_requested(sys.argv[1:])
    try:
        code = app(standalone_mode=False)
    except typer.Abort:
        err.print("aborted")
        if json_output:
            write_json({"error": "aborted", "exit_code": int(ExitCode.FAILED)})
        sys.exit(int(ExitCode.FAILED))
    except Exception as exc:
        # Click's errors (Typer vendors its own Click) know how to show themselves and carry an exit code.
        show, exit_code = getattr(exc, "show", None), getattr(exc, "exit_code", None)
        if show is None or not isinstance(exit_code, int):
            if not json_output:
                raise
            traceback.print_exc()
            write_json({"error": f"internal error: {type(exc).__name__}: {exc}", "exit_code": int(ExitCode.FAILED)})
            sys.exit(int(ExitCode.FAILED))
        show()
        code = int(ExitCode.BAD_INPUT) if exit_code == 2 else exit_code
        if json_output:
            format_message = getattr(exc, "format_message", None)
            write_json({"error": format_message() if callable(format_message) else str(exc), "exit_code": code})
        sys.exit(code)
    sys.exit(code if isinstance(code, int) else 0)
