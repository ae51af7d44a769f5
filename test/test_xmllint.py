"""ament_xmllint on package.xml (runs under `colcon test`; skipped where ament_xmllint is not installed)."""

from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


@pytest.mark.linter
@pytest.mark.xmllint
def test_xmllint():
    main = pytest.importorskip("ament_xmllint.main").main
    rc = main(argv=[str(ROOT / "package.xml")])
    assert rc == 0, "Found errors in package.xml"
