"""Many readers at once, misbehaving, against the app as it runs in production.

    .venv/bin/python bench/readers_load.py [--scenarios human,saturation,images]
        [--human-readers 200] [--arrive-over 300] [--human-seconds 420]
        [--think 3,8] [--fast-readers 50] [--saturation-seconds 60]
        [--workers 3] [--threads 4] [--image-seconds 5] [--front none|nginx]

Starts gunicorn (gthread workers) with production settings (DEBUG off,
manifest static files, secure cookies behind a TLS proxy that the client
plays by sending X-Forwarded-Proto) on PostgreSQL, in a fresh database this
script creates and drops, and Redis (cache and broker), all on loopback. The
URL configuration is the app's plus one bare authenticated JSON view
(``bench/bare_urls.py``). It seeds a study per scenario (real and synthetic
procedural phantoms per KL grade, 4 practice cases, grading then detection),
with the readers signed up through invitations: 60 cases at human pace, 120
at saturation, so that the fast readers keep clicking through most of the
run (its count stops when the first of them finishes).

Each simulated reader signs in through the login form (the password hashed
with Argon2 at Django's strength), consents, opens the reading
page and answers the practice round and both phases through the JSON API,
fetching each image once as a browser with a cache would (the current one
and the preloaded next). They misbehave:

- double submits: the same answer sent twice at once (a double click);
- reloads mid-case: the reading page and ``next`` again, which must show the
  same case;
- aborted requests: an answer sent and the connection reset before the reply,
  an image download dropped after its headers;
- parallel tabs: a tenth of readers read in two tabs at once, both answering.

Scenarios:

- ``human``: readers arrive evenly over ``--arrive-over`` seconds and look
  at each case 3-8 s (``--think``) before answering, as people read. Prints
  p50/p95/p99 of each request and the longest sign-in.
- ``saturation``: readers click every 0-0.3 s, so the server runs at its
  limit; the bare view is fetched by as many clients for half as long before
  and after (the machine's drift weighs on both).
  Prints requests/s and requests per CPU-second of the server (gunicorn's
  processes and the app's PostgreSQL backends, read from /proc) for both,
  and their ratio.
- ``images``: the access-checked image view beside whitenoise and nginx
  serving the same files from disk with the same worker processes.

``--front nginx`` puts nginx in front of gunicorn as docs/deploy.md sets it
up for many readers (upstream connections kept alive, images from signed URLs
that nginx checks and serves alone); the server CPU then counts nginx's
processes too.

After each reading scenario the database must hold exactly one judgment per
(reader, stage, position), none missing, none duplicated, each of the case
the stored order puts there, every order a permutation of the study's cases,
and every answer the server acknowledged with a 201 stored as sent; the
script exits 1 otherwise.

Bounded: every scenario stops at its time limit whatever it has done,
servers and database are removed at the end, nothing leaves loopback.
"""

from __future__ import annotations

import argparse
import os
import random
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.proc_cpu import CpuMeter, cpu_used  # noqa: E402
from tests.live import (  # noqa: E402
    HttpReader,
    LiveStack,
    answer_body,
    audit,
    free_port,
    hang_up,
    raw_request,
)

PHASES = 2


@dataclass
class Run:
    """What one reader count did: latencies, statuses, misbehaviour, errors."""

    latencies: dict[str, list[float]] = field(default_factory=lambda: defaultdict(list))
    statuses: Counter = field(default_factory=Counter)
    events: Counter = field(default_factory=Counter)
    errors: list[str] = field(default_factory=list)
    acknowledged: dict = field(default_factory=dict)
    finished: set = field(default_factory=set)
    lock: threading.Lock = field(default_factory=threading.Lock)
    done_at: list[float] = field(default_factory=list)  # monotonic, per reply

    def record(self, kind: str, reply) -> None:
        self.done_at.append(time.monotonic())
        self.latencies[kind].append(reply.seconds)
        self.statuses[(kind, reply.status)] += 1
        if reply.status >= 500 or (reply.status >= 400 and reply.status != 503):
            self.error(f"{kind}: HTTP {reply.status} {reply.body[:120]!r}")

    def error(self, text: str) -> None:
        with self.lock:
            self.errors.append(text)

    def requests(self) -> int:
        return sum(self.statuses.values())


