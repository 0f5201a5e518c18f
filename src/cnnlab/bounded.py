"""Bounded reading of untrusted files: a regular file, of a sane size, parsed within limits.

    >>> text = read_text("c.yaml", "config file", MAX_CONFIG_BYTES)   # FIFOs, devices refused
    >>> data = load_yaml(text, "c.yaml")       # duplicate keys, alias bombs, deep nesting refused

Every check happens before anything large is allocated: the kind of file from its
`stat` (opening a FIFO would block), its size against the bound for its kind, and a
YAML document's size once its aliases are expanded, counted on the parsed node graph
(shared nodes counted once per use, with a memo) before a Python object is built. A
"billion laughs" file is thus refused in milliseconds.
"""
from __future__ import annotations

import os
import stat
from pathlib import Path

import yaml

from .errors import ConfigError

MAX_CONFIG_BYTES = 4 * 2**20      # config, spec and experiment YAML files
MAX_JSON_BYTES = 64 * 2**20       # metrics.json, history.json, experiment.json
MAX_YAML_NODES = 200_000          # scalars + collections, aliases expanded
MAX_YAML_DEPTH = 64
MAX_YAML_ALIASES = 1_000


def check_regular(path, what: str, error=ConfigError) -> int:
    """The size of `path` if it is a regular file (a symlink to one is fine), else `error`."""
    path = Path(path)
    try:
        st = os.stat(path)
    except FileNotFoundError:
        raise error(f"{what.capitalize()} not found: {path}.") from None
    except OSError as err:
        raise error(f"Cannot read {what} {path}: {err.strerror or err}.") from None
    if stat.S_ISDIR(st.st_mode):
        raise error(f"Expected a {what}. Received a directory: {path}.")
    if not stat.S_ISREG(st.st_mode):
        raise error(f"Cannot read {what} {path}: it is not a regular file (a FIFO, socket or "
                    "device). Expected a file.")
    return st.st_size


def read_bytes(path, what: str, limit: int, error=ConfigError) -> bytes:
    """The bytes of a regular file of at most `limit` bytes, else `error`."""
    size = check_regular(path, what, error)
    if size > limit:
        raise error(f"{what.capitalize()} {path} is {size:,} bytes. Expected at most {limit:,} "
                    f"bytes for a {what}.")
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC)
    except OSError as err:
        raise error(f"Cannot read {what} {path}: {err.strerror or err}.") from None
    try:
        if not stat.S_ISREG(os.fstat(fd).st_mode):  # replaced since the stat
            raise error(f"Cannot read {what} {path}: it is not a regular file. Expected a file.")
        chunks, total = [], 0
        while True:
            chunk = os.read(fd, min(1 << 20, limit + 1 - total))
            if not chunk:
                break
            chunks.append(chunk)
            total += len(chunk)
            if total > limit:  # grew since the stat
                raise error(f"{what.capitalize()} {path} is more than {limit:,} bytes. Expected "
                            f"at most {limit:,} bytes for a {what}.")
    except OSError as err:
        raise error(f"Cannot read {what} {path}: {err.strerror or err}.") from None
    finally:
        os.close(fd)
    return b"".join(chunks)


def read_text(path, what: str, limit: int, error=ConfigError) -> str:
    data = read_bytes(path, what, limit, error)
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as err:
        raise error(f"Cannot read {what} {path}: {err}.") from None


# -- YAML ----------------------------------------------------------------------------------

class _Refused(yaml.YAMLError):
    def __init__(self, problem: str, mark=None):
        super().__init__(problem)
        self.problem, self.problem_mark = problem, mark


class _BoundedLoader(yaml.SafeLoader):
    """SafeLoader that counts aliases and depth while composing, and refuses duplicate keys."""

    def __init__(self, stream):
        super().__init__(stream)
        self._aliases = 0
        self._depth = 0

    def compose_node(self, parent, index):
        if self.check_event(yaml.AliasEvent):
            self._aliases += 1
            if self._aliases > MAX_YAML_ALIASES:
                raise _Refused(f"more than {MAX_YAML_ALIASES} aliases (expected a config, not "
                               "an alias bomb)", self.peek_event().start_mark)
        self._depth += 1
        try:
            if self._depth > MAX_YAML_DEPTH:
                raise _Refused(f"nested more than {MAX_YAML_DEPTH} levels deep",
                               self.peek_event().start_mark)
            return super().compose_node(parent, index)
        finally:
            self._depth -= 1

    def construct_mapping(self, node, deep=False):
        if isinstance(node, yaml.MappingNode):
            first = {}
            for key_node, _ in node.value:
                if not isinstance(key_node, yaml.ScalarNode) or key_node.tag == "tag:yaml.org,2002:merge":
                    continue
                key = self.construct_object(key_node)
                try:
                    line = first.setdefault(key, key_node.start_mark.line + 1)
                except TypeError:
                    continue
                if line != key_node.start_mark.line + 1:
                    raise _Refused(f"duplicate key {key!r} (first at line {line}, again at line "
                                   f"{key_node.start_mark.line + 1})", key_node.start_mark)
        return super().construct_mapping(node, deep=deep)


