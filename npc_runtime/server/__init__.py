"""The daemon: the npc_runtime.v1 gRPC API over a live cast, with durable sessions."""
