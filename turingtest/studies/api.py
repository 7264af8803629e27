"""The reader's JSON API under ``/api/v1/``.

Nothing here says whether an image is real or synthetic, what grade it has,
or where it came from: the reader gets positions, opaque image URLs and, in
the practice round only, feedback.
"""

import json
import string
from collections.abc import Callable
from functools import wraps
from urllib.parse import quote

from django.core.exceptions import ValidationError
from django.db import IntegrityError, OperationalError
from django.http import FileResponse, Http404, HttpRequest, HttpResponse, JsonResponse
from django.urls import reverse
from django.utils import timezone
from django.views.decorators.http import require_GET, require_POST

from turingtest.conf import project_settings
from turingtest.domain import protocols, scoring
from turingtest.domain.questions import FREE_TEXT_MAX
from turingtest.domain.scales import KL
from turingtest.imaging.models import Image
from turingtest.imaging.serving import IMAGE_HEADERS
from turingtest.media_storage import open_stream
from turingtest.studies import selectors, services, signed_images
from turingtest.studies.models import (
    Enrollment,
    Phase,
    ReadingSession,
    Study,
)

PHASE_INTROS = {
    Phase.Kind.GRADING: f"Grade each knee radiograph on the {KL.system} "
    f"scale from {KL.range_text()}.",
    Phase.Kind.DETECTION: "Some of these images are real radiographs and some were made by a computer. "
    "For each image, say whether you think it is real or synthetic, and how sure you are.",
    Phase.Kind.COMBINED: "Some of these images are real radiographs and some were made by a computer. "
    "For each image, say whether you think it is real or synthetic, and grade it on the "
    f"{KL.abbreviation} scale.",
}

TOKEN_CHARACTERS = frozenset(string.ascii_letters + string.digits + "-_")


def error(message: str, status: int = 400, fields: dict | None = None) -> JsonResponse:
    body = {"error": message}
    if fields:
        body["fields"] = fields
    return JsonResponse(body, status=status)


def _validation_message(exc: ValidationError) -> tuple[str, dict | None]:
    if hasattr(exc, "error_dict"):
        fields = {
            k: " ".join(m for e in v for m in e.messages)
            for k, v in exc.error_dict.items()
        }
        return " ".join(fields.values()), fields
    return " ".join(exc.messages), None


def reader_api(view: Callable | None = None, *, resolve: bool = True) -> Callable:
    """Resolve the signed-in reader's enrollment in the study, or answer 401/404 in JSON.

    ``resolve=False``: the view gets the slug and resolves the enrollment in
    a query of its own; any refusal is then a 404 unless the reader takes
    part, so the answers are the same.
    """
    if view is None:
        return lambda view: reader_api(view, resolve=resolve)

    @wraps(view)
    def wrapper(request: HttpRequest, slug: str, *args, **kwargs) -> HttpResponse:
        if not request.user.is_authenticated:
            return error("Sign in to read this study.", status=401)
        subject = slug
        if resolve:
            subject = selectors.enrollment_for(user=request.user, study_slug=slug)
            if subject is None:
                # The same answer whether the study exists or not: slugs cannot
                # be probed by someone who does not take part.
                return error("No such study.", status=404)
        try:
            return view(request, subject, *args, **kwargs)
        except ValidationError as exc:
            if not resolve and not selectors.enrollment_for(
                user=request.user, study_slug=slug
            ):
                return error("No such study.", status=404)
            message, fields = _validation_message(exc)
            return error(message, fields=fields)
        except (OperationalError, IntegrityError):
            # The database dropped us mid-request, or another request stored
            # the same row first; the transaction rolled back, so a retry of
            # the same request is safe and stores one answer.
            return error(
                "The server could not save this just now. Please try again.", status=503
            )

    return wrapper


def _parse_json(request: HttpRequest) -> dict:
    try:
        body = json.loads(request.body or b"{}")
    except (ValueError, UnicodeDecodeError, RecursionError) as exc:
        # RecursionError: a body nested thousands of levels deep.
        raise ValidationError("The request body must be a JSON object.") from exc
    if not isinstance(body, dict):
        raise ValidationError("The request body must be a JSON object.")
    return body


