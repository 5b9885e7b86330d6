"""One root exception, subclassed by what the caller should do about it.

Every message names the thing, where it is (setting, YAML line, table, record key) and the fix.
No message ever contains a secret: settings redact themselves, and errors carry only what
they are given.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass


class CdcSyncError(Exception):
    """Root of every error cdc-sync raises on purpose; the CLI turns these into messages."""

    exit_code = 1


@dataclass(frozen=True, slots=True)
class Problem:
    """One problem found while checking input: where it is, what is wrong, how to fix it."""

    where: str
    what: str
    fix: str = ""

    def __str__(self) -> str:
        text = f"{self.where}: {self.what}"
        return f"{text}\n    fix: {self.fix}" if self.fix else text


class ProblemsError(CdcSyncError):
    """Several problems collected first, then raised once, so the user fixes them in one go."""

    title = "problems found"

    def __init__(self, problems: Sequence[Problem], title: str | None = None) -> None:
        self.problems = list(problems)
        if title is not None:
            self.title = title
        lines = "\n".join(f"  - {p}" for p in self.problems)
        super().__init__(f"{self.title} ({len(self.problems)}):\n{lines}")


class ConfigError(ProblemsError):
    """Settings are missing or malformed."""

    title = "configuration problems"
    exit_code = 2


class MappingError(ProblemsError):
    """mappings.yaml is malformed or does not fit the shop's schema."""

    title = "mapping problems"
    exit_code = 2


class SourceError(CdcSyncError):
    """The shop database could not be read (connection lost, query failed)."""


class StateError(CdcSyncError):
    """The local state database could not be read or written."""


class MetriloError(CdcSyncError):
    """Talking to Metrilo failed."""


class MetriloFatalError(MetriloError):
    """401/402/403: a configuration problem; the cycle stops and commits nothing more."""

    exit_code = 3

    def __init__(self, message: str, *, status_code: int) -> None:
        self.status_code = status_code
        super().__init__(message)


class MetriloUnavailableError(MetriloError):
    """Retries ran out (5xx, 429, timeouts); the records stay pending for the next cycle."""


class ComposeWorkerError(CdcSyncError):
    """The compose worker process died or answered nonsense mid-cycle; the cycle stops and
    the records it had not sent are read again next cycle."""


class DeleteGuardError(CdcSyncError):
    """Too large a share of a resource looks deleted at once; that resource is stopped."""


class MetriloRejectedError(MetriloError):
    """Metrilo answered 400 to a single-record call; the record is rejected with the reason."""

    def __init__(self, message: str, *, reason: str) -> None:
        self.reason = reason
        super().__init__(message)


class UnknownEndpointError(CdcSyncError, ValueError):
    """`validate` was asked about an endpoint the contract does not have (a caller bug)."""


class CoercionError(ValueError):
    """A value that cannot become the field's type; the message is the reason, for a user.

    Not a CdcSyncError: it never leaves a cycle; the record is rejected with the message.
    """


class QueryFailed(Exception):
    """A user's SQL failed; carries the database's message."""


class DaemonRunningError(CdcSyncError):
    """Another cdc-sync daemon holds the state DB's lease (SQLite state: no standby possible)."""

    exit_code = 4


class EndpointError(CdcSyncError):
    """The health endpoint could not listen (port taken, address not local)."""

    exit_code = 2


class SandboxError(CdcSyncError):
    """The sandbox could not start (the port is taken, say) or was used before starting."""


class SandboxStoreError(CdcSyncError):
    """The sandbox's store file could not be opened."""


class FaultsError(CdcSyncError, ValueError):
    """A sandbox fault setting is unknown or out of range."""


class NoShopError(CdcSyncError):
    """`cdc-sync init`: the database holds nothing init recognises as a shop."""
