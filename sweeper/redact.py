"""Storage URLs carry passwords; nothing we print or write may show one."""
from __future__ import annotations

import re

_USERINFO = re.compile(r"(?P<scheme>[a-zA-Z][\w+.-]*://)(?P<user>[^:/@\s]*):(?P<pw>[^@\s]*)@")


def redact(text: str) -> str:
    """'postgresql://u:secret@h/db' -> 'postgresql://u:***@h/db' (anywhere in text)."""
    return _USERINFO.sub(lambda m: f"{m['scheme']}{m['user']}:***@", str(text))
