"""Storage URLs carry passwords; nothing we print or write may show one."""
from __future__ import annotations

import re

_USERINFO = re.compile(r"(?P<scheme>[a-zA-Z][\w+.-]*://)(?P<user>[^:/@\s]*):(?P<pw>[^@\s]*)@")


def redact(text: str) -> str:
    """'postgresql://u:secret@h/db' -> 'postgresql://u:***@h/db' (anywhere in text)."""
    return _USERINFO.sub(lambda m: f"{m['scheme']}{m['user']}:***@", str(text))


def redact_hydra_config(config) -> None:
    """The sweep's own config (sweeper settings, Hydra's override list) with the storage URL's password
    hidden: the real URL travels to trials in their environment, never in a config."""
    from omegaconf import open_dict

    with open_dict(config):
        if config.hydra.sweeper.get("storage"):
            config.hydra.sweeper.storage = redact(config.hydra.sweeper.storage)
        config.hydra.overrides.hydra = [redact(o) for o in config.hydra.overrides.hydra]