def _int_field(body: dict, name: str, *, required: bool) -> int | None:
    value = body.get(name)
    if value is None:
        if required:
            raise ValidationError({name: f"'{name}' is required."})
        return None
    if not isinstance(value, int) or isinstance(value, bool):
        raise ValidationError({name: f"'{name}' must be a whole number."})
    return value


def _session_for(enrollment: Enrollment, body: dict) -> ReadingSession:
    """The session a request names with ``stage``: "practice" or a phase number (1-based)."""
    stage = body.get("stage")
    sessions = ReadingSession.objects.select_related("phase", "enrollment__study")
    if stage == "practice":
        session = sessions.filter(enrollment=enrollment, phase__isnull=True).first()
    elif isinstance(stage, int) and not isinstance(stage, bool):
        session = sessions.filter(enrollment=enrollment, phase__index=stage - 1).first()
    else:
        raise ValidationError(
            {"stage": "'stage' must be \"practice\" or a phase number."}
        )
    if session is None:
        raise ValidationError({"stage": "That stage has not started for you."})
    return session


def _question_payload(question: protocols.Question) -> dict:
    """A question as the viewer renders it: choices ``(value, label, description)``.

    A compact question shows bare codes in a row, each with its label as a
    tooltip, and the short forms as a hint line; others a labelled list.
    ``keys`` maps keyboard keys to values; ``extra`` questions are answered
    in the request's ``answers`` object; free text has no choices.
    """
    scale = question.scale
    payload: dict = {
        "field": question.field,
        "title": question.title,
        "type": question.kind.value,
        "required": question.required,
    }
    if question.extra:
        payload["extra"] = True
    if scale is None:
        payload["choices"] = []
        payload["max_length"] = FREE_TEXT_MAX
    elif question.compact:
        payload["choices"] = [(lv.code, "", lv.label) for lv in scale.levels]
        payload["hint"] = scale.hint()
    else:
        payload["choices"] = [(lv.code, lv.label, "") for lv in scale.levels]
    payload["keys"] = question.keymap()
    return payload


def _questions(phase: Phase, definition: selectors.StudyDefinition) -> list[dict]:
    """The questions a phase asks, each naming the answer field it fills.

    A phase's payload describes only its own questions, in words and field
    names of their own: a grading phase says nothing of any other question,
    not even that it is not asked.
    """
    return [_question_payload(q) for q in definition.questions(phase)]


# A phase whose own questions grade in place of the KL grade.
OWN_QUESTIONS_INTRO = "Read each image and answer the questions beside it."


def _intro(phase: Phase) -> str:
    if phase.asks_kl_grade:
        return PHASE_INTROS[phase.kind]
    if phase.kind == Phase.Kind.GRADING:
        return OWN_QUESTIONS_INTRO
    return PHASE_INTROS[Phase.Kind.DETECTION]


def _phase_payload(
    phase: Phase,
    number: int,
    count: int,
    practice: bool,
    definition: selectors.StudyDefinition,
) -> dict:
    return {
        "number": number,
        "count": count,
        "practice": practice,
        "intro": _intro(phase),
        "questions": _questions(phase, definition),
    }


def _image_url(token: str) -> str:
    # The case's token, not the image's: one image in two studies has two
    # unrelated URLs. Behind nginx with signed URLs, nginx checks and sends it.
    if signed_images.signing_enabled():
        return signed_images.signed_url(token)
    return reverse("api-image", args=[token])


def _session_stage(
    session: ReadingSession, definition: selectors.StudyDefinition
) -> selectors.Stage:
    """The stage of a session that is under way (stages run in order)."""
    phases = definition.phases
    if session.phase is None:
        return selectors.Stage("practice", phases[0], 0, len(phases), session)
    number = 1 + [p.id for p in phases].index(session.phase_id)
    return selectors.Stage("phase", session.phase, number, len(phases), session)


