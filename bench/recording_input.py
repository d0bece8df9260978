"""
A long Binance recording for the benchmarks, made of a real one repeated: every line real, every check passing.

Repetition ``k`` of the shipped recording keeps its lines (prices, sizes, sides, book levels, message order) and
shifts, by ``k`` whole spans: the receive times and exchange times (span of the file + 1 ms), the trade ids
(id range), the depth update ids (applied range, so each repetition's bridging diff continues the previous
repetition's last one) and the bookTicker update ids (their range). Repetitions after the first leave out the
REST snapshot and the diffs it made obsolete, as one long recording has one snapshot.
"""

import gzip
from pathlib import Path

import msgspec

_MS = 1_000_000


class _Snapshot(msgspec.Struct):
    lastUpdateId: int


def repeated_recording(source: Path, target: Path, copies: int, bridge_offset: int = 1) -> Path:
    """
    Write ``copies`` repetitions of the recording ``source`` to ``target`` (gzip), as described above.

    Parameters
    ----------
    source : Path
        A recording with one REST snapshot (the shipped samples).
    target : Path
        The ``.gz`` file to write.
    copies : int
        Repetitions, at least 1.
    bridge_offset : int, default 1
        The market's snapshot bridge (spot 1: ``U <= lastUpdateId + 1 <= u``; USDT-M 0).

    Returns
    -------
    Path
        ``target``.

    """
    with gzip.open(source, "rb") as file:
        lines = [line for line in file.read().splitlines() if line]
    messages = [(int(ts), msgspec.json.decode(payload)) for ts, _, payload in (line.partition(b" ") for line in lines)]
    snapshot_id = next(message["lastUpdateId"] for _, message in messages if "lastUpdateId" in message)
    bridge = snapshot_id + bridge_offset
    diffs = [message["data"] for _, message in messages if "data" in message and message["data"].get("e") == "depthUpdate"]
    applied = [data for data in diffs if data["u"] >= bridge]
    trades = [message["data"]["t"] for _, message in messages if "data" in message and message["data"].get("e") == "trade"]
    tickers = [message["data"]["u"] for _, message in messages if "stream" in message and message["stream"].endswith("@bookTicker")]
    span_ns = messages[-1][0] - messages[0][0] + _MS
    span_ms = span_ns // _MS + 1
    depth_shift = applied[-1]["u"] - applied[0]["U"] + 1 if bridge_offset else applied[-1]["u"] - applied[0]["pu"]
    trade_shift = max(trades) - min(trades) + 1
    ticker_shift = max(tickers) - min(tickers) + 1
    encoder = msgspec.json.Encoder()
    with gzip.open(target, "wb", compresslevel=1) as out:
        for copy in range(copies):
            for ts, message in messages:
                if copy and ("lastUpdateId" in message or (message.get("data", {}).get("e") == "depthUpdate" and message["data"]["u"] < bridge)):
                    continue
                out.write(b"%d " % (ts + copy * span_ns) + encoder.encode(_shifted(message, copy, span_ms, depth_shift, trade_shift, ticker_shift)) + b"\n")
    return target


def _shifted(message: dict, copy: int, span_ms: int, depth_shift: int, trade_shift: int, ticker_shift: int) -> dict:
    if copy == 0 or "data" not in message:
        return message
    data = dict(message["data"])
    for key in ("E", "T"):
        if key in data:
            data[key] += copy * span_ms
    if data.get("e") == "depthUpdate":
        for key in ("U", "u", "pu"):
            if key in data:
                data[key] += copy * depth_shift
    elif data.get("e") == "trade":
        data["t"] += copy * trade_shift
    elif "u" in data:  # bookTicker
        data["u"] += copy * ticker_shift
    return {**message, "data": data}
