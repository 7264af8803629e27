"""A real gunicorn server: stopped mid-study, and sent an oversize upload.

Readers keep their browser (cookies) across an outage: their sessions go on
without signing in again, the answer in flight when the server died is sent
again, and at the end every answer the server acknowledged is stored once.
"""

import hashlib
import http.client
import json
import signal
import socket
import threading
import time
from urllib.parse import urlsplit

import pytest

from tests.live import (
    HttpReader,
    LiveStack,
    answer_body,
    audit,
    hang_up,
    raw_request,
)

pytestmark = pytest.mark.slow
SLUG = "restart"
STAFF = "staff@example.org"
UPLOAD_LIMIT = 2**20


@pytest.fixture(scope="module")
def stack(tmp_path_factory):
    s = LiveStack(tmp_path_factory.mktemp("live"), name="test_live")
    s.env["TURINGTEST_MAX_UPLOAD_BYTES"] = str(UPLOAD_LIMIT)
    s.env["TMPDIR"] = str(s.base / "tmp")
    (s.base / "tmp").mkdir()
    try:
        s.setup()
        s.info = s.seed(slug=SLUG, readers=3, per_grade=1, practice=2)
        s.env["DJANGO_SUPERUSER_PASSWORD"] = "staff-password-for-tests-1"
        s.manage("createsuperuser", "--noinput", "--username", STAFF, "--email", STAFF)
        yield s
    finally:
        s.close()


class Reading:
    """A reader who answers whatever comes next and remembers what was acknowledged."""

    def __init__(self, stack: LiveStack, email: str, acknowledged: dict) -> None:
        self.email = email
        self.http = HttpReader(stack, timeout=20)
        self.acknowledged = acknowledged
        self.in_flight: dict | None = None
        self.finished = False

    def step(self) -> None:
        reply = self.http.next(SLUG)
        assert reply.status == 200, (reply.status, reply.body[:200])
        step = reply.json()
        if "redirect" in step:
            self.finished = True
            return
        self.send(step)

    def send(self, step: dict) -> None:
        body, reply = None, None
        try:
            body, reply = self.http.answer(SLUG, step, choice=step["position"] + 1)
        except (OSError, http.client.HTTPException):
            # The server died with this answer in flight: it may or may not
            # have been stored. The reader will send it again.
            self.in_flight = answer_body(step, step["position"] + 1)
            self.http.close()
            raise
        assert reply.status in (200, 201), (reply.status, reply.body[:300])
        if reply.status == 201:
            self.acknowledged[(self.email, body["stage"], body["position"])] = body

    def resend(self) -> int:
        body = self.in_flight
        reply = self.http.post_json(f"/api/v1/studies/{SLUG}/answers", body)
        assert reply.status in (200, 201), (reply.status, reply.body[:300])
        # 200: stored before the server went down, its reply lost with it.
        # Either way the server now says it holds this answer.
        self.acknowledged[(self.email, body["stage"], body["position"])] = body
        self.in_flight = None
        return reply.status


def keep_answering(reader: Reading, stop: threading.Event) -> None:
    try:
        while not stop.is_set() and not reader.finished:
            reader.step()
    except (OSError, http.client.HTTPException):
        pass


def outage(stack: LiveStack, reader: Reading, sig: int) -> None:
    """Stop the server with ``sig`` while ``reader`` is answering as fast as it can."""
    stop = threading.Event()
    before = len(reader.acknowledged)
    worker = threading.Thread(target=keep_answering, args=(reader, stop))
    worker.start()
    deadline = time.monotonic() + 20
    while len(reader.acknowledged) < before + 2 and time.monotonic() < deadline:
        time.sleep(0.01)
    stack.stop(sig)
    stop.set()
    worker.join(timeout=30)
    assert not worker.is_alive()


def stored_positions(stack: LiveStack, email: str, stage) -> list[int]:
    session = stack.sessions(SLUG).get((email, stage), {"answers": []})
    return [a[0] for a in session["answers"]]


