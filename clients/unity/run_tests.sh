#!/usr/bin/env bash
# The Unity client's NUnit tests, outside Unity: compile Runtime and Tests with Mono's
# mcs (the Unity-only files, inside #if UNITY_5_3_OR_NEWER, are compiled once more against
# CompileCheck~'s declarations of the UnityEngine API they use, to catch errors there),
# start a daemon on loopback (embedded model, bundled village cast, free ports), run
# nunit-console against its bridge (DaemonTests start and kill daemons of their own
# through NpcRuntimeDaemon), stop the daemon.
# Needs: mono-mcs mono-runtime nunit-console libnunit-cil-dev; npc-runtime ($NPC_RUNTIME,
# default .venv/bin/npc-runtime, else the one on PATH).
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
root="$(cd "$here/../.." && pwd)"
npc="${NPC_RUNTIME:-}"
if [[ -z "$npc" ]]; then
  if [[ -x "$root/.venv/bin/npc-runtime" ]]; then npc="$root/.venv/bin/npc-runtime"; else npc="$(command -v npc-runtime)"; fi
fi
npc="$(cd "$(dirname "$npc")" && pwd)/$(basename "$npc")"
python="$(dirname "$npc")/python"
[[ -x "$python" ]] || python="$(command -v python3)"

work="$(mktemp -d)"
daemon=""
cleanup() {
  if [[ -n "$daemon" ]] && kill -0 "$daemon" 2>/dev/null; then
    kill -TERM "$daemon" 2>/dev/null || true
    for _ in $(seq 1 100); do kill -0 "$daemon" 2>/dev/null || break; sleep 0.1; done
    kill -KILL "$daemon" 2>/dev/null || true
  fi
  rm -rf "$work"
}
trap cleanup EXIT

# Build (C# 7.2, no Unity): the library, then the tests against it.
nunit_dll="$(ls /usr/lib/cli/nunit.framework-2.6*/nunit.framework.dll | head -n1)"
mapfile -t runtime_src < <(find "$here/Runtime" -name '*.cs' | sort)
mcs -langversion:7.2 -warnaserror+ -target:library -out:"$work/NpcRuntime.Runtime.dll" "${runtime_src[@]}"
mcs -langversion:7.2 -warnaserror+ -target:library -out:"$work/UnityEngine.dll" "$here/CompileCheck~/UnityEngine.cs"
mcs -langversion:7.2 -warnaserror+ -target:library -define:UNITY_5_3_OR_NEWER -r:"$work/UnityEngine.dll" \
  -out:"$work/NpcRuntime.Runtime.Unity.dll" "${runtime_src[@]}"
for sample in "$here"/Samples~/*/; do
  mcs -langversion:7.2 -warnaserror+ -target:library -define:UNITY_5_3_OR_NEWER -r:"$work/UnityEngine.dll" \
    -r:"$work/NpcRuntime.Runtime.Unity.dll" -out:"$work/Sample.dll" "$sample"*.cs
done
mcs -langversion:7.2 -target:library -out:"$work/NpcRuntime.Tests.dll" \
  -r:"$work/NpcRuntime.Runtime.dll" -r:"$nunit_dll" "$here"/Tests/*.cs
cp "$nunit_dll" "$work/"

# Two free loopback ports.
read -r port bridge_port < <("$python" - <<'PY'
import socket
socks = [socket.socket() for _ in range(2)]
for s in socks:
    s.bind(("127.0.0.1", 0))
print(*(s.getsockname()[1] for s in socks))
for s in socks:
    s.close()
PY
)

"$npc" serve --data-dir "$work/data" --port "$port" --bridge-port "$bridge_port" --no-metrics \
  >"$work/daemon.log" 2>&1 &
daemon=$!
for _ in $(seq 1 600); do
  if ! kill -0 "$daemon" 2>/dev/null; then
    echo "the daemon exited before its bridge answered:" >&2; cat "$work/daemon.log" >&2; exit 1
  fi
  if "$python" -c "import socket,sys; socket.create_connection(('127.0.0.1', int(sys.argv[1])), 1).close()" \
      "$bridge_port" 2>/dev/null; then
    break
  fi
  sleep 0.5
done

export NPC_RUNTIME_BRIDGE_URL="ws://127.0.0.1:$bridge_port"
export NPC_RUNTIME_EXE="$npc"
export NPC_RUNTIME_TEST_MAX_TOKENS="${NPC_RUNTIME_TEST_MAX_TOKENS:-8}"
status=0
(cd "$work" && timeout 600 nunit-console -nologo -noshadow -labels \
  -xml="$work/TestResult.xml" NpcRuntime.Tests.dll) || status=$?
if [[ $status -ne 0 ]]; then
  echo "--- daemon log ---" >&2; tail -n 50 "$work/daemon.log" >&2
fi
exit $status
