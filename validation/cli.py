"""``keel gate``: decide whether a variant may be promoted, from a recorded live session; ``keel promote``: act on it."""

from pathlib import Path
from typing import Annotated

import typer


def register(app: typer.Typer) -> None:
    """Add the ``gate`` and ``promote`` commands to the ``keel`` app."""
    app.command(name="gate")(gate)
    app.command(name="promote")(promote)


def gate(
    variant: Annotated[Path, typer.Argument(help="Variant file (YAML): the one the session ran.")],
    session_dir: Annotated[Path, typer.Argument(help="Session folder written by `keel live`.")],
    thresholds: Annotated[Path | None, typer.Option(help="Thresholds file (default configs/gate.yaml).")] = None,
    out: Annotated[Path | None, typer.Option(help="Report folder (default <session>/gate/<UTC time>).")] = None,
    mlflow: Annotated[bool, typer.Option("--mlflow/--no-mlflow", help="Record the gate's backtest in MLflow.")] = True,
    backtest_cache: Annotated[Path | None, typer.Option(help="Folder of backtests over sessions to reuse when nothing they depend on changed.")] = None,
    operator: Annotated[str | None, typer.Option(help="Who decides, for the decision log (default $KEEL_OPERATOR or the login name).")] = None,
) -> None:
    """
    Gate a variant: check the session folder, backtest the variant over it and compare with everything traded live.

    The session folder is refused (exit 2) unless every file is there, it is unchanged since recording (manifest.json), it completed, it holds every instrument of the variant, its P&L is what its fills give, and its fills and order log agree. The backtest runs with the session's measured median order round trip as latency. Orders are matched by time (and side) within each instrument of the variant; per matched order side, strategy, type, liquidity, number of fills and lag are compared, quantity and price per instrument, then P&L by component (gross, fees, rebates, funding, net, slippage) in total and per instrument in bps of the backtest's notional, and the session's own flatness per instrument, window and venue refusals. Prints a verdict table, writes gate_report.md/json/html, and appends the decision (refusals too) to $KEEL_HOME/decisions.jsonl.

    Exit code 0: promote. 1: reject (reasons printed). 2: bad input (refused).
    """
    from keel.validation.gate import GateInputError
    from keel.validation.gate import run_gate

    try:
        report = run_gate(variant, session_dir, thresholds_path=thresholds, out_dir=out, log_to_mlflow=mlflow, backtest_cache=backtest_cache, operator=operator)
    except GateInputError as error:
        typer.echo(f"error: {error}", err=True)
        raise typer.Exit(code=2) from None
    rows = [(check.name, "n/a" if check.value is None else f"{check.value:.4g}", check.limit, "pass" if check.passed else "FAIL") for check in report.checks]
    widths = [max(len(row[index]) for row in [("check", "value", "threshold", "result"), *rows]) for index in range(4)]
    for row in [("check", "value", "threshold", "result"), *rows]:
        typer.echo("  ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=True)).rstrip())
    typer.echo(f"verdict: {'PROMOTE' if report.promoted else 'REJECT'}")
    for reason in report.reasons:
        typer.echo(f"  - {reason}")
    typer.echo(f"report: {report.report_dir / 'gate_report.md'} (and gate_report.html)")
    typer.echo(f"decision on record: {report.decision.sha256}")
    if not report.promoted:
        raise typer.Exit(code=1)


def promote(
    variant: Annotated[Path, typer.Argument(help="Variant file (YAML) to promote: the exact file a passing gate ran.")],
    thresholds: Annotated[Path | None, typer.Option(help="Thresholds the passing gate must have used (default configs/gate.yaml).")] = None,
    operator: Annotated[str | None, typer.Option(help="Who promotes, for the decision log (default $KEEL_OPERATOR or the login name).")] = None,
) -> None:
    """
    Promote a variant: allowed only when its latest gate verdict on record, for this exact file and thresholds, is promote.

    The promotion is appended to $KEEL_HOME/decisions.jsonl. Exit code 0: promoted. 1: refused (no passing gate record). 2: bad input (missing file, edited decision log).
    """
    from keel.validation.errors import GateInputError
    from keel.validation.promotion import PromotionRefused
    from keel.validation.promotion import promote as record_promotion

    try:
        promotion = record_promotion(variant, thresholds_path=thresholds, operator=operator)
    except GateInputError as error:
        typer.echo(f"error: {error}", err=True)
        raise typer.Exit(code=2) from None
    except PromotionRefused as error:
        typer.echo(f"refused: {error}", err=True)
        raise typer.Exit(code=1) from None
    record = promotion.gate_decision.record
    typer.echo(f"promoted: {variant} (sha256 {promotion.decision.record['variant_sha256']})")
    typer.echo(f"  on gate decision {promotion.gate_decision.sha256} ({record['time']}, session {record['session_id']}, by {record['operator']})")
    typer.echo(f"  promotion on record: {promotion.decision.sha256}")
