#!/usr/bin/env python3
"""`make bench-plan`: the time `arbiter verify --plan` predicts against the time `arbiter verify` takes.

For the bundled main model (generated data) and the anchored control (its dataset), runs the plan, then the
verify run itself (timed, report into a temp folder), then the plan again with what the run found
(`--assume-from` its results.json: the failure counts, which set the α-selection, top-up and amplification
passes, and the top head set, whose layers set where every head-set pass resumes — the results a plan cannot
know). Prints both predictions against the measured time and exits 1 when the second is off by more than 25%.
Speed depends on the machine being idle: the load average is printed beside the numbers.
Standard library only (no venv needed).
"""
import argparse
import json
import os
import subprocess
import sys
import tempfile
import time

CASES = [
    ("arbiter-main", "GoldenData/models/arbiter-main", None),
    ("anchored", "GoldenData/controls/anchored", "GoldenData/controls/data"),
]
TOLERANCE = 0.25


def plan(arbiter, model, data, results=None):
    cmd = [arbiter, "verify", "--plan", "--json", "--model", model]
    if data:
        cmd += ["--data", data]
    if results is not None:
        cmd += ["--assume-from", results]
    out = subprocess.run(cmd, check=True, capture_output=True, text=True).stdout
    return json.loads(out)[0]


def measure(arbiter, model, data, folder):
    cmd = [arbiter, "verify", "--model", model, "--out", folder]
    if data:
        cmd += ["--data", data]
    start = time.monotonic()
    subprocess.run(cmd, check=True, capture_output=True, text=True)
    seconds = time.monotonic() - start
    with open(os.path.join(folder, "results.json")) as f:
        results = json.load(f)["models"][0]["results"]
    return seconds, results


def main():
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--arbiter", default=".build/release/arbiter")
    parser.add_argument("--case", action="append", help="only these cases (arbiter-main, anchored)")
    args = parser.parse_args()
    rows, failed = [], []
    for name, model, data in CASES:
        if args.case and name not in args.case:
            continue
        before = plan(args.arbiter, model, data)
        with tempfile.TemporaryDirectory() as tmp:
            folder = os.path.join(tmp, "report")
            measured, results = measure(args.arbiter, model, data, folder)
            # The plan of the same run, with what the run found (failures, top head set) as its assumptions.
            after = plan(args.arbiter, model, data, os.path.join(folder, "results.json"))
        i = results["interventions"]
        rate = 1 - i["baselineMFR"] if i["baselineMFR"] == i["baselineMFR"] else 0.5
        error = after["seconds"] / measured - 1
        rows.append((name, measured, before["seconds"], after["seconds"], error, rate, after))
        if abs(error) > TOLERANCE:
            failed.append(name)
    load = os.getloadavg()[0]
    print(f"verify time: measured vs the plan's prediction (load average {load:.1f} on {os.cpu_count()} cores)")
    print(f"{'case':14} {'measured':>9} {'plan (default)':>15} {'plan (run found)':>16} {'error':>7}  failure rate")
    for name, measured, default, predicted, error, rate, _ in rows:
        print(f"{name:14} {measured:8.1f}s {default:14.1f}s {predicted:15.1f}s {error:+6.0%}  {rate:.3f}")
    for name, _, _, _, _, _, p in rows:
        print(f"{name}: {p['passes']} passes, {p['flops'] / 1e12:.2f} TFLOP "
              f"({p['flopsBefore'] / 1e12:.2f} before, {p['flopsBefore'] / max(p['flops'], 1):.1f}×)")
        for s in p["stages"]:
            print(f"  {s['name']:42} {s['passes']:7} passes {s['seconds']:8.1f}s")
    if failed:
        print(f"outside ±{TOLERANCE:.0%}: {', '.join(failed)}")
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