class Browser:
    """One reader's browser: cookies, an image cache shared by its tabs."""

    def __init__(
        self,
        stack: LiveStack,
        run: Run,
        slug: str,
        email: str,
        seed: int,
        think: tuple[float, float],
    ):
        self.stack, self.run, self.slug, self.email = stack, run, slug, email
        self.think = think
        self.rng = random.Random(seed)
        self.http = HttpReader(stack, timeout=120)
        self.cached: set[str] = set()
        self.cache_lock = threading.Lock()
        # Answers sent and hung up on: the server may still store them while
        # the reader looks at the same case, so a reload there may move on.
        self.aborted: set[tuple] = set()

    def fetch_image(self, tab: HttpReader, url: str | None) -> None:
        if not url:
            return
        with self.cache_lock:
            if url in self.cached:
                return
            self.cached.add(url)
        reply = tab.image(url)
        self.run.record("image", reply)

    def submit(self, tab: HttpReader, step: dict) -> dict | None:
        """Answer ``step`` until the server says it has it; returns the next step."""
        body = answer_body(step, self.rng.randrange(30))
        path = f"/api/v1/studies/{self.slug}/answers"
        for _ in range(20):
            reply = tab.post_json(path, body)
            self.run.record("submit", reply)
            if reply.status == 201:
                self.acknowledge(body)
            if reply.status in (200, 201):
                return reply.json()["next"]
            if reply.status != 503:
                return None  # recorded as an error; the caller asks for next again
            self.run.events["try again (503)"] += 1
            time.sleep(0.2)
        return None

    def acknowledge(self, body: dict) -> None:
        key = (self.email, body["stage"], body["position"])
        with self.run.lock:
            if key in self.run.acknowledged:
                self.run.errors.append(f"{key}: acknowledged twice")
            self.run.acknowledged[key] = body

    def next(self, tab: HttpReader) -> dict:
        reply = tab.next(self.slug)
        self.run.record("next", reply)
        return reply.json()

    def double_submit(self, tab: HttpReader, step: dict) -> dict | None:
        body = answer_body(step, self.rng.randrange(30))
        path = f"/api/v1/studies/{self.slug}/answers"
        other = tab.tab()
        replies = []

        def click():
            replies.append(other.post_json(path, body))

        second = threading.Thread(target=click)
        second.start()
        replies.append(tab.post_json(path, body))
        second.join()
        other.close()
        for reply in replies:
            self.run.record("submit, double click", reply)
        codes = sorted(r.status for r in replies)
        self.run.events["double submits"] += 1
        if codes.count(201) > 1:
            self.run.error(f"double submit stored twice: {codes}")
        for reply in replies:
            if reply.status == 201:
                self.acknowledge(body)
        ok = [r for r in replies if r.status in (200, 201)]
        return ok[0].json()["next"] if ok else None

    def abort_submit(self, tab: HttpReader, step: dict) -> None:
        import json

        body = json.dumps(answer_body(step, self.rng.randrange(30))).encode()
        path = f"/api/v1/studies/{self.slug}/answers"
        self.aborted.add((step["stage"], step["position"]))
        sock = raw_request(tab, "POST", path, body)
        time.sleep(self.rng.uniform(0, 0.02))
        hang_up(sock)
        self.run.events["aborted submits"] += 1

    def abort_image(self, tab: HttpReader, url: str) -> None:
        sock = raw_request(tab, "GET", url)
        try:
            sock.recv(200)
        except OSError:
            pass
        hang_up(sock)
        self.run.events["aborted image downloads"] += 1

    def read(self, tab: HttpReader, deadline: float, alone: bool) -> None:
        step = self.next(tab)
        while "redirect" not in step:
            if time.monotonic() > deadline:
                return
            if step.get("review"):
                # Another tab answered the last case between this one's look at
                # the stage and at the session: the page offers "finish".
                reply = tab.post_json(
                    f"/api/v1/studies/{self.slug}/finish", {"stage": step["stage"]}
                )
                self.run.record("finish", reply)
                self.run.events["finish after another tab's last answer"] += 1
                step = reply.json()["next"] if reply.status == 200 else self.next(tab)
                continue
            self.fetch_image(tab, step.get("image"))
            self.fetch_image(tab, step.get("preload"))
            pause = self.rng.uniform(*self.think)
            if time.monotonic() + pause > deadline:
                return
            time.sleep(pause)
            roll = self.rng.random()
            if roll < 0.03:
                self.run.record("page", tab.read_page(self.slug))
                again = self.next(tab)
                self.run.events["reloads mid-case"] += 1
                in_flight = (step["stage"], step["position"]) in self.aborted
                if (
                    alone
                    and not in_flight
                    and (again.get("position"), again.get("image"))
                    != (
                        step["position"],
                        step["image"],
                    )
                ):
                    self.run.error(f"{self.email}: reload moved from {step} to {again}")
                step = again
                continue
            if roll < 0.05:
                self.abort_submit(tab, step)
                step = self.next(tab)  # it went in, or it did not: next says which
                continue
            if roll < 0.06 and step.get("image"):
                self.abort_image(tab, step["image"])
            if roll < 0.14:
                following = self.double_submit(tab, step)
            else:
                following = self.submit(tab, step)
            step = following if following is not None else self.next(tab)
        with self.run.lock:
            self.run.finished.add(self.email)

    def session(self, deadline: float, tabs: int) -> None:
        try:
            started = time.perf_counter()
            reply = self.http.login(self.email)  # the form, then the password
            reply.seconds = time.perf_counter() - started
            self.run.record("sign-in", reply)
            self.http.consent(self.slug)
            self.run.record("page", self.http.read_page(self.slug))
            if tabs == 1:
                self.read(self.http, deadline, alone=True)
                return
            self.run.events["readers with two tabs"] += 1
            second = self.http.tab()
            other = threading.Thread(target=self.read, args=(second, deadline, False))
            other.start()
            self.read(self.http, deadline, alone=False)
            other.join()
        except Exception as exc:  # a reader that fails is counted, not fatal
            self.run.error(f"{self.email}: {type(exc).__name__}: {exc}")


