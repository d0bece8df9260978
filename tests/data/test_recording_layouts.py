"""The block reader reads a recording the same whatever the key order, spacing or line endings of its lines (positional route or JSON route)."""

import gzip
import json
from collections.abc import Callable
from pathlib import Path

import pytest
from nautilus_trader.persistence.catalog import ParquetDataCatalog

from keel.data.ingest import ingest_binance_spot
from keel.data.ingest import sample_recordings

ETH_RECORDING = next(path for path in sample_recordings() if path.name.startswith("ethusdt"))
ETH = "ETHUSDT.BINANCE"


def _rewritten(path: Path, target: Path, rewrite: Callable[[dict], str], line_end: bytes) -> Path:
    with gzip.open(path, "rb") as source, gzip.open(target, "wb") as out:
        for line in source:
            ts, payload = line.rstrip(b"\n").split(b" ", 1)
            out.write(ts + b" " + rewrite(json.loads(payload)).encode() + line_end)
    return target


def _reversed_keys(message: dict) -> str:
    if "data" in message:
        message = {"data": dict(reversed(list(message["data"].items()))), "stream": message["stream"]}
    return json.dumps(message, separators=(",", ":"))


def _spaced(message: dict) -> str:
    return json.dumps(message)  # ", " and ": " between items: spaces inside every payload


def _compact(message: dict) -> str:
    return json.dumps(message, separators=(",", ":"))


def _content(catalog: Path) -> dict[str, list]:
    reader = ParquetDataCatalog(str(catalog))
    return {
        "trades": reader.trade_ticks(instrument_ids=[ETH]),
        "quotes": reader.quote_ticks(instrument_ids=[ETH]),
        "deltas": reader.order_book_deltas(instrument_ids=[ETH]),
    }


@pytest.fixture(scope="module")
def reference(tmp_path_factory: pytest.TempPathFactory) -> dict[str, list]:
    return _content(ingest_binance_spot([ETH_RECORDING], tmp_path_factory.mktemp("reference") / "catalog").catalog)


@pytest.mark.parametrize(
    ("rewrite", "line_end"), [(_reversed_keys, b"\n"), (_spaced, b"\n"), (_compact, b"\r\n")], ids=["reversed keys", "spaces", "CRLF"]
)
def test_other_json_layouts_give_the_same_catalog(
    rewrite: Callable[[dict], str], line_end: bytes, reference: dict[str, list], tmp_path: Path
) -> None:
    recording = _rewritten(ETH_RECORDING, tmp_path / "ethusdt_20240808.gz", rewrite, line_end)

    report = ingest_binance_spot([recording], tmp_path / "catalog")

    assert len(reference["deltas"]) > 100_000
    assert _content(report.catalog) == reference
