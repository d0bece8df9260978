"""The one ``keel`` command. Each folder contributes its own subcommands through ``register(app)``.

Importing this module is cheap (typer and the command signatures, ~0.1 s): each command imports what it needs
when it runs.
"""

import atexit
import os
import sys
from typing import Any

import typer

from keel import demo
from keel.backtests import cli as backtests_cli
from keel.data import cli as data_cli
from keel.live import cli as live_cli
from keel.validation import cli as validation_cli

# Commands whose work is on disk when they return (files closed, databases committed), so the process may end
# without the interpreter's teardown: freeing every module and Rust object of nautilus, polars and arrow took
# 0.3-0.5 s after each backtest. Live sessions are left out: a node's Rust logger flushes node.log at teardown.
QUICK_EXIT_COMMANDS = frozenset({"backtest", "sweep", "audit-fills", "gate", "promote", "data"})


class KeelApp(typer.Typer):
    """The ``keel`` app; run as a command, it ends the process as soon as a quick-exit command is done."""

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        """Run the command line; after a command of ``QUICK_EXIT_COMMANDS``, end the process at once with its exit code."""
        command_line = kwargs.get("args", args[0] if args else None)
        command = (sys.argv[1:] if command_line is None else list(command_line))[:1]
        if not command or command[0] not in QUICK_EXIT_COMMANDS:
            return super().__call__(*args, **kwargs)
        try:
            super().__call__(*args, **kwargs)
            code = 0
        except SystemExit as stop:
            code = stop.code if isinstance(stop.code, int) else (0 if stop.code is None else 1)
            if not isinstance(stop.code, int | None):
                print(stop.code, file=sys.stderr)
        # What the interpreter would still do at exit, minus freeing memory: the exit handlers (logging's flush
        # among them) and the standard streams.
        atexit._run_exitfuncs()
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(code)


app = KeelApp(
    name="keel",
    help="Keel: ingest market data, backtest and sweep strategies, run them live, and gate promotion.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)

for module in (data_cli, backtests_cli, live_cli, validation_cli, demo):
    module.register(app)
