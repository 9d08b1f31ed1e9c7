"""Type and range checking for the frozen config dataclasses (see ``swycc.config``).

A config class subclasses ``Validated``: on construction every field is checked against its type
annotation (``int``, ``float``, ``bool``, ``str``, ``X | None``, ``tuple[int, ...]``, nested
configs), ints are widened to floats where a float is declared, non-finite floats are refused, a
field declared with ``choice(...)`` must be one of its choices, and the class's ``check()`` adds
range rules. Violations raise ``ConfigError`` naming the dotted option (``train.batch_size``).

A config knows nothing of the registries above it: ``model.method`` is checked against the
autoencoder kinds where a config enters (the CLI, ``read_config``, ``from_pretrained``).
``JsonConfig`` gives every top-level config (``Config``, ``DiTRunConfig``, ``DistillConfig``) the
same ``to_dict``/``to_json``/``from_dict``/``from_json``, with the same errors.
"""

from __future__ import annotations

import dataclasses
import json
import math
import re
import types
from dataclasses import field, fields, is_dataclass
from typing import Any, Union, get_args, get_origin, get_type_hints


class ConfigError(ValueError):
    """A config option with a value of the wrong type, out of range, or not among its choices."""

    def __init__(self, option: str, message: str):
        self.option, self.message = option, message
        super().__init__(f"option {option}: {message}")

    def under(self, prefix: str) -> ConfigError:
        return ConfigError(f"{prefix}.{self.option}", self.message)


def choice(default: str, choices: tuple[str, ...]) -> Any:
    """A str field that must be one of ``choices``."""
    return field(default=default, metadata={"choices": choices})


_HINTS: dict[type, dict[str, Any]] = {}


def hints_of(cls: type) -> dict[str, Any]:
    if cls not in _HINTS:
        _HINTS[cls] = get_type_hints(cls)
    return _HINTS[cls]


def _describe(hint: Any) -> str:
    names = {bool: "true or false", int: "an integer", float: "a number", str: "a string"}
    if hint in names:
        return names[hint]
    origin, args = get_origin(hint), get_args(hint)
    if origin in (Union, types.UnionType):
        return " or ".join("none" if a is type(None) else _describe(a) for a in args)
    if origin is tuple:
        if len(args) == 2 and args[1] is Ellipsis:
            plural = {bool: "true/false values", int: "integers", float: "numbers",
                      str: "strings"}
            return f"a list of {plural.get(args[0]) or _describe(args[0]) + ' values'}"
        return f"a list of {len(args)} values"
    return getattr(hint, "__name__", str(hint))


def coerce(value: Any, hint: Any) -> Any:
    """``value`` as the type ``hint`` declares; TypeError with a readable reason otherwise."""
    origin, args = get_origin(hint), get_args(hint)
    if hint is Any:
        return value
    if origin in (Union, types.UnionType):
        if value is None and type(None) in args:
            return None
        for a in args:
            if a is type(None):
                continue
            try:
                return coerce(value, a)
            except TypeError:
                pass
        raise TypeError(f"expected {_describe(hint)}, got {value!r}")
    if is_dataclass(hint):
        if isinstance(value, hint):
            return value
        raise TypeError(f"expected a {hint.__name__} mapping, got {value!r}")
    if hint is bool:
        if isinstance(value, bool):
            return value
    elif hint is int:
        if isinstance(value, int) and not isinstance(value, bool):
            return value
    elif hint is float:
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            if not math.isfinite(value):
                raise TypeError(f"must be a finite number, got {value!r}")
            return float(value)
    elif hint is str:
        if isinstance(value, str):
            return value
    elif origin is tuple:
        if isinstance(value, (list, tuple)):
            if len(args) == 2 and args[1] is Ellipsis:
                return tuple(coerce(v, args[0]) for v in value)
            if len(value) == len(args):
                return tuple(coerce(v, a) for v, a in zip(value, args))
    raise TypeError(f"expected {_describe(hint)}, got {value!r}")


class Validated:
    """Base of the config dataclasses: checks types and static choices, then ``check()``."""

    def __post_init__(self) -> None:
        hints = hints_of(type(self))
        for f in fields(self):  # type: ignore[arg-type]
            value = getattr(self, f.name)
            try:
                new = coerce(value, hints[f.name])
            except TypeError as e:
                raise ConfigError(f.name, str(e)) from None
            if new is not value:
                object.__setattr__(self, f.name, new)
            allowed = f.metadata.get("choices")
            if allowed is not None and new not in allowed:
                raise ConfigError(f.name, f"must be one of {', '.join(allowed)}; got {new!r}")
        self.check()

    def check(self) -> None:
        """Range rules of this config; raise ``ConfigError(field, reason)``."""

    @staticmethod
    def require(ok: bool, option: str, message: str) -> None:
        if not ok:
            raise ConfigError(option, message)


