"""``keel backtest`` and ``keel sweep``: run a variant over the catalog, or search its parameters."""

from pathlib import Path
from typing import Annotated

import typer


def register(app: typer.Typer) -> None:
    """Add the ``backtest`` and ``sweep`` commands to the ``keel`` app."""
    app.command(name="backtest")(backtest)
    app.command(name="sweep")(sweep)


def backtest(
    variant: Annotated[Path, typer.Argument(help="Variant file (YAML): strategy, config values, venue.")],
    catalog: Annotated[Path | None, typer.Option(help="Catalog folder (default $KEEL_HOME/catalog).")] = None,
    start: Annotated[str | None, typer.Option(help="Window start, ISO-8601 UTC (default: first data).")] = None,
    end: Annotated[str | None, typer.Option(help="Window end, ISO-8601 UTC (default: last data).")] = None,
    venue_config: Annotated[Path | None, typer.Option(help="Venue model file (default configs/venues/<venue>.yaml).")] = None,
    run_dir: Annotated[Path | None, typer.Option(help="Run folder to create (default $KEEL_HOME/runs/<time>-<name>).")] = None,
    mlflow: Annotated[bool, typer.Option("--mlflow/--no-mlflow", help="Record the run in MLflow.")] = True,
) -> None:
    """
    Backtest one variant over the catalog and write a run folder.

    The run folder holds fills, orders, positions and account history (Parquet), summary.json with P&L by
    component, and tearsheet.html (price with fills, P&L, drawdown). The run is also recorded in MLflow.
    """
    from keel.backtests.runner import BacktestInputError
    from keel.backtests.runner import run_backtest
    from keel.backtests.venues import VenueModelError
    from keel.backtests.venues import load_venue_model
    from keel.settings import default_catalog_path
    from keel.variant import VariantError
    from keel.variant import load_variant

    try:
        loaded = load_variant(variant)
        venue = load_venue_model(venue_config) if venue_config else None
        outcome = run_backtest(
            loaded,
            catalog or default_catalog_path(),
            run_dir=run_dir,
            start=start,
            end=end,
            venue=venue,
            log_to_mlflow=mlflow,
        )
    except (VariantError, VenueModelError, BacktestInputError) as error:
        typer.echo(f"error: {error}", err=True)
        raise typer.Exit(code=2) from None
    _print_summary(outcome.summary)
    typer.echo(f"run folder: {outcome.run_dir}")
    typer.echo(f"tearsheet:  {outcome.run_dir / 'tearsheet.html'}")


def sweep(
    variant: Annotated[Path, typer.Argument(help="Base variant file (YAML); its sweep space is <variant>.sweep.yaml.")],
    trials: Annotated[int, typer.Option(help="Trials to add to the study in this call.")] = 20,
    space: Annotated[Path | None, typer.Option(help="Search-space file (default: beside the variant, .sweep.yaml).")] = None,
    study: Annotated[str | None, typer.Option(help="Study name (default: the variant name).")] = None,
    storage: Annotated[
        str | None,
        typer.Option(help="Optuna storage URL, e.g. postgresql://127.0.0.1/optuna (default: SQLite in the sweep folder)."),
    ] = None,
    catalog: Annotated[Path | None, typer.Option(help="Catalog folder (default $KEEL_HOME/catalog).")] = None,
    start: Annotated[str | None, typer.Option(help="Window start, ISO-8601 UTC.")] = None,
    end: Annotated[str | None, typer.Option(help="Window end, ISO-8601 UTC.")] = None,
    top: Annotated[int, typer.Option(help="Write the best K trials as variant files.")] = 3,
    mlflow: Annotated[bool, typer.Option("--mlflow/--no-mlflow", help="Record every trial in MLflow.")] = True,
) -> None:
    """
    Sweep a variant's parameters with Optuna and write the best trials as variant files.

    The study is stored on disk (or the --storage database) and resumable: calling again with the same study
    adds trials. Every trial is a backtest recorded in MLflow. The best --top trials are written to
    $KEEL_HOME/sweeps/<study>/variants/ as variant files that `keel backtest` and `keel live` accept.
    """
    from keel.backtests.runner import BacktestInputError
    from keel.backtests.sweep import SweepError
    from keel.backtests.sweep import run_sweep
    from keel.settings import default_catalog_path
    from keel.variant import VariantError

    try:
        outcome = run_sweep(
            variant,
            catalog or default_catalog_path(),
            trials=trials,
            space_path=space,
            study_name=study,
            storage=storage,
            start=start,
            end=end,
            top=top,
            log_to_mlflow=mlflow,
        )
    except (VariantError, SweepError, BacktestInputError) as error:
        typer.echo(f"error: {error}", err=True)
        raise typer.Exit(code=2) from None
    typer.echo(f"study {outcome.study_name}: {outcome.total_trials} trials ({outcome.new_trials} new), objective {outcome.objective}")
    for rank, (path, value, params) in enumerate(outcome.best, start=1):
        typer.echo(f"  #{rank} {outcome.objective}={value:.6g} {params} -> {path}")
    typer.echo(f"sweep folder: {outcome.sweep_dir}")


def _print_summary(summary: dict) -> None:
    rows = [
        ("window", f"{summary['start']} .. {summary['end']}"),
        (f"P&L net ({summary['currency']})", f"{summary['pnl_net']:.6f}"),
        ("  gross", f"{summary['pnl_gross']:.6f}"),
        ("  fees", f"{summary['fees']:.6f}"),
        ("max drawdown", f"{summary['max_drawdown']:.6f}"),
        ("orders / fills", f"{summary['orders']} / {summary['fills']}"),
        ("round trips", str(summary["round_trips"])),
        ("win rate", "-" if summary["win_rate"] is None else f"{summary['win_rate']:.0%}"),
        ("open at end (orders/positions)", f"{summary['open_orders_at_end']} / {summary['open_positions_at_end']}"),
    ]
    width = max(len(name) for name, _ in rows)
    for name, value in rows:
        typer.echo(f"  {name:<{width}}  {value}")