def quantiles_ms(values: list[float]) -> tuple[float, float, float]:
    """p50, p95 and p99 of ``values`` (seconds), in milliseconds."""
    q = statistics.quantiles(values, n=100, method="inclusive")
    return q[49] * 1000, q[94] * 1000, q[98] * 1000


def percentiles(values: list[float]) -> str:
    if len(values) < 2:
        return "     —      —      —"
    return " ".join(f"{v:6.0f}" for v in quantiles_ms(values))


def reading_run(
    stack: LiveStack,
    info: dict,
    limit: float,
    seed: int,
    *,
    think: tuple[float, float],
    arrive_over: float,
    run: Run | None = None,
) -> tuple[Run, float]:
    """Every reader of ``info`` reads until done or ``limit`` seconds have passed.

    Readers arrive evenly over ``arrive_over`` seconds and pause ``think``
    seconds (uniform) on each case before answering.
    """
    run = run or Run()
    rng = random.Random(seed)
    readers = info["readers"]
    deadline = time.monotonic() + limit
    threads = []
    started = time.monotonic()
    for n, email in enumerate(readers):
        browser = Browser(stack, run, info["slug"], email, seed * 10_000 + n, think)
        tabs = 2 if rng.random() < 0.1 else 1
        t = threading.Thread(target=browser.session, args=(deadline, tabs), daemon=True)
        threads.append(t)
        t.start()
        time.sleep(arrive_over / len(readers))
    for t in threads:
        t.join(timeout=max(0.0, deadline - time.monotonic()) + 60)
    return run, time.monotonic() - started


