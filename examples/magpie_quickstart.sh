#!/usr/bin/env bash
# Magpie on the quickstart task (README, "Data synthesis"): queries and answers sampled from the
# quickstart's SFT model given only its chat template's pre-query prefix, filtered; then the
# quickstart's SFT recipe (recipes/tiny/sft.yaml) trains the pre-trained model on that data instead
# of the arithmetic SFT file; exact match on the 200 held-out problems before and after.
#   QS=runs/quickstart OUT=runs/magpie-qs N=4000 examples/magpie_quickstart.sh
# QS: a finished `posttrain quickstart --output-dir QS` (pretrain/final, sft/final, data/).
set -euo pipefail
QS=${QS:-runs/quickstart}
OUT=${OUT:-runs/magpie-qs}
N=${N:-4000}

posttrain synth magpie --out "$OUT/magpie.jsonl" --set source.model="$QS/sft/final" \
    --set n_rows="$N" --set batch_size=64 --set query.max_new_tokens=64 --set response.max_new_tokens=96

posttrain sft recipes/tiny/sft.yaml --output-dir "$OUT/sft" --set model="$QS/pretrain/final" \
    --set data.sources.0.path="$OUT/magpie.jsonl" --set data.eval_sources.0.path="$QS/data/sft_eval.jsonl" \
    --set eval.data="$QS/data/test.jsonl" --set data.on_error=skip   # over-long rows (> max_length 128) skipped, counted

for model in pretrain/final sft/final; do
    posttrain eval "$QS/$model" --tasks arithmetic --data arithmetic="$QS/data/test.jsonl" \
        --output-dir "$OUT/eval/qs-${model%%/*}"
done
posttrain eval "$OUT/sft/final" --tasks arithmetic --data arithmetic="$QS/data/test.jsonl" \
    --output-dir "$OUT/eval/magpie-sft"
