"""Generated gRPC code for the npc_runtime.v1 API (protos/npc_runtime/v1/npc_runtime.proto).

Regenerate with scripts/gen_protos.sh; committed so the package imports with no codegen.
"""
