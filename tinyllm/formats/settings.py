"""User settings: defaults for the CLI and daemon, read from a tiny TOML subset.

The file is ``<config dir>/config.toml`` (see tinyllm.formats.paths), one ``key = value`` per line::

    # nl2cmd settings
    platform = "macos"       # linux | macos
    num = 3                  # alternatives printed by default
    model = "~/models/nl2cmd.npz"
    idle_timeout = 900       # seconds before an idle daemon exits (0 = never)
    no_daemon = false        # always generate in-process
    start_timeout = 15       # seconds to wait for a daemon to come up
    timeout = 30             # seconds to wait for an answer

Values are TOML scalars: quoted strings, integers, floats, true/false. A bad line or value is
reported as a warning and skipped, never fatal: a typo in the config must not break the shell
widget. Standard library only (``tomllib`` is 3.11+, we support 3.10).
"""

from __future__ import annotations

import json
import math
import os
import re
from collections import namedtuple

from .prompt import USER_PLATFORMS, current_platform

# typing is not imported at run time: it costs ~3 ms of the thin client's start-up (every
# `nl2cmd` call); annotations are strings (PEP 563).
TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

MAX_ALTERNATIVES = 10
"""The most alternatives one request may ask for: the `num` setting, ``nl2cmd -n`` and the protocol's `n`."""


_DEFAULTS = {
    "platform": current_platform(),  # str
    "num": 1,  # int
    "model": None,  # str | None
    "idle_timeout": 900.0,  # float seconds
    "no_daemon": False,  # bool
    "start_timeout": 15.0,  # float seconds
    "timeout": 30.0,  # float seconds
}


class Settings(namedtuple("Settings", tuple(_DEFAULTS), defaults=tuple(_DEFAULTS.values()))):
    """Effective settings (defaults < config file < command-line options); see the module docstring."""

    __slots__ = ()

    def with_overrides(self, **overrides: Any) -> Settings:
        """A copy with every override that is not None applied."""
        return self._replace(**{k: v for k, v in overrides.items() if v is not None})


_LINE_RE = re.compile(r"^\s*([A-Za-z_][A-Za-z0-9_-]*)\s*=\s*(.*?)\s*$")


def _strip_comment(value: str) -> str:
    """Remove a trailing `# comment` that is outside quotes."""
    quote = ""
    escaped = False
    for i, ch in enumerate(value):
        if quote:
            if escaped:
                escaped = False
            elif ch == "\\" and quote == '"':
                escaped = True
            elif ch == quote:
                quote = ""
        elif ch in "'\"":
            quote = ch
        elif ch == "#":
            return value[:i].rstrip()
    return value


def parse_value(raw: str) -> Any:
    """Parse one TOML scalar (string, int, float, bool); raises ValueError."""
    raw = _strip_comment(raw).strip()
    if not raw:
        raise ValueError("missing value")
    if raw[0] == '"':
        # TOML basic strings use JSON-compatible escapes for everything we accept.
        try:
            value = json.loads(raw)
        except json.JSONDecodeError as exc:
            raise ValueError(f"bad string {raw!r}") from exc
        if not isinstance(value, str):
            raise ValueError(f"bad string {raw!r}")
        return value
    if raw[0] == "'":
        if len(raw) < 2 or raw[-1] != "'" or "'" in raw[1:-1]:
            raise ValueError(f"bad string {raw!r}")
        return raw[1:-1]
    if raw in ("true", "false"):
        return raw == "true"
    try:
        return int(raw.replace("_", ""))
    except ValueError:
        pass
    try:
        value = float(raw.replace("_", ""))
    except ValueError as exc:
        raise ValueError(f"cannot parse value {raw!r}") from exc
    if not math.isfinite(value):
        raise ValueError(f"value must be finite, got {raw!r}")
    return value


def _check(key: str, value: Any) -> Any:
    """Validate/convert a parsed value for `key`; raises ValueError with a human message."""
    if key == "platform":
        if value not in USER_PLATFORMS:
            raise ValueError(f"platform must be one of {', '.join(USER_PLATFORMS)}")
        return value
    if key == "num":
        if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= MAX_ALTERNATIVES:
            raise ValueError(f"num must be an integer from 1 to {MAX_ALTERNATIVES}")
        return value
    if key == "model":
        if not isinstance(value, str) or not value.strip():
            raise ValueError("model must be a non-empty string (a path)")
        return os.path.expanduser(value)
    if key == "no_daemon":
        if not isinstance(value, bool):
            raise ValueError("no_daemon must be true or false")
        return value
    if key in ("idle_timeout", "start_timeout", "timeout"):
        if isinstance(value, bool) or not isinstance(value, (int, float)) or value < 0:
            raise ValueError(f"{key} must be a non-negative number of seconds")
        if key != "idle_timeout" and value == 0:
            raise ValueError(f"{key} must be positive")
        return float(value)
    raise ValueError(f"unknown setting {key!r}")


KNOWN_KEYS: tuple[str, ...] = Settings._fields


def parse_text(text: str, source: str = "config") -> tuple[dict[str, Any], list[str]]:
    """Parse settings text into ``(values, warnings)``; bad lines become warnings, never exceptions."""
    values: dict[str, Any] = {}
    warnings: list[str] = []
    for lineno, line in enumerate(text.splitlines(), 1):
        stripped = line.strip()
        if not stripped or stripped.startswith("#"):
            continue
        if stripped.startswith("["):
            warnings.append(f"{source}:{lineno}: tables are not supported; ignored")
            continue
        m = _LINE_RE.match(line)
        if not m:
            warnings.append(f"{source}:{lineno}: expected 'key = value'")
            continue
        key = m.group(1).replace("-", "_")
        if key not in KNOWN_KEYS:
            warnings.append(f"{source}:{lineno}: unknown setting {m.group(1)!r} (known: {', '.join(KNOWN_KEYS)})")
            continue
        try:
            values[key] = _check(key, parse_value(m.group(2)))
        except ValueError as exc:
            warnings.append(f"{source}:{lineno}: {exc}")
    return values, warnings


def load(path: str | os.PathLike | None = None) -> tuple[Settings, list[str]]:
    """Read the settings file (missing file => defaults) and return ``(settings, warnings)``."""
    if path is None:
        from .paths import locate

        path = locate().config_file
    try:
        with open(path, encoding="utf-8", errors="replace") as f:
            text = f.read()
    except FileNotFoundError:
        return Settings(), []
    except OSError as exc:
        return Settings(), [f"cannot read {path}: {exc.strerror or exc}"]
    values, warnings = parse_text(text, str(path))
    return Settings(**values), warnings
