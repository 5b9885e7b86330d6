"""Runtime settings from flags, the environment and a `.env` file, checked all at once.

Precedence: command-line flags, then environment variables, then `.env` in the working
directory, then defaults. Secrets (the API secret, passwords inside database URLs) are
redacted in every repr, so printing or logging a Settings object is safe.
"""

from __future__ import annotations

import functools
import importlib
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Literal

from pydantic import Field, SecretStr, ValidationError, field_validator
from pydantic.fields import FieldInfo
from pydantic_settings import BaseSettings, SettingsConfigDict
from sqlalchemy.engine import make_url
from sqlalchemy.exc import ArgumentError

from cdc_sync.errors import ConfigError, Problem

DEFAULT_API_URL = "https://trk.mtrl.me/v2"
DEFAULT_STATE_FILE = "cdc-sync-state.sqlite"
RECHECK_AFTER_TIMEOUTS = 10
"""A request unanswered within the HTTP timeout is assumed applied (if ever) within this many
timeouts; its records are sent once more after that (see Settings.recheck_seconds)."""

_FIXES: dict[str, str] = {
    "metrilo_api_token": "set METRILO_API_TOKEN to the project token from Metrilo's settings page",
    "metrilo_api_secret": (
        "set METRILO_API_SECRET (or METRILO_API_SECRET_FILE to a file holding it) to the "
        "project's API secret; never pass it as a flag"
    ),
    "metrilo_api_url": "set METRILO_API_URL to an http(s) URL such as https://trk.mtrl.me/v2",
    "source_url": (
        "set CDC_SYNC_SOURCE_URL to a SQLAlchemy URL, e.g. "
        "postgresql+psycopg://reader@db/shop or mysql+pymysql://reader@db/shop"
    ),
    "state_url": "set CDC_SYNC_STATE_URL to a SQLAlchemy URL (sqlite:///state.db or postgresql)",
}


# What hosting providers hand out (Heroku, Render, DigitalOcean...) names no driver; SQLAlchemy
# would pick psycopg2 / MySQLdb, which are not installed. These are the drivers cdc-sync ships.
_USUAL_SCHEMES = {
    "postgres": "postgresql+psycopg",
    "postgresql": "postgresql+psycopg",
    "mysql": "mysql+pymysql",
    "mariadb": "mariadb+pymysql",
}
_MYSQLCLIENT_SCHEMES = {"mysql": "mysql+mysqldb", "mariadb": "mariadb+mysqldb"}


def usual_url(url: str) -> str:
    """`postgres://…`, `postgresql://…`, `mysql://…`, `mariadb://…` with the driver cdc-sync
    ships (psycopg 3; for MySQL/MariaDB mysqlclient when it is installed, else PyMySQL); any
    other URL, and every URL that names its driver, unchanged."""
    scheme, sep, rest = url.partition("://")
    if not sep:
        return url
    scheme = scheme.lower()
    driver = _USUAL_SCHEMES.get(scheme)
    if scheme in _MYSQLCLIENT_SCHEMES and mysqlclient_installed():
        # The C driver reads with less than half of PyMySQL's CPU (a no-change cycle at 1M
        # orders: 8.0 against 12.7 s; bench/README.md, "MariaDB at 1M: the orders' part").
        driver = _MYSQLCLIENT_SCHEMES[scheme]
    return f"{driver}://{rest}" if driver else url


@functools.cache
def mysqlclient_installed() -> bool:
    """Whether mysqlclient (the `mysqlclient` extra) loads here: installed, and its C library
    present; a PyMySQL-only install answers False and keeps working as before."""
    try:
        importlib.import_module("MySQLdb")
    except ImportError:
        return False
    return True


def redact_url(url: str) -> str:
    """The URL with any password replaced by ***, safe to log or show."""
    try:
        return make_url(url).render_as_string(hide_password=True)
    except ArgumentError:
        return "<unparseable URL>"


