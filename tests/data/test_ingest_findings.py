"""Parser findings on real recordings: off-step quantities and bookTicker update ids under the data-check policy, each naming the raw file line; empty files are errors."""

import gzip
import json
from collections.abc import Callable
from decimal import Decimal
from pathlib import Path

import msgspec
import pyarrow.parquet as pq
import pytest
from nautilus_trader.persistence.catalog import ParquetDataCatalog

from keel.data.binance_usdm_ingest import ingest_binance_usdm
from keel.data.errors import DataInputError
from keel.data.ingest import IngestReport
from keel.data.ingest import ingest_binance_spot
from keel.data.ingest import sample_recordings
from keel.data.okx_recording import ingest_okx_recording
from keel.data.quality import CheckPolicies
from keel.data.quality import load_check_policies
from recorded_messages import trade_and_quote_messages

BTC_RECORDING = next(path for path in sample_recordings() if path.name.startswith("btcusdt"))
BTC = "BTCUSDT.BINANCE"
BTC_STEP = Decimal("0.00001")  # LOT_SIZE stepSize of the shipped exchangeInfo


def _policies(**changes: str) -> CheckPolicies:
    """The shipped policies with some checks' policies changed."""
    shipped = msgspec.to_builtins(load_check_policies())
    return msgspec.convert({**shipped, **{name: {"policy": policy} for name, policy in changes.items()}}, CheckPolicies)


def _lines(path: Path) -> list[bytes]:
    with gzip.open(path, "rb") as file:
        return file.read().splitlines(keepends=True)


def _write(path: Path, lines: list[bytes]) -> Path:
    with gzip.open(path, "wb") as file:
        file.writelines(lines)
    return path


def _off_step_lines(path: Path, step: Decimal) -> list[tuple[int, str]]:
    """(line, quantity) of every quantity in the raw file that is not a multiple of ``step``, read with json."""
    found = []
    for number, line in enumerate(_lines(path), start=1):
        message = json.loads(line.split(b" ", 1)[1])
        data = message.get("data", message)
        quantities = [level[1] for key in ("b", "a", "bids", "asks") if isinstance(data.get(key), list) for level in data[key]]
        quantities += [data[key] for key in ("q", "B", "A") if isinstance(data.get(key), str)]
        found += [(number, quantity) for quantity in quantities if Decimal(quantity) % step]
    return found


def _with_changed_message(lines: list[bytes], index: int, change: dict) -> list[bytes]:
    ts, payload = lines[index].split(b" ", 1)
    message = json.loads(payload)
    message["data"].update(change)
    return [*lines[:index], ts + b" " + json.dumps(message, separators=(",", ":")).encode() + b"\n", *lines[index + 1 :]]


def test_off_step_depth_quantities_are_repaired_findings_naming_the_raw_line(tmp_path: Path) -> None:
    expected = _off_step_lines(BTC_RECORDING, BTC_STEP)

    report = ingest_binance_spot([BTC_RECORDING], tmp_path / "catalog")

    findings = [finding for finding in report.findings if finding.check == "off_step_quantities"]
    assert len(expected) == 3
    assert [(finding.line, finding.problem.split()[1]) for finding in findings] == expected
    assert {(finding.policy, finding.file, finding.data_type) for finding in findings} == {("repair", BTC_RECORDING, "order_book_deltas")}


def test_off_step_quantity_with_fail_policy_is_refused_at_its_line(tmp_path: Path) -> None:
    first_line, quantity = _off_step_lines(BTC_RECORDING, BTC_STEP)[0]

    with pytest.raises(DataInputError) as raised:
        ingest_binance_spot([BTC_RECORDING], tmp_path / "catalog", checks=_policies(off_step_quantities="fail"))

    assert (raised.value.path, raised.value.line) == (BTC_RECORDING, first_line)
    assert quantity in raised.value.problem
    assert not (tmp_path / "catalog" / "data").exists()


