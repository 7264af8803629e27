"""The reader's JSON API under ``/api/v1/``, declared with django-ninja.

The request bodies are pydantic models: ninja validates every request
against them and derives the OpenAPI description (served to staff at
``/api/v1/schema``) from the same declarations, so the two cannot drift.
Refusals keep the API's one error shape, ``{"error": message, "fields":
{field: message}}``.

Nothing here says whether an image is real or synthetic, what grade it has,
or where it came from: the reader gets positions, opaque image URLs and, in
the practice round only, feedback.
"""

import functools
import json
import string
from collections.abc import Callable
from typing import Annotated, Any, Literal
from urllib.parse import quote

from django.conf import settings
from django.core.exceptions import RequestDataTooBig, ValidationError
from django.db import IntegrityError, OperationalError, connections
from django.http import FileResponse, Http404, HttpRequest, HttpResponse, JsonResponse
from django.urls import URLPattern, get_script_prefix, get_urlconf, path, reverse
from django.utils import timezone
from ninja import NinjaAPI
from ninja.errors import AuthenticationError, HttpError
from ninja.errors import ValidationError as RequestInvalid
from ninja.parser import Parser
from ninja.security import SessionAuth
from pydantic import (
    BaseModel,
    Field,
    StrictInt,
    ValidationInfo,
    ValidatorFunctionWrapHandler,
    WrapValidator,
)
from pydantic import ValidationError as PydanticValidationError
from pydantic_core import PydanticCustomError

from turingtest.conf import project_settings
from turingtest.domain import protocols, scoring
from turingtest.domain.questions import FREE_TEXT_MAX
from turingtest.domain.references import on_scale
from turingtest.domain.scales import DETECTION, KL
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

BODY_NOT_AN_OBJECT = "The request body must be a JSON object."
STAGE_INVALID = "'stage' must be \"practice\" or a phase number."


def error(message: str, status: int = 400, fields: dict | None = None) -> JsonResponse:
    body: dict[str, Any] = {"error": message}
    if fields:
        body["fields"] = fields
    return JsonResponse(body, status=status)


# --- request bodies -------------------------------------------------------------


def _refused_as(message: str) -> WrapValidator:
    """Refuse what the wrapped type refuses with ``message`` (which may name
    ``{field}``) in place of pydantic's wording: the reader's page shows it."""

    def validate(
        value: Any, handler: ValidatorFunctionWrapHandler, info: ValidationInfo
    ) -> Any:
        try:
            return handler(value)
        except PydanticValidationError:
            raise PydanticCustomError(
                "refused", message, {"field": info.field_name}
            ) from None

    return WrapValidator(validate)


def _dropped_if_invalid(value: Any, handler: ValidatorFunctionWrapHandler) -> Any:
    try:
        return handler(value)
    except PydanticValidationError:
        return None


# Strict: true, 1.5 and "2" are not whole numbers, as JSON's types say.
WholeNumber = Annotated[StrictInt, _refused_as("'{field}' must be a whole number.")]
StageRef = Annotated[
    Literal["practice"] | Annotated[StrictInt, Field(ge=1)],
    _refused_as(STAGE_INVALID),
    Field(description='"practice", or a phase number (1-based)'),
]


class Finish(BaseModel):
    """Names the stage being ended."""

    stage: StageRef


class Revision(Finish):
    """A changed answer to a case of a phase, by its position."""

    position: WholeNumber = Field(description="The case's position (0-based)")
    confidence: WholeNumber | None = Field(
        None,
        description=", ".join(
            f"{code} {label.lower()}" for code, label in DETECTION.choices()
        ),
        json_schema_extra={"minimum": DETECTION.min, "maximum": DETECTION.max},
    )
    kl_grade: WholeNumber | None = Field(
        None, json_schema_extra={"minimum": KL.min, "maximum": KL.max}
    )
    answers: Annotated[
        dict[str, Any] | None, _refused_as("'{field}' must be an object.")
    ] = Field(
        None,
        description="Answers to the phase's extra questions (those with extra: "
        "true), by field: a value of the question's choices, or text of up to "
        f"{FREE_TEXT_MAX} characters for free text. Optional questions may be "
        "left out.",
    )


