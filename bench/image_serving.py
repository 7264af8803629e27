"""Image throughput: the access-checked view handing files to nginx, beside
nginx serving the same files statically, side by side in one run.

    .venv/bin/python bench/image_serving.py [--workers 3] [--threads 4]
        [--seconds 5] [--clients 8]

Needs nginx (``apt-get install nginx-light``), PostgreSQL and Redis on
loopback (``DATABASE_URL``, ``REDIS_URL``; the script makes and drops a
database of its own). It seeds a 60-case study of 224 px phantoms with one
signed-in, consented reader, then measures with ``--clients`` keep-alive
clients for ``--seconds`` each, all to one nginx (``--workers`` processes)
in front of gunicorn (``--workers`` gthread processes x ``--threads``),
production settings:

1. nginx serving the pool folder as static files (no access check);
2. the image view behind nginx with ``TURINGTEST_IMAGE_SERVING=nginx``: it
   checks the reader's access and answers ``X-Accel-Redirect``, and nginx
   sends the file from an internal location (the configuration of
   docs/deploy.md);
3. the image view sending the file itself (``FileResponse``, the embedded
   default), gunicorn behind the same nginx;
4. signed URLs served by nginx alone (``TURINGTEST_IMAGE_SERVING=nginx-signed``):
   the URLs the reader API hands out, checked by nginx's ``secure_link`` and
   sent from the per-case links, with the location of docs/deploy.md.

It prints images/s, MiB/s, median latency and each one's throughput as a
share of (1), and checks that every image of (2) came with the same headers
but its length.
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

from readers_load import hammer, stop_group, wait_for_port  # noqa: E402

from tests.live import HttpReader, LiveStack, free_port  # noqa: E402
from tests.nginx_signed import location as signed_location  # noqa: E402

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
    default_type application/octet-stream;
    client_body_temp_path {base}/nginx-tmp;
    proxy_temp_path {base}/nginx-tmp;
    upstream accel {{ server 127.0.0.1:{accel_port}; keepalive 32; }}
    upstream app {{ server 127.0.0.1:{app_port}; keepalive 32; }}
    upstream before {{ server 127.0.0.1:{before_port}; keepalive 32; }}
    server {{
        listen 127.0.0.1:{port};
        # (1) the files as static files, for comparison only: never in production.
        location /pool/ {{
            root {media};
            default_type image/png;
            add_header Cache-Control "private, max-age=3600";
        }}
        # (3): the app sending files itself.
        location /file/ {{
            rewrite ^/file/(.*)$ /$1 break;
            proxy_pass http://app;
            proxy_http_version 1.1;
            proxy_set_header Connection "";
            proxy_set_header Host $host;
            proxy_set_header X-Forwarded-Proto https;
        }}
        # --before: an older checkout's view, which sends files itself.
        location /before/ {{
            rewrite ^/before/(.*)$ /$1 break;
            proxy_pass http://before;
            proxy_http_version 1.1;
            proxy_set_header Connection "";
            proxy_set_header Host $host;
            proxy_set_header X-Forwarded-Proto https;
        }}
        # (2): the app handing files to nginx, as docs/deploy.md sets it up.
        location / {{
            proxy_pass http://accel;
            proxy_http_version 1.1;
            proxy_set_header Connection "";
            proxy_set_header Host $host;
            proxy_set_header X-Forwarded-Proto https;
            proxy_set_header X-Forwarded-For $proxy_add_x_forwarded_for;
        }}
{internal}
{signed}
    }}
}}
"""

# The internal location of docs/deploy.md, with the media folder of this run.
INTERNAL = """
        location /protected-media/ {{
            internal;
            alias {media}/;
            types {{ }}
            default_type image/png;
            etag off;
            if_modified_since off;
            add_header Last-Modified "";
            add_header X-Content-Type-Options "nosniff";
        }}
"""


SIGNING_KEY = "bench-signing-key-0123456789abcdef0123"


def headers_seen(port: int, paths: list[str], headers: dict) -> set[frozenset]:
    """The header sets (but length and date) of one GET of each path."""
    import http.client

    seen = set()
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    for path in paths:
        conn.request("GET", path, headers=headers)
        response = conn.getresponse()
        response.read()
        assert response.status == 200, (path, response.status)
        seen.add(
            frozenset(
                (k, v)
                for k, v in response.getheaders()
                if k.lower() not in ("content-length", "date")
            )
        )
    conn.close()
    return seen


