"""Shared test helpers: where the repository and ../shared are."""

from __future__ import annotations

from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
SHARED = ROOT.parent / "shared"
BUNDLED_RULES = ROOT / "functions" / "rules"  # the top-level rules/ links to it


def shared_path(*parts: str) -> Path:
    """A path under ../shared; skips the calling test when ../shared is absent."""
    path = SHARED.joinpath(*parts)
    if not SHARED.is_dir():
        pytest.skip("../shared (conformance data and samples) is not beside the repository")
    if not path.exists():
        pytest.skip(f"{path} is missing from ../shared")
    return path
