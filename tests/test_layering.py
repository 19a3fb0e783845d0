"""The package layering declared in pyproject.toml holds (import-linter's contracts)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def test_import_contracts_are_kept() -> None:
    lint_imports = Path(sys.executable).parent / "lint-imports"

    result = subprocess.run(
        [str(lint_imports), "--no-cache"], cwd=ROOT, capture_output=True, text=True, timeout=300
    )

    assert result.returncode == 0, result.stdout + result.stderr
    assert "0 broken" in result.stdout


def test_the_agent_has_at_most_eight_modules_of_its_own_beside_its_stage_packages() -> None:
    modules = sorted(p.name for p in (ROOT / "edge_agent").glob("*.py"))

    assert len(modules) <= 8, modules


def test_training_settings_live_with_the_trainer() -> None:
    from edge_agent.contracts import config
    from trainer import settings

    assert not hasattr(config, "TrainingSettings")
    assert not hasattr(config, "RetrainSettings")
    assert issubclass(settings.TrainerConfig, config.StationConfig)
