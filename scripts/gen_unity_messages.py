"""Generate the Unity client's message classes from the daemon's proto.

    python scripts/gen_unity_messages.py [OUT]   (default clients/unity/Runtime/Messages.cs)

One C# class per proto message, with the proto's comments as XML docs, fields in the
bridge's JSON mapping (proto field names, 64-bit integers as strings, enums as their
names, timestamps as RFC 3339 strings), `FromJson` and `ToJson`. The file is committed
(Unity has no codegen step); tests/test_unity_messages.py fails when it drifts from the
proto. Needs grpcio-tools (the dev extra).
"""

from __future__ import annotations

import sys
import tempfile
from pathlib import Path

from google.protobuf import descriptor_pb2
from grpc_tools import protoc

ROOT = Path(__file__).resolve().parents[1]
PROTO = "npc_runtime/v1/npc_runtime.proto"
DEFAULT_OUT = ROOT / "clients" / "unity" / "Runtime" / "Messages.cs"
# C# names that differ from the proto's, to keep the client's public API.
RENAMES = {"Final": "FinalReply"}

F = descriptor_pb2.FieldDescriptorProto
INT32 = {F.TYPE_INT32, F.TYPE_SINT32, F.TYPE_SFIXED32}
INT64 = {F.TYPE_INT64, F.TYPE_SINT64, F.TYPE_SFIXED64, F.TYPE_UINT64, F.TYPE_FIXED64}
UINT32 = {F.TYPE_UINT32, F.TYPE_FIXED32}
FLOAT = {F.TYPE_DOUBLE, F.TYPE_FLOAT}
TIMESTAMP = ".google.protobuf.Timestamp"
METHODS = """
        /// <summary>From the bridge's JSON (null: null).</summary>
        public static {name} FromJson(Dictionary<string, object> obj)
        {{
            if (obj == null) return null;
            var m = new {name}();
{reads}            return m;
        }}

        /// <summary>The bridge's JSON; fields at their defaults are left out.</summary>
        public Dictionary<string, object> ToJson()
        {{
            var d = new Dictionary<string, object>();
{writes}            return d;
        }}"""


def load(proto_root: Path) -> tuple[descriptor_pb2.FileDescriptorProto, str]:
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "set.pb"
        include = str(Path(protoc.__file__).parent / "_proto")
        status = protoc.main(
            [
                "protoc",
                f"-I{proto_root}",
                f"-I{include}",
                "--include_source_info",
                f"--descriptor_set_out={out}",
                str(proto_root / PROTO),
            ]  # fmt: skip
        )
        if status != 0:
            raise SystemExit(f"protoc failed on {PROTO}")
        files = descriptor_pb2.FileDescriptorSet.FromString(out.read_bytes()).file
    return files[0], files[0].package


def pascal(name: str) -> str:
    return "".join(part[:1].upper() + part[1:] for part in name.split("_"))


def xml(text: str) -> str:
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def doc(comment: str, indent: str) -> list[str]:
    lines = [line.strip() for line in comment.strip().splitlines()]
    if not lines:
        return []
    body = [f"{indent}/// {xml(line)}".rstrip() for line in lines]
    return [f"{indent}/// <summary>", *body, f"{indent}/// </summary>"]


