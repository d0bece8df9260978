"""`keel.data.inventory`: extent, rows, files and gaps per catalog folder, on the real sample and on copies of its files."""

import shutil
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
from nautilus_trader.persistence.catalog import ParquetDataCatalog

from keel.data.catalog_layout import QUOTE_TICK
from keel.data.catalog_layout import TRADE_TICK
from keel.data.catalog_layout import file_name
from keel.data.inventory import DAY_NS
from keel.data.inventory import HOUR_NS
from keel.data.inventory import SECOND_NS
from keel.data.inventory import catalog_gaps
from keel.data.inventory import catalog_inventory
from keel.data.inventory import gap_threshold_ns

BTCUSDT = "BTCUSDT.BINANCE"
ETHUSDT = "ETHUSDT.BINANCE"


def _trade_file(catalog: Path, instrument_id: str = BTCUSDT) -> Path:
    (path,) = (catalog / "data" / TRADE_TICK / instrument_id).glob("*.parquet")
    return path


def _copy_shifted(source: Path, folder: Path, shift_ns: int) -> Path:
    """Copy a catalog file with every timestamp moved ``shift_ns`` later, named by its new interval."""
    table = pq.read_table(source)
    for name in ("ts_event", "ts_init"):
        shifted = pc.add(table.column(name), pa.scalar(shift_ns, pa.uint64()))
        table = table.set_column(table.schema.get_field_index(name), table.schema.field(name), shifted)
    timestamps = table.column("ts_init").to_numpy()
    target = folder / file_name(int(timestamps[0]), int(timestamps[-1]))
    pq.write_table(table, target)
    return target


def test_sample_inventory_has_every_folder_and_no_gap_at_defaults(sample_catalog: Path) -> None:
    rows = {(row.identifier, row.data_type): row for row in catalog_inventory(sample_catalog)}
    ticks = ParquetDataCatalog(str(sample_catalog)).trade_ticks(instrument_ids=[BTCUSDT])

    assert set(rows) == {
        (instrument_id, data_type)
        for instrument_id in (BTCUSDT, ETHUSDT)
        for data_type in ("currency_pair", "order_book_deltas", QUOTE_TICK, TRADE_TICK)
    }
    trades = rows[(BTCUSDT, TRADE_TICK)]
    assert (trades.rows, trades.files, trades.first_ts, trades.last_ts) == (len(ticks), 1, ticks[0].ts_init, ticks[-1].ts_init)
    assert trades.gap_threshold_ns == 60 * SECOND_NS
    assert all(row.gaps == 0 and row.longest_gap_ns == 0 for row in rows.values())
    instrument = rows[(BTCUSDT, "currency_pair")]
    assert (instrument.rows, instrument.files, instrument.gap_threshold_ns) == (1, 1, None)
    assert catalog_gaps(sample_catalog) == []


def test_gaps_at_a_tiny_threshold_match_the_nautilus_read_timestamps(sample_catalog: Path) -> None:
    threshold = SECOND_NS
    ticks = ParquetDataCatalog(str(sample_catalog)).trade_ticks(instrument_ids=[BTCUSDT])
    timestamps = np.array([tick.ts_init for tick in ticks], dtype=np.int64)
    steps = np.diff(timestamps)
    expected = [(int(timestamps[index]), int(timestamps[index + 1])) for index in np.flatnonzero(steps > threshold)]

    gaps = [gap for gap in catalog_gaps(sample_catalog, {TRADE_TICK: threshold}) if gap.identifier == BTCUSDT]
    (row,) = [row for row in catalog_inventory(sample_catalog, {TRADE_TICK: threshold}, [BTCUSDT]) if row.data_type == TRADE_TICK]

    assert len(expected) > 10
    assert [(gap.start_ns, gap.end_ns) for gap in gaps] == expected
    assert {gap.data_type for gap in gaps} == {TRADE_TICK}
    assert all(gap.within_file and gap.files == (_trade_file(sample_catalog),) for gap in gaps)
    assert (row.gaps, row.longest_gap_ns) == (len(expected), int(steps.max()))


def test_a_missing_hour_between_two_files_is_one_gap_of_the_right_length(sample_catalog: Path, tmp_path: Path) -> None:
    source = _trade_file(sample_catalog)
    folder = tmp_path / "catalog" / "data" / TRADE_TICK / BTCUSDT
    folder.mkdir(parents=True)
    first = Path(shutil.copy(source, folder / source.name))
    second = _copy_shifted(source, folder, HOUR_NS)
    timestamps = pq.read_table(source, columns=["ts_init"]).column("ts_init").to_numpy().astype(np.int64)
    expected_length = int(timestamps[0]) + HOUR_NS - int(timestamps[-1])

    (gap,) = catalog_gaps(tmp_path / "catalog")
    (row,) = catalog_inventory(tmp_path / "catalog")

    assert (gap.identifier, gap.data_type, gap.files) == (BTCUSDT, TRADE_TICK, (first, second))
    assert not gap.within_file
    assert (gap.start_ns, gap.end_ns) == (int(timestamps[-1]), int(timestamps[0]) + HOUR_NS)
    assert gap.duration_ns == expected_length
    assert (row.rows, row.files, row.gaps, row.longest_gap_ns) == (2 * len(timestamps), 2, 1, expected_length)
    assert (row.first_ts, row.last_ts) == (int(timestamps[0]), int(timestamps[-1]) + HOUR_NS)
    assert len(ParquetDataCatalog(str(tmp_path / "catalog")).trade_ticks(instrument_ids=[BTCUSDT])) == 2 * len(timestamps)


def test_instrument_filter_and_thresholds_per_data_type(sample_catalog: Path) -> None:
    rows = catalog_inventory(sample_catalog, instrument_ids=[ETHUSDT])

    assert {row.identifier for row in rows} == {ETHUSDT}
    assert gap_threshold_ns("bar", "BTCUSDT.BINANCE-1-MINUTE-LAST-EXTERNAL") == 60 * SECOND_NS
    assert gap_threshold_ns("bar", "BTCUSDT-PERP.BINANCE-4-HOUR-LAST-EXTERNAL") == 4 * HOUR_NS
    assert gap_threshold_ns("bar", "BTCUSDT.BINANCE-1-MONTH-LAST-EXTERNAL") == 31 * DAY_NS
    assert gap_threshold_ns("bar", "BTCUSDT.BINANCE-100-TICK-LAST-EXTERNAL") is None
    assert gap_threshold_ns("bar", "BTCUSDT.BINANCE-100-TICK-LAST-EXTERNAL", {"bar": SECOND_NS}) == SECOND_NS
    assert gap_threshold_ns("funding_rate_update", "BTCUSDT-PERP.BINANCE") == 8 * HOUR_NS
    assert gap_threshold_ns("crypto_perpetual", "BTCUSDT-PERP.BINANCE", {"crypto_perpetual": SECOND_NS}) is None