def gunicorn(
    stack: LiveStack, port: int, serving: str, args, code: Path = ROOT
) -> subprocess.Popen:
    """The app (of the checkout ``code``) on ``port``, images served as ``serving`` says."""
    proc = subprocess.Popen(
        [
            sys.executable, "-m", "gunicorn", "turingtest.wsgi:application",
            "--bind", f"127.0.0.1:{port}", "--workers", str(args.workers),
            "--threads", str(args.threads), "--worker-class", "gthread",
            "--keep-alive", "30", "--no-control-socket",
        ],
        cwd=code,
        env=stack.env | {"TURINGTEST_IMAGE_SERVING": serving},
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )  # fmt: skip
    wait_for_port(port, proc)
    return proc


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--workers", type=int, default=3)
    parser.add_argument("--threads", type=int, default=4)
    parser.add_argument("--seconds", type=float, default=3.0)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--clients", type=int, default=8)
    parser.add_argument(
        "--before",
        type=Path,
        help="a checkout of older code (git archive COMMIT | tar -x -C DIR) whose "
        "image view is measured too, against the same database and files",
    )
    parser.add_argument(
        "--database",
        default=os.environ.get(
            "DATABASE_URL", "postgres://postgres@127.0.0.1:5432/postgres"
        ),
    )
    parser.add_argument(
        "--redis", default=os.environ.get("REDIS_URL", "redis://127.0.0.1:6379/11")
    )
    args = parser.parse_args()
    nginx = shutil.which("nginx") or (
        "/usr/sbin/nginx" if Path("/usr/sbin/nginx").exists() else None
    )
    if nginx is None:
        sys.exit("nginx is not installed (apt-get install nginx-light)")
    base = Path(tempfile.mkdtemp(prefix="turingtest-images-"))
    base.chmod(0o755)  # nginx's workers run as another user and must read the media
    (base / "nginx-tmp").mkdir()
    stack = LiveStack(
        base,
        name="bench_images",
        production=True,
        redis_url=args.redis,
        database_url=args.database,
    )
    procs = []
    try:
        stack.setup()
        info = stack.seed(slug="images", readers=1, per_grade=6, practice=4, size=224)
        media = Path(stack.env["MEDIA_ROOT"])
        signed_env = {
            "TURINGTEST_IMAGE_SERVING": "nginx-signed",
            "TURINGTEST_IMAGE_SIGNING_KEY": SIGNING_KEY,
        }
        stack.env.update(signed_env)
        stack.manage("signed_image_links")
        for key in signed_env:
            del stack.env[key]
        for path in [media, *media.rglob("*")]:
            path.chmod(0o755 if path.is_dir() else 0o644)
        rows = stack.query(
            "SELECT c.token, i.file FROM imaging_image i JOIN studies_case c "
            "ON c.image_id = i.id JOIN studies_study s ON s.id = c.study_id "
            "WHERE s.slug = ?",
            (info["slug"],),
        )
        stack.env["TURINGTEST_IMAGE_SERVING"] = "nginx"
        stack.start(workers=args.workers, threads=args.threads)
        app_port = free_port()
        procs.append(gunicorn(stack, app_port, "django", args))
        before_port = free_port()
        if args.before:
            procs.append(gunicorn(stack, before_port, "django", args, args.before))
        port = free_port()
        conf = base / "nginx.conf"
        conf.write_text(
            NGINX_CONF.format(
                workers=args.workers,
                base=base,
                port=port,
                accel_port=stack.port,
                app_port=app_port,
                before_port=before_port,
                media=media,
                internal=INTERNAL.format(media=media),
                signed=signed_location(media=media, key=SIGNING_KEY),
            )
        )
        procs.append(
            subprocess.Popen(
                [nginx, "-c", str(conf), "-p", str(base)],
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
                start_new_session=True,
            )
        )
        wait_for_port(port, procs[-1])
        reader = HttpReader(stack)
        reader.login(info["readers"][0])
        reader.consent(info["slug"])
        headers = reader.headers({"Host": "127.0.0.1"})
        views = [f"/api/v1/images/{t}" for t, _ in rows]
        paths = {
            "nginx, static files": (["/" + f for _, f in rows], {"Host": "127.0.0.1"}),
            "view + X-Accel-Redirect": (views, headers),
            "view + FileResponse": (["/file" + v for v in views], headers),
        }
        from turingtest.studies.signed_images import signature

        expires = int(time.time()) + 3600
        paths["signed URL, nginx alone"] = (
            [
                f"/signed-images/{t}?e={expires}&s="
                + signature(f"/signed-images/{t}", expires, SIGNING_KEY)
                for t, _ in rows
            ],
            {"Host": "127.0.0.1"},
        )
        if args.before:
            paths["before: view + FileResponse"] = (
                ["/before" + v for v in views],
                headers,
            )
        header_sets = {
            name: len(headers_seen(port, p, h)) for name, (p, h) in paths.items()
        }
        for p, h in paths.values():
            hammer(port, p[:5], h, 1, 1)  # warm the workers up
        print(
            f"{len(rows)} images of 224 px; {args.clients} keep-alive clients; "
            f"{args.rounds} rounds of {args.seconds:.0f} s each, servers in turn; "
            f"nginx {args.workers} workers, gunicorn {args.workers} x {args.threads} "
            f"threads; {os.cpu_count()} CPUs"
        )
        results = {name: [] for name in paths}
        for _ in range(args.rounds):
            for name, (p, h) in paths.items():
                results[name].append(hammer(port, p, h, args.seconds, args.clients))
        static = sum(r["per_s"] for r in results["nginx, static files"])
        print(
            "  server                         images/s   MiB/s  p50 ms  failures  "
            "header sets  share of static"
        )
        for name, runs in results.items():
            per_s = sum(r["per_s"] for r in runs)
            print(
                f"  {name:<29} {per_s / len(runs):9.0f} "
                f"{sum(r['mb_s'] for r in runs) / len(runs):7.1f} "
                f"{statistics.median(r['p50_ms'] for r in runs):7.1f} "
                f"{sum(r['failures'] for r in runs):9d} {header_sets[name]:>12} "
                f"{per_s / static:16.2f}"
            )
    finally:
        for proc in reversed(procs):
            stop_group(proc)
        stack.close()
        shutil.rmtree(base, ignore_errors=True)


if __name__ == "__main__":
    main()
