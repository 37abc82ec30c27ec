"""Measure the parity verdict's gap: the worst difference-to-rounding ratio of correct ports
between every pair of frameworks, and the ratio each planted fault gives at its layer, on
models with calibrated BatchNorm statistics (tests/parity_cases.py). Prints a markdown table
(docs/porting.md has it).

    PYTHONPATH=.:tests python tools/parity_ratios.py [--slow]
"""

from __future__ import annotations

import argparse
import itertools
import sys
import time

import parity_cases as pc

import xinit

FRAMEWORKS = ("torch", "paddle", "flax")


def correct_rows(names):
    for name in names:
        case = pc.CASES[name]
        start = time.perf_counter()
        mods = pc.ported(case, FRAMEWORKS)
        report = xinit.parity(mods, case.inputs(7))
        for a, b in itertools.combinations(FRAMEWORKS, 2):
            pair = f"{a} vs {b}"
            yield (
                name,
                "correct port",
                pair,
                report.worst_ratio(pair),
                report.worst(pair),
                "PASS" if all(r.diffs[pair].passed for r in report.rows) else "FAIL",
                time.perf_counter() - start,
            )


def fault_rows():
    for name, fault, path, where in pc.FAULTS:
        case = pc.CASES[name]
        other = "torch" if where != "torch" else "paddle"
        mods = pc.ported(case, (other, where))
        fault(mods[where], path)
        report = xinit.parity(mods, case.inputs(7))
        row = next(r for r in report.rows if r.path == path)
        (diff,) = row.diffs.values()
        first = report.first_divergent
        verdict = f"FAIL at {first.path}" if first is not None else "PASS"
        yield (name, fault.__name__, f"{other} vs {where}", diff.ratio, diff.max_rel, verdict, 0)


def main() -> int:
    p = argparse.ArgumentParser()
    p.add_argument("--slow", action="store_true", help="add resnet152, vit_base, 12-layer gpt2")
    args = p.parse_args()
    names = ["resnet45", "crnn", "gpt2", "encoder", "segmenter"]
    if args.slow:
        names += ["resnet152", "vit_base", "gpt2_12"]
    print("| model | port | pair | ratio | max rel | verdict |")
    print("|---|---|---|---:|---:|---|")
    for model, what, pair, ratio, rel, verdict, _ in [*correct_rows(names), *fault_rows()]:
        print(f"| {model} | {what} | {pair} | {ratio:.3g} | {rel:.1e} | {verdict} |", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
