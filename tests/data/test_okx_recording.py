"""OKX websocket recordings: every books checksum verified, exact values through the catalog, corrupt input refused."""

import gzip
import hashlib
import json
import zlib
from decimal import Decimal
from pathlib import Path

import pytest
from nautilus_trader.model.book import OrderBook
from nautilus_trader.model.enums import AggressorSide
from nautilus_trader.model.enums import BookAction
from nautilus_trader.model.enums import BookType
from nautilus_trader.model.enums import OrderSide
from nautilus_trader.model.enums import RecordFlag
from nautilus_trader.model.identifiers import InstrumentId
from nautilus_trader.persistence.catalog import ParquetDataCatalog

from keel.data.errors import DataInputError
from keel.data.ingest import ALREADY_PRESENT
from keel.data.ingest import WRITTEN
from keel.data.okx_instruments import DEFAULT_OKX_INSTRUMENTS
from keel.data.okx_recording import OKXIngestReport
from keel.data.okx_recording import ingest_okx_recording
from keel.data.okx_recording import read_okx_recording
from keel.data.okx_recording import sample_okx_recordings

RECORDING = sample_okx_recordings()[0]
BTC_USDT = "BTC-USDT.OKX"
# Line 1 opens the connection; lines 2-4 are the subscription requests, 5-22 their acknowledgements.
PREFIX_LINES = 200


@pytest.fixture(scope="module")
def lines() -> list[bytes]:
    with gzip.open(RECORDING, "rb") as file:
        return file.read().splitlines(keepends=True)


@pytest.fixture(scope="module")
def ingested(tmp_path_factory: pytest.TempPathFactory) -> tuple[OKXIngestReport, Path]:
    catalog = tmp_path_factory.mktemp("okx") / "catalog"
    return ingest_okx_recording([RECORDING], catalog), catalog


@pytest.fixture
def catalog(lines: list[bytes], tmp_path: Path) -> Path:
    """A catalog already holding the recording's first lines, so 'unchanged' is tested on a non-empty catalog."""
    path = tmp_path / "catalog"
    ingest_okx_recording([_write(tmp_path / "prefix.gz", lines[:PREFIX_LINES])], path)
    return path


def _messages(lines: list[bytes]) -> list[tuple[int, dict]]:
    """Every received push (not requests, not acknowledgements) with its 1-based line number, read with plain json."""
    pushes = []
    for number, line in enumerate(lines, start=1):
        if line.startswith(b"wss://"):
            continue
        message = json.loads(line.split(b": ", 1)[1])
        if "data" in message:
            pushes.append((number, message))
    return pushes


def _write(path: Path, lines: list[bytes]) -> Path:
    with gzip.open(path, "wb") as file:
        file.writelines(lines)
    return path


def _tree_digest(folder: Path) -> dict[str, str]:
    return {str(path.relative_to(folder)): hashlib.sha256(path.read_bytes()).hexdigest() for path in sorted(folder.rglob("*")) if path.is_file()}


def _assert_refused(recording: Path, catalog: Path, expected_line: int | None, message: str) -> DataInputError:
    before = _tree_digest(catalog)
    with pytest.raises(DataInputError, match=message) as error:
        ingest_okx_recording([recording], catalog)
    assert error.value.path == recording
    assert error.value.line == expected_line
    assert f"{recording}:{expected_line}" in str(error.value)
    assert _tree_digest(catalog) == before
    # No staging folder is left beside the catalog either.
    assert sorted(path.name for path in catalog.parent.iterdir()) == sorted(["catalog", "prefix.gz", recording.name])
    return error.value


def _books_update_line(lines: list[bytes], inst_id: str, nth: int) -> int:
    """Return the 0-based index of the nth books update of an instrument."""
    marker = f'"channel":"books","instId":"{inst_id}"}},"action":"update"'.encode()
    return [index for index, line in enumerate(lines) if marker in line][nth]


