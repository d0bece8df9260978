"""``keel demo``: the whole path on the shipped sample, ending with where every artifact is.

ingest → backtest → sweep → live session on the loopback emulator → gate → report. Each step calls the
same function as its own command, so the demo is also the integration check of the pipeline.
"""

from typing import Annotated

import typer

from keel.settings import CONFIGS_DIR

BASE_VARIANT = CONFIGS_DIR / "variants" / "ema_cross_btcusdt.yaml"


def register(app: typer.Typer) -> None:
    """Add the ``demo`` command to the ``keel`` app."""
    app.command(name="demo")(demo)


def demo(
    trials: Annotated[int, typer.Option(help="Sweep trials to add in this run.")] = 8,
    speed: Annotated[float, typer.Option(help="Emulator replay speed for the live session (much faster, a small machine lags the feed and the gate rightly rejects).")] = 3.0,
) -> None:
    """
    Run the whole pipeline on the shipped sample and print where each artifact is.

    Ingests data/sample into $KEEL_HOME/catalog, backtests the base variant, sweeps its parameters, runs the
    best variant live against the loopback Binance emulator replaying the sample, gates it against a
    backtest of the recorded session, and prints a report. Re-running is safe: ingest is a no-op the second
    time and the sweep adds trials to the same study.
    """
    from keel.backtests.runner import run_backtest
    from keel.backtests.sweep import run_sweep
    from keel.data.ingest import ingest_binance_spot
    from keel.data.ingest import sample_recordings
    from keel.live.session import EmulatorOverrides
    from keel.live.session import run_live_session
    from keel.settings import default_catalog_path
    from keel.settings import keel_home
    from keel.settings import mlflow_tracking_uri
    from keel.validation.gate import run_gate
    from keel.variant import load_variant

    catalog = default_catalog_path()
    _step(1, f"ingest the sample into {catalog}")
    report = ingest_binance_spot(sample_recordings(), catalog)
    written = sum(item.rows for item in report.files if item.status == "written")
    typer.echo(f"   {len(report.files)} catalog files, {written} rows written ({'new' if report.changed_catalog else 'already present'})")

    _step(2, f"backtest {BASE_VARIANT.name}")
    backtest = run_backtest(load_variant(BASE_VARIANT), catalog)
    summary = backtest.summary.to_primitives()
    typer.echo(f"   net P&L {summary['pnl_net']:.4f} {summary['currency']} (gross {summary['pnl_gross']:.4f}, fees {summary['fees']:.4f}), {summary['round_trips']} round trips")
    audit = summary.get("fill_audit")
    if audit and audit["share_better"] is not None:
        typer.echo(f"   taker fills better than the quoted top by > {audit['threshold_bps']:g} bp: {audit['better_than_quote']} of {audit['judged_fills']} (keel audit-fills)")

    _step(3, f"sweep {trials} trials")
    sweep = run_sweep(BASE_VARIANT, catalog, trials=trials, top=3)
    best_variant, best_value, best_params = sweep.best[0]
    typer.echo(f"   {sweep.total_trials} trials in study {sweep.study_name}; best {sweep.objective}={best_value:.4f} with {best_params}")

    _step(4, f"live session: {best_variant.name} on the loopback Binance emulator at {speed}x")
    session = run_live_session(best_variant, "emulator", overrides=EmulatorOverrides(catalog=catalog, speed=speed))
    typer.echo(f"   {session.orders} orders, {session.fills} fills, flat after stop: {'yes' if session.flat else 'NO'}")
    pnl = session.pnl
    typer.echo(f"   net P&L {pnl.net:.4f} {pnl.currency} (gross {pnl.gross:.4f}, fees {pnl.fees:.4f}), from the session's fills")

    _step(5, "gate: backtest over the recorded session vs live fills")
    gate = run_gate(best_variant, session.session_dir)
    typer.echo(f"   verdict: {'PROMOTE' if gate.promoted else 'REJECT'}")
    for reason in gate.reasons:
        typer.echo(f"   - {reason}")

    _step(6, "report")
    rows = [
        ("catalog", str(catalog), "keel data ls"),
        ("backtest run", str(backtest.run_dir), "open tearsheet.html in a browser"),
        ("sweep", str(sweep.sweep_dir), "variants/ holds the best trials as variant files"),
        ("live session", str(session.session_dir), "fills.parquet, orders.parquet, node.log"),
        ("gate report", str(gate.report_dir), "gate_report.html in a browser, or gate_report.md"),
        ("MLflow", mlflow_tracking_uri(), "make mlflow-ui, then http://127.0.0.1:5000"),
    ]
    width = max(len(name) for name, _, _ in rows)
    for name, where, how in rows:
        typer.echo(f"   {name:<{width}}  {where}\n   {'':<{width}}  ({how})")
    typer.echo(f"   everything lives under {keel_home()} ($KEEL_HOME; make clean removes the default ./var)")


def _step(number: int, text: str) -> None:
    typer.secho(f"[{number}/6] {text}", bold=True)