def next_payload(enrollment: Enrollment, stage: selectors.Stage | None = None) -> dict:
    """What the viewer shows now; starts the session and stamps the serve time.

    ``stage``: where the reader stands, where the caller knows it already
    (with its session), which saves reading the reader's sessions again.
    """
    study = enrollment.study
    now = timezone.now()
    if stage is None:
        stage = selectors.reader_stage(enrollment=enrollment)
    if stage.name in ("done", "closed", "consent"):
        urls = {"done": "study-done", "closed": "study-home", "consent": "study-home"}
        return {
            "stage": stage.name,
            "redirect": reverse(urls[stage.name], args=[study.slug]),
        }
    practice = stage.name == "practice"
    session = stage.session or services.reading_session_start(
        enrollment=enrollment,
        phase=None if practice else stage.phase,
        known_absent=True,
        serve_first=now,
    )
    answered = session.answered
    total = len(session.order)
    definition = selectors.study_definition(study=study)
    payload = {
        "stage": "practice" if practice else stage.phase_number,
        "phase": _phase_payload(
            stage.phase, stage.phase_number, stage.phase_count, practice, definition
        ),
        "position": answered,
        "total": total,
        "can_revise": not practice
        and study.edit_policy == Study.EditPolicy.UNTIL_PHASE_END,
    }
    if answered >= total:
        payload["review"] = True  # all answered; the reader may revise, then finish
        return payload
    services.reading_session_serve(session=session, position=answered, now=now)
    tokens = definition.tokens
    payload["image"] = _image_url(tokens[session.order[answered]])
    if answered + 1 < total:
        payload["preload"] = _image_url(tokens[session.order[answered + 1]])
    return payload


@require_GET
@reader_api
def next_case(request: HttpRequest, enrollment: Enrollment) -> JsonResponse:
    return JsonResponse(next_payload(enrollment))


def _practice_feedback(judgment, definition: selectors.StudyDefinition) -> dict:
    """The reference for a practice answer: practice images are reserved, so
    what it tells the reader is about no main case of any study."""
    source, grade = definition.practice_truth[judgment.case_id]
    if judgment.answer is None and judgment.kl_grade is None:
        return {}  # the phase's own questions have no reference to show
    feedback = {
        "reference_kl": grade,
        "reference_label": f"Reference {KL.short_label}",
        "correct": scoring.is_correct(
            definition.phases[0].kind,
            source,
            grade,
            judgment.answer,
            judgment.kl_grade,
        ),
    }
    if judgment.answer is not None:
        feedback["truth"] = source
    return feedback


def _session_ref(request: HttpRequest, slug: str, body: dict) -> services.SessionRef:
    """The session a request names with ``stage``, without reading it."""
    stage = body.get("stage")
    if stage == "practice":
        return services.SessionRef(request.user.pk, slug, None)
    if isinstance(stage, int) and not isinstance(stage, bool):
        return services.SessionRef(request.user.pk, slug, stage - 1)
    raise ValidationError({"stage": "'stage' must be \"practice\" or a phase number."})


@require_POST
@reader_api(resolve=False)
def answer_create(request: HttpRequest, slug: str) -> JsonResponse:
    # The enrollment is read with the session it locks: one query for both.
    body = _parse_json(request)
    position = _int_field(body, "position", required=True)
    recorded = services.judgment_record(
        session=_session_ref(request, slug, body),
        position=position,
        confidence=_int_field(body, "confidence", required=False),
        kl_grade=_int_field(body, "kl_grade", required=False),
        answers=body.get("answers"),
        interaction=body.get("interaction"),
        serve_next=True,
    )
    session = recorded.session
    enrollment = session.enrollment
    definition = selectors.study_definition(study=enrollment.study)
    response = {"stored": True, "duplicate": not recorded.created, "position": position}
    if session.is_practice:
        response["feedback"] = _practice_feedback(recorded.judgment, definition)
    if recorded.following is not None:
        stage = _session_stage(recorded.following, definition)
    elif session.completed_at is None:
        stage = _session_stage(session, definition)
    else:
        stage = None  # a repeat of a stage's last answer: read where the reader is
    response["next"] = next_payload(enrollment, stage)
    return JsonResponse(response, status=201 if recorded.created else 200)


