"""A non-editable install (`pip install .`, a wheel) carries every package: pyproject.toml
lists them by hand (st_ai lives under generated/), so a new package must be listed too."""
from __future__ import annotations

import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def _packages_on_disk() -> set[str]:
    found = set()
    for top, where in (("server", ROOT / "server"), ("rest_bridge", ROOT / "rest_bridge"),
                       ("st_ai", ROOT / "generated" / "st_ai")):
        for init in where.rglob("__init__.py"):
            parts = init.parent.relative_to(where).parts
            found.add(".".join((top, *parts)))
    return found


def test_every_package_in_the_source_tree_is_listed_in_pyproject():
    config = tomllib.loads((ROOT / "pyproject.toml").read_text())
    listed = set(config["tool"]["setuptools"]["packages"])
    assert _packages_on_disk() - listed == set()
    assert listed - _packages_on_disk() == set()
