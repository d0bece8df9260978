"""``keel gate``: decide whether a variant may be promoted, from a recorded live session."""

from pathlib import Path
from typing import Annotated

import typer


def register(app: typer.Typer) -> None:
    """Add the ``gate`` command to the ``keel`` app."""
    app.command(name="gate")(gate)


def gate(
    variant: Annotated[Path, typer.Argument(help="Variant file (YAML): the one the session ran.")],
    session_dir: Annotated[Path, typer.Argument(help="Session folder written by `keel live`.")],
    thresholds: Annotated[Path | None, typer.Option(help="Thresholds file (default configs/gate.yaml).")] = None,
    out: Annotated[Path | None, typer.Option(help="Report folder (default <session>/gate).")] = None,
    mlflow: Annotated[bool, typer.Option("--mlflow/--no-mlflow", help="Record the gate's backtest in MLflow.")] = True,
) -> None:
    """
    Gate a variant: backtest it over a recorded live session and compare with the live fills.

    The backtest runs with the session's measured median order round trip as latency. Orders are matched by side and time; price deviation (bps), time lag and each P&L component (gross, fees, net) are compared with the thresholds. Prints a verdict table and writes gate_report.md/json.

    Exit code 0: promote. 1: reject (reasons printed). 2: bad input.
    """
    from keel.backtests.runner import BacktestInputError
    from keel.validation.gate import GateInputError
    from keel.validation.gate import run_gate
    from keel.variant import VariantError

    try:
        report = run_gate(variant, session_dir, thresholds_path=thresholds, out_dir=out, log_to_mlflow=mlflow)
    except (GateInputError, VariantError, BacktestInputError) as error:
        typer.echo(f"error: {error}", err=True)
        raise typer.Exit(code=2) from None
    rows = [(check.name, "n/a" if check.value is None else f"{check.value:.4g}", check.limit, "pass" if check.passed else "FAIL") for check in report.checks]
    widths = [max(len(row[index]) for row in [("check", "value", "threshold", "result"), *rows]) for index in range(4)]
    for row in [("check", "value", "threshold", "result"), *rows]:
        typer.echo("  ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=True)).rstrip())
    typer.echo(f"verdict: {'PROMOTE' if report.promoted else 'REJECT'}")
    for reason in report.reasons:
        typer.echo(f"  - {reason}")
    typer.echo(f"report: {report.report_dir / 'gate_report.md'}")
    if not report.promoted:
        raise typer.Exit(code=1)
