"""Adversarial gate tests: tampered copies of one faithful session are rejected or refused, the untouched copy promoted.

One real session (the live node against the emulator, ~2 min) is recorded per module; every case gates a
``shutil.copytree`` of it. A tamper without a new manifest is refused by the hash check; to test the
comparison itself, a tamper is re-sealed (``write_manifest`` on the copy), so the gate's checks must catch
it. The backtest over the session is the same for every copy: the gate reuses it from a module-wide cache.
"""

import json
import re
import shutil
from collections.abc import Callable
from pathlib import Path

import polars as pl
import pytest
from typer.testing import CliRunner

from keel.cli import app
from keel.fills import read_fills
from keel.live.session import EmulatorOverrides
from keel.live.session import run_live_session
from keel.live.session import session_pnl
from keel.live.session_layout import write_manifest
from keel.settings import CONFIGS_DIR
from keel.validation.checks import per_instrument
from keel.validation.decisions import read_decisions
from keel.validation.gate import GateInputError
from keel.validation.gate import GateReport
from keel.validation.gate import run_gate

VARIANT = CONFIGS_DIR / "variants" / "ema_cross_btcusdt.yaml"
BTCUSDT = "BTCUSDT.BINANCE"
SPEED = 3.0  # the 6-minute sample in 2 min; much faster, a busy 2-core machine lags the replay and decisions drift

Tamper = Callable[[Path], None]


