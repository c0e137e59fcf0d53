from __future__ import annotations

from typing import Any


def pytest_terminal_summary(terminalreporter: Any) -> None:
    from tests.conformance.test_k8saudit_cases import CASES, RESULTS

    if RESULTS:
        passed = sum(RESULTS.values())
        terminalreporter.write_line(f"falco conformance: {passed}/{len(CASES)} cases pass")
    from tests.conformance import test_falco_044 as f044

    if f044.RESULTS:
        same = sum(f044.RESULTS.values())
        exact = sum(ok for id_, ok in f044.RESULTS.items() if id_.split("/")[0] in f044.FALCO_JSON)
        terminalreporter.write_line(
            f"falco 0.44 cases: {same}/{len(f044.CASES)} as Falco did ({exact} of them read with "
            f"falco_json, otherwise deliberately different), {len(f044.DELIBERATE)} deliberately "
            f"different, {len(f044.NOT_YET)} not yet"
        )