def report_run(stack: LiveStack, info: dict, run: Run, seconds: float) -> dict:
    stored, problems = audit(
        stack,
        info["slug"],
        info["readers"],
        PHASES,
        run.acknowledged,
        complete=run.finished,
    )
    duplicates = stack.query(
        "SELECT count(*) FROM (SELECT j.session_id, j.case_id FROM studies_judgment j "
        "GROUP BY j.session_id, j.case_id HAVING count(*) > 1) d"
    )[0][0]
    per_reader = info["practice_cases"] + PHASES * info["main_cases"]
    n = len(info["readers"])
    total_stored = stack.query(
        "SELECT count(*) FROM studies_judgment j JOIN studies_readingsession s "
        "ON s.id = j.session_id JOIN studies_enrollment e ON e.id = s.enrollment_id "
        "JOIN studies_study st ON st.id = e.study_id WHERE st.slug = ?",
        (info["slug"],),
    )[0][0]
    print(f"\n== {n} readers ({info['slug']}): {seconds:.0f} s")
    print(f"   finished: {len(run.finished)}/{n} readers")
    print(
        f"   judgments stored: {total_stored} of {n * per_reader} for all to finish; "
        f"duplicated (reader, stage, case): {duplicates}"
    )
    print(
        f"   acknowledged answers (201): {len(run.acknowledged)}, all stored as sent: {not [p for p in problems if 'acknowledged' in p or 'sent' in p]}"
    )
    verdict = (
        "no answer missing, duplicated or out of order" if not problems else "PROBLEMS"
    )
    print(f"   database check: {verdict}; finished readers complete")
    for problem in problems[:10]:
        print(f"     {problem}")
    requests = run.requests()
    print(f"   requests: {requests} in {seconds:.0f} s = {requests / seconds:.0f}/s")
    print(f"   errors: {len(run.errors)}")
    for error in run.errors[:8]:
        print(f"     {error}")
    print("   latency ms              p50    p95    p99    max   count")
    run.latencies["submit, all"] = (
        run.latencies["submit"] + run.latencies["submit, double click"]
    )
    for kind in (
        "next",
        "image",
        "submit",
        "submit, double click",
        "submit, all",
        "sign-in",
        "page",
    ):
        values = run.latencies.get(kind, [])
        most = f"{max(values) * 1000:6.0f}" if values else "     —"
        print(f"   {kind:<20} {percentiles(values)} {most} {len(values):7d}")
    print(
        "   misbehaviour: "
        + ", ".join(f"{k} {v}" for k, v in sorted(run.events.items()))
    )
    statuses = Counter()
    for (_, status), count in run.statuses.items():
        statuses[status] += count
    print("   statuses: " + ", ".join(f"{k}: {v}" for k, v in sorted(statuses.items())))
    return {
        "readers": n,
        "finished": len(run.finished),
        "stored": total_stored,
        "expected": n * per_reader,
        "problems": len(problems),
        "duplicates": duplicates,
        "errors": len(run.errors),
        "rps": requests / seconds,
        "requests": requests,
        "latencies": run.latencies,
    }


# --- image serving side by side ------------------------------------------------


def hammer(port: int, paths: list[str], headers: dict, seconds: float, clients: int):
    """``clients`` keep-alive connections fetching random ``paths`` for ``seconds``."""
    import http.client

    counts, sizes, latencies, failures = [0] * clients, [0] * clients, [], [0]
    stop = time.monotonic() + seconds

    def loop(i: int) -> None:
        rng = random.Random(i)
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
        while time.monotonic() < stop:
            path = rng.choice(paths)
            t0 = time.perf_counter()
            try:
                conn.request("GET", path, headers=headers)
                response = conn.getresponse()
                body = response.read()
            except (OSError, http.client.HTTPException):
                failures[0] += 1
                conn.close()
                conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
                continue
            latencies.append(time.perf_counter() - t0)
            if response.status != 200:
                failures[0] += 1
                continue
            counts[i] += 1
            sizes[i] += len(body)
        conn.close()

    threads = [threading.Thread(target=loop, args=(i,)) for i in range(clients)]
    started = time.monotonic()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    elapsed = time.monotonic() - started
    return {
        "per_s": sum(counts) / elapsed,
        "mb_s": sum(sizes) / elapsed / 2**20,
        "p50_ms": statistics.median(latencies) * 1000 if latencies else float("nan"),
        "failures": failures[0],
    }


WHITENOISE_APP = """
import os
from whitenoise import WhiteNoise

def not_found(environ, start_response):
    start_response("404 Not Found", [("Content-Type", "text/plain")])
    return [b"not found"]

application = WhiteNoise(not_found, root=os.environ["POOL_ROOT"], prefix="pool/",
                         max_age=3600, autorefresh=False)
"""

NGINX_CONF = """
worker_processes {workers};
daemon off;
pid {base}/nginx.pid;
error_log {base}/nginx-error.log warn;
events {{ worker_connections 1024; }}
http {{
    access_log off;
    sendfile on;
    tcp_nopush on;
    keepalive_timeout 30;
    keepalive_requests 1000000;
    default_type image/png;
    client_body_temp_path {base}/nginx-tmp;
    server {{
        listen 127.0.0.1:{port};
        location /pool/ {{
            root {media};
            add_header Cache-Control "private, max-age=3600";
        }}
    }}
}}
"""


