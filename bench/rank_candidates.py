"""Decode every request of some sets once (greedy, named-program step, beam 4 and 8 n-best) and save
the candidates as JSONL, for tuning and ablating the ranker offline (tinyllm.train.rank_tune).

    python bench/rank_candidates.py --out runs/rank dev=runs/data/pairs/dev.jsonl everyday5=bench/data/everyday5.jsonl
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

from common import run_main


def main() -> int:
    from tinyllm.formats.checkpoint import default_model_path
    from tinyllm.infer.runtime import Runtime
    from tinyllm.knowledge.retrieval import load_tool_lexicon
    from tinyllm.train.rank_tune import add_beams, decode_candidates, read_candidates, write_candidates

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("sets", nargs="+", help="NAME=PATH.jsonl")
    ap.add_argument("--model", type=Path, default=None)
    ap.add_argument("--out", type=Path, required=True)
    ap.add_argument("--limit", type=int, default=None)
    ap.add_argument("--beams", default="", help="Beam widths to decode too, comma-separated (default: none)")
    ap.add_argument("--all-rows", action="store_true", help="Beams for every row, not only those whose first answer fails a check")
    ap.add_argument("--add-beams", action="store_true", help="Read OUT/NAME.jsonl and add the beams to it (PATH unused)")
    args = ap.parse_args()
    model = args.model or default_model_path()
    runtime = Runtime.load(model)
    tools = load_tool_lexicon(model.with_suffix(".idx"))
    beams = [int(b) for b in args.beams.split(",") if b]
    args.out.mkdir(parents=True, exist_ok=True)
    for spec in args.sets:
        name, path = spec.split("=", 1)
        t0 = time.time()
        if args.add_beams:
            recs = read_candidates(args.out / f"{name}.jsonl")
            add_beams(runtime, recs, tools, beams, not args.all_rows, progress=True)
        else:
            rows = [json.loads(line) for line in open(path) if line.strip()][: args.limit]
            recs = decode_candidates(runtime, rows, tools, beams, not args.all_rows, progress=True)
        write_candidates(args.out / f"{name}.jsonl", recs)
        print(f"{name}: {len(recs)} rows in {time.time() - t0:.0f} s", file=sys.stderr, flush=True)
    return 0


if __name__ == "__main__":
    run_main(main)