def from_dict(cls: type, d: Any) -> Any:
    """Build config ``cls`` from a JSON-like mapping; unknown keys and bad values are errors."""
    if not isinstance(d, dict):
        raise ConfigError(cls.__name__, f"expected a mapping, got {type(d).__name__}")
    hints = hints_of(cls)
    names = {f.name for f in fields(cls)}
    unknown = sorted(set(d) - names)
    if unknown:
        raise ConfigError(unknown[0], f"unknown option (known: {', '.join(sorted(names))})")
    kwargs = {}
    for name, value in d.items():
        hint = hints[name]
        if is_dataclass(hint):
            try:
                kwargs[name] = from_dict(hint, value)
            except ConfigError as e:
                raise e.under(name) from None
        else:
            kwargs[name] = value
    return cls(**kwargs)


# JSON read from files others made (checkpoint metadata, latents files) is refused past this
# nesting depth before it is parsed: 100 000 brackets would otherwise end in a RecursionError.
# swycc's own JSON nests at most ~5 levels.
MAX_JSON_DEPTH = 32
_JSON_STRING = re.compile(r'"(?:[^"\\]|\\.)*"')
_JSON_BRACKET = re.compile(r"[\[\]{}]")


def json_depth(text: str) -> int:
    """The deepest nesting of ``[`` and ``{`` in a JSON text (strings ignored)."""
    depth = deepest = 0
    for m in _JSON_BRACKET.finditer(_JSON_STRING.sub("", text)):
        depth += 1 if m.group() in "[{" else -1
        deepest = max(deepest, depth)
    return deepest


def loads_json(text: str) -> Any:
    """``json.loads`` that refuses (ValueError) nesting deeper than ``MAX_JSON_DEPTH`` first."""
    depth = json_depth(text)
    if depth > MAX_JSON_DEPTH:
        raise ValueError(f"JSON nested {depth} levels deep, over the limit of {MAX_JSON_DEPTH}")
    return json.loads(text)


class JsonConfig(Validated):
    """``to_dict``/``to_json`` and their checked inverses, shared by the top-level configs."""

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)  # type: ignore[call-overload]

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), sort_keys=True)

    @classmethod
    def from_dict(cls, d: Any) -> Any:
        """From a JSON-like mapping; a wrong type, range or key is a ConfigError."""
        return from_dict(cls, d)

    @classmethod
    def from_json(cls, s: str) -> Any:
        try:
            d = loads_json(s)
        except (ValueError, RecursionError) as e:
            raise ConfigError("(file)", f"not valid JSON ({e})") from None
        return cls.from_dict(d)



def field_type(cfg: Any, path: str, _prefix: str = "") -> Any:
    """The declared type of the dotted option ``path`` of config ``cfg``."""
    head, _, rest = path.partition(".")
    known = {f.name for f in fields(cfg)}
    if head not in known:
        raise ConfigError(f"{_prefix}{head}", f"unknown option (known: {', '.join(sorted(known))})")
    if rest:
        return field_type(getattr(cfg, head), rest, f"{_prefix}{head}.")
    return hints_of(type(cfg))[head]


def parse_text(text: str, hint: Any) -> Any:
    """A command-line value as the declared type: numbers are parsed strictly (``1e-3x`` is an
    error, not a string); ``none``/``null`` is None for optional options; lists are JSON
    (``[1,2,2]``) or comma-separated (``1,2,2``)."""
    origin, args = get_origin(hint), get_args(hint)
    if origin in (Union, types.UnionType):
        if text.strip().lower() in ("none", "null") and type(None) in args:
            return None
        for a in args:
            if a is not type(None):
                try:
                    return parse_text(text, a)
                except TypeError:
                    pass
        raise TypeError(f"expected {_describe(hint)}, got {text!r}")
    t = text.strip()
    if hint is bool:
        low = t.lower()
        if low in ("true", "1", "yes", "on"):
            return True
        if low in ("false", "0", "no", "off"):
            return False
    elif hint is int:
        try:
            return int(t)
        except ValueError:
            pass
    elif hint is float:
        try:
            return float(t)
        except ValueError:
            pass
    elif hint is str:
        return text
    elif origin is tuple:
        try:
            items = json.loads(t) if t.startswith("[") else [p for p in t.split(",") if p.strip()]
        except json.JSONDecodeError:
            items = None
        if isinstance(items, list):
            inner = args[0] if len(args) == 2 and args[1] is Ellipsis else None
            return tuple(parse_text(str(v), inner or args[i]) for i, v in enumerate(items))
    raise TypeError(f"expected {_describe(hint)}, got {text!r}")


def replace_path(cfg: Any, path: str, value: Any) -> Any:
    """``cfg`` with the dotted option replaced (and re-validated), errors naming ``path``."""
    field_type(cfg, path)  # unknown option -> ConfigError naming the whole path
    head, _, rest = path.partition(".")
    if rest:
        try:
            inner = replace_path(getattr(cfg, head), rest, value)
        except ConfigError as e:
            raise e.under(head) from None
        return dataclasses.replace(cfg, **{head: inner})
    return dataclasses.replace(cfg, **{head: value})


__all__ = ["ConfigError", "JsonConfig", "MAX_JSON_DEPTH", "Validated", "choice", "coerce",
           "field_type", "from_dict", "json_depth", "loads_json", "parse_text", "replace_path"]