class Settings(BaseSettings):
    """Every runtime setting; the README's settings table documents each one."""

    model_config = SettingsConfigDict(
        env_file=".env", env_file_encoding="utf-8", extra="ignore", populate_by_name=True
    )

    metrilo_api_token: str = Field(default="", validation_alias="METRILO_API_TOKEN")
    metrilo_api_secret: SecretStr = Field(
        default=SecretStr(""), validation_alias="METRILO_API_SECRET"
    )
    metrilo_api_secret_file: Path | None = Field(
        default=None, validation_alias="METRILO_API_SECRET_FILE"
    )
    metrilo_api_url: str = Field(default=DEFAULT_API_URL, validation_alias="METRILO_API_URL")
    source_url: SecretStr = Field(default=SecretStr(""), validation_alias="CDC_SYNC_SOURCE_URL")
    state_url: SecretStr = Field(
        default=SecretStr(f"sqlite:///{DEFAULT_STATE_FILE}"),
        validation_alias="CDC_SYNC_STATE_URL",
    )
    mappings: Path = Field(default=Path("mappings.yaml"), validation_alias="CDC_SYNC_MAPPINGS")
    batch_size: int = Field(default=500, ge=1, le=10_000, validation_alias="CDC_SYNC_BATCH_SIZE")
    concurrency: int = Field(default=4, ge=1, le=64, validation_alias="CDC_SYNC_CONCURRENCY")
    http_timeout: float = Field(default=30.0, gt=0, validation_alias="CDC_SYNC_HTTP_TIMEOUT")
    max_attempts: int = Field(default=6, ge=1, le=100, validation_alias="CDC_SYNC_MAX_ATTEMPTS")
    max_retry_seconds: float = Field(
        default=120.0, gt=0, validation_alias="CDC_SYNC_MAX_RETRY_SECONDS"
    )
    rejection_threshold: int = Field(
        default=1, ge=0, validation_alias="CDC_SYNC_REJECTION_THRESHOLD"
    )
    # 0: records are composed in the cycle's own process; 1: also in one worker process (see
    # cycle/composing.py). Unset: 1 where this process may use more than one CPU.
    compose_workers: int | None = Field(
        default=None, ge=0, le=1, validation_alias="CDC_SYNC_COMPOSE_WORKERS"
    )

    # auto: PostgreSQL and MySQL/MariaDB compute each row's md5 (source/digests.py), and a
    # full cycle reads keys and digests only; off: every row's values are read and marked in
    # Python (no md5 on the shop's CPU).
    source_digests: Literal["auto", "off"] = Field(
        default="auto", validation_alias="CDC_SYNC_SOURCE_DIGESTS"
    )

    @field_validator("metrilo_api_url")
    @classmethod
    def _http_url(cls, value: str) -> str:
        if not value.startswith(("http://", "https://")):
            raise ValueError(f"{value!r} is not an http(s) URL")
        return value.rstrip("/")

    @field_validator("source_url", "state_url")
    @classmethod
    def _sqlalchemy_url(cls, value: SecretStr) -> SecretStr:
        raw = usual_url(value.get_secret_value())
        if raw:
            try:
                make_url(raw)
            except ArgumentError:
                raise ValueError("is not a SQLAlchemy database URL") from None
        return SecretStr(raw)

    @property
    def recheck_seconds(self) -> float:
        """How long after a request that got no answer (a timeout) its records are sent once
        more: until then Metrilo may still apply it, over a newer version sent since."""
        return RECHECK_AFTER_TIMEOUTS * self.http_timeout

    @property
    def digests(self) -> bool:
        """Whether the shop database computes row digests where it can (digests.py)."""
        return self.source_digests == "auto"

    @property
    def workers(self) -> int:
        """Compose worker processes: CDC_SYNC_COMPOSE_WORKERS, else 1 with a second CPU."""
        if self.compose_workers is not None:
            return self.compose_workers
        return 1 if available_cpus() > 1 and os.name == "posix" else 0

    def secret(self) -> str:
        """The API secret, from METRILO_API_SECRET or the file METRILO_API_SECRET_FILE names.

        The file is read on every call, so a rotated secret file is picked up without a restart.
        """
        if self.metrilo_api_secret_file is None:
            return self.metrilo_api_secret.get_secret_value()
        text, problem = _read_secret_file(self.metrilo_api_secret_file)
        if problem is not None:
            raise ConfigError([problem])
        return text

    def __repr_args__(self) -> Any:
        for name, value in super().__repr_args__():
            if name in ("source_url", "state_url") and isinstance(value, SecretStr):
                raw = value.get_secret_value()
                yield name, redact_url(raw) if raw else ""
            else:
                yield name, value

    def require(self, *names: str) -> None:
        """Raise one ConfigError naming every required setting that is missing."""
        problems = [
            Problem(where=_env_name(name), what="is not set", fix=_FIXES.get(name, ""))
            for name in names
            if not self._is_set(name)
        ]
        if problems:
            raise ConfigError(problems)

    def _is_set(self, name: str) -> bool:
        if name == "metrilo_api_secret":
            return bool(self.metrilo_api_secret_file or self.metrilo_api_secret.get_secret_value())
        value = getattr(self, name)
        return bool(value.get_secret_value() if isinstance(value, SecretStr) else value)


def available_cpus() -> int:
    """The CPUs this process may run on (its affinity, where the platform tells it)."""
    if hasattr(os, "sched_getaffinity"):
        return len(os.sched_getaffinity(0))
    return os.cpu_count() or 1


def _env_name(field_name: str) -> str:
    alias = Settings.model_fields[field_name].validation_alias
    return str(alias) if alias else field_name