# nginx in front of gunicorn as docs/deploy.md sets it up for many readers:
# the app behind kept-alive upstream connections, images from signed URLs.
NGINX_FRONT_CONF = """
worker_processes {workers};
daemon off;
pid {base}/nginx-front.pid;
error_log {base}/nginx-front-error.log warn;
events {{ worker_connections 4096; }}
http {{
    access_log off;
    sendfile on;
    tcp_nopush on;
    keepalive_timeout 30;
    keepalive_requests 1000000;
    client_body_temp_path {base}/nginx-tmp;
    proxy_temp_path {base}/nginx-tmp;
    upstream turingtest {{
        server 127.0.0.1:{app_port};
        keepalive 64;
    }}
    server {{
        listen 127.0.0.1:{port};
        client_max_body_size 16m;
{signed}
        location / {{
            proxy_pass http://turingtest;
            proxy_http_version 1.1;
            proxy_set_header Connection "";
            proxy_set_header Host $http_host;
            proxy_set_header X-Forwarded-For $proxy_add_x_forwarded_for;
        }}
    }}
}}
"""
FRONT_SIGNING_KEY = "bench-front-signing-key-0123456789abcdef"


def nginx_binary() -> str | None:
    return shutil.which("nginx") or (
        "/usr/sbin/nginx" if Path("/usr/sbin/nginx").exists() else None
    )


def start_front(stack: LiveStack, base: Path, workers: int) -> subprocess.Popen:
    """nginx in front of the running gunicorn; from now on every client of
    ``stack`` talks to nginx (``stack.port`` is nginx's)."""
    from tests.nginx_signed import location as signed_location

    nginx = nginx_binary()
    if nginx is None:
        sys.exit("--front nginx needs nginx (apt-get install nginx-light)")
    port = free_port()
    (base / "nginx-tmp").mkdir(exist_ok=True)
    conf = base / "nginx-front.conf"
    conf.write_text(
        NGINX_FRONT_CONF.format(
            workers=workers, base=base, port=port, app_port=stack.port,
            signed=signed_location(media=stack.env["MEDIA_ROOT"], key=FRONT_SIGNING_KEY),
        )
    )  # fmt: skip
    proc = subprocess.Popen(
        [nginx, "-c", str(conf), "-p", str(base)],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True,
    )  # fmt: skip
    wait_for_port(port, proc)
    stack.port = port
    return proc


def wait_for_port(port: int, proc: subprocess.Popen, timeout: float = 60) -> None:
    import socket

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"server on {port} exited with {proc.returncode}")
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=1):
                return
        except OSError:
            time.sleep(0.1)
    raise RuntimeError(f"nothing listens on {port}")


def stop_group(proc: subprocess.Popen) -> None:
    if proc.poll() is None:
        try:
            os.killpg(proc.pid, signal.SIGTERM)
            proc.wait(timeout=20)
        except (ProcessLookupError, subprocess.TimeoutExpired):
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()


def image_serving(stack: LiveStack, info: dict, args, base: Path) -> None:
    rows = stack.query(
        # A reader knows an image by its case's token (per study), not the image's.
        "SELECT c.token, i.file FROM imaging_image i JOIN studies_case c ON c.image_id = i.id "
        "JOIN studies_study s ON s.id = c.study_id WHERE s.slug = ?",
        (info["slug"],),
    )
    reader = HttpReader(stack)
    reader.login(info["readers"][0])
    view_headers = reader.headers()
    clients = args.image_clients
    seconds = args.image_seconds
    results = {}
    print(
        f"\n== image serving: {len(rows)} files, {clients} keep-alive clients, {seconds:.0f} s each"
    )
    results["django view"] = hammer(
        stack.port,
        [f"/api/v1/images/{t}" for t, _ in rows],
        view_headers,
        seconds,
        clients,
    )
    files = ["/" + f for _, f in rows]
    media = Path(stack.env["MEDIA_ROOT"])
    host = {"Host": "127.0.0.1"}

    (base / "whitenoise_app.py").write_text(WHITENOISE_APP)
    port = free_port()
    env = stack.env | {"POOL_ROOT": str(media / "pool")}
    proc = subprocess.Popen(
        [
            sys.executable, "-m", "gunicorn", "whitenoise_app:application",
            "--chdir", str(base), "--bind", f"127.0.0.1:{port}",
            "--workers", str(args.workers), "--threads", str(args.threads),
            "--worker-class", "gthread", "--keep-alive", "30", "--no-control-socket",
        ],
        env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        start_new_session=True,
    )  # fmt: skip
    try:
        wait_for_port(port, proc)
        hammer(port, files[:5], host, 1, 1)  # warm the workers up
        results["whitenoise"] = hammer(port, files, host, seconds, clients)
    finally:
        stop_group(proc)

    nginx = nginx_binary()
    if nginx:
        port = free_port()
        (base / "nginx-tmp").mkdir(exist_ok=True)
        conf = base / "nginx.conf"
        conf.write_text(
            NGINX_CONF.format(workers=args.workers, base=base, port=port, media=media)
        )
        proc = subprocess.Popen(
            [nginx, "-c", str(conf), "-p", str(base)],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True,
        )  # fmt: skip
        try:
            wait_for_port(port, proc)
            results["nginx"] = hammer(port, files, host, seconds, clients)
        finally:
            stop_group(proc)
    else:
        print(
            "   nginx not installed (apt-get install nginx-light): compared with whitenoise only"
        )

    django = results["django view"]["per_s"]
    print("   server            images/s    MiB/s   p50 ms  failures  view/this")
    for name, r in results.items():
        ratio = django / r["per_s"] if r["per_s"] else float("nan")
        print(
            f"   {name:<16} {r['per_s']:9.0f} {r['mb_s']:8.1f} {r['p50_ms']:8.1f} "
            f"{r['failures']:9d} {ratio:10.2f}"
        )


