"""Live sessions end to end: the real nautilus Binance adapter against the loopback emulator, and failures."""

import json
from pathlib import Path

import polars as pl
import pytest
import typer
import yaml
from nautilus_trader.model.book import OrderBook
from nautilus_trader.model.enums import BookType
from nautilus_trader.model.identifiers import InstrumentId
from nautilus_trader.persistence.catalog import ParquetDataCatalog
from typer.testing import CliRunner

from keel.fills import read_fills
from keel.live import cli as live_cli
from keel.live.recorder import BOOK_SUMMARY_LEVELS
from keel.live.session import LiveSessionError
from keel.live.session import run_live_session
from keel.live.session_layout import CATALOG_DIR
from keel.live.session_layout import FILLS_PARQUET
from keel.live.session_layout import NODE_LOG
from keel.live.session_layout import ORDERS_PARQUET
from keel.live.session_layout import SESSION_JSON
from keel.live.session_layout import VARIANT_YAML
from keel.live.session_layout import verify_manifest
from keel.settings import CONFIGS_DIR
from keel.validation.decisions import GATE
from keel.validation.decisions import PROMOTION
from keel.validation.decisions import append_decision
from keel.validation.recorded_session import file_sha256

BTCUSDT = "BTCUSDT.BINANCE"
ETHUSDT = "ETHUSDT.BINANCE"
HERE = Path(__file__).resolve().parent


