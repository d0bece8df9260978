"""Binance public dumps (data.binance.vision): exact round trips through nautilus' catalog, and refused bad input.

Klines are real dump files (shipped in ``data/sample/binance_dumps``). No trades, aggTrades or bookTicker dump
exists in a permissively licensed source, so those are derived here, in ``tmp_path``, from the real messages of
the shipped Binance spot recording (``data/sample/binance_spot/btcusdt_20240808.gz``), and checked against the
recording's own ingest (the ``sample_catalog`` fixture). The conversions:

- trades: one dump row per ``@trade`` message: id=t, price=p, qty=q, quote_qty=p*q, time=T, is_buyer_maker=m,
  is_best_match=True (Binance spot layout, no header).
- aggTrades: consecutive trades with the same T, price and side form one aggregate (how Binance aggregates the
  fills of one taker order at one price), quantity = their exact sum, ids numbered from 1.
- bookTicker: one row per ``@bookTicker`` message in the USDT-M layout: update_id=u, bid/ask prices and sizes,
  transaction_time = event_time = the local receive time truncated to the file's unit (spot bookTicker has no
  exchange time).
"""

import hashlib
import io
import zipfile
from collections.abc import Callable
from decimal import Decimal
from pathlib import Path

import polars as pl
import pytest
from nautilus_trader.model.enums import AggressorSide
from nautilus_trader.model.instruments import Instrument
from nautilus_trader.persistence.catalog import ParquetDataCatalog

from keel.data.binance_dumps import ingest_binance_dump
from keel.data.binance_dumps import parse_dump_file_name
from keel.data.errors import DataInputError
from keel.data.ingest import DEFAULT_EXCHANGE_INFO
from keel.data.ingest import WRITTEN
from keel.data.ingest import sample_recordings
from keel.data.instruments import binance_spot_instruments
from keel.data.instruments import binance_usdm_instruments
from keel.settings import SAMPLE_DIR
from recorded_messages import trade_and_quote_messages

DUMPS = SAMPLE_DIR / "binance_dumps"
FUTURES_KLINES = DUMPS / "BTCUSDT-1m-2022-09-05.zip"
SPOT_KLINES = DUMPS / "ETHUSDT-1m-2022-08-14.zip"
BTC_RECORDING = next(path for path in sample_recordings() if path.name.startswith("btcusdt"))
MINUTE_NS = 60_000_000_000


@pytest.fixture(scope="module")
def spot() -> dict[str, Instrument]:
    return binance_spot_instruments(DEFAULT_EXCHANGE_INFO, {"BTCUSDT", "ETHUSDT"})


@pytest.fixture(scope="module")
def perpetuals() -> dict[str, Instrument]:
    return binance_usdm_instruments(SAMPLE_DIR / "binance_usdm" / "exchange_info.json", {"BTCUSDT"})


@pytest.fixture(scope="module")
def recorded() -> tuple[list[tuple[int, dict]], list[tuple[int, dict]]]:
    """(local ns, data) of every trade and bookTicker message of the BTCUSDT recording, in file order."""
    return trade_and_quote_messages(BTC_RECORDING)


def trades_dump_lines(recorded_trades: list[tuple[int, dict]], unit: str) -> list[str]:
    """The recording's trades as Binance spot ``trades`` dump lines (times in ``ms`` or ``us``)."""
    scale = 1 if unit == "ms" else 1000
    return [
        f"{data['t']},{data['p']},{data['q']},{Decimal(data['p']) * Decimal(data['q'])},{data['T'] * scale},{data['m']},True"
        for _, data in recorded_trades
    ]


