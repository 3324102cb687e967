"""Reads the harnesses' result files.
    compare.py summary FILE...   counts, and each failed call with its error
    compare.py diff LABEL        the differential check of issue 16 against out/emulator-*.json:
                                 calls that pass on the emulator but not on LABEL (must be none,
                                 exit 1 otherwise) and calls that fail there and pass on LABEL
    compare.py markdown          EMULATOR.md's tables from out/emulator-*.json
"""

import json
import sys
from pathlib import Path

OUT = Path(__file__).resolve().parent / "out"


def load(path):
    p = Path(path)
    return json.loads(p.read_text()) if p.exists() else []


def status(r):
    return "pass" if r["ok"] else "skip" if r.get("skipped") else "fail"


def summary(files):
    for f in files:
        rs = load(f)
        n = {k: sum(status(r) == k for r in rs) for k in ("pass", "fail", "skip")}
        print(f"{Path(f).name}: {n['pass']} passed, {n['fail']} failed, {n['skip']} skipped")
        for r in rs:
            if status(r) == "fail":
                print(f"  FAIL {r['call']}: {(r.get('error') or '')[:200]}")


def diff(label):
    bad = 0
    for sdk in ("python", "node"):
        emu = {r["call"]: r for r in load(OUT / f"emulator-{sdk}.json")}
        here = {r["call"]: r for r in load(OUT / f"{label}-{sdk}.json")}
        regress = [c for c, r in emu.items() if r["ok"] and not here.get(c, {}).get("ok")]
        better = [c for c, r in here.items() if r["ok"] and c in emu and not emu[c]["ok"]]
        print(f"{sdk}: {len(regress)} calls pass on the emulator but not on {label}"
              + (":" if regress else ""))
        for c in regress:
            print(f"  {c}: {here.get(c, {}).get('error') or 'not run'}")
        print(f"{sdk}: {len(better)} calls fail on the emulator and pass on {label}"
              + (":" if better else ""))
        for c in better:
            print(f"  {c} (emulator: {(emu[c].get('error') or '')[:160]})")
        bad += len(regress)
    return 1 if bad else 0


def markdown():
    for sdk in ("python", "node"):
        rs = load(OUT / f"emulator-{sdk}.json")
        n = {k: sum(status(r) == k for r in rs) for k in ("pass", "fail", "skip")}
        print(f"\n### {sdk} — {n['pass']} pass, {n['fail']} fail, {n['skip']} skipped\n")
        print("| call | emulator | error |")
        print("|---|---|---|")
        for r in rs:
            err = (r.get("error") or "").replace("|", "\\|").replace("\n", " ")[:160]
            print(f"| `{r['call']}` | {status(r)} | {err} |")


if __name__ == "__main__":
    cmd = sys.argv[1]
    if cmd == "summary":
        summary(sys.argv[2:])
    elif cmd == "diff":
        sys.exit(diff(sys.argv[2]))
    elif cmd == "markdown":
        markdown()
