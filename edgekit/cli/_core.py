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


def run(fn):
    """Turn edgekit errors into one line and an exit code; keep tracebacks for bugs and --debug."""

    @wraps(fn)
    def wrapper(*args, **kwargs):
        from edgekit.errors import EdgekitError

        try:
            return fn(*args, **kwargs)
        except EdgekitError as e:
            if _DEBUG["on"]:
                raise
            click.echo(f"error: {e}", err=True)
            sys.exit(e.exit_code)
        except KeyboardInterrupt:
            click.echo("interrupted; nothing was written", err=True)
            sys.exit(130)

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
