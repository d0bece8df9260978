"""The one ``keel`` command. Each folder contributes its own subcommands through ``register(app)``."""

import typer

from keel import demo
from keel.backtests import cli as backtests_cli
from keel.data import cli as data_cli
from keel.live import cli as live_cli
from keel.validation import cli as validation_cli

app = typer.Typer(
    name="keel",
    help="Keel: ingest market data, backtest and sweep strategies, run them live, and gate promotion.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)

for module in (data_cli, backtests_cli, live_cli, validation_cli, demo):
    module.register(app)
