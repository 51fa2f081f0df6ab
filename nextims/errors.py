"""Record-level errors, the report that counts skipped records by reason, and unusable command inputs."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from typing import Any


class RecordError(ValueError):
    """A record that cannot be used, with the record's id and a short machine-readable reason."""

    def __init__(self, record: str, reason: str, detail: str = "") -> None:
        self.record = record
        self.reason = reason
        self.detail = detail
        message = f"record {record!r}: {reason}"
        super().__init__(f"{message} ({detail})" if detail else message)


class InputError(ValueError):
    """An input a command cannot use (a missing file, the wrong kind of model): reported in one line, without
    a traceback, by the command-line entry points."""


@dataclass
class DropReport:
    """Counts kept and dropped records, by reason, with a few example record ids per reason."""

    name: str = "records"
    kept: int = 0
    dropped: Counter = field(default_factory=Counter)
    examples: dict[str, list[str]] = field(default_factory=dict)
    max_examples: int = 3
    # reasons whose every dropped record is listed (in `listed`), not only the first few examples
    listed_reasons: tuple[str, ...] = ()
    listed: dict[str, list[str]] = field(default_factory=dict)

    def keep(self, n: int = 1) -> None:
        """Count n kept records."""
        self.kept += n

    def drop(self, reason: str, record: str = "", detail: str = "") -> None:
        """Count one dropped record under reason."""
        self.dropped[reason] += 1
        ex = self.examples.setdefault(reason, [])
        entry = f"{record}: {detail}" if detail else record
        if record and len(ex) < self.max_examples:
            ex.append(entry)
        if record and reason in self.listed_reasons:
            self.listed.setdefault(reason, []).append(entry)

    def drop_error(self, err: RecordError) -> None:
        """Count a RecordError."""
        self.drop(err.reason, err.record, err.detail)

    def add_drops(self, other: "DropReport") -> None:
        """Add another report's drops (not its kept count) to this one."""
        for reason, n in other.dropped.items():
            self.dropped[reason] += n
            ex = self.examples.setdefault(reason, [])
            ex.extend(other.examples.get(reason, [])[: self.max_examples - len(ex)])
        for reason, entries in other.listed.items():
            self.listed.setdefault(reason, []).extend(entries)

    @property
    def total_dropped(self) -> int:
        """Number of dropped records."""
        return sum(self.dropped.values())

    def to_dict(self) -> dict[str, Any]:
        """A JSON-serialisable summary."""
        return {
            "name": self.name,
            "kept": self.kept,
            "dropped": dict(sorted(self.dropped.items())),
            "total_dropped": self.total_dropped,
            "examples": {k: list(v) for k, v in sorted(self.examples.items())},
            **({"listed": {k: list(v) for k, v in sorted(self.listed.items())}} if self.listed else {}),
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any], listed_reasons: tuple[str, ...] = ()) -> "DropReport":
        """The report that to_dict described."""
        return cls(name=data["name"], kept=int(data["kept"]), dropped=Counter(data["dropped"]),
                   examples={k: list(v) for k, v in data["examples"].items()}, listed_reasons=listed_reasons,
                   listed={k: list(v) for k, v in data.get("listed", {}).items()})

    def format(self) -> str:
        """A human-readable table."""
        lines = [f"{self.name}: kept {self.kept}, dropped {self.total_dropped}"]
        for reason, n in sorted(self.dropped.items(), key=lambda kv: (-kv[1], kv[0])):
            ex = "; ".join(self.examples.get(reason, []))
            lines.append(f"  {reason:<32s} {n:>7d}" + (f"   e.g. {ex}" if ex else ""))
        return "\n".join(lines)

    def __str__(self) -> str:
        return self.format()


def handle(err: RecordError, report: DropReport | None) -> None:
    """Raise err when no report is given (strict mode), else count it."""
    if report is None:
        raise err
    report.drop_error(err)
