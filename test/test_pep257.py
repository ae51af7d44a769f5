"""ament_pep257 docstring checks (runs under `colcon test`; skipped where ament_pep257 is not installed)."""

from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
# Google-style docstrings with an "Args:" section and multi-line summaries are used throughout.
IGNORE = ["D100", "D101", "D102", "D103", "D104", "D105", "D106", "D107", "D203", "D212", "D404",
          "D200", "D205", "D400", "D401", "D413", "D415", "D402", "D301"]


@pytest.mark.linter
@pytest.mark.pep257
def test_pep257():
    main = pytest.importorskip("ament_pep257.main").main
    rc = main(argv=[str(ROOT / "c4d_core"), str(ROOT / "c4d_ros"), "--ignore", *IGNORE])
    assert rc == 0, "Found code style errors / warnings"
