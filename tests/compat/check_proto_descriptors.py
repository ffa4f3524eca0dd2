#!/usr/bin/env python3
"""Check that OrbitMQ's .proto files match the official RocketMQ 5 wire contract.

Reference: the descriptors compiled into the official Python client
``rocketmq-python-client==5.1.2`` (modules ``rocketmq.grpc_protocol.definition_pb2``
and ``rocketmq.grpc_protocol.service_pb2``; generated from apache/rocketmq-apis ~2.1.2).

Ours: ``core/proto/apache/rocketmq/v2/{definition,service}.proto``, compiled with
grpcio-tools' bundled protoc (no system protoc needed) into a FileDescriptorSet.

Compared, in both directions, by fully-qualified name:
  * messages (nested ones too): file, map-entry flag, real oneofs, and per field
    name, number, type, type_name (fully qualified), label, proto3 `optional`,
    oneof membership;
  * enums (nested ones too): file, value names and numbers;
  * services: methods with input/output type and client/server streaming flags;
  * per file: package, syntax and imports (compared by base name, because the
    official package flattens file names to ``definition.proto``/``service.proto``).

Anything in the official descriptors that is missing or different in ours is a
mismatch. Items only we have are accepted solely if listed in NEWER_UPSTREAM
(added to apache/rocketmq-apis after 5.1.2 was generated); they are printed as
"extra (newer upstream)" notes. Any other extra is a mismatch.

Usage:
    python tests/compat/check_proto_descriptors.py [PROTO_DIR]     # exit 1 on mismatch
    python -m pytest tests/compat/check_proto_descriptors.py
Requirements: tests/compat/requirements.txt.
Note: importing the official package creates ~/logs/rocketmq_python/ (its logging setup).
"""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[2]
DEFAULT_PROTO_DIR = REPO_ROOT / "core" / "proto"
OUR_PROTO_FILES = (
    "apache/rocketmq/v2/definition.proto",
    "apache/rocketmq/v2/service.proto",
)
OFFICIAL_REQUIREMENT = "rocketmq-python-client==5.1.2"
PACKAGE = "apache.rocketmq.v2"

# Items present in our protos but not in the 5.1.2 descriptors, because upstream
# apache/rocketmq-apis added them later. Key = the exact signature string this
# script prints for the item (so a wrong number/type is NOT accepted); value =
# where upstream introduced it.
NEWER_UPSTREAM: dict[str, str] = {
    "field apache.rocketmq.v2.Settings.client_properties = 9 "
    "(repeated message .apache.rocketmq.v2.Settings.ClientPropertiesEntry)":
        "apache/rocketmq-apis PR #108 'Add client_properties field to Settings' "
        "(merged 2026-05, commit bc8e184, unreleased 2.2.0)",
    "message apache.rocketmq.v2.Settings.ClientPropertiesEntry "
    "(map entry of Settings.client_properties)":
        "apache/rocketmq-apis PR #108 (implicit map<string, string> entry type)",
    "enum value apache.rocketmq.v2.Code.INVALID_CLIENT_PROPERTIES = 40021":
        "apache/rocketmq-apis PR #108 (server rejection code for client_properties)",
}


# --------------------------------------------------------------------------- model


@dataclass(frozen=True)
class FieldSig:
    number: int
    type: str
    type_name: str
    label: str
    proto3_optional: bool
    oneof: str | None  # real (non-synthetic) oneof name

    def shown_label(self) -> str:
        # descriptor label "optional" covers both plain proto3 singular fields and
        # explicit `optional` ones; show them apart.
        if self.label == "optional":
            return "optional" if self.proto3_optional else "singular"
        return self.label

    def describe(self) -> str:
        parts = [f"#{self.number}", self.shown_label(), self.type]
        if self.type_name:
            parts.append(self.type_name)
        if self.oneof:
            parts.append(f"oneof={self.oneof}")
        return " ".join(parts)


@dataclass
class MessageSig:
    file: str
    map_entry: bool
    oneofs: list[str]
    fields: dict[str, FieldSig] = field(default_factory=dict)


@dataclass
class EnumSig:
    file: str
    values: dict[str, int]