def agg_trades_dump_lines(recorded_trades: list[tuple[int, dict]]) -> list[str]:
    """The recording's trades aggregated by (time, price, side) runs, as spot ``aggTrades`` dump lines."""
    frame = pl.DataFrame(
        {
            "id": [data["t"] for _, data in recorded_trades],
            "price": [data["p"] for _, data in recorded_trades],
            "qty": [Decimal(data["q"]) for _, data in recorded_trades],
            "time": [data["T"] for _, data in recorded_trades],
            "maker": [data["m"] for _, data in recorded_trades],
        }
    )
    run_starts = (pl.col("time") != pl.col("time").shift(1)) | (pl.col("price") != pl.col("price").shift(1)) | (pl.col("maker") != pl.col("maker").shift(1))
    runs = (
        frame.with_columns(run=run_starts.fill_null(True).cum_sum())
        .group_by("run", maintain_order=True)
        .agg(pl.col("price").first(), pl.col("qty").sum(), pl.col("id").first().alias("first"), pl.col("id").last().alias("last"), pl.col("time").first(), pl.col("maker").first())
    )
    return [f"{row['run']},{row['price']},{row['qty']},{row['first']},{row['last']},{row['time']},{row['maker']},True" for row in runs.iter_rows(named=True)]


def book_ticker_dump_lines(recorded_quotes: list[tuple[int, dict]], unit: str) -> list[str]:
    """The recording's bookTickers as USDT-M ``bookTicker`` dump lines (receive time truncated to ``unit``)."""
    divisor = 1_000_000 if unit == "ms" else 1_000
    return [f"{data['u']},{data['b']},{data['B']},{data['a']},{data['A']},{ts // divisor},{ts // divisor}" for ts, data in recorded_quotes]


def write_dump(folder: Path, name: str, lines: list[str], header: str | None = None, zipped: bool = False) -> Path:
    text = "\n".join(([header] if header else []) + lines) + "\n"
    if not zipped:
        path = folder / f"{name}.csv"
        path.write_text(text)
        return path
    path = folder / f"{name}.zip"
    with zipfile.ZipFile(path, "w", compression=zipfile.ZIP_DEFLATED) as archive:
        archive.writestr(f"{name}.csv", text)
    return path


def zip_lines(path: Path) -> list[str]:
    with zipfile.ZipFile(path) as archive:
        return archive.read(archive.namelist()[0]).decode().splitlines()


def tree_digest(folder: Path) -> dict[str, str]:
    return {str(path.relative_to(folder)): hashlib.sha256(path.read_bytes()).hexdigest() for path in sorted(folder.rglob("*")) if path.is_file()}


@pytest.fixture
def catalog(tmp_path: Path, spot: dict[str, Instrument]) -> Path:
    """A catalog already holding the ETHUSDT spot klines, so 'unchanged' is checked on a non-empty catalog."""
    path = tmp_path / "catalog"
    ingest_binance_dump("klines", [SPOT_KLINES], path, spot)
    return path


def assert_refused(kind: str, dump: Path, catalog: Path, instruments: dict[str, Instrument], line: int | None, message: str) -> None:
    before = tree_digest(catalog)
    with pytest.raises(DataInputError, match=message) as error:
        ingest_binance_dump(kind, [dump], catalog, instruments)
    assert error.value.path == dump
    assert error.value.line == line
    assert _staging_folders(catalog) == []
    assert tree_digest(catalog) == before


def _staging_folders(catalog: Path) -> list[str]:
    return [path.name for path in catalog.parent.iterdir() if path.name.startswith(f".{catalog.name}.ingest-")]


def test_file_names_give_symbol_kind_and_interval() -> None:
    assert parse_dump_file_name(Path("BTCUSDT-1m-2022-09-05.zip")).interval == "1m"
    assert parse_dump_file_name(Path("BTCUSDT-aggTrades-2024-08.zip")).kind == "aggTrades"
    name = parse_dump_file_name(Path("ETHUSDT-bookTicker-2024-08-08.csv"))
    assert (name.symbol, name.kind, name.interval, name.period) == ("ETHUSDT", "bookTicker", None, "2024-08-08")
    assert parse_dump_file_name(Path("btcusdt_20240808.gz")) is None


