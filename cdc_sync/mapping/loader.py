"""Load mappings.yaml into a MappingSpec, reporting every problem with its line (pure + file read).

Problems are collected first (YAML syntax, duplicate keys, every model error, bad template
placeholders, unknown time zones) and raised once as a MappingError, so the user fixes them in
one go. Each names `file:line (dotted.path)`, what is wrong and how to fix it.
"""

from __future__ import annotations

import difflib
import hashlib
import json
import types
import zoneinfo
from collections.abc import Iterator
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Annotated, Any, Union, get_args, get_origin

import yaml
from pydantic import BaseModel, ValidationError
from pydantic_core import ErrorDetails

from cdc_sync.errors import MappingError, Problem
from cdc_sync.mapping.aggregates import (
    Found,
    aggregate_problems,
    is_resource_field,
    misplaced_aggregates,
)
from cdc_sync.mapping.aliases import alias_problems
from cdc_sync.mapping.labels import template_placeholders
from cdc_sync.mapping.locations import Locations, YamlPath, format_path, read_yaml
from cdc_sync.mapping.model import FieldSpec, MappingSpec, ResourceSpec

_FILE_FIX = "create it (docs/mappings.md shows examples) or set CDC_SYNC_MAPPINGS to its path"


@dataclass(frozen=True)
class LoadedMapping:
    """A valid mapping, where it came from, and a fingerprint of what it means."""

    spec: MappingSpec
    path: Path
    fingerprint: str
    locations: Locations

    def where(self, *path: str | int) -> str:
        """`mappings.yaml:14 (orders.fields.status)`: the line of the path or its nearest parent."""
        return _where(self.path, self.locations, path)

    def resource_fingerprint(self, name: str) -> str:
        """The fingerprint of one resource's part of the mapping (with source_timezone)."""
        dumped = self.spec.model_dump(mode="json")
        if name not in dumped or name in ("version", "source_timezone", "sync"):
            raise KeyError(f"{name!r} is not a resource of the mapping")
        return _digest({"resource": dumped[name], "source_timezone": dumped["source_timezone"]})


def load_mapping(path: Path) -> LoadedMapping:
    """Read and check the mapping file; raises MappingError listing every problem."""
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise MappingError(
            [Problem(str(path), "the mapping file does not exist", _FILE_FIX)]
        ) from None
    except (OSError, UnicodeDecodeError) as error:
        what = f"the mapping file cannot be read ({type(error).__name__}: {error})"
        fix = "make it a readable UTF-8 text file, or set CDC_SYNC_MAPPINGS to another file"
        raise MappingError([Problem(str(path), what, fix)]) from None
    return parse_mapping(text, path)


def parse_mapping(text: str, path: Path) -> LoadedMapping:
    """Check mapping text as if read from `path`; raises MappingError listing every problem."""
    try:
        document = read_yaml(text)
    except yaml.YAMLError as error:
        raise MappingError([_syntax_problem(path, error)]) from None
    locations = document.locations
    problems = [
        Problem(
            _where(path, locations, dup.path, line=dup.line),
            f"duplicate key {dup.path[-1]!r} (first given on line {dup.first_line}); "
            "YAML would silently keep only the last one",
            f"merge the two {dup.path[-1]}: blocks into one, or remove one",
        )
        for dup in document.duplicates
    ]
    data = document.data
    if not isinstance(data, dict):
        raise MappingError([*problems, _top_level_problem(path, data)])
    problems.extend(_semantic_problems(path, locations, data))
    try:
        spec = MappingSpec.model_validate(data)
    except ValidationError as error:
        problems.extend(_model_problems(path, locations, error))
        raise MappingError(_in_file_order(problems)) from None
    if problems:
        raise MappingError(_in_file_order(problems))
    return LoadedMapping(spec, path, _digest(spec.model_dump(mode="json")), locations)


def _digest(value: Any) -> str:
    canonical = json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return hashlib.sha256(canonical.encode("utf-8")).hexdigest()


def _where(path: Path, locations: Locations, yaml_path: YamlPath, *, line: int = 0) -> str:
    text = f"{path}:{line or locations.line(yaml_path)}"
    return f"{text} ({format_path(yaml_path)})" if yaml_path else text


def _in_file_order(problems: list[Problem]) -> list[Problem]:
    # The report follows the file, whichever check found each problem.
    def line_of(problem: Problem) -> int:
        number = problem.where.split(" (", 1)[0].rsplit(":", 1)[-1]
        return int(number) if number.isdigit() else 0

    return sorted(problems, key=line_of)


def _syntax_problem(path: Path, error: yaml.YAMLError) -> Problem:
    fix = "fix the YAML syntax there (indent with spaces, quote text holding ': ' or '#')"
    if isinstance(error, yaml.MarkedYAMLError):
        mark = error.problem_mark or error.context_mark
        reason = " ".join(part for part in (error.context, error.problem) if part)
        if mark is not None:
            where = f"{path}:{mark.line + 1}"
            return Problem(where, f"malformed YAML at column {mark.column + 1}: {reason}", fix)
        return Problem(str(path), f"malformed YAML: {reason}", fix)
    return Problem(str(path), f"malformed YAML: {error}", fix)


