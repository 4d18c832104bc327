"""The executor contract (see sweeper/executors/__init__.py)."""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol


@dataclass
class TrialLaunch:
    number: int
    overrides: list[str]
    trial_dir: Path
    env: dict[str, str] = field(default_factory=dict)


class Executor(Protocol):
    def submit(self, launch: TrialLaunch) -> None: ...

    def poll(self) -> dict[int, int | None]: ...

    def cancel(self, number: int) -> None: ...

    def cancel_all(self) -> None: ...