@pytest.mark.parametrize(
    ("dump", "symbol", "instruments_fixture"),
    [(FUTURES_KLINES, "BTCUSDT", "perpetuals"), (SPOT_KLINES, "ETHUSDT", "spot")],
    ids=["futures-with-header", "spot-without-header"],
)
def test_klines_round_trip(dump: Path, symbol: str, instruments_fixture: str, request: pytest.FixtureRequest, tmp_path: Path) -> None:
    instruments = request.getfixturevalue(instruments_fixture)
    lines = [line for line in zip_lines(dump) if line[0].isdigit()]
    instrument = instruments[symbol]

    report = ingest_binance_dump("klines", [dump], tmp_path / "catalog", instruments)

    bar_type = f"{instrument.id}-1-MINUTE-LAST-EXTERNAL"
    assert [item.instrument_id for item in report.files if item.data_type == "bar"] == [bar_type]
    bars = ParquetDataCatalog(str(tmp_path / "catalog")).bars(bar_types=[bar_type])
    assert len(bars) == len(lines) == 1440
    for bar, line in ((bars[0], lines[0]), (bars[-1], lines[-1])):
        open_time, bar_open, high, low, close, volume, close_time = line.split(",")[:7]
        assert str(bar.bar_type) == bar_type
        assert (bar.open.as_decimal(), bar.high.as_decimal(), bar.low.as_decimal(), bar.close.as_decimal()) == tuple(map(Decimal, (bar_open, high, low, close)))
        assert bar.volume.as_decimal() == Decimal(volume)
        # Stamped at the bar's close: open + 1 minute, i.e. Binance's close_time + 1 ms.
        assert bar.ts_event == bar.ts_init == int(open_time) * 1_000_000 + MINUTE_NS == (int(close_time) + 1) * 1_000_000


def test_reingesting_the_same_klines_is_a_no_op(catalog: Path, spot: dict[str, Instrument]) -> None:
    before = tree_digest(catalog)

    report = ingest_binance_dump("klines", [SPOT_KLINES], catalog, spot)

    assert not report.changed_catalog
    assert tree_digest(catalog) == before


@pytest.mark.requires_shared
def test_bbgo_headerless_futures_klines(shared_data_dir: Path, perpetuals: dict[str, Instrument], tmp_path: Path) -> None:
    dump = shared_data_dir / "bbgo/pkg/indicator/v2/testdata/BTCUSDT-1m-2022-05-06.csv"
    lines = dump.read_text().splitlines()

    ingest_binance_dump("klines", [dump], tmp_path / "catalog", perpetuals)

    bars = ParquetDataCatalog(str(tmp_path / "catalog")).bars(bar_types=["BTCUSDT-PERP.BINANCE-1-MINUTE-LAST-EXTERNAL"])
    assert len(bars) == len(lines) == 1440
    assert bars[0].open.as_decimal() == Decimal("36533.70")
    assert bars[-1].close.as_decimal() == Decimal(lines[-1].split(",")[4])


@pytest.mark.parametrize(("unit", "zipped"), [("ms", False), ("us", True)], ids=["ms-csv", "us-zip"])
def test_trades_round_trip_against_recording(unit: str, zipped: bool, recorded: tuple, sample_catalog: Path, spot: dict[str, Instrument], tmp_path: Path) -> None:
    dump = write_dump(tmp_path, "BTCUSDT-trades-2024-08-08", trades_dump_lines(recorded[0], unit), zipped=zipped)

    ingest_binance_dump("trades", [dump], tmp_path / "catalog", spot)

    ticks = ParquetDataCatalog(str(tmp_path / "catalog")).trade_ticks(instrument_ids=["BTCUSDT.BINANCE"])
    expected = ParquetDataCatalog(str(sample_catalog)).trade_ticks(instrument_ids=["BTCUSDT.BINANCE"])
    assert len(ticks) == len(expected) == 9757
    key = lambda tick: (tick.price, tick.size, tick.aggressor_side, tick.trade_id, tick.ts_event)  # noqa: E731
    assert [key(tick) for tick in ticks] == [key(tick) for tick in expected]
    assert all(tick.ts_init == tick.ts_event for tick in ticks)
    assert ticks[0].price.as_decimal() == Decimal("61837.63")
    assert ticks[0].trade_id.value == "3735683259"
    assert ticks[0].aggressor_side == AggressorSide.SELLER


