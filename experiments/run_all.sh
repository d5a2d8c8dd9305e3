#!/usr/bin/env bash
# Run every experiment at its course setting, then the best settings, one after another,
# and keep what they print, their results.json and their plots in experiments/results/.
#   bash experiments/run_all.sh [EXPERIMENT ...]     (default: all, cheapest first)
# Data: $JAXDL_DATA_DIR if set, else jaxdl's download folder (downloaded on first use).
set -euo pipefail
cd "$(dirname "$0")/.."
mkdir -p runs
runs=("$@")
if [[ ${#runs[@]} -eq 0 ]]; then
  runs=(linear_regression circles blobs custom_images mnist_simple_cnn autoencoder fashion_mnist fashion_cnn
        "best --dataset mnist" "autoencoder --best" mnist_mlp_to_cnn "best --dataset fashion_mnist" mnist_batchnorm)
fi
for run in "${runs[@]}"; do
  read -r script args <<<"$run"
  name=$script${args:+_${args##*[ -]}}
  echo "=== $name ($(date -u +%H:%M:%S))"
  python3 "experiments/$script.py" $args --workdir "runs/$name" --overwrite 2>&1 | tee "runs/$name.log" \
    | grep -v -e '^W0000' -e '^I0000'
  mkdir -p "experiments/results/$name"
  cp "runs/$name"/results.json "runs/$name"/*.png "experiments/results/$name/" 2>/dev/null || true
  grep -v -e '^W0000' -e '^I0000' -e 'batch/s' "runs/$name.log" > "experiments/results/$name/output.txt" || true
done
