"""Secrets stay secret, TLS is verified, servers stay local, and the mapping cannot inject SQL.

The secret comes from the environment or METRILO_API_SECRET_FILE, never a flag; a run of real
CLI commands (a sync refused with 403, a good sync, status, rejected, check, preview) is
searched, output and every file written, for the secrets it used. Database passwords never
reach a message. An https URL whose certificate is not trusted fails before anything is sent,
whatever the environment says. Names in the mapping are checked against the reflected schema
and quoted; only `query`, `where` and `expression` are raw SQL (docs/security.md).
"""

from __future__ import annotations

import http.server
import inspect
import os
import re
import shutil
import sqlite3
import ssl
import subprocess
import sys
import textwrap
import threading
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import click
import pytest
import sqlalchemy as sa

from cdc_sync.cli import cli
from cdc_sync.core.resources import Resource
from cdc_sync.demo.generate import generate
from cdc_sync.demo.scenario import demo_mapping_path
from cdc_sync.errors import ConfigError
from cdc_sync.mapping.loader import load_mapping, parse_mapping
from cdc_sync.metrilo.client import MetriloClient
from cdc_sync.sandbox import Sandbox
from cdc_sync.settings import Settings, load_settings
from cdc_sync.source import ShopSource, connect_shop
from helpers.statements import Statements

TOKEN = "security-token"


def clean_env(**settings: str) -> dict[str, str]:
    """This process's environment without cdc-sync's settings, plus `settings`."""
    base = {k: v for k, v in os.environ.items() if not k.startswith(("METRILO_", "CDC_SYNC_"))}
    return base | settings


def cdc_sync(cwd: Path, env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "cdc_sync", *args], cwd=cwd, env=env,
                          capture_output=True, text=True, timeout=120, check=False)


def synced_rows(state_file: Path) -> int:
    if not state_file.exists():
        return 0
    with sqlite3.connect(state_file) as db:
        return int(db.execute(
            "SELECT COUNT(*) FROM sync_state WHERE status = 'synced'").fetchone()[0])


