#!/usr/bin/env bash
# Regenerate the Python code for protos/ (needs the dev extra: grpcio-tools).
# The generated modules are committed, so that `pip install -e .` imports without a
# codegen step; tests/test_server_proto.py fails when they drift from the .proto.
# Usage: scripts/gen_protos.sh [OUT_DIR]   (default: the repository root)
set -euo pipefail
cd "$(dirname "$0")/.."
out="${1:-.}"
python -m grpc_tools.protoc -I protos \
  --python_out="$out" --grpc_python_out="$out" --pyi_out="$out" \
  protos/npc_runtime/v1/npc_runtime.proto
