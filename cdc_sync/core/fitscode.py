"""The code of an endpoint's `fits` (core/validate.py), written once per spec.

`object_fits` writes a spec's yes/no check as one straight-line Python function: each field
looked up once, its check inlined where the check gives its expression (`Check.inline`),
lists as loops and nested objects (billing, order lines) inline, unknown fields found by
counting the known ones; anything else calls the check's own `fits`. It answers exactly as the
checks' `fits` would (tests/test_validate_code.py compares them); see core/codegen.py.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any, Protocol

from cdc_sync.core.checks import INLINE_NAMES, Check, Fits
from cdc_sync.core.codegen import Code

_MISSING = object()


class ObjectSpec(Protocol):
    """What of core/validate.Spec the code is written from."""

    @property
    def name(self) -> str: ...
    @property
    def required(self) -> Mapping[str, Check]: ...
    @property
    def optional(self) -> Mapping[str, Check]: ...
    @property
    def rules(self) -> tuple[Callable[[Mapping[str, Any]], list[str]], ...]: ...


def object_fits(spec: ObjectSpec) -> tuple[Fits, str]:
    """The spec's `fits` and its source."""
    code = Code(f"fits {spec.name}")
    code.namespace.update(INLINE_NAMES)
    code.line(0, "def fits(value):")
    code.line(1, "if value.__class__ is not dict:")
    code.line(2, "return False")
    _object(code, 1, "value", spec)
    code.line(1, "return True")
    return code.compile("fits"), code.source


def _object(code: Code, depth: int, value: str, spec: ObjectSpec) -> None:
    line = code.line
    for name, check in spec.required.items():
        given = code.fresh("x")
        line(depth, f"{given} = {value}.get({name!r})  # required")
        line(depth, f"if {given} is None:")
        line(depth + 1, "return False")
        _check(code, depth, given, check)
    known = code.fresh("n")
    line(depth, f"{known} = {len(spec.required)!r}")
    missing = code.ref(_MISSING, "MISSING")
    for name, check in spec.optional.items():
        if name in spec.required:
            continue
        given = code.fresh("x")
        line(depth, f"{given} = {value}.get({name!r}, {missing})")
        line(depth, f"if {given} is not {missing}:")
        line(depth + 1, f"if {given} is None:")
        line(depth + 2, "return False  # null: omit the field instead")
        _check(code, depth + 1, given, check)
        line(depth + 1, f"{known} += 1")
    line(depth, f"if len({value}) != {known}:")
    line(depth + 1, "return False  # an unknown field")
    for rule in spec.rules:
        line(depth, f"if {code.ref(rule, 'rule')}({value}):")
        line(depth + 1, "return False")


def _check(code: Code, depth: int, value: str, check: Check) -> None:
    line = code.line
    if check.inline is not None:
        line(depth, f"if not ({check.inline.format(v=value)}):")
        line(depth + 1, "return False")
    elif check.spec is not None:
        line(depth, f"if {value}.__class__ is not dict:")
        line(depth + 1, "return False")
        _object(code, depth, value, check.spec)
    elif check.item is not None:
        line(depth, f"if {value}.__class__ is not list{f' or not {value}' * check.nonempty}:")
        line(depth + 1, "return False")
        item = code.fresh("y")
        line(depth, f"for {item} in {value}:")
        _check(code, depth + 1, item, check.item)
    else:
        line(depth, f"if not {code.ref(check.fits, 'fits')}({value}):")
        line(depth + 1, "return False")
