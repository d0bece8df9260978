"""``keel backtest``, ``keel sweep`` and ``keel audit-fills``: run a variant, search its parameters, check its fills."""

from pathlib import Path
from typing import Annotated

import typer


def register(app: typer.Typer) -> None:
    """Add the ``backtest``, ``sweep`` and ``audit-fills`` commands to the ``keel`` app."""
    app.command(name="backtest")(backtest)
    app.command(name="sweep")(sweep)
    app.command(name="audit-fills")(audit_fills)


def backtest(
    variant: Annotated[Path, typer.Argument(help="Variant file (YAML): strategy, config values, venue.")],
    catalog: Annotated[Path | None, typer.Option(help="Catalog folder (default $KEEL_HOME/catalog).")] = None,
    start: Annotated[str | None, typer.Option(help="Window start, ISO-8601 UTC (default: first data).")] = None,
    end: Annotated[str | None, typer.Option(help="Window end, ISO-8601 UTC (default: last data).")] = None,
    venue_config: Annotated[
        list[Path] | None,
        typer.Option(help="Venue model file replacing the shipped one of its venue (configs/venues/<venue>.yaml); repeatable."),
    ] = None,
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
        venues = [load_venue_model(path) for path in venue_config or []]
        outcome = run_backtest(
            loaded,
            catalog or default_catalog_path(),
            run_dir=run_dir,
            start=start,
            end=end,
            venues=venues,
            log_to_mlflow=mlflow,
        )
    except (VariantError, VenueModelError, BacktestInputError) as error:
        typer.echo(f"error: {error}", err=True)
        raise typer.Exit(code=2) from None
    _print_summary(outcome.summary.to_primitives())
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


def audit_fills(
    folder: Annotated[Path, typer.Argument(help="A backtest run folder or a live session folder (its fills.parquet).")],
    catalog: Annotated[
        Path | None,
        typer.Option(help="Catalog with the quotes (default: the session's catalog/, else $KEEL_HOME/catalog)."),
    ] = None,
    threshold_bps: Annotated[float, typer.Option(help="Improvement over the quote, bp, beyond which a fill is too good.")] = 0.5,
    max_share: Annotated[float, typer.Option(help="Largest share of taker fills allowed beyond the threshold (exit 1 above).")] = 0.02,
) -> None:
    """
    Check every taker fill against the best bid/ask the venue quoted at its time.

    A taker buy cannot get less than the quoted ask, nor a sell more than the quoted bid. Prints how many taker
    fills were better than the quote by more than --threshold-bps and the distribution of the difference, and
    writes fill_audit.json and fill_audit.parquet into the folder. Exit 0 when the share is at most --max-share,
    1 above it, 2 for bad input (no fills table, no quotes for a traded instrument).
    """
    from keel.backtests.fill_audit import FillAuditError
    from keel.backtests.fill_audit import audit_fills as run_audit
    from keel.backtests.fill_audit import write_audit
    from keel.fills import read_fills
    from keel.settings import default_catalog_path

    fills_path = folder / "fills.parquet"
    if not fills_path.is_file():
        typer.echo(f"error: {fills_path}: missing; expected a run folder (keel backtest) or a session folder (keel live)", err=True)
        raise typer.Exit(code=2)
    if catalog is None:
        catalog = folder / "catalog" if (folder / "catalog").is_dir() else default_catalog_path()
    try:
        audit = run_audit(read_fills(fills_path), catalog, threshold_bps=threshold_bps)
    except (FillAuditError, ValueError) as error:
        typer.echo(f"error: {error}", err=True)
        raise typer.Exit(code=2) from None
    json_path, _ = write_audit(audit, folder)
    share = audit.share_better
    typer.echo(f"taker fills: {audit.taker_fills} ({audit.unquoted_fills} before any quote, not judged)")
    typer.echo(f"better than the quote by > {threshold_bps:g} bp: {audit.better_than_quote}" + ("" if share is None else f" ({share:.1%})"))
    if audit.mean_improvement_of_better_bps is not None:
        typer.echo(f"  mean improvement of those: {audit.mean_improvement_of_better_bps:.2f} bp")
    if audit.improvement_percentiles_bps:
        typer.echo("improvement over the quote, bp (+ = better than offered): " + ", ".join(f"{name} {value:+.2f}" for name, value in audit.improvement_percentiles_bps.items()))
    typer.echo(f"report: {json_path}")
    if share is not None and share > max_share:
        typer.echo(f"FAIL: {share:.1%} of taker fills beat the quote, more than {max_share:.1%}", err=True)
        raise typer.Exit(code=1)


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
    audit = summary.get("fill_audit")
    if audit and audit["share_better"] is not None:
        rows.append(("taker fills better than quote", f"{audit['better_than_quote']} of {audit['judged_fills']} ({audit['share_better']:.1%})"))
    width = max(len(name) for name, _ in rows)
    for name, value in rows:
        typer.echo(f"  {name:<{width}}  {value}")
