#!/usr/bin/env bash
# Fit, evaluate and score the models on the CDNOW cohort through the command line.
#   bash bench/analysis_cdnow.sh [PLOT_DIR]        (needs ../shared beside the checkout)
# Prints each model's parameters with standard errors and 95% intervals, the evaluation on the
# paper's split (chosen on earlier cut-offs, judged on weeks 40-78), and the first customers'
# intervals. With PLOT_DIR, writes tracking.png and reliability.png there.
set -euo pipefail
here="$(cd "$(dirname "$0")/.." && pwd)"
src="$here/../shared/data/cdnow/CDNOW_sample.txt"
[ -f "$src" ] || { echo "CDNOW data not found at $src" >&2; exit 1; }
csv="$(mktemp -d)/cdnow.csv"
{ echo "customer_id,date,cds,amount"; awk '{print $2+0 "," $3 "," $4 "," $5}' "$src"; } > "$csv"
run() { PYTHONPATH="$here/src${PYTHONPATH:+:$PYTHONPATH}" python -c \
  'import sys; from retention_plugin.analysis.commands import analyze; analyze(prog_name="retention analyze")' "$@"; }
for m in bgnbd mbgnbd pnbd gg; do
  run fit --transactions "$csv" --calibration-end 1997-09-30 --time-unit weeks --model "$m"
done
run evaluate --transactions "$csv" --calibration-end 1997-09-30 --holdout-end 1998-06-30 ${1:+--plots "$1"}
run score --transactions "$csv" --calibration-end 1997-09-30 --model pnbd --horizon 39 | head -6