@pytest.mark.parametrize("zipped", [False, True], ids=["csv", "zip"])
def test_a_file_read_in_chunks_gives_the_same_trades(zipped: bool, recorded: tuple, spot: dict[str, Instrument], tmp_path: Path) -> None:
    dump = write_dump(tmp_path, "BTCUSDT-trades-2024-08-08", trades_dump_lines(recorded[0], "ms"), zipped=zipped)

    whole = ingest_binance_dump("trades", [dump], tmp_path / "whole", spot)
    chunked = ingest_binance_dump("trades", [dump], tmp_path / "chunked", spot, chunk_bytes=50_000)

    chunk_files = [item for item in chunked.files if item.data_type == "trade_tick"]
    assert len(chunk_files) > 10
    assert sum(item.rows for item in chunk_files) == 9757
    assert all(before.last_ts <= after.first_ts for before, after in zip(chunk_files, chunk_files[1:], strict=False))
    whole_ticks = ParquetDataCatalog(str(whole.catalog)).trade_ticks(instrument_ids=["BTCUSDT.BINANCE"])
    assert ParquetDataCatalog(str(chunked.catalog)).trade_ticks(instrument_ids=["BTCUSDT.BINANCE"]) == whole_ticks
    again = ingest_binance_dump("trades", [dump], tmp_path / "chunked", spot, chunk_bytes=50_000)
    assert not again.changed_catalog


def test_klines_read_in_chunks_give_the_same_bars(spot: dict[str, Instrument], tmp_path: Path) -> None:
    whole = ingest_binance_dump("klines", [SPOT_KLINES], tmp_path / "whole", spot)
    chunked = ingest_binance_dump("klines", [SPOT_KLINES], tmp_path / "chunked", spot, chunk_bytes=10_000)

    assert len([item for item in chunked.files if item.data_type == "bar"]) > 10
    bar_type = "ETHUSDT.BINANCE-1-MINUTE-LAST-EXTERNAL"
    assert ParquetDataCatalog(str(chunked.catalog)).bars(bar_types=[bar_type]) == ParquetDataCatalog(str(whole.catalog)).bars(bar_types=[bar_type])


def test_gap_at_a_chunk_boundary_is_named_at_its_line(recorded: tuple, catalog: Path, spot: dict[str, Instrument], tmp_path: Path) -> None:
    lines = trades_dump_lines(recorded[0], "ms")
    chunk_bytes = 50_000
    # The first line of the second chunk: the chunk ends after the last line end within chunk_bytes.
    first_chunk = "\n".join(lines).encode()[:chunk_bytes]
    boundary = first_chunk[: first_chunk.rfind(b"\n") + 1].count(b"\n")
    trade_id, rest = lines[boundary].split(",", 1)
    lines[boundary] = f"{int(trade_id) + 1},{rest}"  # same length: the chunk boundary stays where it was
    dump = write_dump(tmp_path, "BTCUSDT-trades-2024-08-08", lines)

    before = tree_digest(catalog)
    with pytest.raises(DataInputError, match=rf"field 'id' is {int(trade_id) + 1} after {int(trade_id) - 1}") as error:
        ingest_binance_dump("trades", [dump], catalog, spot, chunk_bytes=chunk_bytes)
    assert error.value.line == boundary + 1
    assert tree_digest(catalog) == before
    assert _staging_folders(catalog) == []


def test_agg_trades_round_trip_against_recording(recorded: tuple, sample_catalog: Path, spot: dict[str, Instrument], tmp_path: Path) -> None:
    lines = agg_trades_dump_lines(recorded[0])
    dump = write_dump(tmp_path, "BTCUSDT-aggTrades-2024-08-08", lines, zipped=True)

    ingest_binance_dump("aggTrades", [dump], tmp_path / "catalog", spot)

    ticks = ParquetDataCatalog(str(tmp_path / "catalog")).trade_ticks(instrument_ids=["BTCUSDT.BINANCE"])
    trades = ParquetDataCatalog(str(sample_catalog)).trade_ticks(instrument_ids=["BTCUSDT.BINANCE"])
    assert len(ticks) == len(lines) < len(trades)
    assert sum(tick.size.as_decimal() for tick in ticks) == sum(trade.size.as_decimal() for trade in trades)
    for tick, trade in ((ticks[0], trades[0]), (ticks[-1], trades[-1])):
        assert (tick.price, tick.aggressor_side, tick.ts_event) == (trade.price, trade.aggressor_side, trade.ts_event)
    assert [ticks[0].trade_id.value, ticks[-1].trade_id.value] == ["1", str(len(lines))]


