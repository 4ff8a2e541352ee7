"""The ``.sgir`` file: a versioned, self-describing container for the integer IR.

Layout: a ZIP archive holding ``ir.json`` (format name, version, model configuration, metadata and
the op list with attributes, declared widths and a manifest of every tensor: file, dtype, shape,
sha256) and one ``.npy`` file per tensor under ``tensors/``. Writing is deterministic (fixed
timestamps, sorted JSON, fixed entry order): the same IR gives the same bytes.

Loading trusts nothing: it checks the archive, the version, the schema of every op, each tensor's
dtype, shape and hash, the graph's structural rules and, last, that every declared width is at least
what the static range analysis proves necessary. Any failure raises :class:`IRFileError` naming the
file and what is wrong.
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import zipfile

import numpy as np

from spikegate.errors import SpikegateError
from spikegate.io import atomic_path

from .graph import OP_SPEC, Graph, GraphError, Op, validate
from .ranges import RangeError, check_widths

FORMAT = "sgir"
VERSION = 1
_EPOCH = (1980, 1, 1, 0, 0, 0)


class IRFileError(SpikegateError):
    """An .sgir file is missing, truncated, tampered with or otherwise invalid."""


def _npy_bytes(a: np.ndarray) -> bytes:
    buf = io.BytesIO()
    np.save(buf, np.ascontiguousarray(a), allow_pickle=False)
    return buf.getvalue()


def _jsonable(v):
    if isinstance(v, np.generic):
        return v.item()
    if isinstance(v, np.ndarray):
        return v.tolist()
    if isinstance(v, dict):
        return {str(k): _jsonable(x) for k, x in v.items()}
    if isinstance(v, (list, tuple)):
        return [_jsonable(x) for x in v]
    return v


def to_bytes(g: Graph) -> bytes:
    validate(g, integer=True)
    entries: list[tuple[str, bytes]] = []
    ops_json = []
    for i, o in enumerate(g.ops):
        params = {}
        for k in sorted(o.params):
            a = np.asarray(o.params[k], dtype=np.int64)
            data = _npy_bytes(a)
            fname = f"tensors/{i:04d}_{k}.npy"
            entries.append((fname, data))
            params[k] = {"file": fname, "dtype": "int64", "shape": list(a.shape),
                         "sha256": hashlib.sha256(data).hexdigest()}
        ops_json.append({"name": o.name, "kind": o.kind, "inputs": list(o.inputs), "shape": list(o.shape),
                         "attrs": _jsonable(o.attrs), "widths": dict(sorted(o.widths.items())),
                         "params": params})
    header = {"format": FORMAT, "version": VERSION,
              "semantics": "docs/integer-semantics.md (spikegate IR version 1)",
              "meta": _jsonable(g.meta), "ops": ops_json}
    hbytes = json.dumps(header, indent=1, sort_keys=True).encode()
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", compression=zipfile.ZIP_DEFLATED) as z:
        for name, data in [("ir.json", hbytes)] + entries:
            zi = zipfile.ZipInfo(name, date_time=_EPOCH)
            zi.compress_type = zipfile.ZIP_DEFLATED
            zi.external_attr = 0o644 << 16
            z.writestr(zi, data)
    return buf.getvalue()


def save_ir(g: Graph, path: str) -> None:
    data = to_bytes(g)
    with atomic_path(path, ".sgir") as tmp:
        with open(tmp, "wb") as f:
            f.write(data)


def _need(cond: bool, path: str, msg: str) -> None:
    if not cond:
        raise IRFileError(f"{path}: {msg}")


def is_ir_file(path: str) -> bool:
    """Whether ``path`` is an IR file (by its contents, never by its name): a ZIP archive with an
    ``ir.json`` header. Checkpoints, embedded model names and missing files are not."""
    if not os.path.isfile(path) or not zipfile.is_zipfile(path):
        return False
    try:
        with zipfile.ZipFile(path) as z:
            return "ir.json" in z.namelist()
    except (zipfile.BadZipFile, OSError):
        return False


def load_ir(path: str) -> Graph:
    _need(os.path.exists(path), path, "no such file")
    _need(os.path.isfile(path), path, "not a file")
    try:
        z = zipfile.ZipFile(path)
    except zipfile.BadZipFile:
        raise IRFileError(f"{path}: not an .sgir file, or truncated (no valid archive directory)") from None
    with z:
        names = set(z.namelist())
        _need("ir.json" in names, path, "no ir.json header inside: not an .sgir file")
        try:
            header = json.loads(z.read("ir.json"))
        except (zipfile.BadZipFile, OSError, EOFError) as e:
            raise IRFileError(f"{path}: ir.json is corrupt ({e})") from None
        except (json.JSONDecodeError, UnicodeDecodeError) as e:
            raise IRFileError(f"{path}: ir.json is not valid JSON ({e})") from None
        _need(isinstance(header, dict) and header.get("format") == FORMAT, path,
              f"format is {header.get('format') if isinstance(header, dict) else None!r}, not {FORMAT!r}")
        ver = header.get("version")
        _need(ver == VERSION, path, f"IR version {ver!r}; this spikegate reads version {VERSION}"
              + (" (written by a newer spikegate: upgrade)" if isinstance(ver, int) and ver > VERSION else ""))
        ops_json = header.get("ops")
        _need(isinstance(ops_json, list) and ops_json, path, "header has no op list")
        meta = header.get("meta")
        _need(isinstance(meta, dict), path, "header has no meta object")
        ops = []
        for i, oj in enumerate(ops_json):
            ops.append(_load_op(z, names, oj, i, path))
    g = Graph(ops, meta=meta)
    try:
        validate(g, integer=True)
    except GraphError as e:
        raise IRFileError(f"{path}: {e}") from None
    try:
        check_widths(g)
    except RangeError as e:
        raise IRFileError(f"{path}: {e}") from None
    return g


def _load_op(z: zipfile.ZipFile, names: set, oj, i: int, path: str) -> Op:
    where = f"op #{i}"
    _need(isinstance(oj, dict), path, f"{where} is not an object")
    for key, typ in (("name", str), ("kind", str), ("inputs", list), ("shape", list), ("attrs", dict),
                     ("widths", dict), ("params", dict)):
        _need(isinstance(oj.get(key), typ), path, f"{where}: field {key!r} missing or not a {typ.__name__}")
    where = f"op {oj['name']}"
    _need(oj["kind"] in OP_SPEC, path, f"{where}: unknown op kind {oj['kind']!r}")
    _need(all(isinstance(s, int) and s > 0 for s in oj["shape"]), path, f"{where}: bad shape {oj['shape']}")
    _need(all(isinstance(v, int) and 1 <= v <= 64 for v in oj["widths"].values()), path,
          f"{where}: widths must be integers in 1..64")
    params = {}
    for k, pj in oj["params"].items():
        _need(isinstance(pj, dict) and {"file", "dtype", "shape", "sha256"} <= set(pj), path,
              f"{where}: parameter {k} has an incomplete manifest entry")
        _need(pj["file"] in names, path, f"{where}: tensor file {pj['file']} is missing (truncated file?)")
        try:
            data = z.read(pj["file"])
        except (zipfile.BadZipFile, OSError, EOFError, zlib_error()) as e:
            raise IRFileError(f"{path}: {where}: tensor {k} is corrupt ({e})") from None
        _need(hashlib.sha256(data).hexdigest() == pj["sha256"], path,
              f"{where}: tensor {k} does not match its sha256 (file modified or damaged)")
        try:
            a = np.load(io.BytesIO(data), allow_pickle=False)
        except ValueError as e:
            raise IRFileError(f"{path}: {where}: tensor {k} is not a plain array ({e})") from None
        _need(str(a.dtype) == pj["dtype"] == "int64", path,
              f"{where}: tensor {k} has dtype {a.dtype}, declared {pj['dtype']}; the IR stores int64")
        _need(list(a.shape) == list(pj["shape"]), path,
              f"{where}: tensor {k} has shape {list(a.shape)}, declared {pj['shape']}")
        params[k] = a
    return Op(oj["name"], oj["kind"], list(oj["inputs"]), tuple(oj["shape"]), dict(oj["attrs"]), params,
              {k: int(v) for k, v in oj["widths"].items()})


def zlib_error():
    import zlib
    return zlib.error
