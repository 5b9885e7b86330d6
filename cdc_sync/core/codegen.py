"""Python source written at run time and compiled once: the fast path's generated functions.

A mapping (or the contract) is known once a Composer (a Spec) is made, so the loops over its
fields can be unrolled into straight-line code that runs for every row without looking at
the plan again. Everything the code uses that came from outside (coercers, map look-ups,
defaults, template text, the mapping's separators) lives in the function's namespace under
a name made here; the source itself holds only those names, Python keywords and operators,
and `repr()` of the str and int keys it reads and writes, so no mapping text can become code.
Pure: no I/O (the source is kept for tracebacks and `code` attributes, never written out).
"""

from __future__ import annotations

import hashlib
import linecache
import re
from collections.abc import Callable
from itertools import count
from types import CodeType
from typing import Any

_NOT_IDENTIFIER = re.compile(r"\W|^(?=\d)")
_KEPT = 256
_COMPILED: dict[str, CodeType] = {}
"""Compiled code by its source: the same mapping's composers, built again every cycle, are
compiled once per process (compiling is most of building one: about 1 ms an order's)."""


class Code:
    """The lines of one generated module and the objects its names stand for."""

    def __init__(self, title: str) -> None:
        self.title = title
        self.lines: list[str] = []
        self.namespace: dict[str, Any] = {}
        self._names: dict[int, str] = {}
        self._fresh = count()

    def line(self, depth: int, text: str) -> None:
        self.lines.append("    " * depth + text)

    def ref(self, value: Any, hint: str) -> str:
        """The name the code uses for `value` (one name per object, however often used)."""
        known = self._names.get(id(value))
        if known is not None:
            return known
        base = getattr(value, "__name__", None) if callable(value) else None
        stem = _NOT_IDENTIFIER.sub("_", str(base or hint).strip("_")) or hint
        name = f"{stem}_{next(self._fresh)}"
        self._names[id(value)] = name
        self.namespace[name] = value
        return name

    def fresh(self, hint: str) -> str:
        """A new local variable's name."""
        return f"{hint}{next(self._fresh)}"

    @property
    def source(self) -> str:
        return "\n".join(self.lines) + "\n"

    def compile(self, function: str) -> Callable[..., Any]:
        """The function named `function` defined by the lines; its source is registered
        with linecache so a traceback through it shows the generated line (under a name made
        from the source's digest: composers built again each cycle add no entries)."""
        source = self.source
        compiled = _COMPILED.get(source)
        if compiled is None:
            digest = hashlib.blake2b(source.encode(), digest_size=6).hexdigest()
            filename = f"<{self.title} {digest}>"
            compiled = compile(source, filename, "exec")
            linecache.cache[filename] = (len(source), None, source.splitlines(True), filename)
            if len(_COMPILED) >= _KEPT:
                _COMPILED.clear()
            _COMPILED[source] = compiled
        exec(compiled, self.namespace)  # noqa: S102 - see module doc
        made: Callable[..., Any] = self.namespace[function]
        return made
