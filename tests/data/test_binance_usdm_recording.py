"""Binance USDT-M recordings: futures book rules, exact round trip, and clear refusals of broken input."""

import gzip
import hashlib
import json
from decimal import Decimal
from pathlib import Path

import pytest
from nautilus_trader.model.book import OrderBook
from nautilus_trader.model.enums import AggressorSide
from nautilus_trader.model.enums import BookType
from nautilus_trader.model.enums import RecordFlag
from nautilus_trader.model.identifiers import InstrumentId
from nautilus_trader.persistence.catalog import ParquetDataCatalog

from keel.data.binance_recording import BINANCE_SPOT
from keel.data.binance_recording import BINANCE_USDM
from keel.data.binance_recording import read_recording
from keel.data.binance_usdm_ingest import ingest_binance_usdm
from keel.data.binance_usdm_ingest import sample_usdm_recordings
from keel.data.errors import DataInputError
from keel.data.quality import check_catalog
from keel.data.quality import load_check_policies

SAMPLE = sample_usdm_recordings()[0]
INSTRUMENT_ID = "BTCUSDT-PERP.BINANCE"
SNAPSHOT_LAST_UPDATE_ID = 5123107852948
BRIDGING_DIFF = (5123107850310, 5123107853551)  # (U, u) of the first applied diff: U <= lastUpdateId <= u


@pytest.fixture(scope="module")
def usdm_catalog(tmp_path_factory: pytest.TempPathFactory) -> Path:
    catalog = tmp_path_factory.mktemp("usdm") / "catalog"
    ingest_binance_usdm([SAMPLE], catalog)
    return catalog


@pytest.fixture(scope="module")
def lines() -> list[bytes]:
    with gzip.open(SAMPLE, "rb") as file:
        return file.read().splitlines(keepends=True)


def _messages(path: Path, stream_suffix: str) -> list[tuple[int, dict]]:
    """Parse a recording the simplest way: (local ts, data) of one stream."""
    found = []
    with gzip.open(path, "rt") as file:
        for line in file:
            ts, payload = line.split(" ", 1)
            message = json.loads(payload)
            if message.get("stream", "").endswith(stream_suffix):
                found.append((int(ts), message["data"]))
    return found


def _book_mismatches(catalog: Path, recording: Path) -> tuple[int, int]:
    # bookTicker `u` lives in the depth stream's update-id space: where a depth diff ends at the same id,
    # the rebuilt top of book must equal the ticker's best bid/ask, prices and sizes.
    tickers = {data["u"]: data for _, data in _messages(recording, "@bookTicker")}
    book = OrderBook(InstrumentId.from_str(INSTRUMENT_ID), BookType.L2_MBP)
    checked = mismatched = 0
    for delta in ParquetDataCatalog(str(catalog)).order_book_deltas(instrument_ids=[INSTRUMENT_ID]):
        book.apply_delta(delta)
        ticker = tickers.get(delta.sequence)
        if ticker is None or not delta.flags & RecordFlag.F_LAST:
            continue
        checked += 1
        top = (book.best_bid_price(), book.best_bid_size(), book.best_ask_price(), book.best_ask_size())
        if tuple(value.as_decimal() for value in top) != tuple(Decimal(ticker[key]) for key in ("b", "B", "a", "A")):
            mismatched += 1
    return checked, mismatched


def _tree_digest(folder: Path) -> dict[str, str]:
    return {str(path.relative_to(folder)): hashlib.sha256(path.read_bytes()).hexdigest() for path in sorted(folder.rglob("*")) if path.is_file()}


def _write(path: Path, lines: list[bytes]) -> Path:
    with gzip.open(path, "wb") as file:
        file.writelines(lines)
    return path


def _assert_refused(recording: Path, catalog: Path, expected_line: int | None, message: str) -> None:
    before = _tree_digest(catalog)
    with pytest.raises(DataInputError, match=message) as error:
        ingest_binance_usdm([recording], catalog)
    assert error.value.path == recording
    assert error.value.line == expected_line
    assert _tree_digest(catalog) == before


def _index_of(lines: list[bytes], marker: bytes, after: int = 0) -> int:
    return next(index for index, line in enumerate(lines) if index >= after and marker in line)


def test_book_matches_book_ticker_at_every_shared_update_id(usdm_catalog: Path) -> None:
    checked, mismatched = _book_mismatches(usdm_catalog, SAMPLE)

    assert checked == 82
    assert mismatched == 0


