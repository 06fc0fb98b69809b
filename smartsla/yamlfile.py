"""Load a YAML file into a pydantic model; every error names the file, line and field.

Shared by agreement specs (smartsla.spec) and the oracle's configuration (oracle.config): users
edit both by hand, and "field X is wrong" is only useful with the line it is on.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, TypeVar

import yaml
from pydantic import BaseModel, ValidationError

M = TypeVar("M", bound=BaseModel)


class YamlFileError(ValueError):
    """The file cannot be used; the message is `file:line: field: problem`."""


def line_of(node: yaml.Node | None, loc: tuple[Any, ...]) -> int | None:
    """Line (1-based) of the YAML node at `loc` (a pydantic error location)."""
    line = None if node is None else node.start_mark.line + 1
    for key in loc:
        if isinstance(node, yaml.MappingNode):
            found = next((v for k, v in node.value if k.value == key), None)
            if found is None:
                # the error is about this key's absence or an unknown key: point at the key itself
                kn = next((k for k, _ in node.value if k.value == key), None)
                return kn.start_mark.line + 1 if kn is not None else line
            node = found
        elif isinstance(node, yaml.SequenceNode) and isinstance(key, int) and key < len(node.value):
            node = node.value[key]
        else:
            break
        line = node.start_mark.line + 1
    return line


def parse_yaml(text: str, source: str) -> tuple[Any, yaml.Node | None]:
    """The data and the node tree (for line numbers) of a YAML document."""
    try:
        return yaml.safe_load(text), yaml.compose(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f":{mark.line + 1}" if mark is not None else ""
        raise YamlFileError(f"{source}{where}: not valid YAML: {getattr(exc, 'problem', exc)}") from exc


def problem_line(node: yaml.Node | None, source: str, loc: tuple[Any, ...], msg: str) -> str:
    """`file:line: field.path: message` for one problem."""
    field = ".".join(str(p) for p in loc) or "(top level)"
    line = line_of(node, loc)
    where = f":{line}" if line else ""
    return f"{source}{where}: {field}: {msg}"


def validation_message(exc: ValidationError, node: yaml.Node | None, source: str) -> str:
    """Every error, one per line: `file:line: field.path: message`. All of them, because a user
    fixing a file one error per run wastes a run per mistake."""
    return "\n".join(problem_line(node, source, tuple(err["loc"]), err["msg"].removeprefix("Value error, "))
                     for err in exc.errors())


def load_model(model: type[M], path: str | Path, error: type[ValueError] = YamlFileError) -> M:
    """Read `path` and validate it as `model`; raise `error` naming file, line and field.

    A model may define `problems() -> list[(loc, message)]` for rules across fields; they are
    reported the same way, all of them, after the field-level validation passed.
    """
    path = Path(path)
    try:
        text = path.read_text()
    except OSError as exc:
        raise error(f"{path}: cannot read: {exc.strerror}") from exc
    try:
        data, node = parse_yaml(text, str(path))
    except YamlFileError as exc:
        raise error(str(exc)) from exc
    if not isinstance(data, dict):
        raise error(f"{path}: the top level must be a mapping")
    try:
        obj = model.model_validate(data)
    except ValidationError as exc:
        raise error(validation_message(exc, node, str(path))) from exc
    check = getattr(obj, "problems", None)
    found = check() if callable(check) else []
    if found:
        raise error("\n".join(problem_line(node, str(path), tuple(loc), msg) for loc, msg in found))
    return obj
