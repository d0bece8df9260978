"""
Long recordings for the benchmarks, each made of a real one repeated: every line real, every check passing.

Binance (:func:`repeated_recording`): repetition ``k`` of the shipped recording keeps its lines (prices, sizes, sides, book levels, message order) and
shifts, by ``k`` whole spans: the receive times and exchange times (span of the file + 1 ms), the trade ids
(id range), the depth update ids (applied range, so each repetition's bridging diff continues the previous
repetition's last one) and the bookTicker update ids (their range). Repetitions after the first leave out the
REST snapshot and the diffs it made obsolete, as one long recording has one snapshot.

OKX (:func:`repeated_okx_recording`): every repetition is a new connection of the same recording, shifted in time.
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


def repeated_okx_recording(source: Path, target: Path, copies: int) -> Path:
    """
    Write ``copies`` repetitions of the cryptofeed OKX recording ``source`` to ``target`` (gzip).

    Repetition ``k`` keeps every line (its connection line, subscriptions, acknowledgements, book levels,
    prices, sizes, sides) and shifts, by ``k`` whole spans: the local times (span of the file + 1 ms), OKX's
    ``ts`` (the same span in ms) and each instrument's trade ids (its id range), so ids stay unique. Each
    repetition opens with the recording's own connection line, so it starts its books from its snapshots.

    Parameters
    ----------
    source : Path
        A cryptofeed OKX recording (the shipped sample).
    target : Path
        The ``.gz`` file to write.
    copies : int
        Repetitions, at least 1.

    Returns
    -------
    Path
        ``target``.

    """
    with gzip.open(source, "rb") as file:
        lines = [line for line in file.read().splitlines() if line]
    times = [_okx_local_ns(line) for line in lines]
    span_ns = max(times) - min(times) + _MS
    span_ms = span_ns // _MS + 1
    trade_ids: dict[str, list[int]] = {}
    for line in lines:
        if b'"channel":"trades"' in line and b'"data"' in line:
            for trade in msgspec.json.decode(line.partition(b": ")[2])["data"]:
                trade_ids.setdefault(trade["instId"], []).append(int(trade["tradeId"]))
    trade_shift = {inst_id: max(ids) - min(ids) + 1 for inst_id, ids in trade_ids.items()}
    encoder = msgspec.json.Encoder()
    with gzip.open(target, "wb", compresslevel=1) as out:
        for copy in range(copies):
            for line, local_ns in zip(lines, times, strict=True):
                shifted = _okx_seconds(local_ns + copy * span_ns)
                if line.startswith(b"wss://"):
                    url, arrow, rest = line.split(b" ", 2)
                    _, colon, request = rest.partition(b": ")
                    out.write(b" ".join([url, arrow, shifted + colon + request]) + b"\n")
                    continue
                payload = line.partition(b": ")[2]
                if copy and b'"data"' in payload:
                    message = msgspec.json.decode(payload)
                    for data in message["data"]:
                        data["ts"] = str(int(data["ts"]) + copy * span_ms)
                        if message["arg"]["channel"] == "trades":
                            data["tradeId"] = str(int(data["tradeId"]) + copy * trade_shift[data["instId"]])
                    payload = encoder.encode(message)
                out.write(shifted + b": " + payload + b"\n")
    return target


def _okx_local_ns(line: bytes) -> int:
    """Return the local time of a cryptofeed line (``<ts>: ...`` or ``<url> <arrow> <ts>[: ...]``) in ns."""
    text = line.split(b" ", 2)[2].partition(b": ")[0] if line.startswith(b"wss://") else line.partition(b": ")[0]
    seconds, _, fraction = text.partition(b".")
    return int(seconds) * 1_000_000_000 + int(fraction.ljust(9, b"0"))


def _okx_seconds(nanoseconds: int) -> bytes:
    """Return nanoseconds since the epoch as cryptofeed writes seconds: ``<s>.<fraction>``, no trailing zeros."""
    seconds, fraction = divmod(nanoseconds, 1_000_000_000)
    return b"%d.%s" % (seconds, (b"%09d" % fraction).rstrip(b"0") or b"0")