@pytest.mark.requires_shared
def test_full_shared_recording_book_matches_book_ticker(shared_data_dir: Path, tmp_path: Path) -> None:
    recording = shared_data_dir / "hftbacktest" / "examples" / "usdm" / "btcusdt_20240808.gz"
    ingest_binance_usdm([recording], tmp_path / "catalog")

    checked, mismatched = _book_mismatches(tmp_path / "catalog", recording)

    assert checked == 629
    assert mismatched == 0


def test_snapshot_is_bridged_by_the_futures_rule(usdm_catalog: Path) -> None:
    deltas = ParquetDataCatalog(str(usdm_catalog)).order_book_deltas(instrument_ids=[INSTRUMENT_ID])
    snapshot = [delta for delta in deltas if delta.flags & RecordFlag.F_SNAPSHOT]
    first_diff = deltas[len(snapshot)]

    assert len(snapshot) == 1 + 1000 + 1000  # CLEAR, then 1000 bid and 1000 ask levels
    assert {delta.sequence for delta in snapshot} == {SNAPSHOT_LAST_UPDATE_ID}
    assert snapshot[0].ts_event == 1723161256493 * 1_000_000  # the futures snapshot's `T`
    # Diffs ending before lastUpdateId are dropped; the first kept one straddles it.
    assert first_diff.sequence == BRIDGING_DIFF[1]
    assert BRIDGING_DIFF[0] <= SNAPSHOT_LAST_UPDATE_ID <= BRIDGING_DIFF[1]
    assert len(deltas) == 49069


def test_trades_round_trip(usdm_catalog: Path) -> None:
    source = _messages(SAMPLE, "@trade")

    ticks = ParquetDataCatalog(str(usdm_catalog)).trade_ticks(instrument_ids=[INSTRUMENT_ID])

    assert len(ticks) == len(source) == 1518
    assert (str(ticks[0].price), str(ticks[0].size), ticks[0].trade_id.value) == ("61800.3", "0.006", "5266583935")
    assert (str(ticks[-1].price), str(ticks[-1].size), ticks[-1].trade_id.value) == ("61812.7", "0.002", "5266585452")
    for tick, (ts, data) in ((ticks[0], source[0]), (ticks[-1], source[-1])):
        assert tick.aggressor_side == (AggressorSide.SELLER if data["m"] else AggressorSide.BUYER)
        assert tick.ts_init == ts
        assert tick.ts_event == data["T"] * 1_000_000


def test_quotes_round_trip_with_exchange_time(usdm_catalog: Path) -> None:
    source = _messages(SAMPLE, "@bookTicker")

    quotes = ParquetDataCatalog(str(usdm_catalog)).quote_ticks(instrument_ids=[INSTRUMENT_ID])

    assert len(quotes) == len(source) == 7162
    first, last = quotes[0], quotes[-1]
    assert (str(first.bid_price), str(first.ask_price), str(first.bid_size), str(first.ask_size)) == ("61800.2", "61800.3", "2.507", "2.510")
    assert (str(last.bid_price), str(last.ask_price), str(last.bid_size), str(last.ask_size)) == ("61812.6", "61812.7", "0.126", "3.434")
    for quote, (ts, data) in ((first, source[0]), (last, source[-1])):
        assert quote.ts_init == ts
        assert quote.ts_event == data["T"] * 1_000_000  # futures bookTicker carries its transaction time


def test_pu_break_names_file_and_line(lines: list[bytes], tmp_path: Path) -> None:
    catalog = tmp_path / "catalog"
    ingest_binance_usdm([SAMPLE], catalog)
    snapshot = _index_of(lines, b'"lastUpdateId"')
    dropped = _index_of(lines, b"@depth@0ms", after=snapshot + 100)
    following = _index_of(lines, b"@depth@0ms", after=dropped + 1)
    corrupted = _write(tmp_path / "gap.gz", lines[:dropped] + lines[dropped + 1 :])

    # Line numbers are the corrupted file's: the diff after the hole moved up one line, so its 1-based number
    # equals its old 0-based index.
    _assert_refused(corrupted, catalog, following, r"depth sequence break: .* pu=\d+, expected pu=\d+")