@pytest.fixture(scope="module")
def demo_shop(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("shop") / "shop.sqlite"
    engine = sa.create_engine(f"sqlite:///{path}")
    generate(engine, customers=5, categories=2, products=4, orders=8)
    engine.dispose()
    return path


@pytest.fixture
def workdir(demo_shop: Path, tmp_path: Path) -> Path:
    """A folder holding a copy of the demo shop and its mapping: everything a run writes."""
    (tmp_path / "shop.sqlite").write_bytes(demo_shop.read_bytes())
    shutil.copy(demo_mapping_path(), tmp_path / "mappings.yaml")
    return tmp_path


def shop_env(workdir: Path, api_url: str, **more: str) -> dict[str, str]:
    return clean_env(
        METRILO_API_URL=api_url, METRILO_API_TOKEN=TOKEN, CDC_SYNC_MAX_ATTEMPTS="1",
        CDC_SYNC_SOURCE_URL=f"sqlite:///{workdir}/shop.sqlite",
        CDC_SYNC_STATE_URL=f"sqlite:///{workdir}/state.sqlite",
    ) | more


# --- the secret: where it comes from -------------------------------------------------------------


def every_command(group: click.Group) -> Iterator[click.Command]:
    for command in group.commands.values():
        yield command
        if isinstance(command, click.Group):
            yield from every_command(command)


def test_no_command_takes_the_secret_as_a_flag() -> None:
    commands = list(every_command(cli))
    assert len(commands) >= 10  # the walk reaches the commands
    for command in commands:
        for param in command.params:
            named = " ".join([param.name or "", *param.opts, *param.secondary_opts])
            assert "secret" not in named.lower(), f"{command.name} takes {named}"


def test_a_secret_flag_is_refused(workdir: Path) -> None:
    done = cdc_sync(workdir, clean_env(), "sync", "--metrilo-api-secret", "x")
    assert done.returncode == 2
    assert "No such option '--metrilo-api-secret'" in done.stderr


@pytest.fixture
def no_secret_env(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("METRILO_API_SECRET", "METRILO_API_SECRET_FILE"):
        monkeypatch.delenv(name, raising=False)


def file_settings(path: Path, **more: Any) -> Settings:
    return load_settings({"metrilo_api_secret_file": path, **more}, _env_file=None)


@pytest.mark.usefixtures("no_secret_env")
def test_the_secret_file_is_read_trimmed_and_again_after_rotation(tmp_path: Path) -> None:
    path = tmp_path / "secret"
    path.write_text("first-secret\n", encoding="utf-8")
    settings = file_settings(path)
    assert settings.secret() == "first-secret"
    path.write_text("rotated-secret\n", encoding="utf-8")
    assert settings.secret() == "rotated-secret"
    assert "rotated-secret" not in repr(settings)


@pytest.mark.usefixtures("no_secret_env")
@pytest.mark.parametrize(("content", "words"), [
    ("", "is empty"),
    ("   \n", "is empty"),
    ("METRILO_API_SECRET=s3cr3t-in-a-dotenv\nOTHER=1\n", "holds more than the secret"),
])
def test_an_unusable_secret_file_is_a_config_error(tmp_path: Path, content: str,
                                                   words: str) -> None:
    path = tmp_path / "secret"
    path.write_text(content, encoding="utf-8")
    with pytest.raises(ConfigError) as caught:
        file_settings(path)
    message = str(caught.value)
    assert f"METRILO_API_SECRET_FILE: {path} {words}" in message
    assert "s3cr3t-in-a-dotenv" not in message


@pytest.mark.usefixtures("no_secret_env")
def test_a_secret_file_that_is_a_folder_or_missing_is_a_config_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="cannot be read"):
        file_settings(tmp_path)
    with pytest.raises(ConfigError, match="cannot be read"):
        file_settings(tmp_path / "missing")


@pytest.mark.usefixtures("no_secret_env")
def test_secret_and_secret_file_together_is_a_config_error(tmp_path: Path) -> None:
    path = tmp_path / "secret"
    path.write_text("from-file", encoding="utf-8")
    with pytest.raises(ConfigError, match="is set together with METRILO_API_SECRET") as caught:
        file_settings(path, metrilo_api_secret="from-env")
    assert "from-env" not in str(caught.value)
    assert "from-file" not in str(caught.value)


# --- the secret: where it must never appear ------------------------------------------------------


def test_the_secret_never_appears_in_output_logs_status_or_files(workdir: Path) -> None:
    secret, wrong = f"s3cr3t-{uuid.uuid4().hex}", f"wr0ng-{uuid.uuid4().hex}"
    secret_file = workdir.parent / f"{workdir.name}-secret"  # outside the searched folder
    secret_file.write_text(secret + "\n", encoding="utf-8")
    outputs: list[str] = []
    with Sandbox(token=TOKEN, secret=secret, store_path=workdir / "sandbox.sqlite") as sandbox:
        refused = cdc_sync(workdir, shop_env(workdir, sandbox.url, METRILO_API_SECRET=wrong),
                           "sync")
        outputs += [refused.stdout, refused.stderr]
        assert refused.returncode == 3, refused.stderr
        assert "Metrilo answered 403" in refused.stderr
        env = shop_env(workdir, sandbox.url, METRILO_API_SECRET_FILE=str(secret_file))
        for args in (["sync"], ["status"], ["status", "--json"], ["rejected", "orders"],
                     ["check"], ["preview", "customers", "--limit", "2"],
                     ["sync", "--dry-run"], ["retry"]):
            done = cdc_sync(workdir, env, *args)
            assert done.returncode == 0, (args, done.stderr)
            outputs += [done.stdout, done.stderr]
            if args == ["status", "--json"]:
                assert '"status": "failed"' in done.stdout  # the refused cycle is there
        assert sandbox.store.counts()["orders"] == 8  # the good sync really sent
    for text in outputs:
        assert secret not in text
        assert wrong not in text
    written = [p for p in workdir.rglob("*") if p.is_file()]
    assert {"state.sqlite", "sandbox.sqlite"} <= {p.name for p in written}
    for path in written:
        data = path.read_bytes()
        assert secret.encode() not in data, path
        assert wrong.encode() not in data, path


# --- database passwords --------------------------------------------------------------------------

PASSWORD = "Pa55-w0rd-never-shown"


def password_urls(mysql_url: str) -> list[str]:
    maria = sa.make_url(mysql_url).set(password=PASSWORD)
    return [
        f"postgresql+psycopg://reader:{PASSWORD}@127.0.0.1:1/shop",  # nothing listens there
        maria.render_as_string(hide_password=False),  # a real server refusing the password
        f"mysql+pymysql://reader:{PASSWORD}@127.0.0.1:notaport/shop",  # not a valid URL
    ]


def test_database_passwords_are_redacted_in_every_error(workdir: Path, mysql_url: str) -> None:
    refused, denied, malformed = password_urls(mysql_url)
    runs = [("CDC_SYNC_SOURCE_URL", url, "sync") for url in (refused, denied, malformed)]
    runs += [("CDC_SYNC_SOURCE_URL", refused, "check"), ("CDC_SYNC_STATE_URL", refused, "status"),
             ("CDC_SYNC_STATE_URL", denied, "status")]
    for setting, url, command in runs:
        env = shop_env(workdir, "http://127.0.0.1:9/v2", METRILO_API_SECRET="x") | {setting: url}
        done = cdc_sync(workdir, env, command)
        assert done.returncode != 0, (setting, url, command)
        assert "error:" in done.stderr
        assert PASSWORD not in done.stdout + done.stderr, (setting, url, command)
    settings = load_settings({"source_url": password_urls(mysql_url)[0]}, _env_file=None)
    assert PASSWORD not in repr(settings)
    assert "reader:***@127.0.0.1:1/shop" in repr(settings)


# --- TLS -----------------------------------------------------------------------------------------


class _CountingServer(http.server.ThreadingHTTPServer):
    posts = 0


class _CountingHandler(http.server.BaseHTTPRequestHandler):
    def do_POST(self) -> None:
        self.rfile.read(int(self.headers.get("content-length", "0")))
        assert isinstance(self.server, _CountingServer)
        self.server.posts += 1
        self.send_response(200)
        self.send_header("content-type", "application/json")
        self.send_header("content-length", "2")
        self.end_headers()
        self.wfile.write(b"{}")

    def log_message(self, *_args: Any) -> None:
        pass


@pytest.fixture(scope="module")
def certificate(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """A self-signed certificate for 127.0.0.1 and its key, made with the openssl command."""
    if shutil.which("openssl") is None:
        pytest.skip("the openssl command is needed to make a self-signed certificate")
    folder = tmp_path_factory.mktemp("tls")
    cert, key = folder / "cert.pem", folder / "key.pem"
    subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1",
                    "-subj", "/CN=127.0.0.1", "-addext", "subjectAltName=IP:127.0.0.1",
                    "-keyout", str(key), "-out", str(cert)],
                   check=True, capture_output=True, timeout=60)
    return cert, key


