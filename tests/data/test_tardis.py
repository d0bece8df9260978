"""Tardis.dev CSV ingest: exact round trips, books rebuilt by nautilus, corrupt files refused.

No permissively licensed Tardis file exists, so the fresh-clone tests run on Tardis files *derived* from the
shipped MIT Binance spot recording (``data/sample/binance_spot/btcusdt_20240808.gz``), written into tmp_path by
the fixtures below (nothing derived is shipped). The conversion writes what a Tardis export of that stream holds,
taken from the ``sample_catalog`` the spot ingest built (so exactly the diffs that ingest applied):

- trades: one row per trade tick (exchange ``binance``, symbol ``BTCUSDT``; timestamp = trade time,
  local_timestamp = receive time, in microseconds; id; side = aggressor ``buy``/``sell``; price; amount);
- quotes: one row per bookTicker (timestamp = local_timestamp = receive time: spot bookTicker has no event time);
- incremental_book_L2: one row per order book delta, CLEAR rows left out (the layout implies them);
  ``is_snapshot`` true for the REST snapshot levels, false for diffs; amount 0 for removals;
- book_snapshot_5: the top 5 levels a side after each of the first 300 depth messages.

Tardis timestamps are whole microseconds and its layouts carry no sequence number, so those are the only
differences the tests allow. The real Tardis samples (nautilus repository, LGPL, not shipped) are tested
from ../shared when it is there.
"""

import csv
import gzip
import hashlib
import heapq
import io
from collections.abc import Callable
from decimal import Decimal
from pathlib import Path

import polars as pl
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from nautilus_trader.model.book import OrderBook
from nautilus_trader.model.enums import AggressorSide
from nautilus_trader.model.enums import BookAction
from nautilus_trader.model.enums import BookType
from nautilus_trader.model.enums import OrderSide
from nautilus_trader.model.enums import RecordFlag
from nautilus_trader.model.identifiers import InstrumentId
from nautilus_trader.model.instruments import Instrument
from nautilus_trader.persistence.catalog import ParquetDataCatalog

from keel.data.errors import DataInputError
from keel.data.ingest import DEFAULT_EXCHANGE_INFO
from keel.data.instruments import binance_spot_instruments
from keel.data.instruments import binance_usdm_instruments
from keel.data.tardis import TARDIS_CHUNK_BYTES
from keel.data.tardis import detect_kind
from keel.data.tardis import ingest_tardis
from keel.data.tardis import tardis_instrument_id
from keel.settings import SAMPLE_DIR

SPOT_ID = "BTCUSDT.BINANCE"
PERP_ID = "BTCUSDT-PERP.BINANCE"
USDM_EXCHANGE_INFO = SAMPLE_DIR / "binance_usdm" / "exchange_info.json"
SNAPSHOT_MESSAGES = 300
F_LAST = int(RecordFlag.F_LAST)
F_SNAPSHOT = int(RecordFlag.F_SNAPSHOT)


@pytest.fixture(scope="module")
def spot_instruments() -> dict[str, Instrument]:
    return binance_spot_instruments(DEFAULT_EXCHANGE_INFO, {"BTCUSDT"})


@pytest.fixture(scope="module")
def usdm_instruments() -> dict[str, Instrument]:
    # The shipped 2021 USDT-M exchangeInfo: tick 0.01, step 0.001, the filters of the 2020 Tardis samples.
    return binance_usdm_instruments(USDM_EXCHANGE_INFO, {"BTCUSDT"})


@pytest.fixture(scope="module")
def sample_frames(sample_catalog: Path) -> dict[str, pl.DataFrame]:
    """The spot ingest's BTCUSDT trade, quote and delta rows, fixed-point columns as ``Decimal(38, 16)``."""
    return {data_type: _catalog_frame(sample_catalog, data_type, SPOT_ID) for data_type in ("trade_tick", "quote_tick", "order_book_deltas")}


