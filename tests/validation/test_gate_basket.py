"""The gate on a variant of two instruments: a real session of one strategy trading BTCUSDT and ETHUSDT.

One session (the live node against the emulator replaying both sample pairs, ~2 min) is recorded per module
with the ``GateBasket`` test strategy (``gate_basket.py``); every case gates it or a re-sealed copy, reusing
one backtest over it from a module-wide cache.
"""

import json
import shutil
from pathlib import Path

import polars as pl
import pytest
import yaml
from gate_basket import INSTRUMENT_IDS
from gate_basket import write_basket_variant

from keel.fills import read_fills
from keel.live.session import EmulatorOverrides
from keel.live.session import run_live_session
from keel.live.session import session_pnl
from keel.live.session_layout import write_manifest
from keel.validation.checks import PNL_COMPONENTS
from keel.validation.checks import per_instrument
from keel.validation.gate import GateInputError
from keel.validation.gate import GateReport
from keel.validation.gate import run_gate

SPEED = 3.0  # the 6-minute sample in 2 min, as the single-instrument gate sessions
BTCUSDT, ETHUSDT = INSTRUMENT_IDS
PRICE_CHECK = "median price deviation (bps, + = live worse)"


@pytest.fixture(scope="module")
def variant(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_basket_variant(tmp_path_factory.mktemp("basket_variant") / "gate_basket.yaml")


@pytest.fixture(scope="module")
def recorded(variant: Path, sample_catalog: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One faithful two-instrument session, never written to."""
    result = run_live_session(
        variant,
        "emulator",
        session_dir=tmp_path_factory.mktemp("basket") / "faithful",
        overrides=EmulatorOverrides(catalog=sample_catalog, speed=SPEED),
    )
    fills = read_fills(result.session_dir / "fills.parquet")
    assert set(fills["instrument_id"]) == set(INSTRUMENT_IDS)
    return result.session_dir


@pytest.fixture(scope="module")
def backtest_cache(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("basket_backtests")


@pytest.fixture
def keel_home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("KEEL_HOME", str(tmp_path / "home"))
    return tmp_path / "home"


def _gate(variant: Path, session: Path, tmp_path: Path, backtest_cache: Path) -> GateReport:
    return run_gate(variant, session, out_dir=tmp_path / "gate", log_to_mlflow=False, backtest_cache=backtest_cache, operator="tester")


def _failed(report: GateReport) -> set[str]:
    return {check.name for check in report.checks if not check.passed}


def _copy_with_worse_prices(recorded: Path, tmp_path: Path, instrument_id: str) -> Path:
    """Copy the session with one instrument's fills 10 bp worse in both tables, summed up again by ``keel live``'s own code and re-sealed."""
    session = tmp_path / "session"
    shutil.copytree(recorded, session)
    worse = pl.when(pl.col("order_side") == "BUY").then(1.001).otherwise(0.999)
    mine = pl.col("instrument_id") == instrument_id
    fills = read_fills(session / "fills.parquet").with_columns(pl.when(mine).then(pl.col("last_px") * worse).otherwise(pl.col("last_px")).alias("last_px"))
    fills.write_parquet(session / "fills.parquet")
    orders = pl.read_parquet(session / "orders.parquet")
    filled = mine & (pl.col("event_type") == "OrderFilled")
    orders.with_columns(pl.when(filled).then(pl.col("price") * worse).otherwise(pl.col("price")).alias("price")).write_parquet(session / "orders.parquet")
    document = json.loads((session / "session.json").read_text())
    last_trades = {key: str(mark["price"]) for key, mark in document["pnl"]["marks"].items() if mark["source"] == "last_trade"}
    document["pnl"] = session_pnl(session, document["instrument_ids"], fills, last_trades)
    (session / "session.json").write_text(json.dumps(document, indent=2))
    write_manifest(session)
    return session


@pytest.mark.slow
@pytest.mark.requires_redis
def test_two_instrument_session_is_promoted_with_a_section_per_instrument(
    redis_service: None, variant: Path, recorded: Path, keel_home: Path, tmp_path: Path, backtest_cache: Path
) -> None:
    report = _gate(variant, recorded, tmp_path, backtest_cache)

    assert report.promoted, report.reasons
    names = {check.name for check in report.checks}
    for instrument_id in INSTRUMENT_IDS:
        assert per_instrument(PRICE_CHECK, instrument_id) in names
        assert per_instrument("|net P&L difference| (bps of backtest notional)", instrument_id) in names
        assert per_instrument("|position at the end| from the live fills (size steps, below 1 is dust)", instrument_id) in names
    # Every order matched within its own instrument; the total is the sum of the instruments.
    pairs = report.matching.pairs
    assert set(pairs["backtest_instrument"]) == set(INSTRUMENT_IDS)
    assert (pairs["backtest_instrument"] == pairs["live_instrument"]).all()
    for side in ("backtest", "live"):
        for component in (*PNL_COMPONENTS, "notional"):
            parts = sum(report.pnl_by_instrument[instrument_id][side][component] for instrument_id in INSTRUMENT_IDS)
            assert report.pnl[side][component] == pytest.approx(parts, abs=1e-9)
    # The live side's P&L is the session's own (spot pairs: no funding), the backtest's its run summary's.
    session = json.loads((recorded / "session.json").read_text())
    summary = json.loads((tmp_path / "gate" / "backtest" / "summary.json").read_text())
    for instrument_id in INSTRUMENT_IDS:
        assert report.pnl_by_instrument[instrument_id]["live"]["fees"] == pytest.approx(session["pnl"]["by_instrument"][instrument_id]["fees"])
        assert report.pnl_by_instrument[instrument_id]["live"]["funding"] == session["pnl"]["by_instrument"][instrument_id]["funding"] == 0.0
        assert report.pnl_by_instrument[instrument_id]["backtest"]["fees"] == pytest.approx(summary["by_instrument"][instrument_id]["fees"])
        assert report.pnl_by_instrument[instrument_id]["backtest"]["funding"] == summary["by_instrument"][instrument_id]["funding"]
    markdown = (tmp_path / "gate" / "gate_report.md").read_text()
    page = (tmp_path / "gate" / "gate_report.html").read_text()
    assert "## Total" in markdown and "<h2>Total</h2>" in page
    for instrument_id in INSTRUMENT_IDS:
        assert f"## {instrument_id}" in markdown and f"<h2>{instrument_id}</h2>" in page
    document = json.loads((tmp_path / "gate" / "gate_report.json").read_text())
    assert set(document["pnl_by_instrument"]) == set(INSTRUMENT_IDS)


@pytest.mark.slow
@pytest.mark.requires_redis
def test_worse_prices_on_one_instrument_fail_its_checks_only(
    redis_service: None, variant: Path, recorded: Path, keel_home: Path, tmp_path: Path, backtest_cache: Path
) -> None:
    session = _copy_with_worse_prices(recorded, tmp_path, ETHUSDT)

    report = _gate(variant, session, tmp_path, backtest_cache)

    assert not report.promoted
    failed = _failed(report)
    assert per_instrument(PRICE_CHECK, ETHUSDT) in failed
    assert per_instrument(PRICE_CHECK, BTCUSDT) not in failed
    # Live paid more and received less on ETHUSDT: its slippage is a loss, and it is ETHUSDT's, not BTCUSDT's.
    assert report.pnl_by_instrument[ETHUSDT]["live"]["slippage"] < 0


@pytest.mark.slow
@pytest.mark.requires_redis
def test_a_session_without_an_instrument_of_the_variant_is_refused(
    redis_service: None, variant: Path, recorded: Path, keel_home: Path, tmp_path: Path, backtest_cache: Path
) -> None:
    session = tmp_path / "session"
    shutil.copytree(recorded, session)
    document = json.loads((session / "session.json").read_text())
    document["instrument_ids"] = [BTCUSDT]
    (session / "session.json").write_text(json.dumps(document, indent=2))
    write_manifest(session)

    with pytest.raises(GateInputError, match=f"session.json: instrument_ids \\['{BTCUSDT}'\\] do not hold the variant's \\['{ETHUSDT}'\\]"):
        _gate(variant, session, tmp_path, backtest_cache)


@pytest.mark.slow
@pytest.mark.requires_redis
def test_a_variant_at_other_venues_than_the_session_is_refused(
    redis_service: None, variant: Path, recorded: Path, keel_home: Path, tmp_path: Path, backtest_cache: Path
) -> None:
    document = yaml.safe_load(variant.read_text())
    document["venues"] = ["binance_usdm"]
    other = tmp_path / "other_venues.yaml"
    other.write_text(yaml.safe_dump(document))

    with pytest.raises(GateInputError, match=r"session.json: the session ran at venues \['binance_spot'\], the variant given trades at \['binance_usdm'\]"):
        _gate(other, recorded, tmp_path, backtest_cache)