def _okx_checksum(book: OrderBook) -> int:
    # OKX's strings carry no trailing zeros ("30242", "0.0002"): a normalised Decimal prints the same text.
    def text(value: Decimal) -> str:
        return format(value.normalize(), "f")

    def levels(side: list) -> list[tuple[str, str]]:
        return [(text(level.price.as_decimal()), text(sum(order.size.as_decimal() for order in level.orders()))) for level in side[:25]]

    bids, asks = levels(book.bids()), levels(book.asks())
    parts = []
    for depth in range(25):
        if depth < len(bids):
            parts.extend(bids[depth])
        if depth < len(asks):
            parts.extend(asks[depth])
    value = zlib.crc32(":".join(parts).encode())
    return value - (1 << 32) if value >= 1 << 31 else value


def test_every_books_checksum_is_verified(ingested: tuple[OKXIngestReport, Path], lines: list[bytes]) -> None:
    report, _ = ingested
    books = [message for _, message in _messages(lines) if message["arg"]["channel"] == "books"]

    assert len(books) == 290
    assert report.checksums_verified == 290
    # Instruments without a definition are counted, not ingested; their books were still checked above.
    assert report.skipped_messages == {
        "books BTC-USD-220527": 99,
        "books UNI-USD-SWAP": 93,
        "tickers BTC-USD-220527": 2,
        "tickers UNI-USD-SWAP": 1,
        "trades BTC-USD-220527": 4,
        "trades UNI-USD-SWAP": 1,
    }
    assert {(item.instrument_id, item.data_type, item.rows, item.status) for item in report.files} == {
        (BTC_USDT, "currency_pair", 1, WRITTEN),
        (BTC_USDT, "order_book_deltas", 4969, WRITTEN),
        (BTC_USDT, "quote_tick", 25, WRITTEN),
        (BTC_USDT, "trade_tick", 69, WRITTEN),
    }


def test_round_trip_through_the_parquet_catalog(ingested: tuple[OKXIngestReport, Path]) -> None:
    _, catalog_path = ingested
    catalog = ParquetDataCatalog(str(catalog_path))

    [instrument] = catalog.instruments()
    assert instrument.id.value == BTC_USDT
    assert (str(instrument.price_increment), str(instrument.size_increment)) == ("0.1", "0.00000001")

    trades = catalog.trade_ticks(instrument_ids=[BTC_USDT])
    assert len(trades) == 69
    first, last = trades[0], trades[-1]
    assert (str(first.price), str(first.size), first.aggressor_side, first.trade_id.value) == ("30236.0", "0.00020000", AggressorSide.BUYER, "338476307")
    assert (first.ts_event, first.ts_init) == (1652459224818_000000, 1652459225_507260300)
    assert (str(last.price), str(last.size), last.trade_id.value, last.ts_init) == ("30227.6", "0.00000088", "338476375", 1652459235_690984200)
    assert sum(trade.aggressor_side == AggressorSide.SELLER for trade in trades) == 25

    quotes = catalog.quote_ticks(instrument_ids=[BTC_USDT])
    assert len(quotes) == 25
    assert [str(value) for value in (quotes[0].bid_price, quotes[0].bid_size, quotes[0].ask_price, quotes[0].ask_size)] == [
        "30228.6", "0.23393000", "30228.7", "1.55896972"
    ]
    assert (quotes[0].ts_event, quotes[0].ts_init) == (1652459224956_000000, 1652459225_506965200)
    assert [str(value) for value in (quotes[-1].bid_price, quotes[-1].bid_size, quotes[-1].ask_price, quotes[-1].ask_size)] == [
        "30230.2", "0.41120000", "30230.3", "1.92174778"
    ]

    deltas = catalog.order_book_deltas(instrument_ids=[BTC_USDT])
    assert len(deltas) == 4969
    clear, first_bid, last_ask = deltas[0], deltas[1], deltas[800]
    assert (clear.action, clear.flags, clear.sequence, clear.ts_event, clear.ts_init) == (
        BookAction.CLEAR, RecordFlag.F_SNAPSHOT, 1, 1652459225381_000000, 1652459225_702141800
    )
    assert (first_bid.action, first_bid.order.side, str(first_bid.order.price), str(first_bid.order.size)) == (BookAction.ADD, OrderSide.BUY, "30243.4", "0.00120290")
    assert (last_ask.order.side, str(last_ask.order.price), last_ask.flags) == (OrderSide.SELL, "30650.2", RecordFlag.F_SNAPSHOT | RecordFlag.F_LAST)
    # The first update removes a bid level (size "0"); the last delta ends the 98th BTC-USDT books message.
    assert (deltas[801].action, str(deltas[801].order.price), deltas[801].sequence) == (BookAction.DELETE, "30237.2", 2)
    assert (deltas[-1].action, str(deltas[-1].order.price), str(deltas[-1].order.size), deltas[-1].flags, deltas[-1].sequence) == (
        BookAction.UPDATE, "30655.4", "0.00006800", RecordFlag.F_LAST, 98
    )
    assert sum(delta.flags & RecordFlag.F_LAST != 0 for delta in deltas) == 98
    assert [sum(delta.action == action for delta in deltas) for action in (BookAction.ADD, BookAction.UPDATE, BookAction.DELETE)] == [800, 2289, 1879]


