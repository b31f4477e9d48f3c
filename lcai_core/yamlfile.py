"""Safe YAML loading that keeps node positions, so every later error can say ``file:line: dotted.path``.

Hostile input is refused fast and with a located message: files over ``MAX_BYTES``, several documents,
duplicate keys, alias bombs (expanded size over ``MAX_NODES``), recursive aliases, absurd nesting.
"""

from __future__ import annotations

import os
from typing import Any

import yaml

from .errors import InputError, Problem, ValidationError

MAX_BYTES = 1024 * 1024
MAX_NODES = 100_000

try:  # libyaml is ~10x faster; fall back to the pure-Python loader when it is absent
    _Loader = yaml.CSafeLoader
except AttributeError:  # pragma: no cover - depends on the PyYAML build
    _Loader = yaml.SafeLoader

Path = tuple  # of str | int


class Document:
    """Parsed YAML data plus the line of every key/item, addressed by path tuples."""

    def __init__(self, data: Any, file: str, lines: dict[Path, int]):
        self.data = data
        self.file = file
        self.lines = lines

    def line_of(self, path: Path) -> int | None:
        """Line of ``path``, or of its nearest ancestor that has one."""
        path = tuple(path)
        while True:
            if path in self.lines:
                return self.lines[path]
            if not path:
                return None
            path = path[:-1]

    def problem(self, path: Path, message: str) -> Problem:
        return Problem(self.file, self.line_of(path), dotted(path), message)


def dotted(path: Path) -> str:
    out = ""
    for part in path:
        if isinstance(part, int):
            out += f"[{part}]"
        else:
            out += ("." if out else "") + str(part)
    return out


def _fail(file: str, line: int | None, message: str, hint: str | None = None) -> ValidationError:
    return ValidationError([Problem(file, line, "", message)], hint)


def load_text(text: str | bytes, file: str = "<input>") -> Document:
    if isinstance(text, bytes):
        raw = text
        if len(raw) > MAX_BYTES:
            raise _fail(file, None, f"file is {len(raw) / 1048576:.1f} MiB; the limit is {MAX_BYTES // 1024} KiB")
        try:
            text = raw.decode("utf-8")
        except UnicodeDecodeError as e:
            raise _fail(file, raw[: e.start].count(b"\n") + 1, f"not valid UTF-8 (byte {e.start})") from None
    elif len(text) > MAX_BYTES:
        raise _fail(file, None, f"file is {len(text) / 1048576:.1f} MiB; the limit is {MAX_BYTES // 1024} KiB")
    if "\x00" in text:
        raise _fail(file, text[: text.index("\x00")].count("\n") + 1, "contains a NUL byte; is this a binary file?")

    loader = _Loader(text)
    try:
        node = loader.get_single_node()
        if node is None:
            raise _fail(file, None, "file is empty", "a template needs at least name, capabilities and deploy")
        lines: dict[Path, int] = {}
        _walk(node, (), lines, file)
        data = loader.construct_document(node)
    except yaml.MarkedYAMLError as e:
        mark = e.problem_mark or e.context_mark
        line = mark.line + 1 if mark else None
        col = f", column {mark.column + 1}" if mark else ""
        what = (e.problem or e.context or "invalid YAML").strip()
        if "expected a single document" in str(e):
            what = "holds more than one YAML document (remove the extra '---')"
        raise _fail(file, line, f"YAML syntax error{col}: {what}") from None
    except yaml.YAMLError as e:
        raise _fail(file, None, f"YAML error: {str(e).splitlines()[0]}") from None
    except RecursionError:
        raise _fail(file, None, "nesting is too deep") from None
    except ValueError as e:  # e.g. a timestamp out of range, surfaced by the constructor
        raise _fail(file, None, f"YAML value error: {e}") from None
    finally:
        loader.dispose()
    return Document(data, file, lines)


def load_file(path: str | os.PathLike) -> Document:
    name = os.fspath(path)
    try:
        size = os.path.getsize(name)
        if size > MAX_BYTES:
            raise _fail(name, None, f"file is {size / 1048576:.1f} MiB; the limit is {MAX_BYTES // 1024} KiB")
        with open(name, "rb") as fh:
            raw = fh.read()
    except FileNotFoundError:
        raise InputError(f"{name}: no such file") from None
    except IsADirectoryError:
        raise InputError(f"{name}: is a directory, expected a YAML file") from None
    except PermissionError:
        raise InputError(f"{name}: permission denied") from None
    return load_text(raw, name)


def _walk(root: yaml.Node, root_path: Path, lines: dict[Path, int], file: str) -> None:
    """Record positions, refuse duplicate keys, and bound the alias-expanded size.

    ``sizes`` memoises each node's expanded size, so a billion-laughs document costs O(nodes) to reject.
    """
    sizes: dict[int, int] = {}
    visiting: set[int] = set()

    def size(node: yaml.Node) -> int:
        key = id(node)
        if key in sizes:
            return sizes[key]
        if key in visiting:
            raise _fail(file, node.start_mark.line + 1, "recursive YAML alias")
        visiting.add(key)
        total = 1
        if isinstance(node, yaml.MappingNode):
            for k, v in node.value:
                total += size(k) + size(v)
                if total > MAX_NODES:
                    break
        elif isinstance(node, yaml.SequenceNode):
            for item in node.value:
                total += size(item)
                if total > MAX_NODES:
                    break
        visiting.discard(key)
        sizes[key] = total
        if total > MAX_NODES:
            raise _fail(file, node.start_mark.line + 1,
                        f"document expands to more than {MAX_NODES} nodes (alias bomb?)")
        return total

    size(root)

    lines.setdefault(root_path, root.start_mark.line + 1)
    # Positions: walk the tree once (aliases are visited at most once per path, bounded by MAX_NODES).
    stack: list[tuple[yaml.Node, Path]] = [(root, root_path)]
    while stack:
        node, path = stack.pop()
        if isinstance(node, yaml.MappingNode):
            seen: dict[Any, int] = {}
            for knode, vnode in node.value:
                if knode.tag == "tag:yaml.org,2002:merge":
                    stack.append((vnode, path))
                    continue
                line = knode.start_mark.line + 1
                if not isinstance(knode, yaml.ScalarNode) or knode.tag != "tag:yaml.org,2002:str":
                    shown = knode.value if isinstance(knode, yaml.ScalarNode) else "a list or mapping"
                    raise ValidationError([Problem(file, line, dotted(path),
                                                   f"keys must be strings, got {shown!r} (quote it)")])
                k = knode.value
                if k in seen:
                    raise ValidationError([Problem(file, line, dotted(path + (k,)),
                                                   f"duplicate key (first at line {seen[k]})")])
                seen[k] = line
                lines.setdefault(path + (k,), line)
                stack.append((vnode, path + (k,)))
        elif isinstance(node, yaml.SequenceNode):
            for i, item in enumerate(node.value):
                lines.setdefault(path + (i,), item.start_mark.line + 1)
                stack.append((item, path + (i,)))