@dataclass(frozen=True)
class MethodSig:
    input_type: str
    output_type: str
    client_streaming: bool
    server_streaming: bool

    def describe(self) -> str:
        cs = "stream " if self.client_streaming else ""
        ss = "stream " if self.server_streaming else ""
        return f"({cs}{self.input_type}) returns ({ss}{self.output_type})"


@dataclass
class FileSig:
    package: str
    syntax: str
    deps: list[str]


@dataclass
class Model:
    files: dict[str, FileSig] = field(default_factory=dict)
    messages: dict[str, MessageSig] = field(default_factory=dict)
    enums: dict[str, EnumSig] = field(default_factory=dict)
    services: dict[str, dict[str, MethodSig]] = field(default_factory=dict)
    service_files: dict[str, str] = field(default_factory=dict)


def _enum_name(enum_type, value: int) -> str:
    return enum_type.Name(value)


def build_model(file_protos) -> Model:
    """Flatten FileDescriptorProtos of the apache.rocketmq.v2 files into a Model."""
    from google.protobuf import descriptor_pb2 as d

    FDP = d.FieldDescriptorProto
    files = [f for f in file_protos if f.package == PACKAGE]
    known: set[str] = set()

    def collect(prefix, msgs, enums):
        for e in enums:
            known.add(f"{prefix}.{e.name}")
        for m in msgs:
            fqn = f"{prefix}.{m.name}"
            known.add(fqn)
            collect(fqn, m.nested_type, m.enum_type)

    for f in file_protos:  # include google/protobuf types for resolution
        collect(f".{f.package}" if f.package else "", f.message_type, f.enum_type)

    def resolve(name: str, scope: str) -> str:
        """Normalise a type reference to '.fully.qualified.Name' (proto scoping rules)."""
        if not name or name.startswith("."):
            return name
        parts = scope.split(".")
        while parts:
            cand = ".".join(parts + [name])
            if cand in known:
                return cand
            parts.pop()
        cand = "." + name
        return cand if cand in known else name

    model = Model()
    for f in files:
        base = os.path.basename(f.name)
        model.files[base] = FileSig(
            package=f.package,
            syntax=f.syntax or "proto2",
            deps=[os.path.basename(x) for x in f.dependency],
        )

        def walk_enum(prefix: str, e):
            model.enums[f"{prefix}.{e.name}".lstrip(".")] = EnumSig(
                file=base, values={v.name: v.number for v in e.value}
            )

        def walk_msg(prefix: str, m):
            fqn = f"{prefix}.{m.name}"
            real_oneofs = []
            synthetic = set()
            for idx, o in enumerate(m.oneof_decl):
                members = [x for x in m.field if x.HasField("oneof_index") and x.oneof_index == idx]
                if members and all(x.proto3_optional for x in members):
                    synthetic.add(idx)
                else:
                    real_oneofs.append(o.name)
            sig = MessageSig(file=base, map_entry=m.options.map_entry, oneofs=sorted(real_oneofs))
            for x in m.field:
                oneof = None
                if x.HasField("oneof_index") and x.oneof_index not in synthetic:
                    oneof = m.oneof_decl[x.oneof_index].name
                sig.fields[x.name] = FieldSig(
                    number=x.number,
                    type=_enum_name(FDP.Type, x.type).removeprefix("TYPE_").lower(),
                    type_name=resolve(x.type_name, fqn),
                    label=_enum_name(FDP.Label, x.label).removeprefix("LABEL_").lower(),
                    proto3_optional=x.proto3_optional,
                    oneof=oneof,
                )
            model.messages[fqn.lstrip(".")] = sig
            for n in m.nested_type:
                walk_msg(fqn, n)
            for e in m.enum_type:
                walk_enum(fqn, e)

        for e in f.enum_type:
            walk_enum(f".{f.package}", e)
        for m in f.message_type:
            walk_msg(f".{f.package}", m)
        for s in f.service:
            sfqn = f"{f.package}.{s.name}"
            model.service_files[sfqn] = base
            model.services[sfqn] = {
                me.name: MethodSig(
                    input_type=resolve(me.input_type, f".{f.package}"),
                    output_type=resolve(me.output_type, f".{f.package}"),
                    client_streaming=me.client_streaming,
                    server_streaming=me.server_streaming,
                )
                for me in s.method
            }
    return model


# --------------------------------------------------------------------------- loading


