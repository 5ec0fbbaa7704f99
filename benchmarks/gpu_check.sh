#!/usr/bin/env bash
# The scale-out features on a CUDA machine, in under 8 minutes:
#   1. the test files of multi-process training and of --precision/--compile, with their
#      training on cuda (FLOWMATCH_TEST_DEVICE=cuda; the two-GPU NCCL test runs where two
#      GPUs are visible, the gloo tests run as on the CPU);
#   2. the Fashion-MNIST U-Net's images/s for fp32, bf16 and bf16 + --compile (one process,
#      batch 256, 16 channels and 2 levels as in docs/benchmarks.md, and 64 channels).
# Usage: bash benchmarks/gpu_check.sh   (from the repository root, with the venv active or
# PYTHON set; the Fashion-MNIST files under /usr/share/datasets/fashion-mnist or
# $FLOWMATCH_FASHION_MNIST)
set -uo pipefail
PYTHON=${PYTHON:-python}
cd "$(dirname "$0")/.."
"$PYTHON" -c "import torch; print('torch', torch.__version__, 'cuda', torch.version.cuda, \
  [torch.cuda.get_device_name(i) for i in range(torch.cuda.device_count())])"
status=0
FLOWMATCH_TEST_DEVICE=cuda timeout 300 "$PYTHON" -m pytest -q -p no:cacheprovider -rs \
  tests/training/test_precision.py tests/training/test_distributed.py || status=1
echo
echo "| Fashion-MNIST U-Net, 1 GPU | channels | images/s |"
echo "|---|--:|--:|"
for channels in 16 64; do
  for setting in "fp32" "bf16" "bf16 --compile"; do
    out=$(mktemp -d)
    # shellcheck disable=SC2086
    if timeout 120 "$PYTHON" -m flowmatch train --out "$out/run" --data fashion-mnist \
        --model unet --channels "$channels" --levels 2 --batch-size 256 --steps 300 \
        --log-every 50 --checkpoint-every 300 --device cuda \
        --precision ${setting% --compile} $([[ $setting == *compile* ]] && echo --compile) \
        > /dev/null 2> "$out/err"; then
      "$PYTHON" - "$out/run/metrics.jsonl" "$setting" "$channels" <<'PY'
import json, statistics, sys
rows = [json.loads(line) for line in open(sys.argv[1])][1:]  # the first holds start-up
rate = statistics.median(r["steps_per_s"] for r in rows) * 256
print(f"| {sys.argv[2]} | {sys.argv[3]} | {rate:,.0f} |")
PY
    else
      echo "| $setting | $channels | failed: $(tail -1 "$out/err") |"
      status=1
    fi
    rm -rf "$out"
  done
done
exit $status
