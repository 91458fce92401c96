#!/usr/bin/env bash
# Adaptive inference-time compute on the quickstart task (Manvi et al. 2024), end to end:
# sample N=4 answers per RL prompt from the SFT model, verify them, build self-evaluation rows,
# train the self-evaluation (posttrain sft), then evaluate on the 200 test problems: greedy, fixed
# N samples (pass@k, maj@k) and adaptive sampling at several P(no better) thresholds.
#   bench/adaptive_compute.sh SFT_DIR DATA_DIR OUT_DIR [PROMPTS=600] [N=4] [T=0.8]
# DATA_DIR: `posttrain synth arithmetic --out DATA_DIR` (or the quickstart's data folder).
set -euo pipefail
SFT=$1 DATA=$2 OUT=$3 PROMPTS=${4:-600} N=${5:-4} T=${6:-0.8}
PT=${POSTTRAIN:-posttrain}
mkdir -p "$OUT/eval"
head -n "$PROMPTS" "$DATA/rl_prompts.jsonl" > "$OUT/prompts.jsonl"
head -n 4000 "$DATA/sft_train.jsonl" > "$OUT/sft_replay.jsonl"
$PT sample "$SFT" --prompts "$OUT/prompts.jsonl" --n 4 --temperature "$T" --max-new-tokens 64 \
    --out "$OUT/samples.jsonl" --batch-size 64
$PT score --data "$OUT/samples.jsonl" --scorer math --out "$OUT/scored.jsonl"
$PT synth self_eval --set input="$OUT/scored.jsonl" --out "$OUT/self_eval_sft.jsonl"
$PT sft "$(dirname "$0")/../recipes/tiny/self_eval_sft.yaml" --set model="$SFT" \
    --set "data.sources=[{path: $OUT/self_eval_sft.jsonl, kind: conversation}, {path: $OUT/sft_replay.jsonl, kind: conversation}]" \
    --output-dir "$OUT/self_eval_model"
SE="$OUT/self_eval_model/final"
$PT eval "$SFT" --tasks arithmetic --output-dir "$OUT/eval/sft_greedy"
$PT eval "$SFT" --tasks arithmetic --samples "$N" --temperature "$T" --output-dir "$OUT/eval/sft_fixed"
$PT eval "$SE" --tasks arithmetic --output-dir "$OUT/eval/greedy"
$PT eval "$SE" --tasks arithmetic --samples "$N" --temperature "$T" --output-dir "$OUT/eval/fixed"
for P in 0.7 0.8 0.9 1.0; do
  $PT eval "$SE" --tasks arithmetic --samples "$N" --temperature "$T" --adaptive "$P" \
      --output-dir "$OUT/eval/adaptive_$P"
done
python3 - "$OUT/eval" <<'PY'
import json, pathlib, sys
for d in sorted(pathlib.Path(sys.argv[1]).iterdir()):
    m = json.loads((d / "results.json").read_text())["tasks"]["arithmetic"]["metrics"]
    print(d.name, {k: round(v["value"], 4) for k, v in m.items()})
PY