@pytest.mark.parametrize(("unit", "header"), [("ms", True), ("us", False)], ids=["ms-header", "us-no-header"])
def test_book_ticker_round_trip_against_recording(unit: str, header: bool, recorded: tuple, sample_catalog: Path, spot: dict[str, Instrument], tmp_path: Path) -> None:
    header_line = "update_id,best_bid_price,best_bid_qty,best_ask_price,best_ask_qty,transaction_time,event_time" if header else None
    dump = write_dump(tmp_path, "BTCUSDT-bookTicker-2024-08-08", book_ticker_dump_lines(recorded[1], unit), header_line, zipped=True)

    ingest_binance_dump("bookTicker", [dump], tmp_path / "catalog", spot)

    quotes = ParquetDataCatalog(str(tmp_path / "catalog")).quote_ticks(instrument_ids=["BTCUSDT.BINANCE"])
    expected = ParquetDataCatalog(str(sample_catalog)).quote_ticks(instrument_ids=["BTCUSDT.BINANCE"])
    assert len(quotes) == len(expected) == 28040
    key = lambda quote: (quote.bid_price, quote.ask_price, quote.bid_size, quote.ask_size)  # noqa: E731
    assert [key(quote) for quote in quotes] == [key(quote) for quote in expected]
    truncation = 1_000_000 if unit == "ms" else 1_000
    assert [quote.ts_init for quote in quotes] == [quote.ts_init // truncation * truncation for quote in expected]


def test_bad_price_names_file_line_and_field(recorded: tuple, catalog: Path, spot: dict[str, Instrument], tmp_path: Path) -> None:
    lines = trades_dump_lines(recorded[0], "ms")
    lines[99] = lines[99].replace(lines[99].split(",")[1], "61837.6x", 1)
    dump = write_dump(tmp_path, "BTCUSDT-trades-2024-08-08", lines)

    assert_refused("trades", dump, catalog, spot, 100, "field 'price' is '61837.6x': expected a non-negative decimal string")


def test_off_grid_kline_price_is_refused(catalog: Path, spot: dict[str, Instrument], tmp_path: Path) -> None:
    lines = zip_lines(SPOT_KLINES)[:10]
    fields = lines[6].split(",")
    fields[2] = "1984.255"  # high, one digit finer than the 0.01 tick
    lines[6] = ",".join(fields)
    dump = write_dump(tmp_path, "ETHUSDT-1m-2022-08-15", lines, zipped=True)

    assert_refused("klines", dump, catalog, spot, 7, r"field 'high' is '1984.255': expected at most 2 decimals")


def test_missing_column_on_a_line(recorded: tuple, catalog: Path, spot: dict[str, Instrument], tmp_path: Path) -> None:
    lines = trades_dump_lines(recorded[0], "ms")
    lines[41] = ",".join(lines[41].split(",")[:5])
    dump = write_dump(tmp_path, "BTCUSDT-trades-2024-08-08", lines)

    assert_refused("trades", dump, catalog, spot, 42, r"5 fields in .*: expected 6 fields \(id, price, qty, quote_qty, time, is_buyer_maker\)")


@pytest.mark.parametrize(
    ("change", "line", "message"),
    [
        (lambda lines: lines.insert(10, ""), 11, r"an empty line: expected 6 fields"),
        (lambda lines: lines.__setitem__(99, lines[99] + ",extra"), 100, r"8 fields in .*: expected 6 fields"),
        (lambda lines: lines.__setitem__(0, ",".join(lines[0].split(",")[:4])), 1, r"4 fields in .*: expected 6 fields"),
        (lambda lines: lines.__setitem__(5, lines[5].rsplit(",", 1)[0]), 6, r"6 fields: expected 7 like the first line"),
    ],
    ids=["blank-line", "extra-field", "short-first-line", "optional-column-dropped"],
)
def test_line_of_another_shape_is_named(
    change: Callable[[list[str]], None], line: int, message: str, recorded: tuple, catalog: Path, spot: dict[str, Instrument], tmp_path: Path,
) -> None:
    lines = trades_dump_lines(recorded[0], "ms")
    change(lines)
    dump = write_dump(tmp_path, "BTCUSDT-trades-2024-08-08", lines)

    assert_refused("trades", dump, catalog, spot, line, message)


def test_header_without_data_lines_is_refused(perpetuals: dict[str, Instrument], catalog: Path, tmp_path: Path) -> None:
    header = zip_lines(FUTURES_KLINES)[0]
    dump = write_dump(tmp_path, "BTCUSDT-1m-2022-09-05", [], header=header)

    assert_refused("klines", dump, catalog, perpetuals, None, r"no data lines after the header")


def test_missing_column_in_header(perpetuals: dict[str, Instrument], catalog: Path, tmp_path: Path) -> None:
    lines = zip_lines(FUTURES_KLINES)
    lines[0] = lines[0].replace("close_time,", "")
    dump = write_dump(tmp_path, "BTCUSDT-1m-2022-09-05", lines[1:], header=lines[0])

    assert_refused("klines", dump, catalog, perpetuals, 1, r"header \[.*\]: expected \['open_time'")


def test_reordered_lines_are_refused(recorded: tuple, catalog: Path, spot: dict[str, Instrument], tmp_path: Path) -> None:
    lines = trades_dump_lines(recorded[0], "ms")
    lines[500], lines[501] = lines[501], lines[500]
    dump = write_dump(tmp_path, "BTCUSDT-trades-2024-08-08", lines)

    assert_refused("trades", dump, catalog, spot, 501, r"field 'id' is 3735683760 after 3735683758: expected 3735683759")


def test_duplicate_agg_trade_id_is_refused(recorded: tuple, catalog: Path, spot: dict[str, Instrument], tmp_path: Path) -> None:
    lines = agg_trades_dump_lines(recorded[0])
    lines.insert(11, lines[10])
    dump = write_dump(tmp_path, "BTCUSDT-aggTrades-2024-08-08", lines)

    assert_refused("aggTrades", dump, catalog, spot, 12, r"field 'agg_trade_id' is 11 after 11: expected 12")


def test_book_ticker_going_back_in_time_is_refused(recorded: tuple, catalog: Path, spot: dict[str, Instrument], tmp_path: Path) -> None:
    lines = book_ticker_dump_lines(recorded[1], "ms")
    fields = lines[300].split(",")
    fields[6] = str(int(fields[6]) - 5_000)
    lines[300] = ",".join(fields)
    dump = write_dump(tmp_path, "BTCUSDT-bookTicker-2024-08-08", lines)

    assert_refused("bookTicker", dump, catalog, spot, 301, "field 'event_time' goes back in time")


def test_missing_kline_is_refused(catalog: Path, spot: dict[str, Instrument], tmp_path: Path) -> None:
    lines = zip_lines(SPOT_KLINES)
    del lines[600]
    dump = write_dump(tmp_path, "ETHUSDT-1m-2022-08-15", lines, zipped=True)

    assert_refused("klines", dump, catalog, spot, 601, r"field 'open_time': bar opens 2022-08-14T10:01:00.*, 2 min after .* expected consecutive 1-MINUTE bars")


def test_mixed_timestamp_units_are_refused(recorded: tuple, catalog: Path, spot: dict[str, Instrument], tmp_path: Path) -> None:
    lines = trades_dump_lines(recorded[0], "ms")
    lines[7:] = trades_dump_lines(recorded[0], "us")[7:]
    dump = write_dump(tmp_path, "BTCUSDT-trades-2024-08-08", lines)

    assert_refused("trades", dump, catalog, spot, 8, "field 'time' is .*: expected milliseconds like the first line")


def test_truncated_zip_is_refused(catalog: Path, spot: dict[str, Instrument], tmp_path: Path) -> None:
    dump = tmp_path / SPOT_KLINES.name.replace("08-14", "08-16")
    dump.write_bytes(SPOT_KLINES.read_bytes()[:30_000])

    assert_refused("klines", dump, catalog, spot, None, "unreadable zip")


def test_ingest_writes_nothing_when_a_later_file_is_bad(recorded: tuple, catalog: Path, spot: dict[str, Instrument], tmp_path: Path) -> None:
    good = write_dump(tmp_path, "BTCUSDT-trades-2024-08-08", trades_dump_lines(recorded[0], "ms")[:100])
    bad_lines = trades_dump_lines(recorded[0], "ms")[100:200]
    fields = bad_lines[3].split(",")
    fields[5] = "maybe"
    bad_lines[3] = ",".join(fields)
    bad = write_dump(tmp_path, "BTCUSDT-trades-2024-08-09", bad_lines)
    before = tree_digest(catalog)

    with pytest.raises(DataInputError, match="field 'is_buyer_maker' is 'maybe': expected True or False") as error:
        ingest_binance_dump("trades", [good, bad], catalog, spot)

    assert (error.value.path, error.value.line) == (bad, 4)
    assert tree_digest(catalog) == before
    report = ingest_binance_dump("trades", [good], catalog, spot)
    assert [item.status for item in report.files if item.data_type == "trade_tick"] == [WRITTEN]


def test_symbol_without_instrument_is_refused(catalog: Path, spot: dict[str, Instrument], tmp_path: Path) -> None:
    dump = write_dump(tmp_path, "SOLUSDT-1m-2022-08-14", zip_lines(SPOT_KLINES))

    assert_refused("klines", dump, catalog, spot, None, r"no instrument for symbol 'SOLUSDT': expected one of \['BTCUSDT', 'ETHUSDT'\]")


def test_zip_with_two_members_is_refused(catalog: Path, spot: dict[str, Instrument], tmp_path: Path) -> None:
    dump = tmp_path / "ETHUSDT-1m-2022-08-16.zip"
    with zipfile.ZipFile(dump, "w") as archive:
        archive.writestr("a.csv", "\n".join(zip_lines(SPOT_KLINES)))
        archive.writestr("b.csv", io.StringIO("x").getvalue())

    assert_refused("klines", dump, catalog, spot, None, r"zip holds \['a.csv', 'b.csv'\]: expected exactly one .csv")


def test_microsecond_klines_give_the_same_bars(spot: dict[str, Instrument], tmp_path: Path) -> None:
    """Spot dumps from 2025 on carry µs times: open_time * 1000, close_time * 1000 + 999."""
    lines = []
    for line in zip_lines(SPOT_KLINES):
        fields = line.split(",")
        fields[0], fields[6] = str(int(fields[0]) * 1000), str(int(fields[6]) * 1000 + 999)
        lines.append(",".join(fields))
    dump = write_dump(tmp_path, "ETHUSDT-1m-2022-08-14", lines, zipped=True)

    ingest_binance_dump("klines", [SPOT_KLINES], tmp_path / "from_ms", spot)
    ingest_binance_dump("klines", [dump], tmp_path / "from_us", spot)

    def bars(catalog: str) -> list[tuple]:
        return [(bar.open, bar.high, bar.low, bar.close, bar.volume, bar.ts_init) for bar in ParquetDataCatalog(str(tmp_path / catalog)).bars()]

    assert len(bars("from_us")) == 1440
    assert bars("from_us") == bars("from_ms")


def test_crossed_book_ticker_is_refused_by_the_data_checks(recorded: tuple, catalog: Path, spot: dict[str, Instrument], tmp_path: Path) -> None:
    lines = book_ticker_dump_lines(recorded[1], "ms")
    fields = lines[20].split(",")
    fields[1], fields[3] = fields[3], fields[1]  # bid above ask
    lines[20] = ",".join(fields)
    dump = write_dump(tmp_path, "BTCUSDT-bookTicker-2024-08-08", lines)

    assert_refused("bookTicker", dump, catalog, spot, 21, r"crossed_quotes: BTCUSDT.BINANCE quote_tick bid_price: bid")
