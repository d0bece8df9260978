"""Recordings read in chunks: the same catalog content as read whole, in several files, and re-ingest still a no-op."""

from collections.abc import Callable
from pathlib import Path

import pytest
from nautilus_trader.persistence.catalog import ParquetDataCatalog

from keel.data.binance_usdm_ingest import ingest_binance_usdm
from keel.data.binance_usdm_ingest import sample_usdm_recordings
from keel.data.catalog_layout import ORDER_BOOK_DELTAS
from keel.data.catalog_layout import QUOTE_TICK
from keel.data.catalog_layout import TRADE_TICK
from keel.data.ingest import IngestReport
from keel.data.ingest import ingest_binance_spot
from keel.data.ingest import sample_recordings
from keel.data.quality import Finding


def _content(catalog: Path, instrument_id: str) -> dict[str, list]:
    reader = ParquetDataCatalog(str(catalog))
    return {
        TRADE_TICK: reader.trade_ticks(instrument_ids=[instrument_id]),
        QUOTE_TICK: reader.quote_ticks(instrument_ids=[instrument_id]),
        ORDER_BOOK_DELTAS: reader.order_book_deltas(instrument_ids=[instrument_id]),
    }


@pytest.mark.parametrize(
    ("ingest", "recordings", "instrument_ids"),
    [
        (ingest_binance_spot, sample_recordings(), ["BTCUSDT.BINANCE", "ETHUSDT.BINANCE"]),
        (ingest_binance_usdm, sample_usdm_recordings(), ["BTCUSDT-PERP.BINANCE"]),
    ],
    ids=["spot", "usdm"],
)
def test_chunked_recording_gives_the_same_catalog_content(
    ingest: Callable[..., IngestReport], recordings: list[Path], instrument_ids: list[str], tmp_path: Path,
) -> None:
    whole = ingest(recordings, tmp_path / "whole", chunk_bytes=None)
    chunked = ingest(recordings, tmp_path / "chunked", chunk_bytes=200_000)

    for instrument_id in instrument_ids:
        chunk_files = [item for item in chunked.files if item.instrument_id == instrument_id and item.data_type == ORDER_BOOK_DELTAS]
        assert len(chunk_files) > 3
        assert all(before.last_ts < after.first_ts for before, after in zip(chunk_files, chunk_files[1:], strict=False))
        assert _content(chunked.catalog, instrument_id) == _content(whole.catalog, instrument_id)
    # Rows are counted within each chunk's table; the raw file line is the same either way.
    assert _located(chunked.findings) == _located(whole.findings)
    assert chunked.rounded_quantities == whole.rounded_quantities
    assert not ingest(recordings, tmp_path / "chunked", chunk_bytes=200_000).changed_catalog
    # Re-ingest decides by content: the same rows cut into other files are a no-op too.
    assert not ingest(recordings, tmp_path / "chunked", chunk_bytes=None).changed_catalog


def _located(findings: list[Finding]) -> list[tuple]:
    return [(finding.check, finding.instrument_id, finding.data_type, finding.file, finding.line, finding.field, finding.problem) for finding in findings]