@pytest.fixture
def probe_variant(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A variant of the probe strategy: buy on the 5th trade, keep the position for the close-on-stop."""
    monkeypatch.syspath_prepend(str(HERE))  # the node's child process inherits sys.path
    path = tmp_path / "probe_btcusdt.yaml"
    path.write_text(
        yaml.safe_dump(
            {
                "name": "probe_btcusdt",
                "strategy": {
                    "strategy_path": "probe_strategy:ProbeStrategy",
                    "config_path": "probe_strategy:ProbeStrategyConfig",
                    "config": {"instrument_id": BTCUSDT, "trade_size": "0.0002", "entry_trade": 5, "exit_trade": 10**9},
                },
            },
        ),
    )
    return path


def _cli() -> typer.Typer:
    app = typer.Typer()
    live_cli.register(app)

    @app.command()
    def other() -> None:  # a second command keeps typer in sub-command mode, as in the keel app
        """Unused."""

    return app


def _assert_secret_absent(folder: Path, secret: str) -> None:
    needle = secret.encode()
    for path in folder.rglob("*"):
        if path.is_file():
            assert needle not in path.read_bytes(), f"API secret found in {path}"


def _plain_pnl(fills: list[dict], base: str, mark: float) -> dict[str, float]:
    """
    P&L of one instrument's fill rows by hand: the USDT the account gained after fees, plus the ``base`` it holds
    (a commission taken in ``base`` is gone from it) at ``mark``; every fee valued at its fill price.
    """
    assert {row["commission_currency"] for row in fills} <= {base, "USDT"} and all(row["commission"] >= 0 for row in fills)
    bought = sum(row["last_qty"] for row in fills if row["order_side"] == "BUY")
    sold = sum(row["last_qty"] for row in fills if row["order_side"] == "SELL")
    cash = sum(row["last_qty"] * row["last_px"] * (1 if row["order_side"] == "SELL" else -1) for row in fills)
    cash -= sum(row["commission"] for row in fills if row["commission_currency"] == "USDT")
    base_fees = sum(row["commission"] for row in fills if row["commission_currency"] == base)
    fees = sum(row["commission"] * (row["last_px"] if row["commission_currency"] == base else 1.0) for row in fills)
    net = cash + (bought - sold - base_fees) * mark
    return {"net": net, "gross": net + fees, "fees": fees, "position": bought - sold, "base_fees": base_fees}


def _emulator_env(tmp_path: Path, catalog: Path, start: str, end: str, speed: float) -> Path:
    document = yaml.safe_load((CONFIGS_DIR / "env" / "emulator.yaml").read_text())
    document["emulator"] |= {"catalog": str(catalog), "start": start, "end": end, "speed": speed}
    path = tmp_path / "emulator.yaml"
    path.write_text(yaml.safe_dump(document))
    return path


@pytest.mark.slow
@pytest.mark.requires_redis
def test_emulator_session_trades_records_and_closes_out(
    redis_service: None,
    probe_variant: Path,
    sample_catalog: Path,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    import keel.live.credentials as credentials_module

    secrets_made = []
    generate = credentials_module.generate_credentials

    def remember(key_type: str):  # the test needs the secret to prove it was never written anywhere
        credentials = generate(key_type)
        secrets_made.append(credentials.api_secret)
        return credentials

    monkeypatch.setattr("keel.live.session.resolve_credentials", lambda config: remember(config.key_type))
    env_path = _emulator_env(tmp_path, sample_catalog, "2024-08-08T23:54:15Z", "2024-08-08T23:56:15Z", speed=10.0)
    session_dir = tmp_path / "session"

    result = CliRunner().invoke(
        _cli(),
        ["live", str(probe_variant), "--env", str(env_path), "--session-dir", str(session_dir)],
    )

    assert result.exit_code == 0, result.output
    assert f"session: {session_dir}" in result.output
    session = json.loads((session_dir / SESSION_JSON).read_text())
    assert session["status"] == "completed"
    assert session["after_stop"]["flat"] is True
    after_stop = session["after_stop"]["by_instrument"][BTCUSDT]
    assert after_stop["open_orders"] == [] and after_stop["open_positions"] == []
    assert session["emulator"]["speed"] == 10.0 and session["emulator"]["drop_fill_every"] == 0
    assert (session_dir / VARIANT_YAML).is_file() and (session_dir / NODE_LOG).stat().st_size > 0

    fills = read_fills(session_dir / FILLS_PARQUET)
    # The entry, then the close-on-stop; a market order may fill in several pieces across book levels.
    assert fills["order_side"].unique(maintain_order=True).to_list() == ["BUY", "SELL"]
    filled = dict(fills.group_by("order_side").agg(pl.col("last_qty").sum()).rows())
    assert filled["BUY"] == pytest.approx(0.0002)
    # Binance takes the buy commission (0.1%) in BTC: the close sells what is held, rounded down to the
    # 0.00001 step, and the remainder is reported as dust, not as an open position.
    assert filled["SELL"] == pytest.approx(0.00019)
    assert len(after_stop["dust_positions"]) == 1
    orders = pl.read_parquet(session_dir / ORDERS_PARQUET)
    assert set(orders.filter(pl.col("event_type") == "OrderFilled")["client_order_id"]) == set(fills["client_order_id"])

    catalog = ParquetDataCatalog(str(session_dir / CATALOG_DIR))
    assert [str(i.id) for i in catalog.instruments()] == [BTCUSDT]
    counts = session["counts"]["records"]
    assert len(catalog.trade_ticks([BTCUSDT])) == counts["TradeTick"][BTCUSDT] > 0
    assert len(catalog.quote_ticks([BTCUSDT])) == counts["QuoteTick"][BTCUSDT] > 0
    deltas = catalog.order_book_deltas([BTCUSDT])
    assert len(deltas) == counts["OrderBookDelta"][BTCUSDT] > 0
    book = OrderBook(InstrumentId.from_str(BTCUSDT), BookType.L2_MBP)
    for delta in deltas:
        book.apply_delta(delta)
    final = session["final_books"][BTCUSDT]
    assert [[str(level.price), str(level.size())] for level in book.bids()[:BOOK_SUMMARY_LEVELS]] == final["bids"]
    assert [[str(level.price), str(level.size())] for level in book.asks()[:BOOK_SUMMARY_LEVELS]] == final["asks"]

    assert len(secrets_made) == 1
    _assert_secret_absent(session_dir, secrets_made[0])
    verify_manifest(session_dir)  # sealed after the last write, catalog included

    # P&L: recorded and printed net equal a plain computation from fills.parquet, base-asset fee included.
    rows = fills.to_dicts()
    mark = float(catalog.trade_ticks([BTCUSDT])[-1].price)  # the last price the session saw
    expected = _plain_pnl(rows, "BTC", mark)
    pnl, own = session["pnl"]["total"], session["pnl"]["by_instrument"][BTCUSDT]
    assert (pnl["currency"], pnl["fills"]) == ("USDT", len(rows)) and own["mark_price"] == pytest.approx(mark, rel=1e-12)
    assert session["pnl"]["marks"] == {BTCUSDT: {"price": own["mark_price"], "source": "last_trade"}}
    assert pnl["net"] == own["net"] == pytest.approx(expected["net"], abs=1e-9)
    assert (pnl["gross"], pnl["fees"], pnl["rebates"]) == pytest.approx((expected["gross"], expected["fees"], 0.0), abs=1e-9)
    printed = {line.split("  ")[1].strip(): line.split()[-2] for line in result.output.splitlines() if line.endswith(" USDT")}
    assert float(printed["net P&L"]) == pytest.approx(expected["net"], abs=2e-8)
    assert float(printed[f"{BTCUSDT} net P&L"]) == pytest.approx(expected["net"], abs=2e-8)
    assert float(printed["fees"]) == pytest.approx(expected["fees"], abs=2e-8)
    # nautilus's realized P&L leaves out the BTC commission and the mark of the unsold remainder (dust).
    buys = [row for row in rows if row["order_side"] == "BUY"]
    assert expected["base_fees"] > 0
    average_buy = sum(row["last_qty"] * row["last_px"] for row in buys) / sum(row["last_qty"] for row in buys)
    realized = float(after_stop["realized_pnl"].split()[0])
    assert pnl["net"] - realized == pytest.approx(expected["position"] * (mark - average_buy) - expected["base_fees"] * mark, abs=1e-6)


@pytest.mark.requires_redis
def test_node_that_cannot_connect_fails_clearly(
    redis_service: None,
    probe_variant: Path,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    secret = "d2-test-secret-0123456789"
    monkeypatch.setenv("KEEL_TEST_KEY", "d2-test-key")
    monkeypatch.setenv("KEEL_TEST_SECRET", secret)
    env_path = tmp_path / "unreachable.yaml"
    env_path.write_text(
        yaml.safe_dump(
            {
                "name": "unreachable",
                "kind": "live",
                "credentials": {"source": "env", "api_key_env": "KEEL_TEST_KEY", "api_secret_env": "KEEL_TEST_SECRET"},
                # nothing listens on port 9: the clients cannot connect
                "endpoints": {"http": "http://127.0.0.1:9", "ws_stream": "ws://127.0.0.1:9", "ws_api": "ws://127.0.0.1:9/ws-api/v3"},
                "timeouts": {"connection": 1.0, "watchdog": 2.0, "post_stop": 0.5, "disconnection": 1.0},
            },
        ),
    )
    session_dir = tmp_path / "session"
    # A live environment trades only a promoted variant file (tests/live/test_live_promotion.py): on record here.
    monkeypatch.setenv("KEEL_HOME", str(tmp_path / "home"))
    (tmp_path / "home").mkdir()
    gate = append_decision({"kind": GATE, "verdict": "promote", "variant_sha256": file_sha256(probe_variant), "thresholds_sha256": "x", "reasons": []})
    append_decision({"kind": PROMOTION, "variant_sha256": file_sha256(probe_variant), "gate_decision_sha256": gate.sha256})

    with pytest.raises(LiveSessionError, match="did not come up within 2s: the data client is not connected") as failure:
        run_live_session(probe_variant, env_path, session_dir=session_dir, duration=30.0)

    assert failure.value.session_dir == session_dir.resolve()
    session = json.loads((session_dir / SESSION_JSON).read_text())
    assert session["status"] == "failed"
    assert session["after_stop"]["flat"] is False  # a failed node cannot vouch for what it left behind
    assert session["after_stop"]["strategy_states"] == {"ProbeStrategy-000": "READY"}
    assert (session_dir / NODE_LOG).stat().st_size > 0
    _assert_secret_absent(session_dir, secret)
    verify_manifest(session_dir)  # a failed session is sealed as recorded too


def test_cli_names_a_missing_variant_file(tmp_path: Path) -> None:
    result = CliRunner().invoke(_cli(), ["live", str(tmp_path / "missing.yaml")])
    assert result.exit_code == 2
    assert "missing.yaml: variant file not found" in result.output


def test_cli_names_a_bad_environment_field(probe_variant: Path, tmp_path: Path) -> None:
    env_path = tmp_path / "env.yaml"
    env_path.write_text(yaml.safe_dump({"name": "x", "kind": "emulator"}))
    result = CliRunner().invoke(_cli(), ["live", str(probe_variant), "--env", str(env_path)])
    assert result.exit_code == 2
    assert "env.yaml" in result.output and "credentials" in result.output


@pytest.mark.slow
@pytest.mark.requires_redis
def test_fault_knobs_reach_the_emulator_and_the_session_record(
    redis_service: None,
    probe_variant: Path,
    sample_catalog: Path,
    tmp_path: Path,
) -> None:
    env_path = _emulator_env(tmp_path, sample_catalog, "2024-08-08T23:54:15Z", "2024-08-08T23:55:15Z", speed=10.0)
    session_dir = tmp_path / "session"

    result = CliRunner().invoke(
        _cli(),
        [
            "live", str(probe_variant), "--env", str(env_path), "--session-dir", str(session_dir),
            "--drop-fill-every", "1", "--slippage-bps", "5",
        ],
    )

    assert result.exit_code == 0, result.output
    session = json.loads((session_dir / SESSION_JSON).read_text())
    assert (session["emulator"]["drop_fill_every"], session["emulator"]["slippage_bps"]) == (1, 5.0)
    # Every order that would fill expires unfilled: the entry never fills, nothing is left to close.
    orders = pl.read_parquet(session_dir / ORDERS_PARQUET)
    assert "OrderExpired" in orders["event_type"].to_list()
    assert read_fills(session_dir / FILLS_PARQUET).height == 0
    assert session["after_stop"]["flat"] is True


def test_cli_names_a_missing_catalog(probe_variant: Path, tmp_path: Path) -> None:
    result = CliRunner().invoke(_cli(), ["live", str(probe_variant), "--catalog", str(tmp_path / "no_catalog")])
    assert result.exit_code == 2
    assert "no_catalog has no data/ folder" in result.output


@pytest.mark.slow
@pytest.mark.requires_redis
def test_session_left_with_a_position_is_recorded_not_flat_and_marked(
    redis_service: None,
    probe_variant: Path,
    sample_catalog: Path,
    tmp_path: Path,
) -> None:
    document = yaml.safe_load(probe_variant.read_text())
    document["strategy"]["strategy_path"] = "holding_strategy:HoldingStrategy"
    variant_path = tmp_path / "holding_btcusdt.yaml"
    variant_path.write_text(yaml.safe_dump(document))
    env_path = _emulator_env(tmp_path, sample_catalog, "2024-08-08T23:54:15Z", "2024-08-08T23:55:15Z", speed=10.0)
    session_dir = tmp_path / "session"

    result = CliRunner().invoke(_cli(), ["live", str(variant_path), "--env", str(env_path), "--session-dir", str(session_dir)])

    assert result.exit_code == 1, result.output
    session = json.loads((session_dir / SESSION_JSON).read_text())
    assert session["status"] == "not_flat"
    assert session["after_stop"]["flat"] is False and len(session["after_stop"]["by_instrument"][BTCUSDT]["open_positions"]) == 1
    fills = read_fills(session_dir / FILLS_PARQUET)
    assert fills["order_side"].unique().to_list() == ["BUY"]
    mark = float(ParquetDataCatalog(str(session_dir / CATALOG_DIR)).trade_ticks([BTCUSDT])[-1].price)
    expected = _plain_pnl(fills.to_dicts(), "BTC", mark)
    assert expected["position"] == pytest.approx(0.0002)
    assert session["pnl"]["total"]["net"] == pytest.approx(expected["net"], abs=1e-9)  # the open position marked at the last trade
    verify_manifest(session_dir)


@pytest.fixture
def basket_variant(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A variant of one strategy buying BTCUSDT and ETHUSDT on their 5th trades, holding both for the close-on-stop."""
    monkeypatch.syspath_prepend(str(HERE))  # the node's child process inherits sys.path
    path = tmp_path / "basket_btcusdt_ethusdt.yaml"
    path.write_text(
        yaml.safe_dump(
            {
                "name": "basket_btcusdt_ethusdt",
                "venues": ["binance_spot"],
                "strategy": {
                    "strategy_path": "probe_strategy:BasketProbeStrategy",
                    "config_path": "probe_strategy:BasketProbeStrategyConfig",
                    "config": {"instrument_ids": [BTCUSDT, ETHUSDT], "trade_sizes": ["0.0002", "0.005"], "entry_trade": 5},
                },
            },
        ),
    )
    return path


@pytest.mark.slow
@pytest.mark.requires_redis
def test_one_strategy_trades_two_instruments_in_one_session(
    redis_service: None,
    basket_variant: Path,
    sample_catalog: Path,
    tmp_path: Path,
) -> None:
    env_path = _emulator_env(tmp_path, sample_catalog, "2024-08-08T23:54:15Z", "2024-08-08T23:56:15Z", speed=10.0)
    session_dir = tmp_path / "session"

    result = CliRunner().invoke(_cli(), ["live", str(basket_variant), "--env", str(env_path), "--session-dir", str(session_dir)])

    assert result.exit_code == 0, result.output
    session = json.loads((session_dir / SESSION_JSON).read_text())
    assert (session["status"], session["after_stop"]["flat"]) == ("completed", True)
    assert session["instrument_ids"] == [BTCUSDT, ETHUSDT]
    fills = read_fills(session_dir / FILLS_PARQUET)
    catalog = ParquetDataCatalog(str(session_dir / CATALOG_DIR))
    assert sorted(str(instrument.id) for instrument in catalog.instruments()) == [BTCUSDT, ETHUSDT]
    counts = session["counts"]["records"]
    expected_total = 0.0
    for instrument_id, base, size in ((BTCUSDT, "BTC", 0.0002), (ETHUSDT, "ETH", 0.005)):
        # Both instruments recorded: trades, quotes and book deltas, as counted in session.json.
        assert len(catalog.trade_ticks([instrument_id])) == counts["TradeTick"][instrument_id] > 0
        assert len(catalog.quote_ticks([instrument_id])) == counts["QuoteTick"][instrument_id] > 0
        assert len(catalog.order_book_deltas([instrument_id])) == counts["OrderBookDelta"][instrument_id] > 0
        # Both traded: the entry, then the close-on-stop of what is held, rounded down to the size step.
        own = fills.filter(pl.col("instrument_id") == instrument_id)
        assert own["order_side"].unique(maintain_order=True).to_list() == ["BUY", "SELL"]
        assert own.filter(pl.col("order_side") == "BUY")["last_qty"].sum() == pytest.approx(size)
        # Flat after stop: nothing open or working; the base-asset fee's remainder is dust.
        after_stop = session["after_stop"]["by_instrument"][instrument_id]
        assert (after_stop["open_positions"], after_stop["open_orders"], len(after_stop["dust_positions"])) == ([], [], 1)
        # Its P&L: a plain computation from its fills at the last trade price the session recorded.
        mark = float(catalog.trade_ticks([instrument_id])[-1].price)
        recorded_mark = session["pnl"]["marks"][instrument_id]
        assert (recorded_mark["source"], recorded_mark["price"]) == ("last_trade", pytest.approx(mark, rel=1e-12))
        expected = _plain_pnl(own.to_dicts(), base, mark)
        assert session["pnl"]["by_instrument"][instrument_id]["net"] == pytest.approx(expected["net"], abs=1e-9)
        assert session["pnl"]["by_instrument"][instrument_id]["fees"] == pytest.approx(expected["fees"], abs=1e-9)
        expected_total += expected["net"]
    total = session["pnl"]["total"]
    assert total["fills"] == fills.height
    assert total["net"] == pytest.approx(sum(part["net"] for part in session["pnl"]["by_instrument"].values()), abs=1e-12)
    assert total["net"] == pytest.approx(expected_total, abs=1e-9)
    verify_manifest(session_dir)


def test_cli_refuses_a_venue_the_environment_does_not_serve(probe_variant: Path, tmp_path: Path) -> None:
    document = yaml.safe_load(probe_variant.read_text())
    document |= {"name": "probe_perp", "venues": ["binance_usdm"]}
    document["strategy"]["config"]["instrument_id"] = "BTCUSDT-PERP.BINANCE"
    variant_path = tmp_path / "probe_perp.yaml"
    variant_path.write_text(yaml.safe_dump(document))
    session_dir = tmp_path / "session"

    result = CliRunner().invoke(_cli(), ["live", str(variant_path), "--session-dir", str(session_dir)])

    assert result.exit_code == 2
    assert "venues ['binance_usdm'], but environment 'emulator' serves one 'binance_spot' account" in result.output
    assert not session_dir.exists()  # refused before anything started