@pytest.fixture(scope="module")
def recorded(sample_catalog: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One faithful session, never written to: each test gates a copy."""
    result = run_live_session(
        VARIANT,
        "emulator",
        session_dir=tmp_path_factory.mktemp("adversarial") / "faithful",
        overrides=EmulatorOverrides(catalog=sample_catalog, speed=SPEED),
    )
    assert result.fills >= 4
    return result.session_dir


@pytest.fixture(scope="module")
def backtest_cache(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("gate_backtests")


@pytest.fixture
def keel_home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("KEEL_HOME", str(tmp_path / "home"))
    return tmp_path / "home"


def _copy(recorded: Path, tmp_path: Path, tamper: Tamper | None = None, reseal: bool = True, resummarize: bool = True) -> Path:
    """
    Copy the session and apply ``tamper``; with ``reseal`` also bring session.json's summary in line with the
    tampered tables (``resummarize``) and write a new manifest, as a careful forger would.
    """
    session = tmp_path / "session"
    shutil.copytree(recorded, session)
    if tamper is not None:
        tamper(session)
        if reseal:
            if resummarize:
                _resummarize(session)
            write_manifest(session)
    return session


def _resummarize(session: Path) -> None:
    """Recompute session.json's counts and P&L from the (tampered) tables, with ``keel live``'s own function and marks."""
    document = json.loads((session / "session.json").read_text())
    orders = pl.read_parquet(session / "orders.parquet")
    try:
        fills = read_fills(session / "fills.parquet")
    except (ValueError, pl.exceptions.PolarsError):
        return  # a fills table no summary can be computed from: the gate must refuse it for that, whatever session.json says
    document["counts"].update(fills=fills.height, orders=orders["client_order_id"].n_unique(), order_events=orders.height)
    last_trades = {instrument_id: str(mark["price"]) for instrument_id, mark in document["pnl"]["marks"].items() if mark["source"] == "last_trade"}
    document["pnl"] = session_pnl(session, document["instrument_ids"], fills, last_trades)
    (session / "session.json").write_text(json.dumps(document, indent=2))


def _gate(session: Path, tmp_path: Path, backtest_cache: Path, variant: Path = VARIANT) -> GateReport:
    return run_gate(variant, session, out_dir=tmp_path / "gate", log_to_mlflow=False, backtest_cache=backtest_cache, operator="tester")


def _failed(report: GateReport) -> set[str]:
    return {check.name for check in report.checks if not check.passed}


# --- editing a session's tables ------------------------------------------------------------------------------


def _edit(name: str, change: Callable[[pl.DataFrame], pl.DataFrame]) -> Tamper:
    def tamper(session: Path) -> None:
        frame = pl.read_parquet(session / name)
        changed = change(frame)
        assert changed.height == 0 or not changed.equals(frame), f"tamper of {name} changed nothing"
        changed.write_parquet(session / name)

    return tamper


def _both(fills: Callable[[pl.DataFrame], pl.DataFrame], orders: Callable[[pl.DataFrame], pl.DataFrame]) -> Tamper:
    """The same change to the fills table and the order log, so that they still agree (a careful forger)."""
    fill_tamper, order_tamper = _edit("fills.parquet", fills), _edit("orders.parquet", orders)

    def tamper(session: Path) -> None:
        fill_tamper(session)
        order_tamper(session)

    return tamper


def _session_json(change: Callable[[dict], None]) -> Tamper:
    def tamper(session: Path) -> None:
        document = json.loads((session / "session.json").read_text())
        change(document)
        (session / "session.json").write_text(json.dumps(document, indent=2))

    return tamper


def _set(path: str, value: object) -> Tamper:
    def change(document: dict) -> None:
        *parents, key = path.split(".")
        for parent in parents:
            document = document[parent]
        document[key] = value(document[key]) if callable(value) else value

    return _session_json(change)


def _flip(column: str) -> pl.Expr:
    return pl.when(pl.col(column) == "BUY").then(pl.lit("SELL")).otherwise(pl.lit("BUY")).alias(column)


def _first_row(column: str, value: pl.Expr) -> Callable[[pl.DataFrame], pl.DataFrame]:
    """Change ``column`` in the first fill row (the first OrderFilled event of an order log) only."""

    def change(frame: pl.DataFrame) -> pl.DataFrame:
        row = pl.int_range(pl.len()) == (frame["event_type"] == "OrderFilled").arg_true()[0] if "event_type" in frame.columns else pl.int_range(pl.len()) == 0
        return frame.with_columns(pl.when(row).then(value).otherwise(pl.col(column)).alias(column))

    return change


def _drop_order(index: int) -> Tamper:
    """Remove one order's fills and every event of it from the order log."""

    def tamper(session: Path) -> None:
        order = pl.read_parquet(session / "fills.parquet")["client_order_id"].unique(maintain_order=True)[index]
        for name in ("fills.parquet", "orders.parquet"):
            _edit(name, lambda frame: frame.filter(pl.col("client_order_id") != order))(session)

    return tamper


def _drop_fill_event(index: int) -> Tamper:
    """Remove one fill (and its OrderFilled event): the order stays accepted, never filled."""

    def tamper(session: Path) -> None:
        fills = pl.read_parquet(session / "fills.parquet")
        trade = fills.row(index, named=True)
        _edit("fills.parquet", lambda frame: frame.filter(pl.col("trade_id") != trade["trade_id"]))(session)
        _edit(
            "orders.parquet",
            lambda frame: frame.filter(
                ~((pl.col("event_type") == "OrderFilled") & (pl.col("client_order_id") == trade["client_order_id"]) & (pl.col("ts_init") == trade["ts_init"])),
            ),
        )(session)

    return tamper


def _add_fill_to_order(index: int) -> Tamper:
    """Repeat one order's fill as a second fill (new trade id, 1 ms later), the order's quantity raised to match."""

    def tamper(session: Path) -> None:
        fills = pl.read_parquet(session / "fills.parquet")
        trade = fills.row(index, named=True)
        extra = fills.slice(index, 1).with_columns(pl.lit("999999").alias("trade_id"), pl.col("ts_event") + 1_000_000, pl.col("ts_init") + 1_000_000)
        pl.concat([fills, extra]).sort("ts_event", "trade_id").write_parquet(session / "fills.parquet")
        orders = pl.read_parquet(session / "orders.parquet")
        mine = pl.col("client_order_id") == trade["client_order_id"]
        filled = (pl.col("event_type") == "OrderFilled") & mine
        doubled = orders.with_columns(
            pl.when(mine & ~filled).then(pl.col("quantity") + trade["last_qty"]).otherwise(pl.col("quantity")).alias("quantity"),
            pl.when(filled).then(pl.lit("PARTIALLY_FILLED")).otherwise(pl.col("status")).alias("status"),
        )
        second = doubled.filter(filled).with_columns(pl.col("ts_event") + 1_000_000, pl.col("ts_init") + 1_000_000, pl.lit("FILLED").alias("status"))
        position = int(doubled.with_row_index().filter(filled)["index"][-1]) + 1
        pl.concat([doubled.slice(0, position), second, doubled.slice(position)]).write_parquet(session / "orders.parquet")

    return tamper


def _split_fill(index: int, parts: int, keep: int) -> Tamper:
    """Cut one fill into ``parts`` equal fills (1 µs apart, in both tables) and keep the first ``keep`` of them."""

    def tamper(session: Path) -> None:
        fills = pl.read_parquet(session / "fills.parquet")
        trade = fills.row(index, named=True)
        pieces = [
            fills.slice(index, 1).with_columns(
                pl.col("last_qty") / parts,
                pl.col("commission") / parts,
                pl.lit(f"{trade['trade_id']}-{part}").alias("trade_id"),
                pl.col("ts_event") + part * 1_000,
                pl.col("ts_init") + part * 1_000,
            )
            for part in range(keep)
        ]
        pl.concat([fills.slice(0, index), *pieces, fills.slice(index + 1)]).write_parquet(session / "fills.parquet")
        orders = pl.read_parquet(session / "orders.parquet").with_row_index()
        event = orders.filter((pl.col("event_type") == "OrderFilled") & (pl.col("client_order_id") == trade["client_order_id"]) & (pl.col("ts_init") == trade["ts_init"]))
        assert event.height == 1
        position = int(event["index"][0])
        events = [
            event.with_columns(
                pl.col("quantity") / parts,
                pl.col("ts_event") + part * 1_000,
                pl.col("ts_init") + part * 1_000,
                pl.lit("FILLED" if part == parts - 1 else "PARTIALLY_FILLED").alias("status"),
            )
            for part in range(keep)
        ]
        pl.concat([orders.slice(0, position), *events, orders.slice(position + 1)]).drop("index").write_parquet(session / "orders.parquet")

    return tamper


_WORSE_PRICE = pl.when(pl.col("order_side") == "BUY").then(1.001).otherwise(0.999)
_PRICE_ON_FILLS = pl.when(pl.col("event_type") == "OrderFilled").then(pl.col("price") * _WORSE_PRICE).otherwise(pl.col("price")).alias("price")
_SHIFT_NS = 3_000_000_000  # within the match tolerance, so orders still pair with their twins, 3 s late


def _first_buy_order_flipped() -> Tamper:
    def tamper(session: Path) -> None:
        fills = pl.read_parquet(session / "fills.parquet")
        order = fills.filter(pl.col("order_side") == "BUY")["client_order_id"][0]
        mine = pl.col("client_order_id") == order
        for name in ("fills.parquet", "orders.parquet"):
            _edit(name, lambda frame: frame.with_columns(pl.when(mine).then(_flip("order_side")).otherwise(pl.col("order_side")).alias("order_side")))(session)

    return tamper


QUANTITY_CHECK = per_instrument("largest |quantity difference| of a matched order (size steps)", BTCUSDT)

# Re-sealed tampers the comparison must catch: (tamper, a check that must fail).
COMPARISON_TAMPERS: dict[str, tuple[Tamper, str]] = {
    "quantity x1.15": (
        _both(lambda f: f.with_columns(pl.col("last_qty") * 1.15), lambda o: o.with_columns(pl.col("quantity") * 1.15)),
        QUANTITY_CHECK,
    ),
    "quantity x10": (
        _both(lambda f: f.with_columns(pl.col("last_qty") * 10), lambda o: o.with_columns(pl.col("quantity") * 10)),
        QUANTITY_CHECK,
    ),
    "a fill dropped": (_drop_fill_event(2), "live orders left working at the end (order log)"),
    "a partial fill dropped": (_split_fill(2, parts=2, keep=1), "live orders left working at the end (order log)"),
    "a fill split in three": (_split_fill(2, parts=3, keep=3), "largest |fill count difference| of a matched order"),
    "a fill added to an existing order": (_add_fill_to_order(2), QUANTITY_CHECK),
    "strategy relabelled": (
        _both(lambda f: f.with_columns(pl.lit("EMACross-002").alias("strategy_id")), lambda o: o.with_columns(pl.lit("EMACross-002").alias("strategy_id"))),
        "matched orders of another strategy",
    ),
    "side flipped": (_first_buy_order_flipped(), "matched orders of another side"),
    "price 10 bp worse": (
        _both(lambda f: f.with_columns(pl.col("last_px") * _WORSE_PRICE), lambda o: o.with_columns(_PRICE_ON_FILLS)),
        per_instrument("median price deviation (bps, + = live worse)", BTCUSDT),
    ),
    "commission x3": (_edit("fills.parquet", lambda f: f.with_columns(pl.col("commission") * 3)), "|fees P&L difference| (bps of backtest notional)"),
    "timestamps 3 s later": (
        _both(
            lambda f: f.with_columns(pl.col("ts_event") + _SHIFT_NS, pl.col("ts_init") + _SHIFT_NS),
            lambda o: o.with_columns(pl.col("ts_event") + _SHIFT_NS, pl.col("ts_init") + _SHIFT_NS),
        ),
        "|median lag| (ms)",
    ),
    "not flat: the last order removed": (_drop_order(-1), per_instrument("|position at the end| from the live fills (size steps, below 1 is dust)", BTCUSDT)),
    "session.json after_stop.flat false": (
        _session_json(lambda document: document["after_stop"].update(flat=False)),
        "flat after stop (session.json after_stop.flat)",
    ),
    "session window starts 60 s later": (_set("start_ns", lambda start: start + 60_000_000_000), "live fill and order event times outside the session window"),
    "order type relabelled": (
        _edit("orders.parquet", lambda o: o.with_columns(pl.lit("LIMIT").alias("order_type"))),
        "matched orders of another order type",
    ),
    "liquidity relabelled": (
        _edit("fills.parquet", lambda f: f.with_columns(pl.lit("MAKER").alias("liquidity_side"))),
        "matched orders of another liquidity side",
    ),
}

# Tampers of one column of one table (re-sealed): rejected or refused. (tamper, a failing check or the refusal's words)
FILLS_COLUMN_TAMPERS: dict[str, tuple[Tamper, str]] = {
    "ts_event": (_edit("fills.parquet", _first_row("ts_event", pl.col("ts_event") + 1_000_000)), "disagree"),
    "ts_init": (_edit("fills.parquet", _first_row("ts_init", pl.col("ts_init") + 1_000_000)), "disagree"),
    "strategy_id": (_edit("fills.parquet", _first_row("strategy_id", pl.lit("EMACross-002"))), "disagree"),
    "instrument_id": (_edit("fills.parquet", _first_row("instrument_id", pl.lit("ETHUSDT.BINANCE"))), "disagree"),
    "client_order_id": (_edit("fills.parquet", _first_row("client_order_id", pl.lit("O-forged"))), "disagree"),
    "venue_order_id": (_edit("fills.parquet", _first_row("venue_order_id", pl.lit("forged"))), "disagree"),
    "trade_id": (_edit("fills.parquet", lambda f: f.with_columns(pl.lit("1").alias("trade_id"))), "appears"),
    "order_side": (_edit("fills.parquet", _first_row("order_side", _flip("order_side"))), "disagree"),
    "last_qty": (_edit("fills.parquet", lambda f: f.with_columns(pl.col("last_qty") * 1.15)), "disagree"),
    "last_px": (_edit("fills.parquet", lambda f: f.with_columns(pl.col("last_px") * 1.001)), "disagree"),
    "quote_currency": (_edit("fills.parquet", lambda f: f.with_columns(pl.lit("EUR").alias("quote_currency"))), "quote_currency"),
    "commission": (_edit("fills.parquet", lambda f: f.with_columns(pl.col("commission") * 3)), "|fees P&L difference| (bps of backtest notional)"),
    "commission_currency": (_edit("fills.parquet", lambda f: f.with_columns(pl.lit("USDT").alias("commission_currency"))), "|fees P&L difference| (bps of backtest notional)"),
    "liquidity_side": (_edit("fills.parquet", lambda f: f.with_columns(pl.lit("MAKER").alias("liquidity_side"))), "matched orders of another liquidity side"),
}
ORDERS_COLUMN_TAMPERS: dict[str, tuple[Tamper, str]] = {
    "ts_event": (_edit("orders.parquet", _first_row("ts_event", pl.col("ts_event") + 1_000_000)), "disagree"),
    "ts_init": (_edit("orders.parquet", _first_row("ts_init", pl.col("ts_init") + 1_000_000)), "disagree"),
    "strategy_id": (_edit("orders.parquet", lambda o: o.with_columns(pl.lit("EMACross-002").alias("strategy_id"))), "disagree"),
    "instrument_id": (_edit("orders.parquet", lambda o: o.with_columns(pl.lit("ETHUSDT.BINANCE").alias("instrument_id"))), "disagree"),
    "client_order_id": (_edit("orders.parquet", _first_row("client_order_id", pl.lit("O-forged"))), "disagree"),
    "venue_order_id": (_edit("orders.parquet", _first_row("venue_order_id", pl.lit("forged"))), "disagree"),
    "event_type": (
        _edit("orders.parquet", lambda o: o.with_columns(pl.when(pl.col("event_type") == "OrderAccepted").then(pl.lit("OrderCanceled")).otherwise(pl.col("event_type")).alias("event_type"))),
        "after OrderCanceled",
    ),
    "order_side": (_edit("orders.parquet", lambda o: o.with_columns(_flip("order_side"))), "disagree"),
    "order_type": (_edit("orders.parquet", lambda o: o.with_columns(pl.lit("LIMIT").alias("order_type"))), "matched orders of another order type"),
    "quantity": (_edit("orders.parquet", lambda o: o.with_columns(pl.col("quantity") * 1.15)), "disagree"),
    "price": (_edit("orders.parquet", lambda o: o.with_columns(_PRICE_ON_FILLS)), "disagree"),
    "status": (
        _edit("orders.parquet", lambda o: o.with_columns(pl.when(pl.col("status") == "FILLED").then(pl.lit("PARTIALLY_FILLED")).otherwise(pl.col("status")).alias("status"))),
        "expected FILLED",
    ),
    "reason": (_edit("orders.parquet", lambda o: o.with_columns(pl.lit("forged").alias("reason"))), "reason"),
}

REQUIRED_ENTRIES = ["session.json", "variant.yaml", "catalog", "fills.parquet", "orders.parquet", "node.log"]


def _assert_rejected_or_refused(session: Path, tmp_path: Path, backtest_cache: Path, expected: str) -> None:
    """``expected`` is the name of a check that must fail, or words the refusal must contain."""
    try:
        report = _gate(session, tmp_path, backtest_cache)
    except GateInputError as error:
        assert expected in str(error), str(error)
        return
    assert not report.promoted
    assert expected in _failed(report), sorted(_failed(report))


@pytest.mark.slow
@pytest.mark.requires_redis
def test_untouched_copy_is_promoted_and_reported(redis_service: None, recorded: Path, keel_home: Path, tmp_path: Path, backtest_cache: Path) -> None:
    session = _copy(recorded, tmp_path)

    result = CliRunner().invoke(
        app, ["gate", str(VARIANT), str(session), "--out", str(tmp_path / "gate"), "--no-mlflow", "--backtest-cache", str(backtest_cache)]
    )

    assert result.exit_code == 0, result.output
    report = json.loads((tmp_path / "gate" / "gate_report.json").read_text())
    assert report["verdict"] == "promote"
    assert len(report["checks"]) >= 25
    assert all(check["passed"] for check in report["checks"])
    fills = pl.read_parquet(session / "fills.parquet")
    assert report["matched"] >= fills["client_order_id"].n_unique() - 1
    # The per-order table in the HTML report names every live order; the charts are inline SVG, no plotly.js.
    page = (tmp_path / "gate" / "gate_report.html").read_text()
    assert "<table id='orders'>" in page
    live_orders = fills["client_order_id"].unique().to_list()
    assert len(live_orders) > 0
    assert all(order in page for order in live_orders)
    assert "<svg" in page and "plotly" not in page.lower()
    assert "round trip" in page and "latency.base_ms" in page


@pytest.mark.slow
@pytest.mark.requires_redis
@pytest.mark.parametrize("case", list(COMPARISON_TAMPERS))
def test_resealed_tamper_is_caught_by_the_comparison(redis_service: None, recorded: Path, keel_home: Path, tmp_path: Path, backtest_cache: Path, case: str) -> None:
    tamper, failing_check = COMPARISON_TAMPERS[case]
    session = _copy(recorded, tmp_path, tamper)

    # Re-sealed and self-consistent: not refused, so the comparison is what must reject it.
    report = _gate(session, tmp_path, backtest_cache)

    assert not report.promoted
    assert failing_check in _failed(report), sorted(_failed(report))


@pytest.mark.slow
@pytest.mark.requires_redis
def test_fills_of_an_instrument_the_session_did_not_trade_are_refused(
    redis_service: None, recorded: Path, keel_home: Path, tmp_path: Path, backtest_cache: Path
) -> None:
    relabelled = pl.lit("ETHUSDT.BINANCE").alias("instrument_id")
    # Both tables agree and the manifest is new, but the session never recorded ETHUSDT: its P&L has no terms.
    session = _copy(recorded, tmp_path, _both(lambda f: f.with_columns(relabelled), lambda o: o.with_columns(relabelled)))

    with pytest.raises(GateInputError, match=re.escape("fills.parquet: fills of ['ETHUSDT.BINANCE'], not instruments of the session")):
        _gate(session, tmp_path, backtest_cache)


@pytest.mark.slow
@pytest.mark.requires_redis
@pytest.mark.parametrize("column", list(FILLS_COLUMN_TAMPERS))
def test_every_fills_column_tampered_is_rejected_or_refused(
    redis_service: None, recorded: Path, keel_home: Path, tmp_path: Path, backtest_cache: Path, column: str
) -> None:
    tamper, expected = FILLS_COLUMN_TAMPERS[column]
    session = _copy(recorded, tmp_path, tamper)

    _assert_rejected_or_refused(session, tmp_path, backtest_cache, expected)


@pytest.mark.slow
@pytest.mark.requires_redis
@pytest.mark.parametrize("column", list(ORDERS_COLUMN_TAMPERS))
def test_every_orders_column_tampered_is_rejected_or_refused(
    redis_service: None, recorded: Path, keel_home: Path, tmp_path: Path, backtest_cache: Path, column: str
) -> None:
    tamper, expected = ORDERS_COLUMN_TAMPERS[column]
    session = _copy(recorded, tmp_path, tamper)

    _assert_rejected_or_refused(session, tmp_path, backtest_cache, expected)


def test_the_column_tampers_cover_both_tables() -> None:
    from keel.fills import FILLS_SCHEMA
    from keel.live.session_layout import ORDERS_SCHEMA

    assert set(FILLS_COLUMN_TAMPERS) == set(FILLS_SCHEMA)
    assert set(ORDERS_COLUMN_TAMPERS) == set(ORDERS_SCHEMA)


@pytest.mark.slow
@pytest.mark.requires_redis
@pytest.mark.parametrize("entry", [*REQUIRED_ENTRIES, "manifest.json"])
def test_a_missing_entry_is_refused_naming_it(redis_service: None, recorded: Path, keel_home: Path, tmp_path: Path, backtest_cache: Path, entry: str) -> None:
    def remove(session: Path) -> None:
        target = session / entry
        shutil.rmtree(target) if target.is_dir() else target.unlink()

    # Re-sealed after the removal (except the manifest itself): the layout check, not the hash, refuses it.
    session = _copy(recorded, tmp_path, remove, reseal=entry != "manifest.json", resummarize=False)

    with pytest.raises(GateInputError, match=f"{entry}: missing"):
        _gate(session, tmp_path, backtest_cache)


@pytest.mark.slow
@pytest.mark.requires_redis
@pytest.mark.parametrize("entry", ["session.json", "variant.yaml", "fills.parquet", "orders.parquet", "node.log", "catalog"])
def test_a_file_changed_after_recording_is_refused_by_its_hash(
    redis_service: None, recorded: Path, keel_home: Path, tmp_path: Path, backtest_cache: Path, entry: str
) -> None:
    def append_byte(session: Path) -> None:
        target = session / entry
        if target.is_dir():
            target = sorted(path for path in target.rglob("*") if path.is_file())[0]
        with target.open("ab") as handle:
            handle.write(b"\n")

    session = _copy(recorded, tmp_path, append_byte, reseal=False)

    result = CliRunner().invoke(app, ["gate", str(VARIANT), str(session), "--out", str(tmp_path / "gate"), "--no-mlflow"])

    assert result.exit_code == 2, result.output
    assert "content changed after recording" in result.output and entry in result.output
    decision = read_decisions()[-1].record
    assert decision["verdict"] == "refuse" and entry in decision["reasons"][0]


@pytest.mark.slow
@pytest.mark.requires_redis
def test_a_file_slipped_in_after_recording_is_refused(redis_service: None, recorded: Path, keel_home: Path, tmp_path: Path, backtest_cache: Path) -> None:
    session = _copy(recorded, tmp_path, lambda folder: (folder / "extra_fills.parquet").write_bytes(b"x"), reseal=False)

    with pytest.raises(GateInputError, match="extra_fills.parquet: added after recording"):
        _gate(session, tmp_path, backtest_cache)


@pytest.mark.slow
@pytest.mark.requires_redis
@pytest.mark.parametrize("status", ["failed", "not_flat", None])
def test_a_session_that_did_not_complete_is_refused(
    redis_service: None, recorded: Path, keel_home: Path, tmp_path: Path, backtest_cache: Path, status: str | None
) -> None:
    session = _copy(recorded, tmp_path, _session_json(lambda document: document.update(status=status)))

    with pytest.raises(GateInputError, match="session.json: status"):
        _gate(session, tmp_path, backtest_cache)


def _pnl_of(instrument_id: str, field: str, value: Callable[[object], object]) -> Tamper:
    """Change one field of one instrument's P&L in session.json (an instrument id holds a dot: no dotted path)."""

    def change(document: dict) -> None:
        part = document["pnl"]["by_instrument"][instrument_id]
        part[field] = value(part[field])

    return _session_json(change)


def _mark(change: Callable[[dict], None]) -> Tamper:
    return _session_json(lambda document: change(document["pnl"]["marks"][BTCUSDT]))


# Re-sealed changes of the fields of session.json the gate relies on: (tamper, words of the refusal).
SESSION_JSON_TAMPERS: dict[str, tuple[Tamper, str]] = {
    "instrument_ids": (_set("instrument_ids", ["ETHUSDT.BINANCE"]), "instrument_ids"),
    "counts.fills": (_set("counts.fills", lambda count: count + 1), "counts.fills"),
    "counts.orders": (_set("counts.orders", lambda count: count - 1), "counts.orders"),
    "counts.order_events": (_set("counts.order_events", lambda count: count + 1), "counts.order_events"),
    "pnl.total.fees": (_set("pnl.total.fees", lambda fees: fees / 2), "pnl.total.fees"),
    "pnl.total.net": (_set("pnl.total.net", lambda net: net + 1.0), "pnl.total.net"),
    "pnl.total.funding": (_set("pnl.total.funding", 1.0), "pnl.total.funding"),
    "pnl.total.fills": (_set("pnl.total.fills", lambda fills: fills + 1), "pnl.total.fills"),
    "pnl.by_instrument fees": (_pnl_of(BTCUSDT, "fees", lambda fees: fees / 2), f"pnl.by_instrument.{BTCUSDT}.fees"),
    "pnl.by_instrument gross": (_pnl_of(BTCUSDT, "gross", lambda gross: gross + 1.0), f"pnl.by_instrument.{BTCUSDT}.gross"),
    "pnl.by_instrument funding": (_pnl_of(BTCUSDT, "funding", lambda funding: funding - 1.0), f"pnl.by_instrument.{BTCUSDT}.funding"),
    "pnl.by_instrument mark_price": (_pnl_of(BTCUSDT, "mark_price", lambda price: price * 1.01), f"pnl.by_instrument.{BTCUSDT}.mark_price"),
    "pnl.by_instrument an instrument removed": (_session_json(lambda document: document["pnl"]["by_instrument"].pop(BTCUSDT)), "pnl.by_instrument is"),
    "pnl.marks price": (_mark(lambda mark: mark.update(price=mark["price"] * 1.01)), "pnl."),
    "pnl.marks source": (_mark(lambda mark: mark.update(source="guessed")), f"pnl.marks.{BTCUSDT}"),
    "pnl.marks removed": (_set("pnl.marks", None), "field 'pnl.marks'"),
    "pnl an error": (_set("pnl", {"error": "forged"}), "pnl has no result (forged)"),
    "end_ns before start_ns": (_set("end_ns", 0), "end_ns"),
}


@pytest.mark.slow
@pytest.mark.requires_redis
@pytest.mark.parametrize("field", list(SESSION_JSON_TAMPERS))
def test_a_session_json_summary_that_differs_from_the_tables_is_refused(
    redis_service: None, recorded: Path, keel_home: Path, tmp_path: Path, backtest_cache: Path, field: str
) -> None:
    tamper, words = SESSION_JSON_TAMPERS[field]
    session = _copy(recorded, tmp_path, tamper, resummarize=False)

    with pytest.raises(GateInputError, match=re.escape(f"session.json: {words}")):
        _gate(session, tmp_path, backtest_cache)


@pytest.mark.slow
@pytest.mark.requires_redis
@pytest.mark.parametrize("field", ["variant", "start_ns", "end_ns", "instrument_ids", "counts", "pnl", "after_stop"])
def test_a_session_json_field_removed_is_refused(
    redis_service: None, recorded: Path, keel_home: Path, tmp_path: Path, backtest_cache: Path, field: str
) -> None:
    session = _copy(recorded, tmp_path, _session_json(lambda document: document.pop(field)), resummarize=False)

    with pytest.raises(GateInputError, match=f"field '{field}'"):
        _gate(session, tmp_path, backtest_cache)


@pytest.mark.slow
@pytest.mark.requires_redis
def test_a_recorded_variant_that_differs_is_rejected(redis_service: None, recorded: Path, keel_home: Path, tmp_path: Path, backtest_cache: Path) -> None:
    def other_variant(session: Path) -> None:
        text = (session / "variant.yaml").read_text()
        assert "fast_period: 50" in text
        (session / "variant.yaml").write_text(text.replace("fast_period: 50", "fast_period: 30"))

    report = _gate(_copy(recorded, tmp_path, other_variant), tmp_path, backtest_cache)

    assert "same variant as the session" in _failed(report)
    assert "variant.yaml" in report.reasons[0]


@pytest.mark.slow
@pytest.mark.requires_redis
def test_every_run_is_on_record_and_promote_needs_a_passing_one(
    redis_service: None, recorded: Path, keel_home: Path, tmp_path: Path, backtest_cache: Path
) -> None:
    runner = CliRunner()
    faithful = _copy(recorded, tmp_path)
    inflated = tmp_path / "inflated"
    shutil.copytree(recorded, inflated)
    COMPARISON_TAMPERS["quantity x10"][0](inflated)
    _resummarize(inflated)
    write_manifest(inflated)
    variant = tmp_path / "variant.yaml"
    shutil.copy(VARIANT, variant)
    common = ["--no-mlflow", "--backtest-cache", str(backtest_cache), "--operator", "alice"]

    rejected = runner.invoke(app, ["gate", str(variant), str(inflated), "--out", str(tmp_path / "g1"), *common])
    log_after_first = (keel_home / "decisions.jsonl").read_bytes()
    refused_promotion = runner.invoke(app, ["promote", str(variant)])
    promoted = runner.invoke(app, ["gate", str(variant), str(faithful), "--out", str(tmp_path / "g2"), *common])
    accepted_promotion = runner.invoke(app, ["promote", str(variant), "--operator", "alice"])

    assert rejected.exit_code == 1, rejected.output
    assert refused_promotion.exit_code == 1, refused_promotion.output
    assert promoted.exit_code == 0, promoted.output
    assert accepted_promotion.exit_code == 0, accepted_promotion.output
    assert (keel_home / "decisions.jsonl").read_bytes().startswith(log_after_first)
    decisions = [decision.record for decision in read_decisions()]
    assert [(d["kind"], d.get("verdict")) for d in decisions] == [("gate", "reject"), ("gate", "promote"), ("promotion", None)]
    first, second, promotion = decisions
    assert first["session_sha256"] != second["session_sha256"]
    assert first["variant_sha256"] == second["variant_sha256"] == promotion["variant_sha256"]
    assert first["operator"] == "alice" and first["thresholds_sha256"] and first["reasons"]
    assert second["reasons"] == [] and promotion["session_sha256"] == second["session_sha256"]