def test_catalog_deltas_rebuild_the_book_okx_checksummed(ingested: tuple[OKXIngestReport, Path], lines: list[bytes]) -> None:
    # Independent of the reader: nautilus' own OrderBook, fed from the catalog, reproduces OKX's checksum after
    # every BTC-USDT books message, and ends with the reader's final book.
    _, catalog_path = ingested
    sent = [message["data"][0]["checksum"] for _, message in _messages(lines) if message["arg"] == {"channel": "books", "instId": "BTC-USDT"}]
    book = OrderBook(InstrumentId.from_str(BTC_USDT), BookType.L2_MBP)
    computed = []
    for delta in ParquetDataCatalog(str(catalog_path)).order_book_deltas(instrument_ids=[BTC_USDT]):
        book.apply_delta(delta)
        if delta.flags & RecordFlag.F_LAST:
            computed.append(_okx_checksum(book))

    assert len(sent) == 98
    assert computed == sent

    final = read_okx_recording(RECORDING, {"BTC-USDT"}).final_books["BTC-USDT"]
    for side, expected in ((book.bids(), final.bids), (book.asks(), final.asks)):
        rebuilt = [(level.price.as_decimal(), level.orders()[0].size.as_decimal()) for level in side[:25]]
        assert rebuilt == [(Decimal(price), Decimal(size)) for price, size in expected[:25]]


def test_ingesting_the_same_recording_twice_is_a_no_op(tmp_path: Path) -> None:
    catalog = tmp_path / "catalog"
    ingest_okx_recording([RECORDING], catalog)
    before = _tree_digest(catalog)

    again = ingest_okx_recording([RECORDING], catalog)

    assert not again.changed_catalog
    assert {item.status for item in again.files} == {ALREADY_PRESENT}
    assert _tree_digest(catalog) == before


def test_rotated_files_of_one_connection_continue_each_other(lines: list[bytes], tmp_path: Path) -> None:
    # cryptofeed rotates a connection's capture into <connection>.0, .1, ...: the second file starts mid-book.
    folder = tmp_path / "rotated"
    folder.mkdir()
    first = _write(folder / "OKX.ws.1.0.gz", lines[:250])
    second = _write(folder / "OKX.ws.1.1.gz", lines[250:])

    # Given in the wrong order on purpose: the rotation number decides.
    report = ingest_okx_recording([second, first], tmp_path / "catalog")

    assert report.checksums_verified == 290
    deltas = ParquetDataCatalog(str(tmp_path / "catalog")).order_book_deltas(instrument_ids=[BTC_USDT])
    assert len(deltas) == 4969
    assert sorted(item.path.parent.name for item in report.files if item.data_type == "order_book_deltas") == [BTC_USDT, BTC_USDT]
    with pytest.raises(DataInputError, match="books .* update before any snapshot") as error:
        ingest_okx_recording([second], tmp_path / "alone")
    assert error.value.path == second