@pytest.fixture(scope="module")
def derived(sample_frames: dict[str, pl.DataFrame], tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """Tardis CSV files derived from the spot sample (see the module docstring), gzip and plain."""
    folder = tmp_path_factory.mktemp("tardis_derived")
    key = [pl.lit("binance").alias("exchange"), pl.lit("BTCUSDT").alias("symbol"), _micros("ts_event", "timestamp"), _micros("ts_init", "local_timestamp")]
    trades = sample_frames["trade_tick"].select(
        *key,
        pl.col("trade_id").alias("id"),
        pl.when(pl.col("aggressor_side") == int(AggressorSide.BUYER)).then(pl.lit("buy")).otherwise(pl.lit("sell")).alias("side"),
        _text("price", "price"),
        _text("size", "amount"),
    )
    quotes = sample_frames["quote_tick"].select(
        *key, _text("ask_size", "ask_amount"), _text("ask_price", "ask_price"), _text("bid_price", "bid_price"), _text("bid_size", "bid_amount")
    )
    deltas = sample_frames["order_book_deltas"]
    incremental = deltas.filter(pl.col("action") != int(BookAction.CLEAR)).select(
        *key,
        ((pl.col("flags") & F_SNAPSHOT) != 0).alias("is_snapshot").cast(pl.String).str.to_lowercase(),
        pl.when(pl.col("side") == int(OrderSide.BUY)).then(pl.lit("bid")).otherwise(pl.lit("ask")).alias("side"),
        _text("price", "price"),
        _text("size", "amount"),
    )
    return {
        "trades": _write_gzip(folder / "binance_trades_2024-08-08_BTCUSDT.csv.gz", trades),
        "trades_plain": _write_plain(folder / "binance_trades_2024-08-08_BTCUSDT.csv", trades),
        "quotes": _write_plain(folder / "binance_quotes_2024-08-08_BTCUSDT.csv", quotes),
        "incremental_book_L2": _write_gzip(folder / "binance_incremental_book_L2_2024-08-08_BTCUSDT.csv.gz", incremental),
        "incremental_plain": _write_plain(folder / "binance_incremental_book_L2_2024-08-08_BTCUSDT.csv", incremental),
        "book_snapshot_5": _write_plain(folder / "binance_book_snapshot_5_2024-08-08_BTCUSDT.csv", _top_levels(deltas, 5, SNAPSHOT_MESSAGES)),
    }


# ------------------------------------------------------------------------------------------------- round trips


def test_trades_round_trip_exact(sample_frames: dict[str, pl.DataFrame], derived: dict[str, Path], spot_instruments: dict, tmp_path: Path) -> None:
    catalog = tmp_path / "catalog"

    report = ingest_tardis([derived["trades"]], catalog, spot_instruments)

    assert report.rounded_quantities == {}
    ticks = ParquetDataCatalog(str(catalog)).trade_ticks(instrument_ids=[SPOT_ID])
    source = sample_frames["trade_tick"]
    assert len(ticks) == source.height == 9757
    # The recording's first and last trade messages (btcusdt_20240808.gz lines with @trade).
    first, last = ticks[0], ticks[-1]
    assert (str(first.price), str(first.size), first.trade_id.value, first.aggressor_side) == ("61837.63", "0.02000", "3735683259", AggressorSide.SELLER)
    assert (first.ts_event, first.ts_init) == (1723161255342000000, 1723161254087896000)
    assert (str(last.price), str(last.size), last.trade_id.value, last.aggressor_side) == ("61685.99", "0.00140", "3735693015", AggressorSide.SELLER)
    # Every row equals the spot ingest's, receive times cut to Tardis' microseconds.
    assert _catalog_frame(catalog, "trade_tick", SPOT_ID).equals(source.with_columns(_to_micros("ts_init")))


def test_quotes_round_trip_exact(sample_frames: dict[str, pl.DataFrame], derived: dict[str, Path], spot_instruments: dict, tmp_path: Path) -> None:
    catalog = tmp_path / "catalog"

    ingest_tardis([derived["quotes"]], catalog, spot_instruments, kind="quotes")

    quotes = ParquetDataCatalog(str(catalog)).quote_ticks(instrument_ids=[SPOT_ID])
    source = sample_frames["quote_tick"]
    assert len(quotes) == source.height == 28040
    first, last = quotes[0], quotes[-1]
    # The recording's first and last bookTicker messages.
    assert (str(first.bid_price), str(first.bid_size), str(first.ask_price), str(first.ask_size)) == ("61837.63", "3.78826", "61837.64", "1.54698")
    assert first.ts_init == first.ts_event == 1723161254087891000
    assert (str(last.bid_price), str(last.bid_size), str(last.ask_price), str(last.ask_size)) == ("61685.99", "1.25869", "61686.00", "2.44807")
    # Tardis quotes carry no venue update id; the recording's are the one column the source has beyond them.
    assert _catalog_frame(catalog, "quote_tick", SPOT_ID).equals(source.drop("update_id").with_columns(_to_micros("ts_event"), _to_micros("ts_init")))


def test_incremental_book_gives_the_spot_ingest_deltas(
    sample_frames: dict[str, pl.DataFrame], derived: dict[str, Path], spot_instruments: dict, tmp_path: Path
) -> None:
    catalog = tmp_path / "catalog"

    report = ingest_tardis([derived["incremental_book_L2"]], catalog, spot_instruments)

    [written] = [item for item in report.files if item.data_type == "order_book_deltas"]
    source = sample_frames["order_book_deltas"]
    assert written.rows == source.height == 126074
    ingested = _catalog_frame(catalog, "order_book_deltas", SPOT_ID)
    # Same action, side, price, size and flags on every row (CLEAR, F_SNAPSHOT and F_LAST included); Tardis has
    # no sequence numbers and microsecond clocks.
    expected = source.with_columns(pl.lit(0, pl.UInt64).alias("sequence"), _to_micros("ts_event"), _to_micros("ts_init"))
    assert ingested.equals(expected)
    assert ingested["action"][0] == int(BookAction.CLEAR)
    # The snapshot and the 3,449 diffs the spot ingest applied (2 of the 3,451 recorded were older than the snapshot).
    assert (ingested["flags"] & F_LAST != 0).sum() == 3450


def test_incremental_book_rebuilt_by_nautilus_equals_the_rows_book(derived: dict[str, Path], spot_instruments: dict, tmp_path: Path) -> None:
    catalog = tmp_path / "catalog"
    ingest_tardis([derived["incremental_book_L2"]], catalog, spot_instruments)
    rows = _csv_rows(derived["incremental_plain"])
    book = OrderBook(InstrumentId.from_str(SPOT_ID), BookType.L2_MBP)
    expected: dict[str, dict[Decimal, Decimal]] = {"bid": {}, "ask": {}}
    applied = compared = 0

    for delta in ParquetDataCatalog(str(catalog)).order_book_deltas(instrument_ids=[SPOT_ID]):
        book.apply_delta(delta)
        if delta.action == BookAction.CLEAR:
            continue
        # The rows' own book, replayed the plain way: snapshot rows set levels, amount 0 removes one.
        row = rows[applied]
        applied += 1
        if row["is_snapshot"] == "true" and (applied == 1 or rows[applied - 2]["is_snapshot"] == "false"):
            expected = {"bid": {}, "ask": {}}
        levels = expected[row["side"]]
        if Decimal(row["amount"]) == 0:
            levels.pop(Decimal(row["price"]), None)
        else:
            levels[Decimal(row["price"])] = Decimal(row["amount"])
        if delta.flags & F_LAST:
            compared += 1
            best_bid, best_ask = max(expected["bid"]), min(expected["ask"])
            assert (book.best_bid_price().as_decimal(), book.best_bid_size().as_decimal()) == (best_bid, expected["bid"][best_bid])
            assert (book.best_ask_price().as_decimal(), book.best_ask_size().as_decimal()) == (best_ask, expected["ask"][best_ask])

    assert applied == len(rows)
    assert compared == 3450
    assert _levels(book.bids()) == sorted(expected["bid"].items(), reverse=True)
    assert _levels(book.asks()) == sorted(expected["ask"].items())


def test_book_snapshot_rebuilt_by_nautilus_equals_each_row(derived: dict[str, Path], spot_instruments: dict, tmp_path: Path) -> None:
    catalog = tmp_path / "catalog"

    ingest_tardis([derived["book_snapshot_5"]], catalog, spot_instruments)

    deltas = ParquetDataCatalog(str(catalog)).order_book_deltas(instrument_ids=[SPOT_ID])
    assert len(deltas) == SNAPSHOT_MESSAGES * 11  # CLEAR + 5 bids + 5 asks per row
    _assert_book_per_row(deltas, _csv_rows(derived["book_snapshot_5"]), 5, SPOT_ID)


def test_book_snapshot_with_fewer_levels(derived: dict[str, Path], spot_instruments: dict, tmp_path: Path) -> None:
    # A thin book: Tardis leaves the missing levels' cells empty.
    header, *lines = derived["book_snapshot_5"].read_text().splitlines()
    columns = header.split(",")
    cells = lines[0].split(",")
    for name in ("bids[3].price", "bids[3].amount", "bids[4].price", "bids[4].amount", "asks[4].price", "asks[4].amount"):
        cells[columns.index(name)] = ""
    thin = tmp_path / "thin_book_snapshot_5.csv"
    thin.write_text("\n".join([header, ",".join(cells), *lines[1:3]]) + "\n")
    catalog = tmp_path / "catalog"

    ingest_tardis([thin], catalog, spot_instruments)

    deltas = ParquetDataCatalog(str(catalog)).order_book_deltas(instrument_ids=[SPOT_ID])
    assert len(deltas) == (1 + 3 + 4) + 2 * 11
    assert deltas[7].flags == F_SNAPSHOT | F_LAST and deltas[6].flags == F_SNAPSHOT
    _assert_book_per_row(deltas, _csv_rows(thin), 5, SPOT_ID)


def test_amount_finer_than_the_step_is_rounded_up_and_counted(derived: dict[str, Path], spot_instruments: dict, tmp_path: Path) -> None:
    # Binance keeps the finer quantities of orders placed before a step was coarsened; nautilus needs the step.
    lines = derived["trades_plain"].read_text().splitlines()
    fine = tmp_path / "fine_amount.csv"
    fine.write_text("\n".join(_replace_cell("amount", "0.000151", 2)(lines)) + "\n")
    catalog = tmp_path / "catalog"

    report = ingest_tardis([fine], catalog, spot_instruments)

    assert report.rounded_quantities == {SPOT_ID: 1}
    assert str(ParquetDataCatalog(str(catalog)).trade_ticks(instrument_ids=[SPOT_ID])[0].size) == "0.00016"


def test_reingesting_the_same_file_is_a_no_op(derived: dict[str, Path], spot_instruments: dict, tmp_path: Path) -> None:
    catalog = tmp_path / "catalog"
    ingest_tardis([derived["trades"], derived["quotes"]], catalog, spot_instruments)
    before = _tree_digest(catalog)

    report = ingest_tardis([derived["trades"], derived["quotes"]], catalog, spot_instruments)

    assert not report.changed_catalog
    assert _tree_digest(catalog) == before


def test_kind_detected_from_header_and_exchange_mapping() -> None:
    assert detect_kind("exchange,symbol,timestamp,local_timestamp,id,side,price,amount".split(",")) == "trades"
    assert detect_kind("exchange,symbol,timestamp,local_timestamp,is_snapshot,side,price,amount".split(",")) == "incremental_book_L2"
    assert detect_kind("exchange,symbol,timestamp,local_timestamp,ask_amount,ask_price,bid_price,bid_amount".split(",")) == "quotes"
    assert detect_kind("exchange,symbol,timestamp,local_timestamp,side,price,amount".split(",")) is None
    assert tardis_instrument_id("binance", "BTCUSDT").value == SPOT_ID
    assert tardis_instrument_id("binance-futures", "BTCUSDT").value == PERP_ID
    assert tardis_instrument_id("binance-futures", "BTCUSDT_240329").value == "BTCUSDT_240329.BINANCE"
    assert tardis_instrument_id("okex", "BTC-USDT").value == "BTC-USDT.OKX"
    assert tardis_instrument_id("okx-swap", "BTC-USDT-SWAP").value == "BTC-USDT-SWAP.OKX"


# ------------------------------------------------------------------------------------------------- real Tardis samples


@pytest.mark.requires_shared
def test_real_trades(shared_data_dir: Path, usdm_instruments: dict, tmp_path: Path) -> None:
    path = shared_data_dir / "nautilus_trader" / "tests" / "test_data" / "tardis_trades.csv.gz"
    catalog = tmp_path / "catalog"

    ingest_tardis([path], catalog, usdm_instruments)

    reader = ParquetDataCatalog(str(catalog))
    ticks = reader.trade_ticks(instrument_ids=[PERP_ID])
    rows = _csv_rows(path)
    assert len(ticks) == len(rows) == 9999
    first, last = ticks[0], ticks[-1]
    assert (str(first.price), str(first.size), first.aggressor_side, first.trade_id.value) == ("9682.00", "0.132", AggressorSide.BUYER, "42377944")
    assert (first.ts_event, first.ts_init) == (1582329602111000000, 1582329602418379000)
    assert (str(last.price), str(last.size), last.aggressor_side, last.trade_id.value) == ("9666.84", "0.070", AggressorSide.SELLER, "42387942")
    assert sum(tick.aggressor_side == AggressorSide.SELLER for tick in ticks) == sum(row["side"] == "sell" for row in rows)
    [instrument] = reader.instruments()
    assert instrument.id.value == PERP_ID


@pytest.mark.requires_shared
def test_real_quotes(shared_data_dir: Path, usdm_instruments: dict, tmp_path: Path) -> None:
    path = shared_data_dir / "nautilus_trader" / "tests" / "test_data" / "tardis_quotes.csv.gz"
    catalog = tmp_path / "catalog"

    ingest_tardis([path], catalog, usdm_instruments)

    quotes = ParquetDataCatalog(str(catalog)).quote_ticks(instrument_ids=[PERP_ID])
    assert len(quotes) == 9999
    first, last = quotes[0], quotes[-1]
    assert (str(first.bid_price), str(first.bid_size), str(first.ask_price), str(first.ask_size)) == ("9681.92", "0.670", "9682.00", "0.840")
    assert (first.ts_event, first.ts_init) == (1582329601096000000, 1582329603502092000)
    assert (str(last.bid_price), str(last.bid_size), str(last.ask_price), str(last.ask_size)) == ("9671.19", "0.012", "9672.09", "0.031")


@pytest.mark.requires_shared
@pytest.mark.parametrize("levels", [5, 25])
def test_real_book_snapshots_rebuild_each_row(shared_data_dir: Path, usdm_instruments: dict, tmp_path: Path, levels: int) -> None:
    path = shared_data_dir / "nautilus_trader" / "tests" / "test_data" / "tardis" / f"binance-futures_book_snapshot_{levels}_BTCUSDT.csv"
    catalog = tmp_path / "catalog"

    report = ingest_tardis([path], catalog, usdm_instruments, kind=f"book_snapshot_{levels}")

    deltas = ParquetDataCatalog(str(catalog)).order_book_deltas(instrument_ids=[PERP_ID])
    assert len(deltas) == 10 * (1 + 2 * levels)
    assert [item.rows for item in report.files if item.data_type == "order_book_deltas"] == [len(deltas)]
    _assert_book_per_row(deltas, _csv_rows(path), levels, PERP_ID)


@pytest.mark.requires_shared
def test_real_snapshot_25_top_levels_equal_snapshot_5(shared_data_dir: Path) -> None:
    # Two independent real files of the same stream: at every shared timestamp the 25-level book starts with the 5-level one.
    folder = shared_data_dir / "nautilus_trader" / "tests" / "test_data" / "tardis"
    five = {row["timestamp"]: row for row in _csv_rows(folder / "binance-futures_book_snapshot_5_BTCUSDT.csv")}
    shared = [row for row in _csv_rows(folder / "binance-futures_book_snapshot_25_BTCUSDT.csv") if row["timestamp"] in five]
    assert len(shared) >= 3
    for row in shared:
        assert all(row[name] == value for name, value in five[row["timestamp"]].items() if name != "local_timestamp")


# ------------------------------------------------------------------------------------------------- refused inputs


def _replace_cell(column: str, value: str, line: int) -> Callable[[list[str]], list[str]]:
    def mutate(lines: list[str]) -> list[str]:
        index = lines[0].split(",").index(column)
        cells = lines[line - 1].split(",")
        cells[index] = value
        return [*lines[: line - 1], ",".join(cells), *lines[line:]]

    return mutate


def _drop_column(column: str) -> Callable[[list[str]], list[str]]:
    def mutate(lines: list[str]) -> list[str]:
        index = lines[0].split(",").index(column)
        return [",".join(cell for position, cell in enumerate(line.split(",")) if position != index) for line in lines]

    return mutate


def _swap_lines(line: int) -> Callable[[list[str]], list[str]]:
    def mutate(lines: list[str]) -> list[str]:
        return [*lines[: line - 1], lines[line], lines[line - 1], *lines[line + 1 :]]

    return mutate


def _append_field(line: int) -> Callable[[list[str]], list[str]]:
    def mutate(lines: list[str]) -> list[str]:
        return [*lines[: line - 1], lines[line - 1] + ",1", *lines[line:]]

    return mutate


# (source file, mutation, kind passed, expected line, text the message must contain)
CORRUPTIONS = {
    "missing column": ("trades_plain", _drop_column("side"), "trades", 1, "lacks column(s) ['side']"),
    "unknown layout": ("trades_plain", _drop_column("id"), None, 1, "matches no Tardis layout"),
    "bad price": ("trades_plain", _replace_cell("price", "61710.0O", 120), None, 120, "field 'price' '61710.0O'"),
    "price off the tick": ("trades_plain", _replace_cell("price", "61710.001", 7), None, 7, "multiple of the tick"),
    "bad side": ("trades_plain", _replace_cell("side", "BUY", 40), None, 40, "field 'side' 'BUY'"),
    "empty amount": ("trades_plain", _replace_cell("amount", "", 300), None, 300, "field 'amount' is empty"),
    "bad timestamp": ("trades_plain", _replace_cell("timestamp", "1723161254.5", 9), None, 9, "field 'timestamp'"),
    "receive time backwards": ("trades_plain", _swap_lines(1000), None, 1001, "field 'local_timestamp' goes backwards"),
    "extra field": ("trades_plain", _append_field(55), None, 55, "9 field(s): expected 8"),
    "unknown exchange": ("trades_plain", _replace_cell("exchange", "bitmex", 2), None, 2, "field 'exchange'"),
    "bad book side": ("incremental_plain", _replace_cell("side", "buy", 3000), None, 3000, "field 'side' 'buy'"),
    "bad is_snapshot": ("incremental_plain", _replace_cell("is_snapshot", "True", 10), None, 10, "field 'is_snapshot' 'True'"),
    "diffs before any snapshot": ("incremental_plain", _replace_cell("is_snapshot", "false", 2), None, 2, "field 'is_snapshot' is false"),
}


@pytest.fixture
def catalog(derived: dict[str, Path], spot_instruments: dict, tmp_path: Path) -> Path:
    """A catalog already holding the derived quotes, so 'unchanged' is checked on a non-empty catalog."""
    path = tmp_path / "catalog"
    ingest_tardis([derived["quotes"]], path, spot_instruments)
    return path


@pytest.mark.parametrize("chunk_bytes", [TARDIS_CHUNK_BYTES, 20_000], ids=["whole", "chunks"])
@pytest.mark.parametrize("case", CORRUPTIONS, ids=str)
def test_corrupt_file_is_refused_with_file_line_and_field(
    case: str, chunk_bytes: int, derived: dict[str, Path], spot_instruments: dict, catalog: Path, tmp_path: Path
) -> None:
    source, mutate, kind, line, message = CORRUPTIONS[case]
    corrupted = tmp_path / f"corrupt_{source}.csv"
    corrupted.write_text("\n".join(mutate(derived[source].read_text().splitlines())) + "\n")

    _assert_refused(corrupted, catalog, spot_instruments, line, message, kind, chunk_bytes)


@pytest.mark.parametrize(
    ("source", "data_type"),
    [("trades", "trade_tick"), ("quotes", "quote_tick"), ("incremental_book_L2", "order_book_deltas"), ("book_snapshot_5", "order_book_deltas")],
)
def test_a_file_read_in_chunks_gives_the_same_catalog_content(
    source: str, data_type: str, derived: dict[str, Path], spot_instruments: dict, tmp_path: Path
) -> None:
    # 30 kB chunks: the incremental book's opening snapshot run alone spans several, and goes whole to one.
    whole = ingest_tardis([derived[source]], tmp_path / "whole", spot_instruments)
    chunked = ingest_tardis([derived[source]], tmp_path / "chunked", spot_instruments, chunk_bytes=30_000)

    files = [item for item in chunked.files if item.data_type == data_type]
    assert len(files) >= 3
    assert all(before.last_ts < after.first_ts for before, after in zip(files, files[1:], strict=False))
    reader = {"trade_tick": "trade_ticks", "quote_tick": "quote_ticks", "order_book_deltas": "order_book_deltas"}[data_type]
    content = [getattr(ParquetDataCatalog(str(report.catalog)), reader)(instrument_ids=[SPOT_ID]) for report in (whole, chunked)]
    assert content[0] and content[1] == content[0]
    assert chunked.rounded_quantities == whole.rounded_quantities
    assert not ingest_tardis([derived[source]], tmp_path / "chunked", spot_instruments, chunk_bytes=30_000).changed_catalog


def test_truncated_gzip_is_refused(derived: dict[str, Path], spot_instruments: dict, catalog: Path, tmp_path: Path) -> None:
    data = derived["trades"].read_bytes()
    corrupted = tmp_path / "truncated.csv.gz"
    corrupted.write_bytes(data[: len(data) // 2])

    before = _tree_digest(catalog)
    with pytest.raises(DataInputError, match="truncated gzip") as error:
        ingest_tardis([corrupted], catalog, spot_instruments, chunk_bytes=50_000)
    assert error.value.path == corrupted
    assert error.value.line > 1000
    assert _tree_digest(catalog) == before


def test_instrument_of_another_market_is_refused(derived: dict[str, Path], usdm_instruments: dict, catalog: Path) -> None:
    # Spot rows ('binance') with the USDT-M perpetual: the ids disagree, so the tick and fees would be wrong.
    _assert_refused(derived["trades_plain"], catalog, usdm_instruments, 2, "is BTCUSDT.BINANCE, but the instrument given")


def test_second_file_error_writes_nothing_of_the_first(derived: dict[str, Path], spot_instruments: dict, catalog: Path, tmp_path: Path) -> None:
    lines = derived["trades_plain"].read_text().splitlines()
    corrupted = tmp_path / "bad_side.csv"
    corrupted.write_text("\n".join(_replace_cell("side", "x", 5)(lines)) + "\n")
    before = _tree_digest(catalog)

    with pytest.raises(DataInputError, match="field 'side'"):
        ingest_tardis([derived["incremental_book_L2"], corrupted], catalog, spot_instruments)

    assert _tree_digest(catalog) == before


# ------------------------------------------------------------------------------------------------- helpers


def _assert_refused(
    path: Path, catalog: Path, instruments: dict, line: int, message: str, kind: str | None = None, chunk_bytes: int = TARDIS_CHUNK_BYTES
) -> None:
    before = _tree_digest(catalog)
    with pytest.raises(DataInputError) as error:
        ingest_tardis([path], catalog, instruments, kind=kind, chunk_bytes=chunk_bytes)
    assert error.value.path == path
    assert error.value.line == line
    assert message in error.value.problem
    assert f"{path}:{line}: " in str(error.value)
    assert _tree_digest(catalog) == before
    # No staging folder is left beside the catalog either.
    assert not [item for item in catalog.parent.iterdir() if item.name.startswith(".catalog.ingest-")]


def _assert_book_per_row(deltas: list, rows: list[dict[str, str]], levels: int, instrument_id: str) -> None:
    """Rebuild the book with nautilus; after each row's F_LAST it must hold exactly that row's levels."""
    book = OrderBook(InstrumentId.from_str(instrument_id), BookType.L2_MBP)
    published = 0
    for delta in deltas:
        book.apply_delta(delta)
        assert delta.flags & F_SNAPSHOT
        if not delta.flags & F_LAST:
            continue
        row = rows[published]
        published += 1
        for side, levels_of_book in (("bids", book.bids()), ("asks", book.asks())):
            expected = [
                (Decimal(row[f"{side}[{level}].price"]), Decimal(row[f"{side}[{level}].amount"]))
                for level in range(levels)
                if row[f"{side}[{level}].price"]
            ]
            assert _levels(levels_of_book) == expected
        assert delta.ts_event == int(row["timestamp"]) * 1000 and delta.ts_init == int(row["local_timestamp"]) * 1000
    assert published == len(rows)


def _levels(book_levels: list) -> list[tuple[Decimal, Decimal]]:
    return [(level.price.as_decimal(), Decimal(str(level.size()))) for level in book_levels]


def _catalog_frame(catalog: Path, data_type: str, instrument_id: str) -> pl.DataFrame:
    """Read one catalog folder with pyarrow; ``fixed_size_binary[16]`` columns (i128 at 10^-16) as ``Decimal(38, 16)``."""
    table = pa.concat_tables(pq.read_table(path) for path in sorted((catalog / "data" / data_type / instrument_id).glob("*.parquet")))
    columns = {}
    for name in table.column_names:
        column = table.column(name).combine_chunks()
        if column.type == pa.binary(16):
            column = pa.Array.from_buffers(pa.decimal128(38, 16), len(column), [None, column.buffers()[1]], offset=column.offset)
        columns[name] = pl.from_arrow(column)
    return pl.DataFrame(columns)


def _top_levels(deltas: pl.DataFrame, levels: int, messages: int) -> pl.DataFrame:
    """book_snapshot_<levels> rows: the top levels after each of the first ``messages`` depth messages."""
    books: dict[int, dict[Decimal, Decimal]] = {int(OrderSide.BUY): {}, int(OrderSide.SELL): {}}
    rows = []
    for action, side, price, size, flags, ts_event, ts_init in deltas.select("action", "side", "price", "size", "flags", "ts_event", "ts_init").iter_rows():
        if action == int(BookAction.CLEAR):
            books = {int(OrderSide.BUY): {}, int(OrderSide.SELL): {}}
        elif action == int(BookAction.DELETE):
            books[side].pop(price, None)
        else:
            books[side][price] = size
        if not flags & F_LAST:
            continue
        row = {"exchange": "binance", "symbol": "BTCUSDT", "timestamp": str(ts_event // 1000), "local_timestamp": str(ts_init // 1000)}
        bids = heapq.nlargest(levels, books[int(OrderSide.BUY)].items())
        asks = heapq.nsmallest(levels, books[int(OrderSide.SELL)].items())
        for level in range(levels):
            for side_name, side_levels in (("asks", asks), ("bids", bids)):
                row[f"{side_name}[{level}].price"] = _plain(side_levels[level][0])
                row[f"{side_name}[{level}].amount"] = _plain(side_levels[level][1])
        rows.append(row)
        if len(rows) == messages:
            break
    return pl.DataFrame(rows)


def _plain(value: Decimal) -> str:
    text = f"{value:f}"
    return text.rstrip("0").rstrip(".") if "." in text else text


def _text(column: str, name: str) -> pl.Expr:
    # Decimal(38, 16) prints 16 decimals; Tardis writes the venue's plain numbers.
    return pl.col(column).cast(pl.String).str.replace(r"0+$", "").str.replace(r"\.$", "").alias(name)


def _micros(column: str, name: str) -> pl.Expr:
    return (pl.col(column) // 1000).cast(pl.String).alias(name)


def _to_micros(column: str) -> pl.Expr:
    return (pl.col(column) // 1000 * 1000).alias(column)


def _write_plain(path: Path, frame: pl.DataFrame) -> Path:
    frame.write_csv(path)
    return path


def _write_gzip(path: Path, frame: pl.DataFrame) -> Path:
    with gzip.open(path, "wb") as stream:
        stream.write(frame.write_csv().encode())
    return path


def _csv_rows(path: Path) -> list[dict[str, str]]:
    opener = gzip.open if path.suffix == ".gz" else open
    with opener(path, "rt") as stream:
        return list(csv.DictReader(io.StringIO(stream.read())))


def _tree_digest(folder: Path) -> dict[str, str]:
    return {str(path.relative_to(folder)): hashlib.sha256(path.read_bytes()).hexdigest() for path in sorted(folder.rglob("*")) if path.is_file()}