def load_official() -> list:
    """FileDescriptorProtos of the official client's definition.proto and service.proto."""
    from google.protobuf import descriptor_pb2

    # Imported through the installed package, as an application would.
    from rocketmq.grpc_protocol import definition_pb2, service_pb2

    out = []
    for mod in (definition_pb2, service_pb2):
        fd = mod.DESCRIPTOR  # google.protobuf.descriptor.FileDescriptor
        out.append(descriptor_pb2.FileDescriptorProto.FromString(fd.serialized_pb))
    return out


def compile_ours(proto_dir: Path) -> list:
    """Compile our .proto files with grpcio-tools' protoc into FileDescriptorProtos."""
    import grpc_tools
    from google.protobuf import descriptor_pb2

    include = Path(grpc_tools.__file__).resolve().parent / "_proto"
    missing = [p for p in OUR_PROTO_FILES if not (proto_dir / p).is_file()]
    if missing:
        raise FileNotFoundError(f"missing proto files under {proto_dir}: {missing}")
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "ours.pb"
        cmd = [
            sys.executable, "-m", "grpc_tools.protoc",
            f"--descriptor_set_out={out}",
            "--include_imports",
            f"-I{proto_dir}",
            f"-I{include}",
            *OUR_PROTO_FILES,
        ]
        res = subprocess.run(cmd, capture_output=True, text=True, cwd=proto_dir)
        if res.returncode != 0:
            raise RuntimeError(f"protoc failed ({res.returncode}):\n{res.stderr}{res.stdout}")
        fds = descriptor_pb2.FileDescriptorSet.FromString(out.read_bytes())
    return list(fds.file)


# --------------------------------------------------------------------------- comparison


def _field_extra_sig(msg: str, name: str, f: FieldSig) -> str:
    tn = f" {f.type_name}" if f.type_name else ""
    return f"field {msg}.{name} = {f.number} ({f.shown_label()} {f.type}{tn})"


def diff_models(official: Model, ours: Model) -> tuple[list[str], list[str]]:
    """Return (mismatches, notes). Notes are accepted newer-upstream extras."""
    mism: list[str] = []
    extras: list[str] = []

    # files
    for base, of in official.files.items():
        our = ours.files.get(base)
        if our is None:
            mism.append(f"file {base}: missing in ours")
            continue
        if (of.package, of.syntax) != (our.package, our.syntax):
            mism.append(f"file {base}: package/syntax {our.package}/{our.syntax}, "
                        f"official {of.package}/{of.syntax}")
        if sorted(of.deps) != sorted(our.deps):
            mism.append(f"file {base}: imports {sorted(our.deps)}, official {sorted(of.deps)}")
    for base in ours.files.keys() - official.files.keys():
        mism.append(f"file {base}: not in official package")

    # enums
    for name, oe in official.enums.items():
        ue = ours.enums.get(name)
        if ue is None:
            mism.append(f"enum {name}: missing in ours")
            continue
        if oe.file != ue.file:
            mism.append(f"enum {name}: declared in {ue.file}, official in {oe.file}")
        for vname, num in oe.values.items():
            if vname not in ue.values:
                mism.append(f"enum value {name}.{vname} = {num}: missing in ours")
            elif ue.values[vname] != num:
                mism.append(f"enum value {name}.{vname}: ours {ue.values[vname]}, official {num}")
        for vname in ue.values.keys() - oe.values.keys():
            extras.append(f"enum value {name}.{vname} = {ue.values[vname]}")
    for name in ours.enums.keys() - official.enums.keys():
        vals = ", ".join(f"{k}={v}" for k, v in ours.enums[name].values.items())
        extras.append(f"enum {name} {{{vals}}}")

    # messages
    for name, om in official.messages.items():
        um = ours.messages.get(name)
        if um is None:
            mism.append(f"message {name}: missing in ours")
            continue
        if om.file != um.file:
            mism.append(f"message {name}: declared in {um.file}, official in {om.file}")
        if om.map_entry != um.map_entry:
            mism.append(f"message {name}: map_entry ours {um.map_entry}, official {om.map_entry}")
        if om.oneofs != um.oneofs:
            mism.append(f"message {name}: oneofs ours {um.oneofs}, official {om.oneofs}")
        for fname, of in om.fields.items():
            uf = um.fields.get(fname)
            if uf is None:
                mism.append(f"field {name}.{fname} [{of.describe()}]: missing in ours")
            elif uf != of:
                mism.append(f"field {name}.{fname}: ours [{uf.describe()}], official [{of.describe()}]")
        # Same number under another name would also be caught above (missing + extra).
        for fname in um.fields.keys() - om.fields.keys():
            extras.append(_field_extra_sig(name, fname, um.fields[fname]))
    for name in ours.messages.keys() - official.messages.keys():
        m = ours.messages[name]
        if m.map_entry:
            owner, _, entry = name.rpartition(".")
            fname = "".join(
                ("_" + c.lower()) if c.isupper() else c for c in entry.removesuffix("Entry")
            ).lstrip("_")
            extras.append(f"message {name} (map entry of {owner.rpartition('.')[2]}.{fname})")
        else:
            fl = ", ".join(f"{k} {v.describe()}" for k, v in m.fields.items())
            extras.append(f"message {name} {{{fl}}}")

    # services
    for sname, omethods in official.services.items():
        umethods = ours.services.get(sname)
        if umethods is None:
            mism.append(f"service {sname}: missing in ours")
            continue
        if official.service_files[sname] != ours.service_files[sname]:
            mism.append(f"service {sname}: declared in {ours.service_files[sname]}, "
                        f"official in {official.service_files[sname]}")
        for mname, om_ in omethods.items():
            um_ = umethods.get(mname)
            if um_ is None:
                mism.append(f"rpc {sname}.{mname} {om_.describe()}: missing in ours")
            elif um_ != om_:
                mism.append(f"rpc {sname}.{mname}: ours {um_.describe()}, official {om_.describe()}")
        for mname in umethods.keys() - omethods.keys():
            extras.append(f"rpc {sname}.{mname} {umethods[mname].describe()}")
    for sname in ours.services.keys() - official.services.keys():
        extras.append(f"service {sname}")

    notes = []
    for e in sorted(extras):
        if e in NEWER_UPSTREAM:
            notes.append(f"extra (newer upstream): {e} -- {NEWER_UPSTREAM[e]}")
        else:
            mism.append(f"extra not in official 5.1.2 and not known from newer upstream: {e}")
    for key in sorted(NEWER_UPSTREAM.keys() - set(extras)):
        notes.append(f"note: NEWER_UPSTREAM entry not present in ours: {key}")
    return mism, notes


