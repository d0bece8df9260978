"""``keel live``: run a variant live (emulator or venue) and record the session."""

from pathlib import Path
from typing import Annotated

import typer


def register(app: typer.Typer) -> None:
    """Add the ``live`` command to the ``keel`` app."""
    app.command(name="live")(live)


def live(
    variant: Annotated[Path, typer.Argument(help="Variant file (YAML), the same one a backtest runs.")],
    env: Annotated[
        str,
        typer.Option(help="Environment: 'emulator' (configs/env/emulator.yaml) or the path of an environment file."),
    ] = "emulator",
    catalog: Annotated[Path | None, typer.Option(help="Catalog the emulator replays (overrides the env).")] = None,
    duration: Annotated[float | None, typer.Option(help="Stop after this many seconds from node start.")] = None,
    speed: Annotated[float | None, typer.Option(help="Emulator replay speed (1.0 = real time).")] = None,
    slippage_bps: Annotated[float | None, typer.Option(help="Emulator fault knob: market-fill slippage, bp.")] = None,
    drop_fill_every: Annotated[
        int | None,
        typer.Option(help="Emulator fault knob: every N-th order that would fill expires unfilled."),
    ] = None,
    order_latency_ms: Annotated[
        float | None,
        typer.Option(help="Emulator fault knob: delay before the emulator acts on an order, ms."),
    ] = None,
    extra_fee_bps: Annotated[
        float | None,
        typer.Option(help="Emulator fault knob: fee charged on every fill on top of the listed rate, bp of notional."),
    ] = None,
    session_dir: Annotated[Path | None, typer.Option(help="Session folder to create (default under $KEEL_HOME/sessions).")] = None,
) -> None:
    """
    Run a variant live and record the session (orders, fills, market data) into a session folder.

    With --env emulator the node trades the loopback Binance spot emulator replaying a catalog.
    It stops when the replay ends or --duration elapses; the strategy closes out on stop.
    A variant whose venues the environment's node does not serve (today: one Binance spot account per node) is
    refused before anything starts. Prints the session folder and a summary: orders, fills, per instrument its
    final position, net P&L and nautilus's realized P&L for comparison, then the session's total P&L from the
    fills (net, gross, fees in whatever currency charged, rebates, funding).
    """
    from keel.live.environment import EnvironmentFileError
    from keel.live.session import EmulatorOverrides
    from keel.live.session import LiveSessionError
    from keel.live.session import run_live_session
    from keel.variant import VariantError

    overrides = EmulatorOverrides(
        catalog=catalog,
        speed=speed,
        slippage_bps=slippage_bps,
        drop_fill_every=drop_fill_every,
        order_latency_ms=order_latency_ms,
        extra_fee_bps=extra_fee_bps,
    )
    try:
        result = run_live_session(variant, env, session_dir=session_dir, duration=duration, overrides=overrides)
    except (VariantError, EnvironmentFileError, ValueError) as error:
        typer.echo(f"error: {error}", err=True)
        raise typer.Exit(code=2) from None
    except LiveSessionError as error:
        typer.echo(f"error: {error}", err=True)
        raise typer.Exit(code=1) from None
    typer.echo(f"session: {result.session_dir}")
    pnl = result.pnl
    rows = [("orders", str(result.orders)), ("fills", str(result.fills))]
    for instrument_id, part in result.pnl_by_instrument.items():
        rows += [
            (f"{instrument_id} final position", result.final_positions.get(instrument_id, "unknown")),
            (f"{instrument_id} net P&L", _money(part.net, part.currency)),
            (f"{instrument_id} nautilus realized P&L (excl. base-asset fees)", result.nautilus_realized_pnl.get(instrument_id, "unknown")),
        ]
    rows += [
        ("net P&L", _money(pnl.net, pnl.currency)),
        ("gross P&L", _money(pnl.gross, pnl.currency)),
        ("fees", _money(pnl.fees, pnl.currency)),
        ("rebates", _money(pnl.rebates, pnl.currency)),
        ("funding", _money(pnl.funding, pnl.currency)),
        ("flat after stop", "yes" if result.flat else "NO"),
    ]
    width = max(len(name) for name, _ in rows)
    for name, value in rows:
        typer.echo(f"  {name:<{width}}  {value}")
    if not result.flat:
        raise typer.Exit(code=1)


def _money(amount: float, currency: str) -> str:
    # 8 decimals: a minimum-size spot session's P&L is a few cents, its base-asset fees a fraction of one.
    return f"{amount:.8f} {currency}"