# --- server CPU, saturation, sign-in -----------------------------------------


# nginx in front (--front nginx), whose processes serve the app too.
FRONT: subprocess.Popen | None = None


def bare_view(stack: LiveStack, info: dict, seconds: float, clients: int) -> dict:
    """The bare authenticated JSON view at full speed, ``clients`` at once."""
    reader = HttpReader(stack)
    reader.login(info["readers"][0])
    headers = reader.headers({"Accept": "application/json"})
    hammer(stack.port, ["/bench/bare"], headers, 1, 2)  # warm up
    meter = CpuMeter(stack, FRONT)
    before = meter.start()
    result = hammer(stack.port, ["/bench/bare"], headers, seconds, clients)
    result["cpu"] = cpu_used(before, meter.stop())
    result["requests"] = result["per_s"] * seconds
    return result


def signin_cost(repeat: int = 5) -> tuple[str, float]:
    """The hasher sign-in runs (the first of settings.PASSWORD_HASHERS) and the
    CPU seconds of one hash, printed beside Django's PBKDF2 measured in turn."""
    from django.contrib.auth.hashers import PBKDF2PasswordHasher, get_hasher

    def cpu(hasher) -> float:
        times = []
        for _ in range(repeat):
            started = time.process_time()
            hasher.encode("a reader's password", hasher.salt())
            times.append(time.process_time() - started)
        return min(times)

    hasher, pbkdf2 = get_hasher("default"), PBKDF2PasswordHasher()
    ours, theirs = [], []
    for _ in range(3):  # alternated, so a busy moment weighs on both
        ours.append(cpu(hasher))
        theirs.append(cpu(pbkdf2))
    print(
        f"sign-in hash CPU: {hasher.algorithm} {min(ours) * 1000:.0f} ms, "
        f"PBKDF2-SHA256 ({pbkdf2.iterations:,} iterations) {min(theirs) * 1000:.0f} ms, "
        f"ratio {min(ours) / min(theirs):.2f}"
    )
    return hasher.algorithm, min(ours)


