"""Starting balances, in one place: the venue model file of each venue (``configs/venues/<venue>.yaml``).

A backtest's simulated account and the emulator's account start from the same balances, so a backtest over a
recorded emulator session starts where the session started. Both read them from the venue model file: the
backtest through its ``VenueModel``, the emulator through :func:`starting_balances`.
"""

from decimal import Decimal
from decimal import InvalidOperation
from pathlib import Path

import yaml

from keel.settings import CONFIGS_DIR


class StartingBalancesError(ValueError):
    """A venue model file is missing or its ``starting_balances`` are not ``["<amount> <ASSET>", ...]``."""


def starting_balances(venue: str, configs_dir: Path = CONFIGS_DIR) -> dict[str, str]:
    """
    Return the starting balances of a venue model as ``{asset: amount}`` (amounts as decimal text).

    Raises
    ------
    StartingBalancesError
        Naming the file and the entry that is not ``"<amount> <ASSET>"``.
    """
    path = configs_dir / "venues" / f"{venue}.yaml"
    if not path.is_file():
        raise StartingBalancesError(f"no venue model for venue {venue!r}: expected {path}")
    entries = (yaml.safe_load(path.read_text()) or {}).get("starting_balances")
    if not isinstance(entries, list) or not entries:
        raise StartingBalancesError(f"{path}: starting_balances: expected a list like [\"10000 USDT\"], got {entries!r}")
    balances: dict[str, str] = {}
    for entry in entries:
        amount, _, asset = str(entry).partition(" ")
        try:
            valid = bool(asset) and Decimal(amount) >= 0
        except InvalidOperation:
            valid = False
        if not valid or asset in balances:
            raise StartingBalancesError(f"{path}: starting_balances: {entry!r} is not '<amount> <ASSET>' of a new asset")
        balances[asset] = amount
    return balances