def test_changed_size_in_an_update_names_file_line_and_inst_id(lines: list[bytes], catalog: Path, tmp_path: Path) -> None:
    index = _books_update_line(lines, "BTC-USDT", 40)
    level = lines[index].index(b'"bids":[["') + len(b'"bids":[["')
    price_end = lines[index].index(b'","', level)
    size_end = lines[index].index(b'"', price_end + 3)
    size = lines[index][price_end + 3 : size_end]
    changed = lines[index][: price_end + 3] + (b"7" if size != b"7" else b"8") + lines[index][size_end:]
    corrupted = _write(tmp_path / "changed.gz", lines[:index] + [changed] + lines[index + 1 :])

    error = _assert_refused(corrupted, catalog, index + 1, "books BTC-USDT checksum mismatch: OKX sent -?[0-9]+, the book after this update gives -?[0-9]+")
    sent = json.loads(lines[index].split(b": ", 1)[1])["data"][0]["checksum"]
    assert f"OKX sent {sent}," in error.problem


def test_dropped_update_is_caught_at_the_next_message(lines: list[bytes], catalog: Path, tmp_path: Path) -> None:
    dropped = _books_update_line(lines, "BTC-USDT", 40)
    following = _books_update_line(lines, "BTC-USDT", 41)
    corrupted = _write(tmp_path / "dropped.gz", lines[:dropped] + lines[dropped + 1 :])

    # Line numbers are the corrupted file's: the next update moved up by one.
    _assert_refused(corrupted, catalog, following, "books BTC-USDT checksum mismatch")


def test_corrupt_book_of_an_instrument_not_ingested_is_still_refused(lines: list[bytes], catalog: Path, tmp_path: Path) -> None:
    dropped = _books_update_line(lines, "UNI-USD-SWAP", 10)
    following = _books_update_line(lines, "UNI-USD-SWAP", 11)
    corrupted = _write(tmp_path / "uni.gz", lines[:dropped] + lines[dropped + 1 :])

    _assert_refused(corrupted, catalog, following, "books UNI-USD-SWAP checksum mismatch")


def test_update_without_snapshot_is_refused(lines: list[bytes], catalog: Path, tmp_path: Path) -> None:
    snapshot = next(index for index, line in enumerate(lines) if b'"instId":"BTC-USDT"},"action":"snapshot"' in line)
    corrupted = _write(tmp_path / "no_snapshot.gz", lines[:snapshot] + lines[snapshot + 1 :])

    _assert_refused(corrupted, catalog, _books_update_line(lines, "BTC-USDT", 0), "books BTC-USDT update before any snapshot")


def test_new_connection_needs_new_snapshots(lines: list[bytes], catalog: Path, tmp_path: Path) -> None:
    # A reconnection loses the books: updates after it, without a fresh snapshot, cannot be applied.
    index = _books_update_line(lines, "BTC-USDT", 30)
    ts_text = lines[index].split(b": ", 1)[0]
    reconnect = b"wss://ws.okx.com:8443/ws/v5/public <-> " + ts_text + b"\n"
    corrupted = _write(tmp_path / "reconnect.gz", lines[:index] + [reconnect] + lines[index:])

    _assert_refused(corrupted, catalog, index + 2, r"books BTC-USDT update before any snapshot on this connection")


