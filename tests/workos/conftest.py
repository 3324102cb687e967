"""Writes one JSON record per SDK call ({"call", "ok", "skipped", "error"}) to
$WORKOS_RESULTS (default out/<target>-python.json), so runs against Latchkey and the emulator can
be compared call by call (compare.py)."""

import json
import os
from pathlib import Path

_results = []


def pytest_runtest_logreport(report):
    if report.when == "call" or (report.when == "setup" and report.outcome != "passed"):
        call = report.nodeid.split("[", 1)[-1].rstrip("]") if "[" in report.nodeid else report.nodeid
        err = None
        if report.outcome == "failed":
            crash = getattr(report.longrepr, "reprcrash", None)
            err = crash.message if crash else str(report.longrepr)
            err = err.strip().splitlines()[0][:500] if err.strip() else "failed"
        elif report.outcome == "skipped":
            lr = report.longrepr
            err = lr[2] if isinstance(lr, tuple) else str(lr)
            err = err.replace("Skipped: ", "")
        _results.append({"call": call, "ok": report.outcome == "passed",
                         "skipped": report.outcome == "skipped", "error": err})


def pytest_sessionfinish(session, exitstatus):
    here = Path(__file__).resolve().parent
    target = os.environ.get("WORKOS_TARGET", "latchkey")
    path = Path(os.environ.get("WORKOS_RESULTS", here / "out" / f"{target}-python.json"))
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(_results, indent=1) + "\n")