def main() -> None:
    global FRONT
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--scenarios",
        default="human,saturation,images",
        help="comma-separated: human, saturation, images",
    )
    parser.add_argument("--human-readers", type=int, default=200)
    parser.add_argument("--arrive-over", type=float, default=300.0)
    parser.add_argument("--human-seconds", type=float, default=420.0)
    parser.add_argument("--think", default="3,8", help="seconds per case, min,max")
    parser.add_argument("--fast-readers", type=int, default=50)
    parser.add_argument("--saturation-seconds", type=float, default=60.0)
    parser.add_argument("--workers", type=int, default=3)
    parser.add_argument("--threads", type=int, default=4)
    parser.add_argument(
        "--worker-class",
        choices=("gthread", "sync"),
        default="gthread",
        help="sync: one request at a time per process, as gunicorn advises "
        "behind a buffering proxy (with --front nginx)",
    )
    parser.add_argument("--image-seconds", type=float, default=5.0)
    parser.add_argument("--image-clients", type=int, default=8)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument(
        "--front",
        choices=("none", "nginx"),
        default="none",
        help="nginx: clients talk to nginx in front of gunicorn, as docs/deploy.md "
        "sets it up for many readers (kept-alive upstream connections, images "
        "from signed URLs, TURINGTEST_IMAGE_SERVING=nginx-signed); its CPU counts",
    )
    parser.add_argument(
        "--probe-async-commit",
        action="store_true",
        help="a probe, never a setting: PostgreSQL's synchronous_commit off for "
        "the benchmark's database, to see how much of submit's latency is the "
        "commit's flush to disk",
    )
    parser.add_argument(
        "--database",
        default=os.environ.get(
            "DATABASE_URL", "postgres://postgres@127.0.0.1:5432/postgres"
        ),
        help="a PostgreSQL server; the benchmark makes and drops a database of its own",
    )
    parser.add_argument(
        "--redis", default=os.environ.get("REDIS_URL", "redis://127.0.0.1:6379/11")
    )
    args = parser.parse_args()
    scenarios = set(args.scenarios.split(","))
    unknown = scenarios - {"human", "saturation", "images"}
    if unknown:
        parser.error(f"unknown scenarios: {', '.join(sorted(unknown))}")
    think = tuple(float(x) for x in args.think.split(","))
    begun = time.monotonic()
    base = Path(tempfile.mkdtemp(prefix="turingtest-load-"))
    base.chmod(0o755)  # nginx's workers run as another user and must read the media
    print(
        f"gunicorn: {args.workers} {args.worker_class} workers"
        f"{f' x {args.threads} threads' if args.worker_class == 'gthread' else ''} on "
        f"{os.cpu_count()} CPUs; PostgreSQL and Redis on loopback; client in this process"
    )
    if args.front == "nginx":
        print(
            f"nginx in front: {args.workers} workers, kept-alive upstream "
            "connections, images from signed URLs (nginx-signed)"
        )
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "turingtest.settings")
    hasher, hash_seconds = signin_cost()
    print(f"sign-in: {hasher}: {hash_seconds * 1000:.0f} ms of CPU per sign-in")
    stack = LiveStack(
        base, name="bench_readers", production=True,
        redis_url=args.redis, database_url=args.database,
    )  # fmt: skip
    # The app's URLs plus the bare view, served by the same processes.
    stack.env["DJANGO_SETTINGS_MODULE"] = "bench.bare_settings"
    if args.front == "nginx":
        stack.env["TURINGTEST_IMAGE_SERVING"] = "nginx-signed"
        stack.env["TURINGTEST_IMAGE_SIGNING_KEY"] = FRONT_SIGNING_KEY
    failed = False
    try:
        t0 = time.monotonic()
        stack.setup()
        if args.probe_async_commit and stack.pg_admin_url:
            stack._pg(f'ALTER DATABASE "{stack.pg_name}" SET synchronous_commit TO off')
            print(
                "PROBE: synchronous_commit off (an acknowledged answer could be lost "
                "in a crash: never run a study so)"
            )
        studies = {}
        if "human" in scenarios:
            studies["human"] = stack.seed(
                slug="human", readers=args.human_readers, per_grade=6, practice=4,
                size=224,
            )  # fmt: skip
        if scenarios & {"saturation", "images"}:
            studies["fast"] = stack.seed(
                slug="fast", readers=args.fast_readers, per_grade=12, practice=4,
                size=224,
            )  # fmt: skip
        print(
            f"database, static files and readers seeded in {time.monotonic() - t0:.0f} s"
        )
        if args.front == "nginx":
            stack.manage("signed_image_links")
        stack.start(
            workers=args.workers, threads=args.threads, worker_class=args.worker_class
        )
        if args.front == "nginx":
            FRONT = start_front(stack, base, args.workers)
        summary = {}

        if "human" in scenarios:
            print(
                f"\n== human pace: {args.human_readers} readers arriving over "
                f"{args.arrive_over:.0f} s, {think[0]:g}-{think[1]:g} s per case, "
                f"stopped at {args.human_seconds:.0f} s"
            )
            run, seconds = reading_run(
                stack, studies["human"], args.human_seconds, args.seed,
                think=think, arrive_over=args.arrive_over,
            )  # fmt: skip
            summary["human"] = report_run(stack, studies["human"], run, seconds)

        if "saturation" in scenarios:
            print(
                f"\n== saturation: {args.fast_readers} readers clicking every "
                f"0-0.3 s for {args.saturation_seconds:.0f} s, the bare view for "
                f"half as long before and after"
            )
            # The bare view brackets the run: the machine's drift weighs on both.
            bare_runs = [
                bare_view(
                    stack, studies["fast"], args.saturation_seconds / 2,
                    args.fast_readers,
                )
            ]  # fmt: skip
            # Requests and server CPU are counted in a window that starts once
            # every reader has signed in and ends when the first reader
            # finishes the study (or before the run stops), so neither the
            # password hashing, the ramp nor the tail is in the figure.
            arrive = min(10.0, args.saturation_seconds / 6)
            window = {}
            run = Run()

            def sample() -> None:
                stop = time.monotonic() + args.saturation_seconds - 2
                while (
                    len(run.latencies["sign-in"]) < args.fast_readers
                    and time.monotonic() < stop - 5
                ):
                    time.sleep(0.1)
                meter = CpuMeter(stack, FRONT)
                window["start"], window["before"] = time.monotonic(), meter.start()
                # The load falls off once readers start finishing the study.
                while time.monotonic() < stop and not run.finished:
                    time.sleep(0.1)
                window["end"], window["after"] = time.monotonic(), meter.stop()

            sampler = threading.Thread(target=sample)
            sampler.start()
            run, seconds = reading_run(
                stack, studies["fast"], args.saturation_seconds, args.seed + 1,
                think=(0.0, 0.3), arrive_over=arrive, run=run,
            )  # fmt: skip
            sampler.join()
            fast = report_run(stack, studies["fast"], run, seconds)
            span = window["end"] - window["start"]
            counted = sum(window["start"] <= t < window["end"] for t in run.done_at)
            cpu = cpu_used(window["before"], window["after"])
            fast.update(rps=counted / span, requests=counted, cpu=cpu)
            print(
                f"   window: {counted} requests in {span:.0f} s after sign-in, "
                f"{cpu:.1f} s of server CPU ({'gunicorn and nginx' if FRONT else 'gunicorn'} "
                f"{cpu_used(window['before'], window['after'], 'gunicorn'):.1f}, "
                f"PostgreSQL {cpu_used(window['before'], window['after'], 'postgresql'):.1f})"
            )
            summary["saturation"] = fast
            bare_runs.append(
                bare_view(
                    stack, studies["fast"], args.saturation_seconds / 2,
                    args.fast_readers,
                )
            )  # fmt: skip
            bare = {
                "requests": sum(b["requests"] for b in bare_runs),
                "cpu": sum(b["cpu"] for b in bare_runs),
            }
            bare["per_s"] = bare["requests"] / args.saturation_seconds
            summary["bare"] = bare
            print(
                "   bare view per CPU-second before / after the run: "
                + " / ".join(f"{b['requests'] / b['cpu']:.0f}" for b in bare_runs)
            )
            app_per_core = fast["requests"] / cpu if cpu else float("nan")
            bare_per_core = (
                bare["requests"] / bare["cpu"] if bare["cpu"] else float("nan")
            )
            print(
                "   path             requests/s  server CPU s  requests per CPU-second"
            )
            print(
                f"   reader API       {fast['rps']:10.0f} {cpu:13.1f} {app_per_core:24.0f}"
            )
            print(
                f"   bare JSON view   {bare['per_s']:10.0f} {bare['cpu']:13.1f} "
                f"{bare_per_core:24.0f}"
            )
            print(
                f"   reader API / bare view: {fast['rps'] / bare['per_s']:.2f} "
                f"(requests/s), {app_per_core / bare_per_core:.2f} (per CPU-second)"
            )

        if "images" in scenarios:
            image_serving(stack, studies["fast"], args, base)

        tracebacks = stack.log_path.read_text().count("Traceback")
        print(
            f"\nserver log: {tracebacks} tracebacks; total time {time.monotonic() - begun:.0f} s"
        )
        if "human" in summary:
            h = summary["human"]
            lat = h["latencies"]
            p99 = {
                k: quantiles_ms(lat[k])[2]
                for k in ("next", "submit", "submit, all")
                if len(lat[k]) > 1
            }
            signin_max = max(lat["sign-in"], default=0.0)
            print(
                f"human pace: p99 next {p99.get('next', float('nan')):.0f} ms, "
                f"submit {p99.get('submit', float('nan')):.0f} ms "
                f"({p99.get('submit, all', float('nan')):.0f} with double clicks) "
                f"(goal < 50); longest sign-in {signin_max * 1000:.0f} ms (goal < 1000)"
            )
        runs = [v for k, v in summary.items() if k in ("human", "saturation")]
        failed = any(r["problems"] or r["duplicates"] for r in runs)
    finally:
        if FRONT is not None:
            stop_group(FRONT)
        stack.close()
        shutil.rmtree(base, ignore_errors=True)
    if failed:
        sys.exit(1)


if __name__ == "__main__":
    main()
