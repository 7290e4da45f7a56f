"""The CLI group and what every command shares: error handling, progress, rendering helpers.

User mistakes and failed steps print one line (``error: ...``) and exit 2 (usage) or 1 (failure);
``--debug`` shows the traceback.
"""
from __future__ import annotations

import sys
from functools import wraps

import click

_DEBUG = {"on": False}  # set once per process by the group callback; read only by run


def console(stderr: bool = False):
    from rich.console import Console

    return Console(stderr=stderr, highlight=False)


DEBUG_HINT = "(run with --debug for the traceback)"


def run(fn):
    """Turn every error into one line and an exit code: edgekit's own errors as they are, a failed stage
    (:class:`edgekit.errors.StageFailure`) and any other exception with the hint to rerun with --debug,
    which shows the traceback instead."""

    @wraps(fn)
    def wrapper(*args, **kwargs):
        from edgekit.errors import EdgekitError, StageFailure, first_line

        try:
            return fn(*args, **kwargs)
        except EdgekitError as e:
            if _DEBUG["on"]:
                raise
            hint = f" {DEBUG_HINT}" if isinstance(e, StageFailure) else ""
            click.echo(f"error: {e}{hint}", err=True)
            sys.exit(e.exit_code)
        except KeyboardInterrupt:
            click.echo("interrupted; nothing was written", err=True)
            sys.exit(130)
        except (click.exceptions.ClickException, click.exceptions.Exit, click.exceptions.Abort):
            raise  # click's own usage errors and exits
        except Exception as e:  # noqa: BLE001 - a bug or a library failure outside any stage: still one line
            if _DEBUG["on"]:
                raise
            command = click.get_current_context(silent=True)
            name = command.info_name if command is not None else fn.__name__
            click.echo(f"error: {name} failed: {first_line(e)} {DEBUG_HINT}", err=True)
            sys.exit(1)

    return wrapper


@click.group(context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 110})
@click.version_option(package_name="edgekit")
@click.option("--debug", is_flag=True, help="Show tracebacks for errors.")
def main(debug: bool) -> None:
    """edgekit: PyTorch vision and segmentation models to edge runtimes, with a parity gate."""
    _DEBUG["on"] = debug


def reporter(quiet: bool, as_json: bool):
    from edgekit.progress import Reporter, RichReporter

    return Reporter() if (quiet or as_json) else RichReporter()


def choice(enum):
    return click.Choice([m.value for m in enum], case_sensitive=False)
