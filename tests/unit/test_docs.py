"""The docs agree with the code: every setting the code reads is documented by its full name."""

from __future__ import annotations

import re

from falconet import config
from tests.conftest import ROOT


def test_every_falconet_setting_is_documented() -> None:
    names = {
        value
        for value in vars(config).values()
        if isinstance(value, str) and re.fullmatch(r"FALCONET_[A-Z0-9_]+", value)
    }
    assert len(names) > 30  # the settings were found
    docs = (ROOT / "README.md").read_text() + "".join(
        path.read_text() for path in sorted((ROOT / "docs").glob("*.md"))
    )
    assert sorted(n for n in names if n not in docs) == []