def _top_level_problem(path: Path, data: Any) -> Problem:
    fix = "start from the examples in docs/mappings.md (version: 1, then customers:, orders:, ...)"
    if data is None:
        return Problem(f"{path}:1", "the mapping file is empty", fix)
    kind = "a list" if isinstance(data, list) else f"the value {data!r}"
    return Problem(f"{path}:1", f"the top level must be a mapping of keys, not {kind}", fix)


# --- checks the models leave to the loader (labels and zoneinfo live outside the models) ---


def _semantic_problems(path: Path, locations: Locations, data: dict[str, Any]) -> Iterator[Problem]:
    zone = data.get("source_timezone")
    if isinstance(zone, str):
        yield from _zone_problems(path, locations, ("source_timezone",), zone)
    for yaml_path, model, node in walk_models(MappingSpec, data):
        if model is ResourceSpec:
            yield from _clash_problems(path, locations, yaml_path, node)
        for relative, what, fix in _block_problems(yaml_path, model, node):
            yield Problem(_where(path, locations, (*yaml_path, *relative)), what, fix)
        if model is not FieldSpec:
            continue
        template = node.get("template")
        if isinstance(template, str):
            try:
                template_placeholders(template)
            except ValueError as error:
                where = _where(path, locations, (*yaml_path, "template"))
                fix = "use {column} placeholders only; write {{ and }} for literal braces"
                yield Problem(where, f"bad template {template!r}: {error}", fix)
        zone = node.get("timezone")
        if isinstance(zone, str):
            yield from _zone_problems(path, locations, (*yaml_path, "timezone"), zone)


def _block_problems(yaml_path: YamlPath, model: type[BaseModel],
                    node: dict[str, Any]) -> Iterator[Found]:
    """Aggregates and join aliases, relative to the block (see aggregates.py, aliases.py)."""
    if model is ResourceSpec:
        yield from aggregate_problems(node)
        yield from alias_problems(node)
    elif model is FieldSpec and not is_resource_field(yaml_path):
        yield from misplaced_aggregates(node)


def _clash_problems(
    path: Path, locations: Locations, yaml_path: YamlPath, resource: dict[str, Any]
) -> Iterator[Problem]:
    fields, children = resource.get("fields"), resource.get("children")
    if not isinstance(fields, dict) or not isinstance(children, dict):
        return
    sent = {name for name, child in children.items()
            if not isinstance(child, dict) or {"value", "fields"} & child.keys()}
    for name in sorted(fields.keys() & sent):  # a child only aggregated fills no field
        yield Problem(
            _where(path, locations, (*yaml_path, "children", name)),
            f"{name} is filled both by a field and by a child; one would overwrite the other",
            f"keep one: remove fields.{name} or children.{name}",
        )


def _zone_problems(
    path: Path, locations: Locations, yaml_path: YamlPath, zone: str
) -> Iterator[Problem]:
    try:
        zoneinfo.ZoneInfo(zone)
    except (zoneinfo.ZoneInfoNotFoundError, ValueError):
        close = difflib.get_close_matches(zone, _zone_names(), n=1)
        hint = f"did you mean {close[0]!r}? " if close else ""
        yield Problem(
            _where(path, locations, yaml_path),
            f"unknown time zone {zone!r}",
            f"{hint}use an IANA zone name such as UTC, Europe/Sofia or America/New_York",
        )


@cache
def _zone_names() -> list[str]:
    return sorted(zoneinfo.available_timezones())


# --- pydantic errors, said the way a mappings.yaml author thinks ---


def _model_problems(path: Path, locations: Locations, error: ValidationError) -> Iterator[Problem]:
    for detail in error.errors(include_url=False):
        loc = _yaml_path(detail["loc"])
        what, fix = _explain(detail, loc)
        yield Problem(_where(path, locations, loc), what, fix)


def _yaml_path(loc: tuple[int | str, ...]) -> YamlPath:
    # A bad mapping key shows up as (..., key, "[key]"); the key is a mapping key, not an index.
    if loc and loc[-1] == "[key]":
        return (*loc[:-2], str(loc[-2]))
    return loc


def _explain(detail: ErrorDetails, loc: YamlPath) -> tuple[str, str]:
    kind, value = detail["type"], detail["input"]
    name = str(loc[-1]) if loc else "the top level"
    if kind == "extra_forbidden":
        return _unknown_key(loc)
    if kind == "missing":
        return f"required key {name!r} is missing", f"add {name}: here"
    if "[key]" in detail["loc"]:
        return f"key {value!r} must be text", f"write it as a name, e.g. '{value}'"
    if kind == "model_type":
        return _not_a_mapping(loc, value)
    if kind == "value_error":
        message = str(detail["msg"]).removeprefix("Value error, ")
        return message, "change the block as the message says (docs/mappings.md lists each key)"
    if kind == "enum":
        return _bad_choice(name, value, str(detail.get("ctx", {}).get("expected", "")))
    expected = _EXPECTED.get(kind)
    if expected is not None:
        expected = expected.format(**detail.get("ctx", {}))
        return f"{name} must be {expected}, not {_shown(value)}", f"set {name} to {expected}"
    return f"{name}: {detail['msg']} (got {_shown(value)})", "see docs/mappings.md for this key"