@pytest.fixture
def https_server(certificate: tuple[Path, Path]) -> Iterator[_CountingServer]:
    """An https server with the self-signed certificate that answers every POST with 200."""
    server = _CountingServer(("127.0.0.1", 0), _CountingHandler)
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(*certificate)
    server.socket = context.wrap_socket(server.socket, server_side=True)
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05},
                              daemon=True)
    thread.start()
    try:
        yield server
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)


def test_an_untrusted_certificate_fails_before_anything_is_sent(
    workdir: Path, https_server: _CountingServer,
) -> None:
    url = f"https://127.0.0.1:{https_server.server_port}/v2"
    # Switches that turn verification off elsewhere must not reach cdc-sync's client.
    env = shop_env(workdir, url, METRILO_API_SECRET="s", PYTHONHTTPSVERIFY="0",
                   CURL_CA_BUNDLE="", REQUESTS_CA_BUNDLE="")
    done = cdc_sync(workdir, env, "sync")
    assert "CERTIFICATE_VERIFY_FAILED" in done.stderr
    assert https_server.posts == 0
    assert synced_rows(workdir / "state.sqlite") == 0


def test_trusting_a_certificate_takes_an_explicit_ca_file(
    workdir: Path, https_server: _CountingServer,
    certificate: tuple[Path, Path],
) -> None:
    # The control for the test above: the server works, and trust is added, never switched off.
    url = f"https://127.0.0.1:{https_server.server_port}/v2"
    env = shop_env(workdir, url, METRILO_API_SECRET="s", SSL_CERT_FILE=str(certificate[0]))
    done = cdc_sync(workdir, env, "sync")
    assert done.returncode == 0, done.stderr
    assert https_server.posts > 0
    assert synced_rows(workdir / "state.sqlite") > 0


def test_no_setting_or_client_option_turns_tls_verification_off() -> None:
    switches = re.compile(r"verify|insecure|ssl|tls|cert", re.IGNORECASE)
    options = list(inspect.signature(MetriloClient).parameters)
    settings = [*Settings.model_fields,
                *(str(f.validation_alias) for f in Settings.model_fields.values())]
    assert "timeout" in options  # the walk sees the client's options
    assert [name for name in options + settings if switches.search(name)] == []


# --- servers bind to localhost -------------------------------------------------------------------


