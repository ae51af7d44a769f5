"""ament_pep257 docstring checks (runs under `colcon test`; skipped where ament_pep257 is not installed)."""

from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
# Google-style docstrings; missing docstrings on private/obvious members are allowed, and sections may follow the
# text without a blank line.
ADD_IGNORE = ["D100", "D101", "D102", "D103", "D104", "D105", "D106", "D107", "D200", "D205", "D209", "D212",
              "D301", "D402", "D403", "D410", "D411", "D415", "D417"]


@pytest.mark.linter
@pytest.mark.pep257
def test_pep257():
    main = pytest.importorskip("ament_pep257.main").main
    rc = main(argv=[str(ROOT / "c4d_core"), str(ROOT / "c4d_ros"), "--convention", "google",
                    "--add-ignore", *ADD_IGNORE])
    assert rc == 0, "Found code style errors / warnings"