def test_seq_id_break_is_refused(lines: list[bytes], catalog: Path, tmp_path: Path) -> None:
    # The 2022 recording predates OKX's seqId/prevSeqId; add them (as OKX sends them today) to the BTC-USDT books
    # messages, then break the chain once. The checksums are untouched, so only the sequence check can object.
    rewritten, broken_line, sequence = [], 0, 1000
    for number, line in enumerate(lines, start=1):
        if b'"channel":"books","instId":"BTC-USDT"},"action"' in line:
            ts_text, payload = line.split(b": ", 1)
            message = json.loads(payload)
            previous = -1 if message["action"] == "snapshot" else sequence
            sequence += 5
            if message["action"] == "update" and not broken_line and number > 150:
                previous, broken_line = previous - 1, number
            message["data"][0].update(seqId=sequence, prevSeqId=previous)
            line = ts_text + b": " + json.dumps(message, separators=(",", ":")).encode() + b"\n"
        rewritten.append(line)
    corrupted = _write(tmp_path / "seq.gz", rewritten)

    _assert_refused(corrupted, catalog, broken_line, r"books BTC-USDT sequence break: prevSeqId \d+, expected the previous seqId \d+")


def test_seq_id_becomes_the_delta_sequence(lines: list[bytes], tmp_path: Path) -> None:
    rewritten, sequence = [], 1000
    for line in lines:
        if b'"channel":"books","instId":"BTC-USDT"},"action"' in line:
            ts_text, payload = line.split(b": ", 1)
            message = json.loads(payload)
            message["data"][0].update(seqId=sequence + 5, prevSeqId=-1 if message["action"] == "snapshot" else sequence)
            sequence += 5
            line = ts_text + b": " + json.dumps(message, separators=(",", ":")).encode() + b"\n"
        rewritten.append(line)
    catalog = tmp_path / "catalog"
    ingest_okx_recording([_write(tmp_path / "seq.gz", rewritten)], catalog)

    deltas = ParquetDataCatalog(str(catalog)).order_book_deltas(instrument_ids=[BTC_USDT])
    assert (deltas[0].sequence, deltas[-1].sequence) == (1005, 1000 + 5 * 98)


def test_an_update_without_levels_writes_no_delta_but_counts_as_a_message(lines: list[bytes], tmp_path: Path) -> None:
    # OKX may push an update that changes nothing: its checksum is the previous one's, and it has no delta to write.
    index = _books_update_line(lines, "BTC-USDT", 10)
    ts_text, payload = lines[index].split(b": ", 1)
    message = json.loads(payload)
    message["data"][0].update(bids=[], asks=[])
    empty_update = ts_text + b": " + json.dumps(message, separators=(",", ":")).encode() + b"\n"
    catalog = tmp_path / "catalog"

    report = ingest_okx_recording([_write(tmp_path / "empty.gz", [*lines[: index + 1], empty_update, *lines[index + 1 :]])], catalog)

    assert report.checksums_verified == 291
    deltas = ParquetDataCatalog(str(catalog)).order_book_deltas(instrument_ids=[BTC_USDT])
    assert len(deltas) == 4969
    assert sum(delta.flags & RecordFlag.F_LAST != 0 for delta in deltas) == 98
    # The sequence counts books messages: the 99 messages end at 99.
    assert deltas[-1].sequence == 99