class Answer(Revision):
    """The reader's answer to the current case."""

    interaction: Annotated[
        dict[str, Any] | None, WrapValidator(_dropped_if_invalid)
    ] = Field(
        None,
        description="The viewer's log of what the reader did with the image: "
        "first_input_ms, answer_ms and events [t_ms, kind, ...numbers] (see "
        "turingtest.studies.interactions). Optional; a malformed log is "
        "dropped, never the answer.",
    )


# --- responses (documented; the views build them as the viewer reads them) ------


class Error(BaseModel):
    error: str
    fields: dict[str, str] | None = Field(
        None, description="Field -> what is wrong with it"
    )


class Question(BaseModel):
    field: str = Field(
        description="The answer field it fills: confidence or kl_grade, or for "
        "an extra question its key in answers"
    )
    title: str
    type: Literal["ordinal", "nominal", "free_text"]
    required: bool
    extra: bool | None = Field(None, description="Answered in the answers object")
    choices: list[tuple[Any, str, str]] = Field(
        description="[value, label, description]; empty for free text"
    )
    keys: dict[str, Any] = Field(description="Keyboard key -> value")
    max_length: int | None = None
    hint: str | None = None


class PhaseView(BaseModel):
    """The current phase, in words of its own: it lists only the questions it asks."""

    number: int
    count: int
    practice: bool
    intro: str
    questions: list[Question]


class Step(BaseModel):
    """What the viewer shows now; ``redirect`` where reading is over or not begun."""

    stage: StageRef | Literal["done", "closed", "consent"]
    redirect: str | None = None
    phase: PhaseView | None = None
    position: int | None = None
    total: int | None = None
    can_revise: bool | None = None
    review: bool | None = Field(
        None, description="Every case answered: revise, then finish"
    )
    image: str | None = None
    preload: str | None = Field(None, description="The following case's image")


class OwnReference(BaseModel):
    """A practice image's reference value on an extra question's scale."""

    field: str
    label: str
    value: int | str
    value_label: str


class Feedback(BaseModel):
    """The reference for a practice answer (practice images only)."""

    reference_kl: int | None = None
    reference_label: str | None = None
    correct: bool | None = None
    truth: str | None = None
    references: list[OwnReference] | None = None


class Stored(BaseModel):
    stored: bool
    duplicate: bool
    position: int
    feedback: Feedback | None = Field(None, description="Practice only")
    next: Step


class StoredRevision(BaseModel):
    stored: bool
    revision: int


class Finished(BaseModel):
    finished: bool
    next: Step


class StoredAnswer(BaseModel):
    """A reader's current answer at a position, with the fields its phase asks."""

    stage: int
    position: int
    total: int
    image: str
    phase: PhaseView
    confidence: int | None = None
    kl_grade: int | None = None


# --- the API --------------------------------------------------------------------


class _NotAnObject(ValueError):
    pass


class _JSONObjectBody(Parser):
    def parse_body(self, request: HttpRequest) -> dict[str, Any]:
        """The body's JSON object; anything else is refused with one clear message.

        RecursionError: a body nested thousands of levels deep.
        """
        try:
            body = json.loads(request.body)
        except (ValueError, RecursionError) as exc:
            raise _NotAnObject from exc
        if not isinstance(body, dict):
            raise _NotAnObject
        return body


api = NinjaAPI(
    title="turingtest reader API",
    version="1",
    description="What the reading page uses. Session authentication; "
    "POST requests need the CSRF token in the X-CSRFToken header.",
    # The description is served by `schema` below, to staff only.
    openapi_url=None,
    docs_url=None,
    urls_namespace="reader-api",
    # CSRF is checked by Django's middleware, before the method is looked at,
    # as for every other view (see `url_patterns`).
    auth=SessionAuth(csrf=False),
    parser=_JSONObjectBody(),
)

ERRORS: dict[int, type[BaseModel]] = {400: Error, 401: Error, 403: Error, 404: Error}