def test_the_sandbox_listens_on_localhost_by_default() -> None:
    with Sandbox(token="t", secret="s") as sandbox:
        assert sandbox.url.startswith("http://127.0.0.1:")


def test_the_sandbox_command_listens_on_localhost_by_default(tmp_path: Path) -> None:
    process = subprocess.Popen([sys.executable, "-m", "cdc_sync", "sandbox", "--port", "0"],
                               cwd=tmp_path, env=clean_env(), stdout=subprocess.PIPE,
                               stderr=subprocess.PIPE, text=True)
    try:
        assert process.stdout is not None
        lines = [process.stdout.readline() for _ in range(3)]
        listening = next(line for line in lines if "sandbox listening" in line)
        assert "METRILO_API_URL=http://127.0.0.1:" in listening
    finally:
        process.terminate()
        process.communicate(timeout=30)


def test_the_daemon_http_endpoint_binds_localhost_by_default() -> None:
    daemon_settings = pytest.importorskip("cdc_sync.daemon.settings")
    assert daemon_settings.DaemonSettings.model_fields["http_host"].default == "127.0.0.1"


# --- names from the mapping: checked against the schema, quoted ----------------------------------

ODD_TABLE = 'odd"name; x'
ODD_COLUMN = "e'mail \"q\"; --"
INJECTED = "people; DROP TABLE people"


@pytest.fixture
def writable_shop(shop_url: str) -> Iterator[sa.Engine]:
    """A shop with `people` and a table and column whose names hold quotes and semicolons.

    The engine is writable on purpose: an injected statement would run, so it must never be
    built in the first place.
    """
    engine = sa.create_engine(shop_url)
    meta = sa.MetaData()
    people = sa.Table("people", meta, sa.Column("id", sa.Integer, primary_key=True),
                      sa.Column("email", sa.String(100)), sa.Column("joined", sa.DateTime),
                      sa.Column("grp", sa.Integer))
    odd = sa.Table(ODD_TABLE, meta, sa.Column("id", sa.Integer, primary_key=True),
                   sa.Column(ODD_COLUMN, sa.String(100)), sa.Column("joined", sa.DateTime))
    meta.create_all(engine)
    with engine.begin() as conn:
        conn.execute(people.insert(), [{"id": 1, "email": "p@example.com", "grp": 1}])
        conn.execute(odd.insert(), [{"id": 7, ODD_COLUMN: "odd@example.com"}])
    try:
        yield engine
    finally:
        engine.dispose()


def check(engine: sa.Engine, text: str) -> list[str]:
    source = ShopSource(engine, parse_mapping(textwrap.dedent(text), Path("mappings.yaml")))
    return [str(problem) for problem in source.check()]


def test_names_with_quotes_and_semicolons_are_quoted_not_executed(
    writable_shop: sa.Engine,
) -> None:
    mapping = f"""
        customers:
          table: '{ODD_TABLE}'
          fields:
            email: {{column: '{ODD_COLUMN.replace("'", "''")}'}}
            createdAt: {{const: 1700000000000}}
    """
    assert check(writable_shop, mapping) == []
    source = ShopSource(writable_shop, parse_mapping(textwrap.dedent(mapping),
                                                     Path("mappings.yaml")))
    records = list(source.records(Resource.CUSTOMERS))
    assert [(r.key, r.payload["email"]) for r in records] == [("7", "odd@example.com")]


INJECTIONS = {
    "table": ("customers:\n  table: 'INJ'\n  fields: {email: email, createdAt: joined}",
              "customers.table", "does not exist"),
    "column": ("customers:\n  table: people\n  fields: {email: 'INJ', createdAt: joined}",
               "customers.fields.email", "is not a column"),
    "template": ("customers:\n  table: people\n  fields:\n    email: {template: '{INJ}'}\n"
                 "    createdAt: joined", "customers.fields.email", "is not a column"),
    "key": ("customers:\n  table: people\n  key: 'INJ'\n  fields: {email: email, createdAt: "
            "joined}", "customers.key", "is not a column"),
    "cursor": ("customers:\n  table: people\n  cursor: 'INJ'\n  fields: {email: email, "
               "createdAt: joined}", "customers.cursor", "is not a column"),
    "join": ("customers:\n  table: people\n  joins: [{table: people, alias: p2, on: {grp: "
             "'INJ'}}]\n  fields: {email: email, createdAt: joined}", "customers.joins[0].on",
             "is not a column"),
    "child order_by": ("customers:\n  table: people\n  fields: {email: email, createdAt: "
                       "joined}\n  children:\n    tags: {table: people, parent_key: id, "
                       "value: email, order_by: 'INJ'}", "customers.children.tags.order_by",
                       "is not a column"),
}