def test_truncated_gzip_is_refused(catalog: Path, tmp_path: Path) -> None:
    data = RECORDING.read_bytes()
    truncated = tmp_path / "truncated.gz"
    truncated.write_bytes(data[: len(data) // 2])

    before = _tree_digest(catalog)
    with pytest.raises(DataInputError, match="truncated gzip") as error:
        ingest_okx_recording([truncated], catalog)
    assert error.value.path == truncated
    assert error.value.line is not None and error.value.line > 1
    assert _tree_digest(catalog) == before


def test_bad_json_line_names_file_and_line(lines: list[bytes], catalog: Path, tmp_path: Path) -> None:
    index = _books_update_line(lines, "BTC-USDT", 20)
    broken = lines[index][: len(lines[index]) // 2] + b"\n"
    corrupted = _write(tmp_path / "bad_json.gz", lines[:index] + [broken] + lines[index + 1 :])

    _assert_refused(corrupted, catalog, index + 1, "bad JSON")


def test_missing_field_names_file_line_and_field(lines: list[bytes], catalog: Path, tmp_path: Path) -> None:
    index = next(index for index, line in enumerate(lines) if b'"channel":"trades","instId":"BTC-USDT"},"data"' in line and index > 100)
    corrupted = _write(tmp_path / "no_px.gz", lines[:index] + [lines[index].replace(b'"px":', b'"price":')] + lines[index + 1 :])

    _assert_refused(corrupted, catalog, index + 1, r"Object missing required field `px` - at `\$\[0\]`")


def test_reordered_lines_are_refused(lines: list[bytes], catalog: Path, tmp_path: Path) -> None:
    index = _books_update_line(lines, "BTC-USDT", 30)
    swapped = lines[:index] + [lines[index + 1], lines[index]] + lines[index + 2 :]
    corrupted = _write(tmp_path / "swapped.gz", swapped)

    _assert_refused(corrupted, catalog, index + 2, "out of order: local time")


def test_duplicate_trade_is_refused(lines: list[bytes], catalog: Path, tmp_path: Path) -> None:
    index = next(index for index, line in enumerate(lines) if b'"channel":"trades","instId":"BTC-USDT"},"data"' in line and index > 100)
    ts_text, payload = lines[index].split(b": ", 1)
    later = lines[index + 1].split(b": ", 1)[0]
    # The repeat keeps the clock moving forward, so only the trade id order can object.
    corrupted = _write(tmp_path / "duplicate.gz", lines[: index + 1] + [later + b": " + payload] + lines[index + 1 :])

    _assert_refused(corrupted, catalog, index + 2, "trades BTC-USDT tradeId gap or reorder")


def test_price_off_the_tick_grid_is_refused(lines: list[bytes], catalog: Path, tmp_path: Path) -> None:
    index = next(index for index, line in enumerate(lines) if b'"channel":"tickers","instId":"BTC-USDT"},"data"' in line and index > 100)
    message = json.loads(lines[index].split(b": ", 1)[1])
    bid = message["data"][0]["bidPx"]
    corrupted_line = lines[index].replace(f'"bidPx":"{bid}"'.encode(), f'"bidPx":"{bid}5"'.encode() if "." in bid else f'"bidPx":"{bid}.05"'.encode())
    corrupted = _write(tmp_path / "off_grid.gz", lines[:index] + [corrupted_line] + lines[index + 1 :])

    _assert_refused(corrupted, catalog, index + 1, r"BTC-USDT tickers 'bidPx' '.*': expected a multiple of 10\^-1")


def test_instruments_file_without_any_recorded_instrument_is_refused(tmp_path: Path) -> None:
    document = json.loads(DEFAULT_OKX_INSTRUMENTS.read_text())
    for response in document["responses"]:
        response["response"]["data"] = [entry for entry in response["response"]["data"] if entry["instId"] != "BTC-USDT"]
    instruments = tmp_path / "instruments.json"
    instruments.write_text(json.dumps(document))

    with pytest.raises(DataInputError, match="no recorded instrument is defined as SPOT or SWAP"):
        ingest_okx_recording([RECORDING], tmp_path / "catalog", instruments)
    assert not (tmp_path / "catalog").exists()


@pytest.mark.requires_shared
def test_shipped_recording_is_the_shared_real_file(shared_data_dir: Path) -> None:
    shared = shared_data_dir / "cryptofeed" / "sample_data" / "OKX.ws.1.0.gz"
    assert RECORDING.read_bytes() == shared.read_bytes()
    # The MANIFEST's sha256 of the original (uncompressed) cryptofeed file.
    assert hashlib.sha256(gzip.decompress(shared.read_bytes())).hexdigest().startswith("a9b65fb84bda877a")
