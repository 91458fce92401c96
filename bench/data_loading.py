"""Memory and start time of SFT data loading: N short arithmetic rows through conversation_examples.

    python bench/data_loading.py [--rows 50000] --cache DIR [--workdir DIR]

Run it twice with the same --cache: the first run tokenises (cold), the second reads the cache entry
(warm). Prints seconds for reading the records and for the examples, the process's peak RSS, its
resident memory once the examples are held (anonymous and file-backed separately: a memory-mapped
cache entry is file-backed and shared with the page cache), and a digest of every token so the runs
can be compared.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import resource
import time
from pathlib import Path


def _status_kb(field: str) -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1])
    return 0


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rows", type=int, default=50_000)
    parser.add_argument("--cache", required=True)
    parser.add_argument("--workdir", default="/tmp/posttrain-bench-data")
    args = parser.parse_args()
    os.environ["POSTTRAIN_CACHE"] = args.cache
    from posttrain.config.recipe import SourceConfig
    from posttrain.data.prepare import conversation_examples
    from posttrain.data.synth.arithmetic import sft_rows
    from posttrain.model.load import load_tokenizer
    from posttrain.model.tiny import build_tiny

    work = Path(args.workdir)
    model, data = work / "model", work / f"sft{args.rows}.jsonl"
    if not (model / "config.json").is_file():
        build_tiny(model, preset="test", seed=0)
    if not data.is_file():
        data.write_text("".join(json.dumps(r) + "\n" for r in sft_rows(args.rows, seed=0)))
    tok = load_tokenizer(str(model))
    base = _status_kb("VmRSS")
    start = time.perf_counter()
    read_s = 0.0  # the source is streamed: reading, validating and tokenising are one pass
    examples = conversation_examples(tok, SourceConfig(path=str(data)), 256, "fail")
    examples_s = time.perf_counter() - start
    digest = hashlib.sha256()
    for ex in examples:
        digest.update(repr((ex.input_ids, ex.labels)).encode())
    print(
        json.dumps(
            {
                "rows": len(examples),
                "read_records_s": round(read_s, 1),
                "examples_s": round(examples_s, 1),
                "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss // 1024,
                "rss_held_mb": (_status_kb("VmRSS") - base) // 1024,
                "rss_anon_mb": _status_kb("RssAnon") // 1024,
                "rss_file_mb": _status_kb("RssFile") // 1024,
                "tokens_sha256": digest.hexdigest()[:16],
            }
        )
    )


if __name__ == "__main__":
    main()
