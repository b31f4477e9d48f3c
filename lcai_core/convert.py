"""The one strict cattrs converter, and the walker that turns its errors into located ``Problem``s.

Strict means: no silent coercion. ``"8000"`` is not an int, ``"false"`` is not a bool, ``"prod"`` is not a
list, ``3.9`` is not an int, ``true`` is not a string. Unknown keys are errors with a did-you-mean.
"""

from __future__ import annotations

import difflib
import sys
import typing
from typing import Any, Callable

import attrs
import cattrs
from cattrs.errors import (
    ClassValidationError,
    ForbiddenExtraKeysError,
    IterableValidationError,
    IterableValidationNote,
)

from .errors import Problem
from .yamlfile import Document, dotted


def describe(value: Any) -> str:
    """How a YAML value reads to a user: ``string 'eighty'``, ``integer 420``, ``boolean true``."""
    if value is None:
        return "nothing (null)"
    if isinstance(value, bool):
        return f"boolean {'true' if value else 'false'}"
    if isinstance(value, int):
        return f"integer {value}"
    if isinstance(value, float):
        return f"number {value}"
    if isinstance(value, str):
        shown = value if len(value) <= 40 else value[:37] + "..."
        return f"string {shown!r}"
    if isinstance(value, list):
        return "a list"
    if isinstance(value, dict):
        return "a mapping"
    return type(value).__name__


class StrictTypeError(TypeError):
    """A value of the wrong YAML type."""


def _strict_int(value: Any, _t: Any) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        hint = " (remove the quotes)" if isinstance(value, str) and value.strip().lstrip("-").isdigit() else ""
        raise StrictTypeError(f"expected an integer, got {describe(value)}{hint}")
    return value


def _strict_float(value: Any, _t: Any) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise StrictTypeError(f"expected a number, got {describe(value)}")
    return float(value)


def _strict_bool(value: Any, _t: Any) -> bool:
    if not isinstance(value, bool):
        raise StrictTypeError(f"expected true or false, got {describe(value)}")
    return value


def _strict_str(value: Any, _t: Any) -> str:
    if not isinstance(value, str):
        hint = ""
        if isinstance(value, (bool, int, float)):
            hint = " (quote it to make it a string)"
        raise StrictTypeError(f"expected a string, got {describe(value)}{hint}")
    return value


def _is_seq(t: Any) -> bool:
    origin = typing.get_origin(t)
    if origin is list:
        return True
    return origin is tuple and len(typing.get_args(t)) == 2 and typing.get_args(t)[1] is Ellipsis


def _is_dict(t: Any) -> bool:
    return typing.get_origin(t) is dict


def _add_note(e: BaseException, note: str) -> None:
    """``e.add_note(note)``, also on Python 3.10 (no add_note there, and ``__notes__`` is not a declared
    attribute; cattrs reads it all the same)."""
    setattr(e, "__notes__", [*getattr(e, "__notes__", []), note])  # noqa: B010 -- undeclared before 3.11


def _index_note(index: int, elem: Any) -> IterableValidationNote:
    """The note naming a list element that failed (cattrs' own note type: a str with ``index``)."""
    return IterableValidationNote(f"@ index {index}", index, elem)


class _KeyNote(str):
    key: str

    def __new__(cls, key: str) -> _KeyNote:
        self = super().__new__(cls, f"@ key {key!r}")
        self.key = key
        return self


if sys.version_info >= (3, 11):
    import builtins

    _ExceptionGroup = builtins.ExceptionGroup
else:  # pragma: no cover - Python 3.10: cattrs depends on the backport
    from exceptiongroup import ExceptionGroup as _ExceptionGroup


class MappingValidationError(_ExceptionGroup):
    pass


def _seq_factory(t: Any, conv: cattrs.Converter) -> Callable[[Any, Any], tuple]:
    elem = typing.get_args(t)[0]
    handler = conv.get_structure_hook(elem)

    def structure(value: Any, _t: Any) -> tuple:
        if not isinstance(value, list):
            raise StrictTypeError(f"expected a list, got {describe(value)}")
        out, errors = [], []
        for i, item in enumerate(value):
            try:
                out.append(handler(item, elem))
            except Exception as e:  # collected, re-raised as a group below
                _add_note(e, _index_note(i, elem))
                errors.append(e)
        if errors:
            raise IterableValidationError(f"While structuring {t!r}", errors, t)
        return tuple(out)

    return structure