def test_off_step_trade_quantity_is_a_finding_and_rounded_up(tmp_path: Path) -> None:
    lines = _lines(BTC_RECORDING)
    index = next(index for index in range(len(lines) // 3, len(lines)) if b"@trade" in lines[index])
    trade_id = json.loads(lines[index].split(b" ", 1)[1])["data"]["t"]
    recording = _write(tmp_path / "btcusdt_off_step_trade.gz", _with_changed_message(lines, index, {"q": "0.00012345"}))

    report = ingest_binance_spot([recording], tmp_path / "catalog")
    with pytest.raises(DataInputError) as raised:
        ingest_binance_spot([recording], tmp_path / "refused", checks=_policies(off_step_quantities="fail"))

    trade_findings = [finding for finding in report.findings if finding.data_type == "trade_tick"]
    assert [(finding.check, finding.line, finding.field) for finding in trade_findings] == [("off_step_quantities", index + 1, "trade quantity 'q'")]
    sizes = {tick.trade_id.value: tick.size.as_decimal() for tick in ParquetDataCatalog(str(report.catalog)).trade_ticks(instrument_ids=[BTC])}
    assert sizes[str(trade_id)] == Decimal("0.00013")
    assert raised.value.line == index + 1


def test_book_ticker_update_ids_are_kept(sample_catalog: Path) -> None:
    _, quotes = trade_and_quote_messages(BTC_RECORDING)
    files = sorted((sample_catalog / "data" / "quote_tick" / BTC).glob("*.parquet"))

    update_ids = [value for path in files for value in pq.read_table(path, columns=["update_id"])["update_id"].to_pylist()]

    assert len(update_ids) == len(quotes) == 28040
    assert update_ids == [data["u"] for _, data in quotes]
    assert len(ParquetDataCatalog(str(sample_catalog)).quote_ticks(instrument_ids=[BTC])) == 28040  # nautilus reads past the extra column


@pytest.mark.parametrize(("step", "kind"), [(0, "a duplicate"), (-5, "goes backwards")])
def test_book_ticker_update_id_repeat_or_step_back_is_a_finding_naming_its_line(step: int, kind: str, tmp_path: Path) -> None:
    lines = _lines(BTC_RECORDING)
    quote_indices = [index for index, line in enumerate(lines) if b"@bookTicker" in line]
    previous, index = quote_indices[1000], quote_indices[1001]
    previous_u = json.loads(lines[previous].split(b" ", 1)[1])["data"]["u"]
    recording = _write(tmp_path / "btcusdt_quote_ids.gz", _with_changed_message(lines, index, {"u": previous_u + step}))

    with pytest.raises(DataInputError) as raised:
        ingest_binance_spot([recording], tmp_path / "refused")
    report = ingest_binance_spot([recording], tmp_path / "warned", checks=_policies(quote_update_ids="warn"))

    assert (raised.value.path, raised.value.line) == (recording, index + 1)
    assert "quote_update_ids" in raised.value.problem
    findings = [finding for finding in report.findings if finding.check == "quote_update_ids"]
    assert [(finding.line, finding.file) for finding in findings] == [(index + 1, recording)]
    assert kind in findings[0].problem


@pytest.mark.parametrize("gzipped", [True, False], ids=["gzip", "plain"])
@pytest.mark.parametrize("ingest", [ingest_binance_spot, ingest_binance_usdm, ingest_okx_recording], ids=["spot", "usdm", "okx"])
def test_empty_file_is_an_error(ingest: Callable[..., IngestReport], gzipped: bool, tmp_path: Path) -> None:
    path = tmp_path / ("recording.gz" if gzipped else "recording.txt")
    if gzipped:
        _write(path, [])
    else:
        path.write_bytes(b"\n")

    with pytest.raises(DataInputError) as raised:
        ingest([path], tmp_path / "catalog")

    assert raised.value.path == path
    assert "empty file" in raised.value.problem
    assert not (tmp_path / "catalog" / "data").exists()
