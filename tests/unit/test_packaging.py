"""pyproject.toml's package list, which names the packages one by one (see its comment): every
package directory under functions/falconet is listed, and the bundled rules map to
functions/rules/."""

from __future__ import annotations

import tomllib

from tests.conftest import ROOT


def _setuptools() -> dict[str, object]:
    config = tomllib.loads((ROOT / "pyproject.toml").read_text())
    table: dict[str, object] = config["tool"]["setuptools"]
    return table


def test_every_package_in_the_tree_is_listed() -> None:
    source = ROOT / "functions"
    in_tree = {
        ".".join(init.parent.relative_to(source).parts)
        for init in source.glob("falconet/**/__init__.py")
    }
    assert set(_setuptools()["packages"]) == in_tree | {"falconet.bundled_rules"}  # type: ignore[arg-type]


def test_the_bundled_rules_package_is_the_one_rules_directory() -> None:
    table = _setuptools()
    assert table["package-dir"] == {"": "functions", "falconet.bundled_rules": "functions/rules"}
    assert table["package-data"]["falconet.bundled_rules"] == ["*.yaml"]  # type: ignore[index]
    assert not (ROOT / "functions" / "falconet" / "bundled_rules").exists()  # one copy
    # the top-level rules/ users edit is that same directory
    assert (ROOT / "rules").resolve() == (ROOT / "functions" / "rules").resolve()
