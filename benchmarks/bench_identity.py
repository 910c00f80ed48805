"""The measurements behind `geneface.processing.identity.THRESHOLD`: identity distances between
processed clips of the same person and of different persons.

Each `--person NAME=GLOB` names the datasets (processed clips, one folder each) of one person.
Printed, as one JSON line: for every person of several clips, its clips' distances under the
rule (each against the median of the others); for every pair of clips of one person, their
distance (the rule's figure for a person of two clips); for every clip of another person added
to each person of several clips, the intruder's distance and the largest of that person's own
clips then; and the distances of all pairs of clips of different persons. Then how many of each
the threshold (`--threshold`, default the rule's) flags.

    python benchmarks/bench_identity.py --person grid=/work/data/grid128/clips/* \\
        --person obama='/tmp/id/*Obama_clip*' --person noem='/tmp/id/*KristiNoem' ...

The docs' figures (docs/dataset_format.md, "A person from several clips") were measured on GRID
s1 (processed at 128 px) and corpus clips processed with `geneface process-corpus DIR OUT --size
128 --min-face 40`.
"""

from __future__ import annotations

import argparse
import glob
import sys
from itertools import combinations
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from geneface.core.dataset import Dataset, is_dataset  # noqa: E402
from geneface.core.outputs import JsonLine  # noqa: E402
from geneface.processing import identity as ident  # noqa: E402


def summary(values) -> dict:
    v = np.asarray(sorted(values), float)
    if not len(v):
        return {}
    return {"n": int(len(v)), "min": round(float(v[0]), 5), "median": round(float(np.median(v)), 5),
            "p99": round(float(np.percentile(v, 99)), 5), "max": round(float(v[-1]), 5)}


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--person", action="append", required=True, metavar="NAME=GLOB",
                        help="A person's processed clips (repeat for each person).")
    parser.add_argument("--threshold", type=float, default=ident.THRESHOLD)
    JsonLine.add_flags(parser)
    args = parser.parse_args(argv)
    out = JsonLine.from_args(parser, args)
    people: dict[str, dict[str, np.ndarray]] = {}
    for item in args.person:
        name, _, pattern = item.partition("=")
        folders = sorted(p for p in glob.glob(pattern) if is_dataset(Path(p)))
        if not folders:
            parser.error(f"--person {item}: no datasets")
        people[name] = {Path(f).name: ident.identity_shape(Dataset(f).pose()["canonical_mesh"]) for f in folders}
    t = args.threshold
    result: dict = {"threshold": t, "people": {n: len(c) for n, c in people.items()}, "rule": {}, "same_pairs": {},
                    "intruders": {}}
    for name, clips in people.items():
        if len(clips) > 1:
            d = ident.shape_distances(list(clips.values()))
            result["rule"][name] = {**summary(d), "flagged": int((d > t).sum())}
        if 1 < len(clips) <= 10:
            result["same_pairs"][name] = {f"{a}|{b}": round(ident.shape_distance(clips[a], clips[b]), 5)
                                          for a, b in combinations(clips, 2)}
    for name, clips in people.items():
        if len(clips) < 2:
            continue
        own = list(clips.values())
        rows = {}
        for other, their in people.items():
            if other == name:
                continue
            for clip, shape in their.items():
                d = ident.shape_distances(own + [shape])
                rows[clip] = {"intruder": round(float(d[-1]), 5), "own_max": round(float(d[:-1].max()), 5)}
        result["intruders"][name] = {"rows": rows, "caught": sum(r["intruder"] > t for r in rows.values()),
                                     "own_flagged": sum(r["own_max"] > t for r in rows.values()),
                                     "summary": summary([r["intruder"] for r in rows.values()])}
    small = {n: c for n, c in people.items() if len(c) <= 10}  # a studio of hundreds of clips would swamp the pairs
    diff = [ident.shape_distance(sa, sb) for (na, a), (nb, b) in combinations(small.items(), 2)
            for sa in a.values() for sb in b.values()]
    result["different_pairs"] = {**summary(diff), "caught": int(sum(d > t for d in diff))}
    same = [v for pairs in result["same_pairs"].values() for v in pairs.values()]
    result["same_pairs_summary"] = {**summary(same), "flagged": int(sum(d > t for d in same))}
    out.emit(result)
    return 0


if __name__ == "__main__":
    sys.exit(main())
