"""Secrets out of every message: credentials in URLs and the values of secret-named settings.

A password may reach a message by many paths (a `--set` override echoed in a
settings error, a database URL in a connection error, a failed-file record, an
Airflow log). Rather than guard each path, every text a user sees passes through
`redact`, and the CLI and the operators show settings only through
`redact_settings`.
"""

from __future__ import annotations

import re
from typing import Any

HIDDEN = "***"
# scheme://user:password@host -> scheme://user:***@host (also inside longer text, repr()s and JSON).
_URL_PASSWORD = re.compile(r"(?P<head>[A-Za-z][A-Za-z0-9+.-]*://[^\s/:@'\"]*:)[^\s@'\"]+@")
# A setting or field named like a secret: its value is never shown, whatever it looks like.
SECRET_NAME = re.compile(r"(password|passwd|secret|token|api_?key|(^|[._])key$)", re.IGNORECASE)
_NAMED_VALUE = re.compile(
    r"(?P<head>['\"]?(?:[\w.]*(?:password|passwd|secret|token|api_?key)|\w+\.key)['\"]?\s*[:=]\s*)"
    r"(?P<value>'[^']*'|\"[^\"]*\"|[^\s,}]+)",
    re.IGNORECASE,
)


# Secret values known only at run time (a crawl source's cookies and headers): hidden wherever they appear.
_VALUES: set[str] = set()


def hide(*values: str) -> None:
    """From now on, `redact` hides these values in every text (values shorter than 4 characters are too common)."""
    _VALUES.update(v for v in values if len(v) >= 4)


def redact(text: str) -> str:
    """`text` with URL passwords, `name=value` / `name: value` secrets and hidden values replaced by ***."""
    for value in _VALUES:
        text = text.replace(value, HIDDEN)
    text = _URL_PASSWORD.sub(lambda m: f"{m['head']}{HIDDEN}@", text)
    return _NAMED_VALUE.sub(lambda m: f"{m['head']}{HIDDEN}", text)


def redact_settings(value: Any, name: str = "") -> Any:
    """A copy of a settings mapping (nested dicts and lists) with secret-named values hidden and URLs redacted."""
    if isinstance(value, dict):
        return {k: redact_settings(v, f"{name}.{k}" if name else str(k)) for k, v in value.items()}
    if isinstance(value, list):
        return [redact_settings(v, name) for v in value]
    if isinstance(value, str):
        return HIDDEN if SECRET_NAME.search(name) and value else redact(value)
    return value
