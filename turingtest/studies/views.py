"""Server-rendered pages: the reader's path through a study, and staff's study page."""

import markdown
import nh3
from django.contrib.auth import login
from django.contrib.auth.decorators import login_required
from django.core.exceptions import ValidationError
from django.http import (
    FileResponse,
    Http404,
    HttpRequest,
    HttpResponse,
)
from django.shortcuts import redirect, render
from django.urls import reverse
from django.utils.html import escape
from django.views.decorators.csrf import ensure_csrf_cookie
from django.views.decorators.http import require_http_methods

from turingtest.studies import selectors, services, throttle
from turingtest.studies.api import PHASE_INTROS
from turingtest.studies.forms import ConsentForm, SignupForm
from turingtest.studies.models import Reader

# Markdown for study instructions: `extra` without its attribute syntax
# (`{: style=...}` let an instruction cover the page with a link) and without
# Markdown inside raw HTML, which is escaped anyway.
MARKDOWN_EXTENSIONS = ["abbr", "def_list", "fenced_code", "tables", "sane_lists"]
# What the HTML may hold after rendering: text structure and links, nothing
# that styles, positions, loads or runs anything.
MARKDOWN_TAGS = {
    "a", "abbr", "blockquote", "br", "code", "dd", "del", "dl", "dt", "em",
    "h1", "h2", "h3", "h4", "h5", "h6", "hr", "li", "ol", "p", "pre", "strong",
    "table", "tbody", "td", "th", "thead", "tr", "ul",
}  # fmt: skip
MARKDOWN_ATTRIBUTES = {"a": {"href", "title"}, "abbr": {"title"}}
LINK_SCHEMES = ("http://", "https://", "mailto:")


def _link_filter(tag: str, attribute: str, value: str) -> str | None:
    # nh3 drops unknown schemes; this also drops relative and protocol-relative
    # links, so an instruction can only point at a full http(s) or mailto URL.
    if tag == "a" and attribute == "href":
        return value if value.strip().lower().startswith(LINK_SCHEMES) else None
    return value


def render_markdown(text: str) -> str:
    # Escape first: instructions are staff-written, but no raw HTML reaches
    # readers; then sanitise what Markdown made against an allowlist.
    html = markdown.markdown(escape(text), extensions=MARKDOWN_EXTENSIONS)
    return nh3.clean(
        html,
        tags=MARKDOWN_TAGS,
        attributes=MARKDOWN_ATTRIBUTES,
        url_schemes={"http", "https", "mailto"},
        attribute_filter=_link_filter,
        link_rel="noopener noreferrer nofollow",
    )


@require_http_methods(["GET", "HEAD"])
def favicon(request: HttpRequest) -> FileResponse:
    """Browsers ask every site for /favicon.ico, admin pages included."""
    from django.contrib.staticfiles import finders

    path = finders.find("favicon.ico")
    if path is None:
        raise Http404("No icon.")
    response = FileResponse(open(path, "rb"), content_type="image/x-icon")
    response["Cache-Control"] = "public, max-age=86400"
    return response


def home(request: HttpRequest) -> HttpResponse:
    if not request.user.is_authenticated:
        return redirect("login")
    return render(
        request,
        "studies/home.html",
        {"enrollments": selectors.reader_enrollments(user=request.user)},
    )


@require_http_methods(["GET", "POST"])
def invitation(request: HttpRequest, token: str) -> HttpResponse:
    wait = throttle.invitation_guess_wait(request)
    if wait:
        # Even a valid link waits, so a lucky guess looks like a wrong one.
        response = render(
            request, "studies/invitation_wait.html", {"wait": wait}, status=429
        )
        response["Retry-After"] = str(wait)
        return response
    found = services.invitation_find(token=token)
    if found is None:
        if not services.invitation_exists(token=token):
            throttle.invitation_guess_record(request)
        # Unknown, used and expired tokens get the same answer.
        return render(request, "studies/invitation_invalid.html", status=404)
    reader = (
        Reader.objects.filter(user=request.user).first()
        if request.user.is_authenticated
        else None
    )
    if reader is not None:
        if request.method == "POST":
            try:
                enrollment = services.invitation_accept(token=token, reader=reader)
            except services.InvitationForAnotherEmail:
                return render(
                    request,
                    "studies/invitation_accept.html",
                    {"study": found.study, "reader": reader, "wrong_account": True},
                    status=403,
                )
            except ValidationError:
                return render(request, "studies/invitation_invalid.html", status=404)
            return redirect("study-home", enrollment.study.slug)
        return render(
            request,
            "studies/invitation_accept.html",
            {"study": found.study, "reader": reader},
        )

    form = SignupForm(request.POST or None, initial={"email": found.email})
    if request.method == "POST" and form.is_valid() and not found.email:
        # An anonymous link: the address confirms by mail, and the page that
        # follows is the same whether or not it already has an account.
        data = form.cleaned_data
        try:
            services.signup_request(
                token=token,
                absolute_url=request.build_absolute_uri,
                **_signup_fields(data),
            )
        except ValidationError as exc:
            _form_errors(form, exc)
        else:
            return redirect("signup-sent")
    elif request.method == "POST" and form.is_valid():
        # A personal invitation: only its own address can use it, so what the
        # page says about that address tells the holder nothing new.
        data = form.cleaned_data
        try:
            enrollment = services.reader_signup(token=token, **_signup_fields(data))
        except ValidationError as exc:
            _form_errors(form, exc)
        else:
            login(
                request,
                enrollment.reader.user,
                backend="django.contrib.auth.backends.ModelBackend",
            )
            return redirect("study-home", enrollment.study.slug)
    return render(
        request,
        "studies/signup.html",
        {"form": form, "study": found.study, "token": token},
    )


