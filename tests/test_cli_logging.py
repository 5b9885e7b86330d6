"""The log a user reads: a library's error on a connection the server killed is one line."""

from __future__ import annotations

import logging
from collections.abc import Iterator

import pytest

from cdc_sync.cli.common import setup_logging


@pytest.fixture
def logging_restored() -> Iterator[None]:
    root = logging.getLogger()
    handlers, level = root.handlers[:], root.level
    try:
        yield
    finally:
        root.handlers[:] = handlers
        root.setLevel(level)


def _raised(exc: BaseException) -> BaseException:
    try:
        raise exc
    except BaseException as caught:  # a real traceback to log
        return caught


@pytest.mark.usefixtures("logging_restored")
def test_sqlalchemy_error_on_a_killed_connection_is_one_line_without_traceback(
    capsys: pytest.CaptureFixture[str],
) -> None:
    setup_logging()
    killed = _raised(ConnectionError("terminating connection due to administrator command"))
    # What SQLAlchemy's Connection._safe_close_cursor logs when the server killed the session.
    logging.getLogger("sqlalchemy.pool.impl.QueuePool").error(
        "Error closing cursor", exc_info=(type(killed), killed, killed.__traceback__))
    ours = _raised(ValueError("a bug of ours"))
    logging.getLogger("cdc_sync.cycle.engine").error(
        "unexpected", exc_info=(type(ours), ours, ours.__traceback__))
    err = capsys.readouterr().err
    line = next(line for line in err.splitlines() if "Error closing cursor" in line)
    assert line.endswith("Error closing cursor: ConnectionError: terminating connection due "
                         "to administrator command")
    assert err.count("Traceback") == 1  # ours, not the library's
    assert err.index("Traceback") > err.index("unexpected")