def test_a_restarted_server_loses_no_answer_and_sessions_continue(stack):
    acknowledged: dict = {}
    emails = stack.info["readers"]
    stack.stop()
    stack.start(workers=2, threads=2)
    readers = [Reading(stack, email, acknowledged) for email in emails]
    for reader in readers:
        reader.http.login(reader.email)
        reader.http.consent(SLUG)
        for _ in range(4):
            reader.step()
    a, b, c = readers
    answers = f"/api/v1/studies/{SLUG}/answers"

    # A crash: every server process killed at once. Reader a is answering as
    # fast as the server lets them; reader b's answer is half sent.
    step_b = b.http.next(SLUG).json()
    body_b = json.dumps(answer_body(step_b, 1)).encode()
    half_sent = raw_request(b.http, "POST", answers, body_b, send=len(body_b) // 2)
    outage(stack, a, signal.SIGKILL)
    hang_up(half_sent)
    stack.start(workers=2, threads=2)
    for reader in readers:
        reply = reader.http.next(SLUG)
        assert reply.status == 200, "the session did not survive the crash"
        assert "position" in reply.json()
    if a.in_flight is not None:  # sent again: stored once, in or not before
        assert a.resend() in (200, 201)
    assert step_b["position"] not in stored_positions(stack, b.email, step_b["stage"])
    b.in_flight = json.loads(body_b)
    assert b.resend() == 201

    # A restart: SIGTERM lets requests in progress finish. Reader c's answer
    # went in, but c hung up before the reply: sent again, it is not stored twice.
    step_c = c.http.next(SLUG).json()
    body_c = answer_body(step_c, 2)
    hang_up(raw_request(c.http, "POST", answers, json.dumps(body_c).encode()))
    deadline = time.monotonic() + 10
    while step_c["position"] not in stored_positions(stack, c.email, step_c["stage"]):
        assert time.monotonic() < deadline, "the answer sent before hanging up is lost"
        time.sleep(0.05)
    outage(stack, a, signal.SIGTERM)
    stack.start(workers=2, threads=2)
    if a.in_flight is not None:
        a.resend()
    c.in_flight = body_c
    assert c.resend() == 200  # a duplicate: the server had it

    for reader in readers:
        while not reader.finished:
            reader.step()

    stored, problems = audit(stack, SLUG, emails, stack.info["phases"], acknowledged)
    assert problems == []
    per_reader = stack.info["practice_cases"] + 2 * stack.info["main_cases"]
    assert stored == len(emails) * per_reader
    assert len(acknowledged) == stored
    assert "Traceback" not in stack.log_path.read_text()


def test_an_oversize_upload_is_refused_before_its_body_arrives(stack):
    if stack.server is None:
        stack.start(workers=2, threads=2)
    images = stack.query("SELECT count(*) FROM imaging_image")[0][0]
    staff = HttpReader(stack)
    staff.login(STAFF, "staff-password-for-tests-1")
    assert staff.request("GET", "/staff/images/upload/").status == 200
    # The client announces 200 MiB and sends 16 KiB of it; the answer must not
    # wait for the rest.
    boundary = "turingtestboundary"
    head = (
        f"--{boundary}\r\n"
        'Content-Disposition: form-data; name="files"; filename="big.zip"\r\n'
        "Content-Type: application/zip\r\n\r\n"
    ).encode()
    declared = 200 * 2**20
    headers = staff.headers(
        {
            "Content-Type": f"multipart/form-data; boundary={boundary}",
            "Content-Length": str(declared),
            "Origin": staff.origin,
            "Referer": staff.origin + "/staff/images/upload/",
            "X-CSRFToken": staff.cookies["csrftoken"],
        }
    )
    request = "POST /staff/images/upload/ HTTP/1.1\r\n" + "".join(
        f"{k}: {v}\r\n" for k, v in headers.items()
    )
    started = time.monotonic()
    with socket.create_connection(("127.0.0.1", stack.port), timeout=15) as conn:
        conn.sendall(request.encode() + b"\r\n" + head + bytes(16 * 1024))
        reply = b""
        while b"</html>" not in reply:
            chunk = conn.recv(65536)
            if not chunk:
                break
            reply += chunk
    seconds = time.monotonic() - started
    status_line = reply.split(b"\r\n", 1)[0]
    assert b" 413 " in status_line, reply[:500]
    assert b"larger than the limit of 1 MiB" in reply
    assert seconds < 10
    assert stack.query("SELECT count(*) FROM imaging_image")[0][0] == images
    assert not any((stack.base / "tmp").iterdir())


# --- two studies sharing one pool, seen by a reader of both ----------------------


@pytest.fixture(scope="module")
def shared_pool(tmp_path_factory):
    """Production settings; study B opened first with a large practice round,
    then study A drawn from the same pool; one invitation to A left over."""
    s = LiveStack(
        tmp_path_factory.mktemp("pool"), name="test_live_pool", production=True
    )
    try:
        s.setup()
        s.info_b = s.seed(slug="bstudy", readers=1, per_grade=1, practice=5)
        s.info_a = s.seed(slug="astudy", readers=0, per_grade=1, practice=2)
        link = s.manage("invite_readers", "astudy", "--count", "1")
        s.invitation = urlsplit(link.strip().splitlines()[-1]).path
        s.start(workers=1, threads=2)
        yield s
    finally:
        s.close()


def walk(reader: HttpReader, slug: str) -> dict:
    """Read a study to the end; what the reader received, by what they can tell."""
    seen = {"told": set(), "main": set(), "urls": set(), "grading": []}
    reader.consent(slug)
    page = reader.read_page(slug)
    assert page.status == 200
    seen["grading"].append(page.body.decode())
    step = reader.next(slug).json()
    while "redirect" not in step:
        image = reader.image(step["image"])
        assert image.status == 200
        digest = hashlib.sha256(image.body).hexdigest()
        seen["urls"] |= {step["image"], step.get("preload", step["image"])}
        _, reply = reader.answer(slug, step, choice=step["position"] + 1)
        assert reply.status == 201, reply.body[:300]
        if step["stage"] == "practice":
            # Practice images are real, and the feedback gives the reference.
            assert "reference_kl" in reply.json()["feedback"]
            seen["told"].add(digest)
        else:
            seen["main"].add(digest)
        if step["stage"] in ("practice", 1):
            seen["grading"] += [json.dumps(step), reply.body.decode()]
        step = reply.json()["next"]
    return seen


def test_nothing_a_reader_gets_in_one_study_tells_the_truth_of_another(shared_pool):
    s = shared_pool
    reader = HttpReader(s)
    reader.login(s.info_b["readers"][0])
    in_b = walk(reader, "bstudy")
    assert len(in_b["told"]) == 5

    # The same reader joins A with an invitation, and reads it too.
    assert reader.request("GET", s.invitation).status == 200
    assert reader.form(s.invitation, {}).status == 302
    in_a = walk(reader, "astudy")

    # No main case of A is an image B showed with its truth, and no URL of
    # one study names an image of the other.
    assert not in_a["main"] & in_b["told"]
    assert not in_a["urls"] & in_b["urls"]
    assert in_a["main"] & in_b["main"]  # the studies do share their pool
    # Nor does A's blind grading hint at the second question.
    schema = reader.request("GET", "/api/v1/schema")
    assert schema.status == 404 and b"synthetic" not in schema.body
    for text in in_a["grading"][:-1]:  # the last reply brings phase 2
        lowered = text.lower()
        for trace in ("synthetic", "realism", "confidence", "turing", "study astudy"):
            assert trace not in lowered, trace
    assert "Traceback" not in s.log_path.read_text()