_EXPECTED: dict[str, str] = {
    "string_type": "text",
    "dict_type": "a mapping (key: value lines)",
    "list_type": "a list (or one text value)",
    "bool_type": "true or false",
    "bool_parsing": "true or false",
    "int_type": "a whole number",
    "int_parsing": "a whole number",
    "int_from_float": "a whole number",
    "float_type": "a number",
    "float_parsing": "a number",
    "literal_error": "1 (the only mapping format version so far)",
    "greater_than_equal": "at least {ge}",
    "less_than_equal": "at most {le}",
}


def _unknown_key(loc: YamlPath) -> tuple[str, str]:
    key = str(loc[-1])
    allowed = allowed_keys(MappingSpec, loc[:-1])
    close = difflib.get_close_matches(key, allowed, n=1)
    if close:
        return f"unknown key {key!r}; did you mean {close[0]!r}?", f"rename it to {close[0]}"
    return f"unknown key {key!r}", f"remove it; allowed here: {', '.join(allowed) or 'none'}"


def _not_a_mapping(loc: YamlPath, value: Any) -> tuple[str, str]:
    name = str(loc[-1]) if loc else "the top level"
    if value is None:
        return f"{name} is empty", f"give {name} its keys, or remove the {name}: line"
    if model_at(MappingSpec, loc) is FieldSpec:
        return (
            f"field {name} must be a column name or a mapping, not {_shown(value)}",
            "write `name: column` or `name: {column|expression|template|const: ...}`",
        )
    return (
        f"{name} must be a mapping (key: value lines), not {_shown(value)}",
        f"write {name}: alone on its line and its keys indented below it",
    )


def _bad_choice(name: str, value: Any, expected: str) -> tuple[str, str]:
    choices = [choice.strip(" '") for choice in expected.replace(" or ", ", ").split(",")]
    close = difflib.get_close_matches(str(value), choices, n=1)
    hint = f"did you mean {close[0]!r}? " if close else ""
    return (
        f"{name} {_shown(value)} is not one of {expected}",
        f"{hint}use one of {', '.join(choices)}",
    )


def _shown(value: Any) -> str:
    if value is None:
        return "nothing (an empty value)"
    if isinstance(value, dict):
        return "a mapping"
    if isinstance(value, list):
        return "a list"
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


# --- where a YAML path lands in the models ---


def model_at(root: Any, yaml_path: YamlPath) -> type[BaseModel] | None:
    """The model that reads the mapping at `yaml_path`, if a model does."""
    annotation: Any = root
    for part in yaml_path:
        annotation = _child_type(annotation, part)
        if annotation is None:
            return None
    annotation = _unwrap(annotation)
    return annotation if _is_model(annotation) else None


def allowed_keys(root: Any, yaml_path: YamlPath) -> list[str]:
    """The keys the model at `yaml_path` accepts (empty when the path is not a model)."""
    model = model_at(root, yaml_path)
    return [] if model is None else list(model.model_fields)


def walk_models(
    root: Any, data: Any, yaml_path: YamlPath = ()
) -> Iterator[tuple[YamlPath, type[BaseModel], dict[str, Any]]]:
    """Every mapping in the raw data that a model will read, with its path and model."""
    model = _unwrap(root)
    if _is_model(model) and isinstance(data, dict):
        yield yaml_path, model, data
    if isinstance(data, dict):
        children: Iterator[tuple[Any, Any]] = iter(data.items())
    elif isinstance(data, list):
        children = enumerate(data)
    else:
        return
    for part, value in children:
        child = _child_type(model, part)
        if child is not None:
            yield from walk_models(child, value, (*yaml_path, part))


def _child_type(annotation: Any, part: str | int) -> Any:
    annotation = _unwrap(annotation)
    if _is_model(annotation):
        field = annotation.model_fields.get(str(part))
        return None if field is None else field.annotation
    origin = get_origin(annotation)
    if origin is dict:
        return get_args(annotation)[1]
    if origin is list and isinstance(part, int):
        return get_args(annotation)[0]
    return None


def _unwrap(annotation: Any) -> Any:
    # Annotated[X, ...] and X | None both validate as X here.
    while True:
        origin = get_origin(annotation)
        if origin is Annotated:
            annotation = get_args(annotation)[0]
        elif origin in (Union, types.UnionType):
            options = [arg for arg in get_args(annotation) if arg is not type(None)]
            if len(options) != 1:
                return annotation
            annotation = options[0]
        else:
            return annotation


def _is_model(annotation: Any) -> bool:
    return isinstance(annotation, type) and issubclass(annotation, BaseModel)