def compare_full(ours_dir: str | os.PathLike = DEFAULT_PROTO_DIR) -> tuple[list[str], list[str]]:
    """(mismatches, notes) for the protos under ours_dir."""
    official = build_model(load_official())
    try:
        ours = build_model(compile_ours(Path(ours_dir).resolve()))
    except (RuntimeError, FileNotFoundError) as exc:
        return [f"cannot compile our protos: {exc}"], []
    return diff_models(official, ours)


def compare(ours_dir: str | os.PathLike = DEFAULT_PROTO_DIR) -> list[str]:
    """Mismatch strings between our protos and rocketmq-python-client 5.1.2 (empty = OK)."""
    return compare_full(ours_dir)[0]


# --------------------------------------------------------------------------- pytest


def test_protos_match_official_client():
    import pytest

    try:
        import grpc_tools  # noqa: F401
        import rocketmq.grpc_protocol  # noqa: F401
    except ImportError as exc:  # fail loudly: a skip would hide a broken contract
        pytest.fail(f"{exc}; install tests/compat/requirements.txt ({OFFICIAL_REQUIREMENT})")
    mismatches = compare(DEFAULT_PROTO_DIR)
    assert not mismatches, "proto mismatches:\n" + "\n".join(mismatches)


# --------------------------------------------------------------------------- CLI


def main(argv: list[str]) -> int:
    proto_dir = Path(argv[1]) if len(argv) > 1 else DEFAULT_PROTO_DIR
    mismatches, notes = compare_full(proto_dir)
    print(f"reference: {OFFICIAL_REQUIREMENT} (rocketmq.grpc_protocol definition_pb2/service_pb2)")
    print(f"ours:      {proto_dir}")
    for n in notes:
        print(n)
    for m in mismatches:
        print(f"MISMATCH: {m}")
    print(f"{len(mismatches)} mismatch(es), {len(notes)} note(s)")
    return 1 if mismatches else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
