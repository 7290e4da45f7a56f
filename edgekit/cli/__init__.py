"""The `edgekit` command line. Each command lives in its own module and is a thin layer over one
API function; importing them here registers them on the group."""
from edgekit.cli._core import main
from edgekit.cli import export  # noqa: F401  (registers export, inspect, models)
from edgekit.cli import profile  # noqa: F401  (registers profile)
from edgekit.cli import quantize  # noqa: F401  (registers quantize, evaluate)
from edgekit.cli import debug  # noqa: F401  (registers debug)
from edgekit.cli import tune  # noqa: F401  (registers tune, sweep)

__all__ = ["main"]