class Generator:
    def __init__(self, file: descriptor_pb2.FileDescriptorProto, package: str):
        self.file = file
        self.prefix = f".{package}."
        self.comments: dict[tuple[int, ...], str] = {
            tuple(loc.path): loc.leading_comments for loc in file.source_code_info.location
        }
        self.enums = {self.prefix + e.name: e for e in file.enum_type}

    def class_name(self, type_name: str) -> str:
        name = type_name.removeprefix(self.prefix)
        return RENAMES.get(name, name)

    def field_type(self, f: F) -> tuple[str, str]:
        """The C# type of one value of `f` and its default."""
        optional = f.proto3_optional
        if f.type == F.TYPE_STRING or f.type == F.TYPE_BYTES:
            return "string", "null" if optional else '""'
        if f.type == F.TYPE_BOOL:
            return ("bool?", "null") if optional else ("bool", "false")
        if f.type in INT32:
            return ("int?", "null") if optional else ("int", "0")
        if f.type in UINT32 or f.type in INT64:
            return ("long?", "null") if optional else ("long", "0")
        if f.type in FLOAT:
            return ("double?", "null") if optional else ("double", "0")
        if f.type == F.TYPE_ENUM:
            zero = self.enums[f.type_name].value[0].name
            return "string", "null" if optional else f'"{zero}"'
        if f.type_name == TIMESTAMP:
            return "string", '""'
        return self.class_name(f.type_name), "null"

    def read(self, f: F, source: str) -> str:
        """C# reading one value of `f` from `source` (an object)."""
        if f.type in (F.TYPE_STRING, F.TYPE_BYTES, F.TYPE_ENUM) or f.type_name == TIMESTAMP:
            return f"JsonExt.AsString({source})"
        if f.type == F.TYPE_BOOL:
            return f"JsonExt.AsBool({source})"
        if f.type in INT32:
            return f"(int)Json.AsLong({source})"
        if f.type in UINT32 or f.type in INT64:
            return f"JsonExt.AsLong({source})"
        if f.type in FLOAT:
            return f"JsonExt.AsDouble({source})"
        return f"{self.class_name(f.type_name)}.FromJson({source} as Dictionary<string, object>)"

    def write(self, f: F, value: str) -> str:
        """C# turning one value of `f` into a JSON value."""
        if f.type in INT64:  # proto3 JSON: 64-bit integers are strings
            return f"{value}.ToString(CultureInfo.InvariantCulture)"
        if f.type == F.TYPE_MESSAGE and f.type_name != TIMESTAMP:
            return f"{value}.ToJson()"
        return value

    def message(self, index: int, m: descriptor_pb2.DescriptorProto) -> list[str]:
        name = self.class_name(self.prefix + m.name)
        out = doc(self.comments.get((4, index), ""), "    ")
        if not out:
            out = [f"    /// <summary>proto {m.name}.</summary>"]
        out.append(f"    public sealed partial class {name}")
        out.append("    {")
        reads, writes = [], []
        for i, f in enumerate(m.field):
            member = pascal(f.name)
            if member == name:
                raise SystemExit(f"{m.name}.{f.name}: a C# member cannot be named as its class")
            one, default = self.field_type(f)
            comment = self.comments.get((4, index, 2, i), "")
            if f.type == F.TYPE_ENUM:
                values = ", ".join(v.name for v in self.enums[f.type_name].value[1:])
                comment = (comment + "\n" if comment else "") + f"One of: {values}."
            out += doc(comment, "        ")
            key = f'"{f.name}"'
            if f.label == F.LABEL_REPEATED:
                out.append(f"        public List<{one}> {member} = new List<{one}>();")
                reads.append(
                    f"            foreach (var v in JsonExt.AsList(obj.Get({key}))) "
                    f"m.{member}.Add({self.read(f, 'v')});"
                )
                writes.append(
                    f"            if ({member}.Count > 0) d[{key}] = "
                    f"{member}.Select(v => (object){self.write(f, 'v')}).ToList();"
                )
                continue
            out.append(f"        public {one} {member} = {default};")
            present = f"obj.ContainsKey({key}) && obj[{key}] != null"
            reads.append(f"            if ({present}) m.{member} = {self.read(f, f'obj[{key}]')};")
            value = f"{member}.Value" if one.endswith("?") else member
            if default in ("null", '""', "0", "false"):
                test = {"null": f"{member} != null", '""': f"!string.IsNullOrEmpty({member})",
                        "0": f"{member} != 0", "false": member}[default]  # fmt: skip
            else:
                test = f"{member} != {default}"
            writes.append(f"            if ({test}) d[{key}] = {self.write(f, value)};")
        reads_text = "".join(line + "\n" for line in reads)
        writes_text = "".join(line + "\n" for line in writes)
        out += METHODS.format(name=name, reads=reads_text, writes=writes_text).split("\n")
        out.append("    }")
        return out

    def generate(self) -> str:
        out = [
            f"// Generated from protos/{PROTO} by scripts/gen_unity_messages.py: do not edit.",
            "// tests/test_unity_messages.py fails when this file drifts from the proto.",
            "using System.Collections.Generic;",
            "using System.Globalization;",
            "using System.Linq;",
            "",
            "namespace NpcRuntime",
            "{",
        ]
        for index, m in enumerate(self.file.message_type):
            if index:
                out.append("")
            out += self.message(index, m)
        out.append("}")
        return "\n".join(out) + "\n"


def main(argv: list[str]) -> int:
    out = Path(argv[0]) if argv else DEFAULT_OUT
    file, package = load(ROOT / "protos")
    out.write_text(Generator(file, package).generate(), encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