@pytest.mark.parametrize("case", INJECTIONS.values(), ids=INJECTIONS.keys())
def test_sql_in_a_name_is_reported_by_check_and_never_run(
    writable_shop: sa.Engine, case: tuple[str, str, str],
) -> None:
    text, where, words = case
    with Statements(writable_shop) as seen:
        problems = check(writable_shop, text.replace("INJ", INJECTED))
    assert any(f"({where}" in p and words in p and INJECTED in p for p in problems), problems
    for statement, *_ in seen.statements:  # reflection may name it, but only inside quotes
        for found in re.finditer(re.escape(INJECTED), statement):
            assert statement[found.start() - 1] in "\"`'[", statement
    assert sa.inspect(writable_shop).has_table("people")
    with writable_shop.connect() as conn:
        assert conn.execute(sa.text("SELECT COUNT(*) FROM people")).scalar() == 1


# --- the SELECT-only users of docs/security.md, exactly as documented ---------------------------

DOCS = Path(__file__).resolve().parent.parent / "docs" / "security.md"


def documented_sql(heading: str, **names: str) -> list[str]:
    """The statements of the ```sql block starting `-- <heading>`, placeholders filled in."""
    blocks = re.findall(r"```sql\n(.*?)```", DOCS.read_text(encoding="utf-8"), flags=re.DOTALL)
    block = next(b for b in blocks if b.startswith(f"-- {heading}\n"))
    for placeholder, name in names.items():
        block = block.replace(placeholder, name)
    code = "\n".join(line for line in block.splitlines() if not line.startswith("--"))
    return [statement.strip() for statement in code.split(";") if statement.strip()]


def assert_reads_but_cannot_write(reader_url: str, refusal: str) -> None:
    engine = connect_shop(reader_url)
    try:
        source = ShopSource(engine, load_mapping(demo_mapping_path()))
        assert source.check() == []
        assert sum(1 for _ in source.records(Resource.ORDERS)) == 8
    finally:
        engine.dispose()
    plain = sa.create_engine(reader_url)  # not even without cdc-sync's read-only session
    try:
        with pytest.raises(sa.exc.DBAPIError, match=refusal), plain.begin() as conn:
            conn.execute(sa.text("UPDATE orders SET status = 4"))
    finally:
        plain.dispose()


def seeded(url: str) -> sa.URL:
    writer = sa.create_engine(url)
    generate(writer, customers=5, categories=2, products=4, orders=8)
    writer.dispose()
    return sa.make_url(url)


def assert_the_documented_user_reads_but_cannot_write(
    url: str, heading: str, refusal: str, drops: tuple[str, ...], **names: str,
) -> None:
    """A user made by the block `-- <heading>` (a fresh name and password; `names` fill its
    other placeholders) reads the seeded shop and cannot write; `drops` ({user}) remove it."""
    shop = seeded(url)
    user, password = f"cdc_reader_{uuid.uuid4().hex[:8]}", uuid.uuid4().hex
    admin = sa.create_engine(shop, isolation_level="AUTOCOMMIT")
    statements = documented_sql(heading, shop_db=str(shop.database), cdc_reader=user,
                                **names, **{"choose-a-password": password})
    try:
        with admin.connect() as conn:
            for statement in statements:
                conn.execute(sa.text(statement))
        reader = shop.set(username=user, password=password)
        assert_reads_but_cannot_write(reader.render_as_string(hide_password=False), refusal)
    finally:
        with admin.connect() as conn:
            for drop in drops:
                conn.execute(sa.text(drop.format(user=user)))
        admin.dispose()


def test_the_documented_postgresql_user_reads_the_shop_and_cannot_write(pg_url: str) -> None:
    assert_the_documented_user_reads_but_cannot_write(
        pg_url, "PostgreSQL", "permission denied|read-only transaction",
        ("DROP OWNED BY {user}", "DROP ROLE {user}"),
        shop_owner=str(sa.make_url(pg_url).username))


def test_the_documented_mariadb_user_reads_the_shop_and_cannot_write(mysql_url: str) -> None:
    assert_the_documented_user_reads_but_cannot_write(
        mysql_url, "MySQL / MariaDB", "command denied", ("DROP USER IF EXISTS '{user}'@'%'",))