def _expanded_size(node, memo: dict, active: set) -> int:
    """Nodes in the document with every alias expanded, computed on the shared node graph."""
    key = id(node)
    if key in memo:
        return memo[key]
    if key in active:
        raise _Refused("a recursive alias (a node that contains itself)", node.start_mark)
    active.add(key)
    n = 1
    if isinstance(node, yaml.SequenceNode):
        for child in node.value:
            n += _expanded_size(child, memo, active)
            if n > MAX_YAML_NODES:
                break
    elif isinstance(node, yaml.MappingNode):
        for k, v in node.value:
            n += _expanded_size(k, memo, active) + _expanded_size(v, memo, active)
            if n > MAX_YAML_NODES:
                break
    active.discard(key)
    memo[key] = n
    return n


def load_yaml(text: str, source: str = "<string>"):
    """yaml.safe_load, bounded: ConfigError (with the line) for a syntax error, a duplicate
    key, too many aliases, too deep, or more than MAX_YAML_NODES nodes once expanded."""
    if len(text) > MAX_CONFIG_BYTES:
        raise ConfigError(f"Invalid YAML in {source}: {len(text):,} characters. Expected at "
                          f"most {MAX_CONFIG_BYTES:,} for a YAML config.")
    loader = None
    try:
        loader = _BoundedLoader(text)  # (its reader refuses control characters at once)
        node = loader.get_single_node()
        if node is None:
            return None
        size = _expanded_size(node, {}, set())
        if size > MAX_YAML_NODES:
            raise _Refused(f"more than {MAX_YAML_NODES:,} values once its aliases are expanded "
                           "(expected a config, not an alias bomb)", node.start_mark)
        return loader.construct_document(node)
    except yaml.YAMLError as err:
        mark = getattr(err, "problem_mark", None)
        where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        problem = getattr(err, "problem", None) or str(err)
        raise ConfigError(f"Invalid YAML in {source}{where}: {problem}.") from None
    except RecursionError:
        raise ConfigError(f"Invalid YAML in {source}: nested too deeply.") from None
    finally:
        if loader is not None:
            loader.dispose()


# -- array files: headers against the file's real size, before allocating ---------------------

DEFLATE_MAX_RATIO = 1032  # deflate's largest expansion: a header claiming more is a lie


def _error(kind):
    from .errors import DataError
    return kind or DataError


def check_npz_headers(path, names, error=None) -> None:
    """Each array `names` of the .npz at `path`: its .npy header's shape and dtype must need
    exactly the bytes its zip entry holds, and the entry no more than its compressed size
    can expand to. Reads only the headers; DataError (or `error`) naming the array."""
    import zipfile

    import numpy as np
    err = _error(error)
    with zipfile.ZipFile(path) as zf:
        infos = {i.filename[:-4] if i.filename.endswith(".npy") else i.filename: i
                 for i in zf.infolist()}
        for name in names:
            info = infos.get(name)
            if info is None:
                continue  # reported as missing by the reader
            limit = (info.compress_size if info.compress_type == zipfile.ZIP_STORED
                     else info.compress_size * DEFLATE_MAX_RATIO + 1024)
            if info.file_size > limit:
                raise err(f"{path}: array {name} claims {info.file_size:,} bytes, more than its "
                          f"{info.compress_size:,} compressed bytes can hold. The file is corrupt.")
            with zf.open(info) as f:
                try:
                    version = np.lib.format.read_magic(f)
                    if version == (1, 0):
                        shape, _, dtype = np.lib.format.read_array_header_1_0(f)
                    else:
                        shape, _, dtype = np.lib.format.read_array_header_2_0(f)
                    header = f.tell()
                except (ValueError, OSError, EOFError) as e:
                    raise err(f"{path}: array {name} has no valid .npy header ({e}).") from None
            if dtype.hasobject:
                continue  # refused by np.load(allow_pickle=False), with its message
            need = header + int(np.prod(shape, dtype=object)) * dtype.itemsize
            if need != info.file_size:
                raise err(f"{path}: array {name} claims shape {tuple(shape)} of {dtype} "
                          f"({need - header:,} bytes), but its entry holds "
                          f"{info.file_size - header:,} bytes. The file is truncated or corrupt.")


def check_idx_size(path, dims, header: int, gzipped: bool, error=None) -> None:
    """An IDX header's dimensions against the file's real size, before the data is read."""
    import numpy as np
    size = int(np.prod(dims, dtype=object))
    actual = os.stat(path).st_size
    if gzipped:
        if size > actual * DEFLATE_MAX_RATIO:
            raise _error(error)(f"{path}: IDX header claims {size:,} bytes of data {tuple(dims)}, "
                                f"more than {actual:,} gzipped bytes can hold. The file is corrupt.")
    elif header + size > actual:  # (trailing bytes are the reader's to report)
        raise _error(error)(f"{path}: truncated IDX file. Expected {size} bytes of data "
                            f"{tuple(dims)}. Received {max(0, actual - header)}.")
