"""``python -m bench``: run every benchmark side by side on the same sample, print them, exit 1 on a failure."""

import argparse
import json
import sys
from pathlib import Path

from bench import backtest_memory
from bench import ingest_dump
from bench import ingest_recording
from bench import ingest_trades
from bench import run_fixed_cost
from bench import strategy_speed

GROUPS = ("ingest", "fixed-cost", "memory", "strategies")


def main(argv: list[str] | None = None) -> int:
    """
    Run the benchmark groups asked for (default all) and print their reports.

    Exit code 1 if any pair of catalogs differs, or (with ``--strict``) if a target is missed; else 0.
    """
    parser = argparse.ArgumentParser(prog="python -m bench", description="Ingest throughput: Keel against nautilus's wrangler route.")
    parser.add_argument("--rows", type=int, default=ingest_trades.DEFAULT_ROWS, help=f"input rows (default {ingest_trades.DEFAULT_ROWS:,})")
    parser.add_argument("--repeats", type=int, default=3, help="timed runs per route; the fastest counts (default 3)")
    parser.add_argument("--strict", action="store_true", help="exit 1 when a throughput target is missed")
    parser.add_argument("--json", type=Path, help="also write the ingest results as JSON to this file")
    parser.add_argument(
        "--only",
        nargs="+",
        choices=GROUPS,
        default=list(GROUPS),
        help="benchmark groups to run (default all): ingest throughput, the backtest's fixed cost, backtest peak memory "
        "against window length, strategy families against a no-op",
    )
    arguments = parser.parse_args(argv)
    targets_met = True
    if "fixed-cost" in arguments.only:
        fixed_cost = run_fixed_cost.run(arguments.repeats)
        print(run_fixed_cost.report(fixed_cost))
        targets_met &= fixed_cost.target_met
    if "memory" in arguments.only:
        memory = backtest_memory.run()
        print(backtest_memory.report(memory))
        targets_met &= memory.target_met
    if "strategies" in arguments.only:
        speeds, skipped = strategy_speed.run(arguments.repeats)
        print(strategy_speed.report(speeds, skipped))
        targets_met &= all(result.target_met for result in speeds)
    if "ingest" not in arguments.only:
        return 1 if arguments.strict and not targets_met else 0
    writer = ingest_trades.run(arguments.rows, arguments.repeats)
    print(ingest_trades.report(writer))
    dump = ingest_dump.run(arguments.rows, arguments.repeats)
    print(ingest_dump.report(dump))
    recordings = {source: ingest_recording.run(source, arguments.rows, arguments.repeats) for source in ingest_recording.SOURCES}
    for result in recordings.values():
        print(ingest_recording.report(result))
    if arguments.json is not None:
        results = {"trade_writer": ingest_trades.result_dict(writer), "dump_file": ingest_dump.result_dict(dump)}
        results |= {f"recording_{source}": ingest_recording.result_dict(result) for source, result in recordings.items()}
        arguments.json.write_text(json.dumps(results, indent=2) + "\n")
    every = [writer, dump, *recordings.values()]
    if not all(result.identical for result in every):
        return 1
    targets_met &= all(result.targets.ratio_target_met and result.targets.throughput_target_met for result in every)
    if arguments.strict and not targets_met:
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