def test_spot_continuity_rule_rejects_futures_ids() -> None:
    # Futures update ids are not contiguous, so reading with the spot rule must fail: the rules really differ.
    with pytest.raises(DataInputError, match=r"expected U=\d+ \(previous u=\d+\)"):
        read_recording(SAMPLE, BINANCE_SPOT)


def test_missing_pu_names_line_and_field(lines: list[bytes], tmp_path: Path) -> None:
    index = _index_of(lines, b"@depth@0ms", after=200)
    broken = lines[index].replace(b'"pu":', b'"pu_":', 1)
    corrupted = _write(tmp_path / "missing.gz", [*lines[:index], broken, *lines[index + 1 :]])

    with pytest.raises(DataInputError, match=r"unexpected usdm depth payload .*`pu`") as error:
        read_recording(corrupted, BINANCE_USDM)
    assert error.value.line == index + 1


def test_duplicate_trade_names_file_and_line(lines: list[bytes], tmp_path: Path) -> None:
    index = _index_of(lines, b"@trade", after=500)
    corrupted = _write(tmp_path / "duplicate.gz", [*lines[: index + 1], lines[index], *lines[index + 1 :]])

    with pytest.raises(DataInputError, match="trade id gap or reorder") as error:
        read_recording(corrupted, BINANCE_USDM)
    assert error.value.line == index + 2


def test_non_market_trades_are_left_out_and_counted(lines: list[bytes], tmp_path: Path) -> None:
    # The sample holds only MARKET trades; mark one as auto-deleveraging, as Binance would send it.
    index = _index_of(lines, b"@trade", after=500)
    marked = lines[index].replace(b'"X":"MARKET"', b'"X":"ADL"')
    recording = _write(tmp_path / "adl.gz", [*lines[:index], marked, *lines[index + 1 :]])

    raw = read_recording(recording, BINANCE_USDM)
    report = ingest_binance_usdm([recording], tmp_path / "catalog")

    assert raw.skipped_trades == {"BTCUSDT": {"ADL": 1}}
    ticks = ParquetDataCatalog(str(report.catalog)).trade_ticks(instrument_ids=[INSTRUMENT_ID])
    assert len(ticks) == 1517
    skipped_id = json.loads(marked.split(b" ", 1)[1])["data"]["t"]
    assert skipped_id not in {int(tick.trade_id.value) for tick in ticks}
    # The hole the skipped print leaves is reported, not refused: the parser proved every print's id contiguous.
    assert [(finding.check, finding.policy) for finding in report.findings] == [("trade_id_gaps", "warn")]
    # The catalog check reads the same policy file, so it agrees with the ingest.
    catalog_check = check_catalog(report.catalog, load_check_policies())
    assert [(finding.check, finding.policy, finding.row) for finding in catalog_check.findings] == [
        (finding.check, finding.policy, finding.row) for finding in report.findings
    ]
    assert not catalog_check.failed


def test_non_market_trades_are_refused_under_a_checks_file_without_the_perpetual_override(lines: list[bytes], tmp_path: Path) -> None:
    index = _index_of(lines, b"@trade", after=500)
    recording = _write(tmp_path / "adl.gz", [*lines[:index], lines[index].replace(b'"X":"MARKET"', b'"X":"ADL"'), *lines[index + 1 :]])
    strict = tmp_path / "strict_checks.yaml"
    strict.write_text("checks:\n  trade_id_gaps: {policy: fail}\n")

    with pytest.raises(DataInputError, match="trade_id_gaps"):
        ingest_binance_usdm([recording], tmp_path / "catalog", checks=load_check_policies(strict))
    assert not (tmp_path / "catalog" / "data").exists()


def test_truncated_gzip_is_refused(tmp_path: Path) -> None:
    catalog = tmp_path / "catalog"
    ingest_binance_usdm([SAMPLE], catalog)
    corrupted = tmp_path / "truncated.gz"
    corrupted.write_bytes(SAMPLE.read_bytes()[:100_000])

    before = _tree_digest(catalog)
    with pytest.raises(DataInputError, match="truncated gzip") as error:
        ingest_binance_usdm([corrupted], catalog)
    assert error.value.path == corrupted
    assert _tree_digest(catalog) == before


def test_reingesting_the_same_file_is_a_no_op(usdm_catalog: Path) -> None:
    before = _tree_digest(usdm_catalog)

    report = ingest_binance_usdm([SAMPLE], usdm_catalog)

    assert not report.changed_catalog
    assert _tree_digest(usdm_catalog) == before