def _refusal_fields(exc: RequestInvalid) -> dict[str, str]:
    """Field -> message for a request ninja refused; "" for the body as a whole."""
    fields: dict[str, str] = {}
    for item in exc.errors:
        # ("body", <the view's body argument>, field, ...), or ("path", name).
        loc = item["loc"][2:] if item["loc"][0] == "body" else item["loc"][1:]
        name = str(loc[0]) if loc else ""
        if not name or item["type"] in ("model_type", "model_attributes_type"):
            fields[""] = BODY_NOT_AN_OBJECT
        elif item["type"] == "missing":
            fields.setdefault(name, f"'{name}' is required.")
        else:
            fields.setdefault(name, item["msg"])
    return fields


def _not_taking_part(request: HttpRequest) -> bool:
    """True where the request names a study the signed-in user does not read."""
    match = request.resolver_match
    slug = match.kwargs.get("slug") if match else None
    return slug is not None and (
        selectors.enrollment_for(user=request.user, study_slug=slug) is None
    )


def _body_refused(
    request: HttpRequest, message: str, fields: dict | None = None
) -> JsonResponse:
    """400 for a body that cannot be read as the view's schema, or a 404 where
    the study named is not the reader's: the same answer whether the study
    exists or not, so slugs cannot be probed by someone who does not take part."""
    if _not_taking_part(request):
        return error("No such study.", status=404)
    return error(message, fields=fields)


@api.exception_handler(RequestInvalid)
def _request_invalid(request: HttpRequest, exc: RequestInvalid) -> HttpResponse:
    fields = _refusal_fields(exc)
    if "" in fields:
        return _body_refused(request, fields[""])
    return _body_refused(request, " ".join(fields.values()), fields)


@api.exception_handler(ValidationError)
def _answer_invalid(request: HttpRequest, exc: ValidationError) -> HttpResponse:
    """A service refused the request: its messages, by field where it names them."""
    if hasattr(exc, "error_dict"):
        fields = {
            k: " ".join(m for e in v for m in e.messages)
            for k, v in exc.error_dict.items()
        }
        return error(" ".join(fields.values()), fields=fields)
    return error(" ".join(exc.messages))


@api.exception_handler(AuthenticationError)
def _signed_out(request: HttpRequest, exc: AuthenticationError) -> HttpResponse:
    return error("Sign in to read this study.", status=401)


@api.exception_handler(HttpError)
def _refused(request: HttpRequest, exc: HttpError) -> HttpResponse:
    if isinstance(exc.__cause__, _NotAnObject):  # ninja's "Cannot parse request body"
        return _body_refused(request, BODY_NOT_AN_OBJECT)
    return error(exc.message, status=exc.status_code)


@api.exception_handler(RequestDataTooBig)
def _too_big(request: HttpRequest, exc: RequestDataTooBig) -> HttpResponse:
    return _body_refused(request, "The request body is too large.")


@api.exception_handler(OperationalError)
@api.exception_handler(IntegrityError)
def _try_again(request: HttpRequest, exc: Exception) -> HttpResponse:
    # The database dropped us mid-request, or another request stored the
    # same row first; the transaction rolled back, so a retry of the same
    # request is safe and stores one answer. A connection the server dropped
    # is closed now, as Django would close it after the request: the retry
    # gets a new one whatever ends this request.
    for conn in connections.all(initialized_only=True):
        if (
            conn.errors_occurred
            and conn.connection is not None
            and not conn.is_usable()
        ):
            conn.close()
    return error("The server could not save this just now. Please try again.", 503)


@api.exception_handler(Http404)
def _not_found(request: HttpRequest, exc: Http404) -> HttpResponse:
    # An image refused: Django's own 404, as for any URL that does not exist.
    raise exc


