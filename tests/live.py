"""A turingtest server in processes of its own, and readers that talk HTTP to it.

Used by the fault tests that stop a real server and by ``bench/readers_load.py``.
``LiveStack`` owns a scratch database (a SQLite file, or a PostgreSQL database
of its own when ``DATABASE_URL`` names a PostgreSQL server), a media folder,
and gunicorn on a free loopback port. ``HttpReader`` does what the reading page
does: signs in with the login form, consents, fetches ``next``, the images,
and posts answers with the CSRF token from its cookie.

Run as a module it seeds a study into the database its environment names::

    python -m tests.live seed --slug s --readers 3 --per-grade 1
"""

from __future__ import annotations

import argparse
import http.client
import json
import os
import secrets
import signal
import socket
import sqlite3
import struct
import subprocess
import sys
import time
import urllib.parse
from dataclasses import dataclass, field
from http.cookies import SimpleCookie
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

ROOT = Path(__file__).resolve().parents[1]
PASSWORD = "correct-horse-battery-staple"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class LiveStack:
    """Database, media and a gunicorn server for one test module or benchmark."""

    def __init__(
        self,
        base: Path,
        *,
        name: str,
        production: bool = False,
        redis_url: str | None = None,
        database_url: str | None = None,
    ) -> None:
        self.base = base
        self.production = production
        self.env = os.environ.copy()
        self.env.update(
            DJANGO_SETTINGS_MODULE="turingtest.settings",
            MEDIA_ROOT=str(base / "media"),
            PYTHONUNBUFFERED="1",
            OMP_NUM_THREADS="1",
            LOG_LEVEL="WARNING",
        )
        self.pg_admin_url = None
        database_url = database_url or os.environ.get("DATABASE_URL", "")
        if database_url.startswith(("postgres://", "postgresql://")):
            parts = urlsplit(database_url)
            self.pg_name = f"{name}_{os.getpid()}"
            self.pg_admin_url = urlunsplit(parts._replace(path="/postgres"))
            self._pg(f'DROP DATABASE IF EXISTS "{self.pg_name}" WITH (FORCE)')
            self._pg(f'CREATE DATABASE "{self.pg_name}"')
            self.env["DATABASE_URL"] = urlunsplit(
                parts._replace(path=f"/{self.pg_name}")
            )
            self.dsn = self.env["DATABASE_URL"].replace(
                "postgres://", "postgresql://", 1
            )
        else:
            self.sqlite = base / "db.sqlite3"
            self.env["DATABASE_URL"] = f"sqlite:///{self.sqlite}"
        if redis_url:
            self.env["REDIS_URL"] = redis_url
        else:
            self.env.pop("REDIS_URL", None)
            self.env["BROKER_DIR"] = str(base / "broker")
        if production:
            self.env.update(
                DEBUG="False",
                SECRET_KEY=secrets.token_urlsafe(50),
                ALLOWED_HOSTS="127.0.0.1,localhost",
                # TLS ends at a proxy in production; here the client says so
                # with X-Forwarded-Proto, as that proxy would.
                SECURE_SSL_REDIRECT="False",
                STATIC_ROOT=str(base / "static"),
            )
        self.port = free_port()
        self.server: subprocess.Popen | None = None
        self.log_path = base / "gunicorn.log"

    # --- database -------------------------------------------------------------

    @property
    def vendor(self) -> str:
        return "postgresql" if self.pg_admin_url else "sqlite"

    def _pg(self, sql: str) -> None:
        import psycopg

        with psycopg.connect(self.pg_admin_url, autocommit=True) as conn:
            conn.execute(sql)

    def query(self, sql: str, params: tuple = ()) -> list[tuple]:
        if self.pg_admin_url:
            import psycopg

            with psycopg.connect(self.dsn) as conn:
                return conn.execute(sql.replace("?", "%s"), params).fetchall()
        with sqlite3.connect(self.sqlite, timeout=20) as conn:
            return conn.execute(sql, params).fetchall()

    def sessions(self, slug: str) -> dict[tuple[str, str | int], dict]:
        """Each reader's sessions in a study: stored order and answers, by stage."""
        rows = self.query(
            'SELECT u.username, p."index", s.id, s."order" '
            "FROM studies_readingsession s "
            "JOIN studies_enrollment e ON e.id = s.enrollment_id "
            "JOIN studies_study st ON st.id = e.study_id "
            "JOIN studies_reader r ON r.id = e.reader_id "
            "JOIN auth_user u ON u.id = r.user_id "
            "LEFT JOIN studies_phase p ON p.id = s.phase_id WHERE st.slug = ?",
            (slug,),
        )
        answers = self.query(
            "SELECT j.session_id, j.position, j.case_id, j.kl_grade, j.confidence "
            "FROM studies_judgment j JOIN studies_readingsession s ON s.id = j.session_id "
            "JOIN studies_enrollment e ON e.id = s.enrollment_id "
            "JOIN studies_study st ON st.id = e.study_id WHERE st.slug = ? "
            "ORDER BY j.session_id, j.position",
            (slug,),
        )
        by_session: dict[int, list[tuple]] = {}
        for session_id, *answer in answers:
            by_session.setdefault(session_id, []).append(tuple(answer))
        sessions = {}
        for email, index, session_id, order in rows:
            stage = "practice" if index is None else index + 1
            sessions[(email, stage)] = {
                "order": json.loads(order) if isinstance(order, str) else order,
                "answers": by_session.get(session_id, []),
            }
        return sessions

    def case_ids(self, slug: str) -> dict[str, list[int]]:
        rows = self.query(
            "SELECT c.id, c.role FROM studies_case c JOIN studies_study s "
            "ON s.id = c.study_id WHERE s.slug = ?",
            (slug,),
        )
        return {
            "practice": sorted(i for i, role in rows if role == "practice"),
            "phase": sorted(i for i, role in rows if role != "practice"),
        }

    def manage(self, *args: str, timeout: float = 300) -> str:
        done = subprocess.run(
            [sys.executable, "manage.py", *args],
            cwd=ROOT,
            env=self.env,
            capture_output=True,
            text=True,
            timeout=timeout,
        )
        if done.returncode != 0:
            raise RuntimeError(f"manage.py {' '.join(args)}:\n{done.stderr[-3000:]}")
        return done.stdout

    def setup(self) -> None:
        self.manage("migrate", "--noinput", "-v0")
        if self.production:
            self.manage("collectstatic", "--noinput", "-v0")

    def seed(self, **options) -> dict:
        args = [sys.executable, "-m", "tests.live", "seed"]
        for key, value in options.items():
            args += [f"--{key.replace('_', '-')}", str(value)]
        done = subprocess.run(
            args, cwd=ROOT, env=self.env, capture_output=True, text=True, timeout=600
        )
        if done.returncode != 0:
            raise RuntimeError(f"seeding failed:\n{done.stderr[-3000:]}")
        return json.loads(done.stdout.strip().splitlines()[-1])

    # --- server ---------------------------------------------------------------

    def start(
        self,
        *,
        workers: int = 2,
        threads: int = 2,
        worker_class: str = "gthread",
        timeout: float = 60,
    ) -> None:
        log = open(self.log_path, "a")  # noqa: SIM115 - the server writes to it
        self.server = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "gunicorn",
                "turingtest.wsgi:application",
                "--bind",
                f"127.0.0.1:{self.port}",
                "--workers",
                str(workers),
                "--threads",
                str(threads),
                "--worker-class",
                worker_class,
                "--keep-alive",
                "30",
                "--graceful-timeout",
                "20",
                "--timeout",
                "120",
                # One per server would be ~/.gunicorn/gunicorn.ctl for all of them.
                "--no-control-socket",
            ],
            cwd=ROOT,
            env=self.env,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,  # its own process group, to kill it whole
        )
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.server.poll() is not None:
                raise RuntimeError(
                    f"gunicorn exited:\n{self.log_path.read_text()[-3000:]}"
                )
            try:
                status = HttpReader(self).request("GET", "/accounts/login/").status
                if status == 200:
                    return
            except OSError:
                pass
            time.sleep(0.2)
        raise RuntimeError(
            f"gunicorn did not answer:\n{self.log_path.read_text()[-3000:]}"
        )

    def stop(self, sig: int = signal.SIGTERM, timeout: float = 30) -> None:
        """SIGTERM: a graceful shutdown. SIGKILL: every process of it at once."""
        if self.server is None:
            return
        if self.server.poll() is None:
            if sig == signal.SIGKILL:
                os.killpg(self.server.pid, signal.SIGKILL)
            else:
                self.server.send_signal(sig)
            try:
                self.server.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                os.killpg(self.server.pid, signal.SIGKILL)
                self.server.wait()
        # Workers left behind by a killed master would keep the port.
        try:
            os.killpg(self.server.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        self.server = None

    def close(self) -> None:
        self.stop()
        if self.pg_admin_url:
            self._pg(f'DROP DATABASE IF EXISTS "{self.pg_name}" WITH (FORCE)')


def audit(
    stack: LiveStack,
    slug: str,
    readers: list[str],
    phases: int,
    acknowledged: dict[tuple[str, str | int, int], dict],
    *,
    complete: set[str] | None = None,
) -> tuple[int, list[str]]:
    """Judgments stored, and every way they differ from what was answered.

    For every reader and stage, the stored order is a permutation of the
    stage's cases and the judgments fill its first positions, one each, of the
    case the order puts there: none missing before the last, none twice. The
    readers in ``complete`` (all of them by default) have answered every
    position of every stage. Every answer the server acknowledged (201) is
    stored as it was sent.
    """
    complete = set(readers) if complete is None else complete
    sessions = stack.sessions(slug)
    cases = stack.case_ids(slug)
    problems = []
    stored = 0
    for email in readers:
        for stage in ["practice", *range(1, phases + 1)]:
            session = sessions.get((email, stage))
            if session is None:
                if email in complete:
                    problems.append(f"{email} stage {stage}: no session")
                continue
            order = session["order"]
            answers = session["answers"]
            stored += len(answers)
            if sorted(order) != cases["practice" if stage == "practice" else "phase"]:
                problems.append(f"{email} stage {stage}: order is not a permutation")
            positions = [a[0] for a in answers]
            expected = len(order) if email in complete else len(answers)
            if positions != list(range(expected)):
                problems.append(
                    f"{email} stage {stage}: {len(answers)} judgments at "
                    f"{len(set(positions))} distinct of positions 0-{expected - 1}"
                )
            if [a[1] for a in answers] != order[: len(answers)]:
                problems.append(f"{email} stage {stage}: a judgment of the wrong case")
    for (email, stage, position), body in acknowledged.items():
        answers = sessions.get((email, stage), {}).get("answers", [])
        row = next((a for a in answers if a[0] == position), None)
        if row is None:
            problems.append(
                f"{email} stage {stage} #{position}: acknowledged, not stored"
            )
        elif (row[2], row[3]) != (body["kl_grade"], body["confidence"]):
            problems.append(
                f"{email} stage {stage} #{position}: stored {row[2:]}, sent {body}"
            )
    return stored, problems


# --- a reader over HTTP -------------------------------------------------------


@dataclass
class Reply:
    status: int
    headers: http.client.HTTPMessage
    body: bytes
    seconds: float

    def json(self):
        return json.loads(self.body)


@dataclass
class HttpReader:
    """One browser: cookies, one keep-alive connection, the page's requests."""

    stack: LiveStack
    cookies: dict[str, str] = field(default_factory=dict)
    conn: http.client.HTTPConnection | None = None
    timeout: float = 60

    def tab(self) -> HttpReader:
        """Another tab of the same browser: the same cookies, its own connection."""
        return HttpReader(self.stack, self.cookies, timeout=self.timeout)

    @property
    def origin(self) -> str:
        scheme = "https" if self.stack.production else "http"
        return f"{scheme}://127.0.0.1:{self.stack.port}"

    def headers(self, extra: dict | None = None) -> dict[str, str]:
        headers = {"Host": f"127.0.0.1:{self.stack.port}"}
        if self.stack.production:
            headers["X-Forwarded-Proto"] = "https"
        if self.cookies:
            headers["Cookie"] = "; ".join(f"{k}={v}" for k, v in self.cookies.items())
        return headers | (extra or {})

    def _connect(self) -> http.client.HTTPConnection:
        if self.conn is None:
            self.conn = http.client.HTTPConnection(
                "127.0.0.1", self.stack.port, timeout=self.timeout
            )
        return self.conn

    def close(self) -> None:
        if self.conn is not None:
            self.conn.close()
            self.conn = None

    def request(
        self, method: str, path: str, body: bytes | None = None, headers=None
    ) -> Reply:
        started = time.perf_counter()
        for attempt in (1, 2):
            conn = self._connect()
            reused = conn.sock is not None
            try:
                conn.request(method, path, body=body, headers=self.headers(headers))
                response = conn.getresponse()
                data = response.read()
                break
            except (
                http.client.RemoteDisconnected,
                ConnectionResetError,
                BrokenPipeError,
            ):
                self.close()
                # A keep-alive connection the server had closed: a browser
                # sends the request again on a new one, and so do we, once.
                if not reused or attempt == 2:
                    raise
            except BaseException:
                self.close()  # whatever state it is in, it cannot be reused
                raise
        for header in response.headers.get_all("Set-Cookie") or []:
            cookie = SimpleCookie()
            cookie.load(header)
            for name, morsel in cookie.items():
                if morsel["max-age"] == "0" or not morsel.value:
                    self.cookies.pop(name, None)
                else:
                    self.cookies[name] = morsel.value
        if response.getheader("Connection", "").lower() == "close":
            self.close()
        return Reply(
            response.status, response.headers, data, time.perf_counter() - started
        )

    def form(self, path: str, fields: dict) -> Reply:
        fields = fields | {"csrfmiddlewaretoken": self.cookies.get("csrftoken", "")}
        return self.request(
            "POST",
            path,
            urllib.parse.urlencode(fields).encode(),
            {
                "Content-Type": "application/x-www-form-urlencoded",
                "Origin": self.origin,
                "Referer": self.origin + path,
            },
        )

    def post_json(self, path: str, body: dict) -> Reply:
        return self.request(
            "POST",
            path,
            json.dumps(body).encode(),
            {
                "Content-Type": "application/json",
                "Accept": "application/json",
                "X-CSRFToken": self.cookies.get("csrftoken", ""),
                "Origin": self.origin,
                "Referer": self.origin + "/",
            },
        )

    # --- the reader's path ------------------------------------------------------

    def login(self, email: str, password: str = PASSWORD) -> Reply:
        self.request("GET", "/accounts/login/")
        reply = self.form("/accounts/login/", {"username": email, "password": password})
        if reply.status != 302:
            raise AssertionError(
                f"login of {email}: {reply.status} {reply.body[:300]!r}"
            )
        return reply

    def consent(self, slug: str) -> None:
        page = self.request("GET", f"/s/{slug}/")
        if page.status == 200:
            reply = self.form(f"/s/{slug}/", {"consent": "on"})
            assert reply.status == 302, (reply.status, reply.body[:300])

    def read_page(self, slug: str) -> Reply:
        return self.request("GET", f"/s/{slug}/read/")

    def next(self, slug: str) -> Reply:
        return self.request(
            "GET",
            f"/api/v1/studies/{slug}/next",
            headers={"Accept": "application/json"},
        )

    def answer(self, slug: str, step: dict, choice: int) -> tuple[dict, Reply]:
        body = answer_body(step, choice)
        return body, self.post_json(f"/api/v1/studies/{slug}/answers", body)

    def image(self, url: str) -> Reply:
        return self.request("GET", url)


def answer_body(step: dict, choice: int) -> dict:
    """An answer to ``step``; ``choice`` picks the rating and grade."""
    asked = {q["field"] for q in step["phase"]["questions"]}
    return {
        "stage": step["stage"],
        "position": step["position"],
        "confidence": 1 + choice % 6 if "confidence" in asked else None,
        "kl_grade": choice % 5 if "kl_grade" in asked else None,
    }


def raw_request(
    reader: HttpReader,
    method: str,
    path: str,
    body: bytes = b"",
    *,
    send: int | None = None,
) -> socket.socket:
    """Start a request on a socket of its own and return without reading a reply.

    ``send`` bytes of the body go out (all by default): fewer leave the server
    waiting for the rest, as when a connection drops mid-upload. The caller
    closes the socket: a closed tab, lost Wi-Fi.
    """
    headers = reader.headers(
        {
            "Content-Type": "application/json",
            "X-CSRFToken": reader.cookies.get("csrftoken", ""),
            "Origin": reader.origin,
            "Referer": reader.origin + "/",
            "Content-Length": str(len(body)),
            "Connection": "close",
        }
    )
    head = f"{method} {path} HTTP/1.1\r\n" + "".join(
        f"{k}: {v}\r\n" for k, v in headers.items()
    )
    sock = socket.create_connection(("127.0.0.1", reader.stack.port), timeout=10)
    sock.sendall(head.encode() + b"\r\n" + body[: len(body) if send is None else send])
    return sock


def hang_up(sock: socket.socket) -> None:
    """Close at once, with a reset rather than a polite goodbye."""
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    sock.close()


# --- seeding (runs in a subprocess with the stack's environment) --------------


def seed(args: argparse.Namespace) -> dict:
    import django

    django.setup()
    from django.contrib.auth import get_user_model
    from django.contrib.auth.hashers import make_password
    from django.test.utils import override_settings

    from turingtest.imaging.models import Image
    from turingtest.imaging.phantom import knee_phantom
    from turingtest.imaging.services import image_create
    from turingtest.studies import services
    from turingtest.studies.models import Study

    base_seed = 1_000 * (abs(hash(args.slug)) % 1_000)
    spare = -(-args.practice // 5)  # practice cases are real images beyond the main set
    for grade in range(5):
        for source, count in (
            ("real", args.per_grade + spare),
            ("synthetic", args.per_grade),
        ):
            offset = 500_000 if source == "synthetic" else 0
            have = Image.objects.filter(source=source, kl_grade=grade).count()
            for i in range(have, count):
                image_create(
                    pixels=knee_phantom(
                        grade, base_seed + offset + 100 * grade + i, size=args.size
                    ),
                    source=source,
                    kl_grade=grade,
                    origin="load seed",
                )
    study = Study.objects.filter(slug=args.slug).first()
    if study is None:
        study = services.study_create(
            slug=args.slug, name=f"Study {args.slug}", practice_count=args.practice
        )
        services.cases_build(study=study, per_grade=args.per_grade, seed=args.seed)
        study = services.study_open(study=study)
    # Readers come in through invitations as in real use; hashing each password
    # with the full PBKDF2 work factor would only slow the seeding down, so
    # they sign up with a fast hasher and then all get one real hash.
    emails = []
    invitations = services.invitations_create(study=study, count=args.readers)
    with override_settings(
        PASSWORD_HASHERS=["django.contrib.auth.hashers.MD5PasswordHasher"]
    ):
        for n, (_, token) in enumerate(invitations):
            email = f"reader{n}@{args.slug}.example.org"
            services.reader_signup(
                token=token,
                email=email,
                password=PASSWORD,
                name=f"Reader {n}",
                profession="radiologist",
                experience_years=n % 30,
                kind="simulated",
            )
            emails.append(email)
    hashed = make_password(PASSWORD)
    assert not hashed.startswith("md5$")  # the production hasher again
    get_user_model().objects.filter(username__in=emails).update(password=hashed)
    return {
        "slug": study.slug,
        "readers": emails,
        "main_cases": study.cases.exclude(role="practice").count(),
        "practice_cases": study.cases.filter(role="practice").count(),
        "phases": study.phases.count(),
    }


def main() -> None:
    parser = argparse.ArgumentParser()
    sub = parser.add_subparsers(dest="command", required=True)
    p = sub.add_parser("seed")
    p.add_argument("--slug", required=True)
    p.add_argument("--readers", type=int, default=3)
    p.add_argument("--per-grade", type=int, default=1)
    p.add_argument("--practice", type=int, default=2)
    p.add_argument("--size", type=int, default=64)
    p.add_argument("--seed", type=int, default=7)
    args = parser.parse_args()
    sys.path.insert(0, str(ROOT))
    print(json.dumps(seed(args)))


if __name__ == "__main__":
    main()
