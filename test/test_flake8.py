"""ament_flake8 over the package (runs under `colcon test`; skipped where ament_flake8 is not installed)."""

from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


@pytest.mark.flake8
@pytest.mark.linter
def test_flake8():
    main_with_errors = pytest.importorskip("ament_flake8.main").main_with_errors
    rc, errors = main_with_errors(argv=["--config", str(ROOT / ".flake8.ini"), str(ROOT)])
    assert rc == 0, "Found %d code style errors / warnings:\n" % len(errors) + "\n".join(errors)
