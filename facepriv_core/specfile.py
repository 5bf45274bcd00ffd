"""Audit spec files: YAML read through a loader that hostile files cannot exploit.

yaml.safe_load already refuses Python object tags, but it expands aliases (a few hundred
bytes of "billion laughs" anchors grow to gigabytes), accepts other explicit tags and nests
without limit. Specs are small flat mappings, so the loader here refuses aliases, explicit tags
and deep nesting, reads at most MAX_SPEC_BYTES, and every failure is a SpecError (one line,
with the line number where the YAML parser gives one).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

from facepriv_core import files
from facepriv_core.errors import SpecError

MAX_SPEC_BYTES = 256 * 1024
MAX_DEPTH = 32


class _SpecLoader(yaml.SafeLoader):
    """SafeLoader without aliases, explicit tags or deep nesting."""

    _depth = 0

    def compose_node(self, parent: Any, index: Any) -> Any:
        event = self.peek_event()
        if isinstance(event, yaml.AliasEvent):
            raise SpecError(f"YAML aliases (*{event.anchor}) are not allowed in a spec"
                            f"{_where(event)}: write the values out")
        tag = getattr(event, "tag", None)
        if tag not in (None, "!"):
            raise SpecError(f"YAML tags ({tag}) are not allowed in a spec{_where(event)}")
        self._depth += 1
        try:
            if self._depth > MAX_DEPTH:
                raise SpecError(f"the spec nests deeper than {MAX_DEPTH} levels{_where(event)}")
            return super().compose_node(parent, index)
        finally:
            self._depth -= 1


def _where(event: Any) -> str:
    mark = getattr(event, "start_mark", None)
    return f" (line {mark.line + 1})" if mark is not None else ""


def parse(text: str | bytes, source: str = "the spec") -> dict[str, Any]:
    """A spec mapping from YAML text, or a SpecError."""
    if isinstance(text, bytes):
        if len(text) > MAX_SPEC_BYTES:
            raise SpecError(f"{source} is over {MAX_SPEC_BYTES // 1024} KiB; specs are small")
        try:
            text = text.decode("utf-8")
        except UnicodeDecodeError:
            raise SpecError(f"{source} is not UTF-8 text (a binary file?): give a YAML "
                            "spec such as assets/example_audit.yaml") from None
    if "\0" in text:
        raise SpecError(f"{source} is not text (it holds NUL bytes): give a YAML spec")
    try:
        doc = yaml.load(text, Loader=_SpecLoader)  # the loader is the restricted one above
    except SpecError:
        raise
    except yaml.YAMLError as exc:
        problem = getattr(exc, "problem", None) or str(exc).splitlines()[0]
        mark = getattr(exc, "problem_mark", None)
        line = f" at line {mark.line + 1}" if mark is not None else ""
        raise SpecError(f"{source} is not valid YAML: {problem}{line}") from None
    except RecursionError:
        raise SpecError(f"{source} nests too deeply") from None
    if doc is None:
        return {}
    if not isinstance(doc, dict):
        raise SpecError(f"{source} must be a mapping (defence: ..., attacks: [...]), not a "
                        f"{type(doc).__name__}")
    if not all(isinstance(k, str) for k in doc):
        raise SpecError(f"{source} has keys that are not names")
    return doc


def load(path: str | Path) -> dict[str, Any]:
    """A spec mapping from a YAML file (regular files only, size-capped), or a SpecError."""
    p = Path(path)
    data = files.read_capped(p, "spec file", MAX_SPEC_BYTES, SpecError)
    return parse(data, f"spec file '{p}'")
