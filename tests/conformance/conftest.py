from __future__ import annotations

from typing import Any


def pytest_terminal_summary(terminalreporter: Any) -> None:
    from tests.conformance.test_k8saudit_cases import CASES, RESULTS

    if RESULTS:
        passed = sum(RESULTS.values())
        terminalreporter.write_line(f"falco conformance: {passed}/{len(CASES)} cases pass")
