"""Load scenario files: TOML, ``extends`` chains, overrides, and validation errors a
person can act on (file, key, value, what was expected)."""

from __future__ import annotations

import tomllib
from pathlib import Path
from typing import Any

import tomli_w
from pydantic import ValidationError

from platform_stub.exceptions import ScenarioError
from scenarios.schema import Scenario

LIBRARY_DIR = Path(__file__).parent
EXTENDS_DEPTH_MAX = 8


def library_paths() -> list[Path]:
    """The library's scenario files by name: what `cashless scenarios` lists and what a
    bare name resolves to (targets files live apart, in ``targets/``)."""
    return sorted(LIBRARY_DIR.glob("*.toml"))


def resolve_path(name_or_path: str | Path) -> Path:
    """A path as given, or a library scenario by name (``baseline``)."""
    path = Path(name_or_path)
    if path.exists():
        return path
    library = LIBRARY_DIR / f"{path.stem}.toml"
    if path.suffix in ("", ".toml") and path.parent == Path(".") and library.exists():
        return library
    raise ScenarioError(str(path), "(file)", "an existing TOML file or a library scenario name")


def load_raw(path: Path, depth: int = 0) -> dict[str, Any]:
    """The file's table with its ``extends`` chain merged in (child keys win)."""
    if depth > EXTENDS_DEPTH_MAX:
        raise ScenarioError(str(path), "extends", f"a chain of at most {EXTENDS_DEPTH_MAX} files")
    data = _read_toml(path)
    base_name = data.pop("extends", None)
    if base_name is None:
        return data
    if not isinstance(base_name, str):
        raise ScenarioError(str(path), "extends", "a file name string", base_name)
    base_path = path.parent / base_name
    if not base_path.exists():
        raise ScenarioError(str(path), "extends", "a file that exists beside this one", base_name)
    return deep_merge(load_raw(base_path, depth + 1), data)


def _read_toml(path: Path) -> dict[str, Any]:
    try:
        with path.open("rb") as fh:
            return tomllib.load(fh)
    except tomllib.TOMLDecodeError as exc:
        raise ScenarioError(str(path), "(syntax)", f"valid TOML: {exc}") from exc
    except OSError as exc:
        raise ScenarioError(str(path), "(file)", f"a readable file: {exc.strerror}") from exc


def deep_merge(base: dict[str, Any], top: dict[str, Any]) -> dict[str, Any]:
    merged = dict(base)
    for key, value in top.items():
        if isinstance(value, dict) and isinstance(merged.get(key), dict):
            merged[key] = deep_merge(merged[key], value)
        else:
            merged[key] = value
    return merged


def apply_overrides(data: dict[str, Any], overrides: dict[str, Any]) -> dict[str, Any]:
    """Set dotted keys (``city.days = 30``) on a raw table, as ``--set`` does."""
    result = data
    for dotted, value in overrides.items():
        nested: Any = value
        for part in reversed(dotted.split(".")):
            nested = {part: nested}
        result = deep_merge(result, nested)
    return result


def validate(data: dict[str, Any], file: str) -> Scenario:
    try:
        return Scenario.model_validate(data)
    except ValidationError as exc:
        first = exc.errors()[0]
        key = ".".join(str(p) for p in first["loc"]) or "(top level)"
        raise ScenarioError(file, key, _expected(first), first.get("input")) from None


def _expected(error: dict[str, Any]) -> str:
    if error["type"] == "extra_forbidden":
        return "no such key (a typo?); see scenarios/schema.py for the keys"
    if error["type"] == "missing":
        return "this key to be present"
    return str(error["msg"]).removeprefix("Value error, ")


def load_scenario(name_or_path: str | Path, overrides: dict[str, Any] | None = None) -> Scenario:
    """Read, merge, override and validate a scenario; errors are ``ScenarioError``."""
    path = resolve_path(name_or_path)
    data = apply_overrides(load_raw(path), overrides or {})
    return validate(data, str(path))


def dump_toml(scenario: Scenario) -> str:
    """The resolved scenario as TOML, so a run folder says exactly what ran."""
    return tomli_w.dumps(scenario.model_dump(mode="python"))