def _csrf_checked(view: Callable) -> Callable:
    """``view`` without ninja's CSRF exemption (not functools.wraps, which
    would copy it): Django's middleware then checks the token before the
    method is dispatched, so a request without it gets 403 from every URL
    of the project, whatever its method."""

    def checked(request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponse:
        return view(request, *args, **kwargs)

    return checked


def url_patterns() -> list[URLPattern]:
    """The API's URLs, named as the project names them (no namespace)."""
    patterns, _app, _namespace = api.urls
    return [
        path(str(p.pattern), _csrf_checked(p.callback), name=p.name)
        for p in patterns
        if isinstance(p, URLPattern) and p.name != "api-root"
    ]


def _enrollment(request: HttpRequest, slug: str) -> Enrollment:
    """The signed-in reader's enrollment in the study, or a 404."""
    enrollment = selectors.enrollment_for(user=request.user, study_slug=slug)
    if enrollment is None:
        # The same answer whether the study exists or not.
        raise HttpError(404, "No such study.")
    return enrollment


def _session_for(enrollment: Enrollment, stage: str | int) -> ReadingSession:
    """The session a request names with ``stage``: "practice" or a phase number (1-based)."""
    sessions = ReadingSession.objects.select_related("phase", "enrollment__study")
    if isinstance(stage, str):  # "practice"
        session = sessions.filter(enrollment=enrollment, phase__isnull=True).first()
    else:
        session = sessions.filter(enrollment=enrollment, phase__index=stage - 1).first()
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
    head, tail = _image_url_around(
        get_script_prefix(), get_urlconf() or settings.ROOT_URLCONF
    )
    return f"{head}{token}{tail}"


@functools.lru_cache(maxsize=8)
def _image_url_around(script_prefix: str, urlconf: str) -> tuple[str, str]:
    """What ``reverse("api-image")`` puts before and after a token, for the
    URL configuration and prefix of the request: each step names two images,
    and reversing costs more than the rest of building the step's reply. A
    token is URL-safe (``TOKEN_CHARACTERS``), so reversing would quote
    nothing in it."""
    placeholder = "TOKEN"
    head, _, tail = reverse(
        "api-image", args=[placeholder], urlconf=urlconf
    ).rpartition(placeholder)
    return head, tail


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


def _practice_feedback(judgment, definition: selectors.StudyDefinition) -> dict:
    """The reference for a practice answer: practice images are reserved, so
    what it tells the reader is about no main case of any study."""
    source, grade, references = definition.practice_truth[judgment.case_id]
    own = _own_references(judgment, references, definition)
    if judgment.answer is None and judgment.kl_grade is None:
        # A phase graded by its own questions: their references, if any.
        return {"references": own} if own else {}
    feedback = {
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
    if grade is not None:  # a pool without KL grades has none to show
        feedback["reference_kl"] = grade
        feedback["reference_label"] = f"Reference {KL.short_label}"
    if own:
        feedback["references"] = own
    return feedback


def _own_references(
    judgment, references: dict, definition: selectors.StudyDefinition
) -> list[dict]:
    """The practice image's reference values on the scales of the questions
    the reader answered (a BI-RADS category), as the feedback shows them."""
    given = judgment.answers or {}
    shown = []
    for question in definition.extras(definition.phases[0]):
        if question.scale is None or question.field not in given:
            continue
        value = on_scale(question.scale, references.get(question.scale.name))
        if value is not None:
            shown.append(
                {
                    "field": question.field,
                    "label": f"Reference {question.scale.short_label}",
                    "value": value,
                    "value_label": question.scale.label(value),
                }
            )
    return shown


def _session_ref(
    request: HttpRequest, slug: str, stage: str | int
) -> services.SessionRef:
    """The session a request names with ``stage``, without reading it."""
    if isinstance(stage, str):  # "practice"
        return services.SessionRef(request.user.pk, slug, None)
    return services.SessionRef(request.user.pk, slug, stage - 1)


@api.get(
    "/studies/{slug:slug}/next",
    url_name="api-next",
    summary="The case to show now (and the next image to preload)",
    response={200: Step} | ERRORS,
)
def next_case(request: HttpRequest, slug: str) -> HttpResponse:
    return JsonResponse(next_payload(_enrollment(request, slug)))


def answer_payload(recorded: services.Recorded, position: int) -> dict[str, Any]:
    """The reply to a stored answer: feedback in practice, and the next step."""
    session = recorded.session
    enrollment = session.enrollment
    definition = selectors.study_definition(study=enrollment.study)
    response: dict[str, Any] = {
        "stored": True,
        "duplicate": not recorded.created,
        "position": position,
    }
    if session.is_practice:
        response["feedback"] = _practice_feedback(recorded.judgment, definition)
    stage: selectors.Stage | None
    if recorded.following is not None:
        stage = _session_stage(recorded.following, definition)
    elif session.completed_at is None:
        stage = _session_stage(session, definition)
    else:
        stage = None  # a repeat of a stage's last answer: read where the reader is
    response["next"] = next_payload(enrollment, stage)
    return response


@api.post(
    "/studies/{slug:slug}/answers",
    url_name="api-answers",
    summary="Answer the current case; repeating it stores nothing new",
    response={201: Stored, 200: Stored, 503: Error} | ERRORS,
)
def answer_create(request: HttpRequest, slug: str, body: Answer) -> HttpResponse:
    """201: stored; 200: already stored (a repeated submit)."""
    # The enrollment is read with the session it locks: one query for both.
    try:
        recorded = services.judgment_record(
            session=_session_ref(request, slug, body.stage),
            position=body.position,
            confidence=body.confidence,
            kl_grade=body.kl_grade,
            answers=body.answers,
            interaction=body.interaction,
            serve_next=True,
        )
    except ValidationError:
        if _not_taking_part(request):
            raise HttpError(404, "No such study.") from None
        raise
    return JsonResponse(
        answer_payload(recorded, body.position),
        status=201 if recorded.created else 200,
    )


@api.get(
    "/studies/{slug:slug}/answers/{int:stage}/{int:position}",
    url_name="api-answer-detail",
    summary="Your current answer at a position (studies that allow edits)",
    response={200: StoredAnswer} | ERRORS,
)
def answer_detail(
    request: HttpRequest,
    slug: str,
    stage: int,
    position: int,
) -> HttpResponse:
    """A reader's own current answer at a position, for review where edits are allowed."""
    session = _session_for(_enrollment(request, slug), stage)
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


@api.post(
    "/studies/{slug:slug}/revisions",
    url_name="api-revisions",
    summary="Change an answer (studies that allow edits, until the phase ends)",
    response={201: StoredRevision, 503: Error} | ERRORS,
)
def revision_create(request: HttpRequest, slug: str, body: Revision) -> HttpResponse:
    session = _session_for(_enrollment(request, slug), body.stage)
    revision = services.judgment_revise(
        session=session,
        position=body.position,
        confidence=body.confidence,
        kl_grade=body.kl_grade,
        answers=body.answers,
    )
    return JsonResponse({"stored": True, "revision": revision.revision}, status=201)


@api.post(
    "/studies/{slug:slug}/finish",
    url_name="api-finish",
    summary="End a phase whose answers could still be changed",
    response={200: Finished, 503: Error} | ERRORS,
)
def stage_finish(request: HttpRequest, slug: str, body: Finish) -> HttpResponse:
    enrollment = _enrollment(request, slug)
    session = _session_for(enrollment, body.stage)
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


@api.get(
    "/images/{str:token}",
    # Staff may see any image; a refusal is a plain 404, not "sign in".
    auth=None,
    url_name="api-image",
    summary="An image (PNG) of a study you are enrolled in",
    openapi_extra={
        "responses": {
            "200": {"description": "PNG", "content": {"image/png": {}}},
            "404": {"description": "Not found"},
        }
    },
)
def image(request: HttpRequest, token: str) -> HttpResponse:
    """An image, to staff or to a reader enrolled in an open study that contains it.

    Every refusal is the same 404, so a token's existence cannot be probed.
    The response is built here and ninja passes it on untouched: the image
    goes out with exactly the headers of ``image_response``.
    """
    # Only URL-safe tokens can exist; anything else (a NUL byte, which
    # PostgreSQL refuses in a query) is not looked up at all.
    if len(token) > 32 or not set(token) <= TOKEN_CHARACTERS:
        raise Http404("No such image.")
    name = selectors.image_file_for_user(user=request.user, token=token)
    if name is None:
        raise Http404("No such image.")
    return image_response(name)


@api.get("/schema", auth=None, url_name="api-schema", include_in_schema=False)
def schema(request: HttpRequest) -> HttpResponse:
    """The API description, for staff: it names every question any phase asks."""
    if not (request.user.is_authenticated and request.user.is_staff):
        return error("Not found.", status=404)
    prefix = request.path.removesuffix("schema")
    return JsonResponse(api.get_openapi_schema(path_prefix=prefix))
