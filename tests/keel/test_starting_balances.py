"""Starting balances come from the venue model file alone, for the backtest and the emulator."""

from pathlib import Path

import pytest

from keel.backtests.venues import venue_model_for
from keel.settings import CONFIGS_DIR
from keel.starting_balances import StartingBalancesError
from keel.starting_balances import starting_balances


@pytest.mark.parametrize("venue", sorted(path.stem for path in (CONFIGS_DIR / "venues").glob("*.yaml")))
def test_the_emulator_and_the_backtest_start_from_the_same_balances(venue: str) -> None:
    backtest = {entry.split()[1]: entry.split()[0] for entry in venue_model_for(venue).starting_balances}

    assert starting_balances(venue) == backtest
    assert "USDT" in backtest


def test_a_malformed_entry_names_the_file(tmp_path: Path) -> None:
    (tmp_path / "venues").mkdir()
    (tmp_path / "venues" / "odd.yaml").write_text('starting_balances: ["10000USDT"]\n')

    with pytest.raises(StartingBalancesError, match=r"odd.yaml: starting_balances: '10000USDT' is not '<amount> <ASSET>'"):
        starting_balances("odd", configs_dir=tmp_path)