@require_GET
@reader_api
def answer_detail(
    request: HttpRequest, enrollment: Enrollment, stage: int, position: int
) -> JsonResponse:
    """A reader's own current answer at a position, for review where edits are allowed."""
    session = _session_for(enrollment, {"stage": stage})
    if session.enrollment.study.edit_policy != Study.EditPolicy.UNTIL_PHASE_END:
        return error("Answers in this study cannot be reviewed.", status=403)
    judgment = session.judgments.filter(position=position).first()
    if judgment is None:
        return error("No answer at that position.", status=404)
    latest = judgment.revisions.order_by("-revision").first() or judgment
    study = session.enrollment.study
    definition = selectors.study_definition(study=study)
    phase = _phase_payload(
        session.phase, stage, len(definition.phases), False, definition
    )
    # Only the fields this phase asks for, as its questions name them.
    answers = {
        q["field"]: latest.answers.get(q["field"])
        if q.get("extra")
        else getattr(latest, q["field"])
        for q in phase["questions"]
    }
    return JsonResponse(
        {
            "stage": stage,
            "position": position,
            "total": len(session.order),
            "image": _image_url(judgment.case.token),
            **answers,
            "phase": phase,
        }
    )


@require_POST
@reader_api
def revision_create(request: HttpRequest, enrollment: Enrollment) -> JsonResponse:
    body = _parse_json(request)
    session = _session_for(enrollment, body)
    revision = services.judgment_revise(
        session=session,
        position=_int_field(body, "position", required=True),
        confidence=_int_field(body, "confidence", required=False),
        kl_grade=_int_field(body, "kl_grade", required=False),
        answers=body.get("answers"),
    )
    return JsonResponse({"stored": True, "revision": revision.revision}, status=201)


@require_POST
@reader_api
def stage_finish(request: HttpRequest, enrollment: Enrollment) -> JsonResponse:
    session = _session_for(enrollment, _parse_json(request))
    services.reading_session_finish(session=session)
    enrollment.refresh_from_db()
    return JsonResponse({"finished": True, "next": next_payload(enrollment)})


def _image_storage():
    return Image._meta.get_field("file").storage


def image_response(name: str) -> HttpResponse:
    """The stored file ``name`` with the headers every image gets.

    Served by Django (``FileResponse``), streamed from the media storage (the
    disk, or an S3 bucket: nothing of the object's own metadata or key goes
    out), or, behind nginx or Apache, handed to the front server
    (``TURINGTEST_IMAGE_SERVING``, local disk only): the reply names the file
    under an internal location the front server maps to the media folder,
    and the front server sends it with these headers, which it must not add
    to (docs/deploy.md).
    """
    conf = project_settings()
    serving = conf.image_serving
    storage = _image_storage()
    size = None
    if serving == "django":
        file, size = open_stream(storage, name)
        response = FileResponse(file)
    else:
        response = HttpResponse()
        location = conf.image_internal_prefix.rstrip("/") + "/"
        if serving == "nginx":
            response["X-Accel-Redirect"] = location + quote(name)
        else:  # apache: mod_xsendfile takes a path on disk
            response["X-Sendfile"] = storage.path(name)
    for header, value in IMAGE_HEADERS.items():
        response[header] = value
    if size is not None:
        response["Content-Length"] = str(size)
    # else the front server sends the file's own length: this reply has no body
    return response


@require_GET
def image(request: HttpRequest, token: str) -> HttpResponse:
    """An image, to staff or to a reader enrolled in an open study that contains it.

    Every refusal is the same 404, so a token's existence cannot be probed.
    """
    # Only URL-safe tokens can exist; anything else (a NUL byte, which
    # PostgreSQL refuses in a query) is not looked up at all.
    if len(token) > 32 or not set(token) <= TOKEN_CHARACTERS:
        raise Http404("No such image.")
    name = selectors.image_file_for_user(user=request.user, token=token)
    if name is None:
        raise Http404("No such image.")
    return image_response(name)


@require_GET
def schema(request: HttpRequest) -> JsonResponse:
    """The API description, for staff: it names every question any phase asks."""
    if not (request.user.is_authenticated and request.user.is_staff):
        return error("Not found.", status=404)
    from turingtest.studies.openapi import OPENAPI

    return JsonResponse(OPENAPI)