def _not_enrolled(request: HttpRequest) -> HttpResponse:
    # One 404 for a study that does not exist and one the user does not take
    # part in, so that slugs cannot be probed.
    return render(request, "studies/not_enrolled.html", status=404)


def _form_errors(form: SignupForm, exc: ValidationError) -> None:
    if hasattr(exc, "error_dict"):
        for field, errors in exc.error_dict.items():
            form.add_error(field if field in form.fields else None, errors)
    else:
        form.add_error("password", exc)  # the password validators' messages


def signup_sent(request: HttpRequest) -> HttpResponse:
    return render(request, "studies/signup_sent.html")


@require_http_methods(["GET", "POST"])
def signup_confirm(request: HttpRequest, signed: str) -> HttpResponse:
    # A button, not the link itself, confirms: mail scanners open links.
    try:
        reader = services.signup_pending(signed=signed)
    except ValidationError:
        return render(request, "studies/signup_confirm.html", status=404)
    if request.method == "POST":
        try:
            enrollment = services.signup_confirm(
                signed=signed, password=request.POST.get("password", "")
            )
        except ValidationError as exc:
            return render(
                request,
                "studies/signup_confirm.html",
                {"reader": reader, "error": " ".join(exc.messages)},
                status=409,
            )
        login(
            request,
            enrollment.reader.user,
            backend="django.contrib.auth.backends.ModelBackend",
        )
        return redirect("study-home", enrollment.study.slug)
    return render(request, "studies/signup_confirm.html", {"reader": reader})


@login_required
@require_http_methods(["GET", "POST"])
def study_home(request: HttpRequest, slug: str) -> HttpResponse:
    enrollment = selectors.enrollment_for(user=request.user, study_slug=slug)
    if enrollment is None:
        return _not_enrolled(request)
    stage = selectors.reader_stage(enrollment=enrollment)
    if stage.name == "done":
        return redirect("study-done", slug)
    if stage.name in ("practice", "phase"):
        return redirect("study-read", slug)
    form = ConsentForm(request.POST or None)
    if stage.name == "consent" and request.method == "POST" and form.is_valid():
        services.enrollment_consent(enrollment=enrollment)
        return redirect("study-read", slug)
    study = enrollment.study
    return render(
        request,
        "studies/study_home.html",
        {
            "study": study,
            "stage": stage,
            "form": form,
            "instructions": render_markdown(study.instructions),
            "phases": [
                (p, PHASE_INTROS[p.kind]) for p in study.phases.order_by("index")
            ][:1],
            "phase_count": study.phases.count(),
        },
    )


@login_required
@ensure_csrf_cookie  # the viewer sends the cookie's token with every answer
def study_read(request: HttpRequest, slug: str) -> HttpResponse:
    enrollment = selectors.enrollment_for(user=request.user, study_slug=slug)
    if enrollment is None:
        return _not_enrolled(request)
    stage = selectors.reader_stage(enrollment=enrollment)
    if stage.name == "done":
        return redirect("study-done", slug)
    if stage.name in ("consent", "closed"):
        return redirect("study-home", slug)
    return render(
        request,
        "studies/read.html",
        {
            "study": enrollment.study,
            "api_base": reverse("api-next", args=[slug]).rsplit("/", 1)[0],
        },
    )


@login_required
def study_done(request: HttpRequest, slug: str) -> HttpResponse:
    enrollment = selectors.enrollment_for(user=request.user, study_slug=slug)
    if enrollment is None:
        return _not_enrolled(request)
    if enrollment.completed_at is None:
        return redirect("study-home", slug)
    score = (
        selectors.reader_score(enrollment=enrollment)
        if enrollment.study.show_score
        else None
    )
    return render(
        request, "studies/done.html", {"study": enrollment.study, "score": score}
    )


def _signup_fields(data: dict) -> dict:
    """What a signup form hands the signup services, by their keyword names."""
    return {
        key: data[key]
        for key in (
            "email",
            "password",
            "name",
            "profession",
            "experience_years",
            "subspecialty",
        )
    }