def _dict_factory(t: Any, conv: cattrs.Converter) -> Callable[[Any, Any], dict]:
    _kt, vt = typing.get_args(t)
    handler = conv.get_structure_hook(vt)

    def structure(value: Any, _t: Any) -> dict:
        if not isinstance(value, dict):
            raise StrictTypeError(f"expected a mapping, got {describe(value)}")
        out, errors = {}, []
        for k, v in value.items():
            try:
                if not isinstance(k, str):
                    raise StrictTypeError(f"keys must be strings, got {describe(k)}")
                out[k] = handler(v, vt)
            except Exception as e:
                _add_note(e, _KeyNote(str(k)))
                errors.append(e)
        if errors:
            raise MappingValidationError(f"While structuring {t!r}", errors)
        return out

    return structure


def make_converter() -> cattrs.Converter:
    conv = cattrs.Converter(forbid_extra_keys=True, detailed_validation=True)
    conv.register_structure_hook(int, _strict_int)
    conv.register_structure_hook(float, _strict_float)
    conv.register_structure_hook(bool, _strict_bool)
    conv.register_structure_hook(str, _strict_str)
    conv.register_structure_hook(typing.Any, lambda v, _t: v)
    conv.register_structure_hook_factory(_is_seq, _seq_factory)
    conv.register_structure_hook_factory(_is_dict, _dict_factory)
    return conv


converter = make_converter()


def structure(data: Any, cls: type, doc: Document, base: tuple = ()) -> tuple[Any, list[Problem]]:
    """Structure ``data`` into ``cls``; on failure return (None, every located problem)."""
    if not isinstance(data, dict) and attrs.has(cls):
        return None, [doc.problem(base, f"expected a mapping, got {describe(data)}")]
    try:
        return converter.structure(data, cls), []
    except Exception as e:  # every structuring failure is turned into located problems
        problems: list[Problem] = []
        _walk(e, base, cls, data, doc, problems)
        return None, problems


def _note_of(exc: BaseException) -> Any:
    for note in reversed(getattr(exc, "__notes__", []) or []):
        if isinstance(note, (IterableValidationNote, _KeyNote)) or hasattr(note, "name") or hasattr(note, "index"):
            return note
    return None


def _walk(exc: BaseException, path: tuple, cls: Any, data: Any, doc: Document, out: list[Problem]) -> None:
    if isinstance(exc, ClassValidationError):
        for sub in exc.exceptions:
            note = _note_of(sub)
            if note is not None and hasattr(note, "name"):
                field = _field(exc.cl, note.name)
                sub_data = data.get(note.name) if isinstance(data, dict) else None
                _walk(sub, path + (note.name,), field.type if field else None, sub_data, doc, out)
            else:
                _walk(sub, path, exc.cl, data, doc, out)
    elif isinstance(exc, (IterableValidationError, MappingValidationError)):
        for sub in exc.exceptions:
            note = _note_of(sub)
            if isinstance(note, _KeyNote):
                sub_data = data.get(note.key) if isinstance(data, dict) else None
                _walk(sub, path + (note.key,), None, sub_data, doc, out)
            elif note is not None and hasattr(note, "index"):
                i = note.index
                sub_data = data[i] if isinstance(data, list) and i < len(data) else None
                _walk(sub, path + (i,), None, sub_data, doc, out)
            else:
                _walk(sub, path, None, data, doc, out)
    elif isinstance(exc, ForbiddenExtraKeysError):
        known = [f.name for f in attrs.fields(exc.cl)] if attrs.has(exc.cl) else []
        for key in sorted(exc.extra_fields):
            near = difflib.get_close_matches(key, known, n=1, cutoff=0.6)
            if near:
                hint = f"; did you mean '{near[0]}'?"
            else:
                hint = f"; expected one of: {', '.join(known)}" if known else ""
            out.append(doc.problem(path + (key,), f"unknown key '{key}'{hint}"))
    elif isinstance(exc, KeyError):
        out.append(doc.problem(path, "required key is missing"))
    elif isinstance(exc, (StrictTypeError, ValueError, TypeError)):
        msg = str(exc)
        if not isinstance(exc, StrictTypeError) and attrs.has(cls) and not isinstance(data, dict):
            msg = f"expected a mapping, got {describe(data)}"
        elif not isinstance(exc, StrictTypeError):
            msg = f"invalid value {describe(data)}: {msg}"
        out.append(doc.problem(path, msg))
    else:
        out.append(doc.problem(path, f"invalid value: {exc}"))


def _field(cl: type, name: str) -> Any:
    try:
        return attrs.fields_dict(cl).get(name)
    except Exception:  # not an attrs class
        return None


def did_you_mean(word: str, choices: list[str]) -> str:
    near = difflib.get_close_matches(word, choices, n=1, cutoff=0.6)
    return f"; did you mean '{near[0]}'?" if near else ""


__all__ = ["converter", "structure", "describe", "did_you_mean", "dotted"]
