"""Emulator fault knobs from the environment file, ``EmulatorOverrides`` and ``keel live``: bad values are named early."""

from pathlib import Path

import pytest
import typer
import yaml
from typer.testing import CliRunner

from keel.live import cli as live_cli
from keel.live.environment import EnvironmentFileError
from keel.live.environment import load_environment
from keel.live.session import EmulatorOverrides
from keel.live.session import SessionInputError
from keel.live.session import run_live_session
from keel.settings import CONFIGS_DIR

EMULATOR_ENV = CONFIGS_DIR / "env" / "emulator.yaml"
VARIANT = CONFIGS_DIR / "variants" / "ema_cross_btcusdt.yaml"


def _cli() -> typer.Typer:
    app = typer.Typer()
    live_cli.register(app)

    @app.command()
    def other() -> None:  # a second command keeps typer in sub-command mode, as in the keel app
        """Unused."""

    return app


def _env_file(tmp_path: Path, **emulator: object) -> Path:
    document = yaml.safe_load(EMULATOR_ENV.read_text())
    document["emulator"] |= emulator
    path = tmp_path / "env.yaml"
    path.write_text(yaml.safe_dump(document))
    return path


def test_shipped_emulator_env_lists_every_fault_knob_off() -> None:
    document = yaml.safe_load(EMULATOR_ENV.read_text())["emulator"]
    settings = load_environment("emulator").emulator

    assert {"slippage_bps", "drop_fill_every", "order_latency_ms", "extra_fee_bps"} <= set(document)
    assert settings is not None
    assert (settings.slippage_bps, settings.drop_fill_every, settings.order_latency_ms, settings.extra_fee_bps) == (0.0, 0, 0.0, 0.0)


def test_env_file_sets_the_extra_fee(tmp_path: Path) -> None:
    settings = load_environment(_env_file(tmp_path, extra_fee_bps=2.5)).emulator

    assert settings is not None and settings.extra_fee_bps == 2.5


@pytest.mark.parametrize(
    ("field", "value"),
    [("extra_fee_bps", -1.0), ("extra_fee_bps", ".inf"), ("slippage_bps", -0.5), ("order_latency_ms", -1.0), ("drop_fill_every", -2)],
)
def test_env_file_names_a_bad_fault_knob(tmp_path: Path, field: str, value: object) -> None:
    path = _env_file(tmp_path, **{field: float("inf") if value == ".inf" else value})

    with pytest.raises(EnvironmentFileError, match=rf"env\.yaml: emulator\.{field}: expected .* >= 0"):
        load_environment(path)


def test_bad_override_is_refused_before_a_session_folder_exists(sample_catalog: Path, tmp_path: Path) -> None:
    session_dir = tmp_path / "session"

    with pytest.raises(SessionInputError, match=r"emulator override: emulator\.extra_fee_bps: expected a finite number >= 0, got -3"):
        run_live_session(VARIANT, "emulator", session_dir=session_dir, overrides=EmulatorOverrides(catalog=sample_catalog, extra_fee_bps=-3.0))

    assert not session_dir.exists()


def test_cli_extra_fee_option_reaches_the_emulator_settings(sample_catalog: Path, tmp_path: Path) -> None:
    session_dir = tmp_path / "session"

    result = CliRunner().invoke(
        _cli(),
        ["live", str(VARIANT), "--catalog", str(sample_catalog), "--extra-fee-bps", "-1", "--session-dir", str(session_dir)],
    )

    assert result.exit_code == 2
    assert "emulator.extra_fee_bps: expected a finite number >= 0, got -1.0" in result.output
    assert not session_dir.exists()


def test_cli_extra_fee_option_is_refused_for_a_live_environment(tmp_path: Path) -> None:
    result = CliRunner().invoke(
        _cli(),
        ["live", str(VARIANT), "--env", str(CONFIGS_DIR / "env" / "binance_live.example.yaml"), "--extra-fee-bps", "10"],
    )

    assert result.exit_code == 2
    assert "--extra-fee-bps only apply to an emulator environment" in result.output