def load_settings(overrides: Mapping[str, Any] | None = None, **kwargs: Any) -> Settings:
    """Settings from flags (`overrides`, None values ignored), env and `.env`; one error for all.

    `kwargs` go to pydantic-settings (tests pass `_env_file=None` to ignore a stray `.env`).
    """
    settings, problems = settings_and_problems(overrides, **kwargs)
    if problems:
        raise ConfigError(problems)
    return settings


def settings_and_problems(
    overrides: Mapping[str, Any] | None = None, **kwargs: Any
) -> tuple[Settings, list[Problem]]:
    """Settings as `load_settings` reads them, with any malformed one at its default, and the
    problems found; never raises, so a command can report these with every other problem."""
    given = {k: v for k, v in (overrides or {}).items() if v is not None}
    try:
        settings = Settings(**kwargs, **given)
    except ValidationError as exc:
        problems = [_problem(err) for err in exc.errors()]
        # Flags win over the environment: the defaults of the bad ones stand in for them.
        bad = {str(err["loc"][0]) for err in exc.errors() if err.get("loc")}
        stand_ins = {name: f.default for name, f in Settings.model_fields.items()
                     if name in bad or f.validation_alias in bad}
        return Settings(**kwargs, **{**given, **stand_ins}), problems
    return settings, _secret_problems(settings)


_FILE_SETTING = "METRILO_API_SECRET_FILE"
_FILE_FIX = "point it at a file that holds only the API secret, on one line"


def _secret_problems(settings: Settings) -> list[Problem]:
    path = settings.metrilo_api_secret_file
    if path is None:
        return []
    if settings.metrilo_api_secret.get_secret_value():
        # Which one wins would be a guess; a stale secret left in the environment is a classic.
        return [Problem(_FILE_SETTING, "is set together with METRILO_API_SECRET",
                        "unset one of them: keep the file for Docker/Kubernetes secrets")]
    _, problem = _read_secret_file(path)
    return [] if problem is None else [problem]


def _read_secret_file(path: Path) -> tuple[str, Problem | None]:
    """The secret held in `path`, or why it cannot be used. Never quotes the file's content."""
    try:
        text = path.read_text(encoding="utf-8").strip()
    except (OSError, UnicodeDecodeError) as error:
        why = error.strerror if isinstance(error, OSError) and error.strerror else "not UTF-8"
        return "", Problem(_FILE_SETTING, f"{path} cannot be read ({why})", _FILE_FIX)
    if not text:
        return "", Problem(_FILE_SETTING, f"{path} is empty", _FILE_FIX)
    if len(text.split()) > 1:
        return "", Problem(_FILE_SETTING, f"{path} holds more than the secret (several words "
                                         "or lines)", _FILE_FIX)
    return text, None


def _problem(err: Any) -> Problem:
    field_name = str(err["loc"][0]) if err.get("loc") else "settings"
    env = next(
        (str(f.validation_alias) for n, f in Settings.model_fields.items()
         if field_name in (n, f.validation_alias)),
        field_name,
    )
    name = _field_of(env)
    field = Settings.model_fields.get(name)
    fix = _FIXES.get(name) or (setting_fix(env, field) if field is not None else "")
    return Problem(where=env, what=setting_what(err, secret=name in _SECRET_FIELDS), fix=fix)


# Settings whose value may hold a secret (a password inside a URL): never echoed.
_SECRET_FIELDS = frozenset({"metrilo_api_token", "metrilo_api_secret", "metrilo_api_url",
                            "source_url", "state_url"})


def setting_what(err: Any, *, secret: bool) -> str:
    """What is wrong with a setting: pydantic's words, after the value given unless secret."""
    what = str(err["msg"]).removeprefix("Value error, ")
    given = err.get("input")
    if secret or not isinstance(given, str | int | float) or isinstance(given, bool):
        return what
    return f"{given!r}: {what}"


def setting_fix(env: str, field: FieldInfo) -> str:
    """A fix line from the field's type, bounds and default: "set X to a number ... (default Y)"."""
    bounds = {}
    for item in field.metadata:
        for name in ("ge", "gt", "le", "lt"):
            if getattr(item, name, None) is not None:
                bounds[name] = getattr(item, name)
    kind = repr(field.annotation)
    if "bool" in kind:
        wanted = "true or false (1/0, yes/no)"
    elif "int" in kind:
        wanted = "a whole number"
    elif "float" in kind:
        wanted = "a number"
    else:
        return f"see README.md (settings) for what {env} takes"
    limits = [f"{_WORDS[name]} {value:g}" for name, value in bounds.items()]
    default = "" if field.default in (None, "") else f" (default {field.default})"
    return f"set {env} to {wanted}{' ' if limits else ''}{' and '.join(limits)}{default}"


_WORDS = {"ge": "at least", "gt": "above", "le": "at most", "lt": "below"}


def _field_of(env: str) -> str:
    for name, f in Settings.model_fields.items():
        if f.validation_alias == env:
            return name
    return env
