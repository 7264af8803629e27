"""Server-rendered pages: the reader's path through a study, and staff's study page."""

import markdown
import nh3
from django.contrib import messages
from django.contrib.admin.views.decorators import staff_member_required
from django.contrib.auth import login
from django.contrib.auth.decorators import login_required
from django.core.exceptions import ValidationError
from django.http import (
    FileResponse,
    Http404,
    HttpRequest,
    HttpResponse,
    StreamingHttpResponse,
)
from django.shortcuts import get_object_or_404, redirect, render
from django.urls import reverse
from django.utils.html import escape
from django.views.decorators.csrf import ensure_csrf_cookie
from django.views.decorators.http import require_http_methods, require_POST

from turingtest.studies import interactions, report, selectors, services, throttle
from turingtest.studies.api import PHASE_INTROS
from turingtest.studies.exports import results_zip_stream
from turingtest.studies.forms import CasesForm, ConsentForm, InviteForm, SignupForm
from turingtest.studies.models import Case, Reader, Study

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


# --- staff -------------------------------------------------------------------


def _staff_context(request: HttpRequest, study: Study, **extra) -> dict:
    from django.contrib import admin

    invitations = selectors.study_invitations(study=study)
    return (
        admin.site.each_context(request)
        | {
            "study": study,
            "overview": selectors.study_overview(study=study),
            "progress": selectors.study_progress(study=study),
            "phases": list(study.phases.order_by("index")),
            "invite_form": extra.pop("invite_form", None) or InviteForm(),
            "invitations": invitations,
            "invitation_counts": {
                status: sum(row.status == status for row in invitations)
                for status in ("open", "used", "expired")
            },
            "report": report.report_page(study=study),
            "revealing": selectors.study_revealing_texts(study=study),
            "zoom_maps": interactions.zoom_heatmap_cases(study=study),
            "free_text": report.free_text_by_image(study),
            "cases_form": extra.pop("cases_form", None)
            or CasesForm(
                initial={
                    "seed": study.seed,
                    "practice": study.practice_count,
                    "attention": 0,
                }
            ),
            "title": study.name,
        }
        | extra
    )


@staff_member_required
def staff_study(request: HttpRequest, slug: str) -> HttpResponse:
    study = get_object_or_404(Study, slug=slug)
    extra = {}
    if request.GET.get("audit"):
        from turingtest.imaging.audit import audit_study

        extra["audit"] = audit_study(study)
    return render(
        request, "studies/staff_study.html", _staff_context(request, study, **extra)
    )


@staff_member_required
@require_POST
def staff_study_status(request: HttpRequest, slug: str) -> HttpResponse:
    study = get_object_or_404(Study, slug=slug)
    action = request.POST.get("action")
    try:
        if action == "open":
            services.study_open(
                study=study,
                allow_revealing_words=request.POST.get("allow_revealing_words") == "1",
                by=request.user,
            )
            messages.success(request, "The study is open for reading.")
        elif action == "close":
            services.study_close(study=study)
            messages.success(
                request, "The study is closed; readers can no longer answer."
            )
        else:
            messages.error(request, "Unknown action.")
    except ValidationError as exc:
        messages.error(request, " ".join(exc.messages))
    return redirect("staff-study", slug)


@staff_member_required
@require_POST
def staff_study_invite(request: HttpRequest, slug: str) -> HttpResponse:
    study = get_object_or_404(Study, slug=slug)
    form = InviteForm(request.POST)
    if not form.is_valid():
        return render(
            request,
            "studies/staff_study.html",
            _staff_context(request, study, invite_form=form),
            status=400,
        )
    created = services.invitations_create(
        study=study,
        count=form.cleaned_data.get("count") or 1,
        emails=form.cleaned_data["emails"],
        days=form.cleaned_data["days"],
    )

    def link_for(token: str) -> str:
        return request.build_absolute_uri(reverse("invitation", args=[token]))

    failed = services.invitation_emails_send(invitations=created, link_for=link_for)
    mailed = sum(1 for inv, _ in created if inv.email) - len(failed)
    if mailed:
        messages.success(
            request, f"{mailed} invitation email{'s' if mailed != 1 else ''} sent."
        )
    if failed:
        messages.error(
            request,
            "Could not send the invitation to "
            + ", ".join(failed)
            + ": give these readers their links below yourself.",
        )
    links = [(inv.email, link_for(token), inv.expires_at) for inv, token in created]
    return render(
        request,
        "studies/staff_study.html",
        _staff_context(request, study, new_links=links),
    )


@staff_member_required
def staff_study_export(request: HttpRequest, slug: str) -> StreamingHttpResponse:
    study = get_object_or_404(Study, slug=slug)
    response = StreamingHttpResponse(
        results_zip_stream(study), content_type="application/zip"
    )
    response["Content-Disposition"] = f'attachment; filename="{study.slug}-results.zip"'
    return response


@staff_member_required
@require_POST
def staff_study_report_build(request: HttpRequest, slug: str) -> HttpResponse:
    study = get_object_or_404(Study, slug=slug)
    if report.study_report_rebuild(study=study) == "built":
        messages.success(
            request, "The report was rebuilt from the answers as they are now."
        )
    else:
        messages.info(
            request, "The report is being rebuilt; reload this page in a minute."
        )
    return redirect(reverse("staff-study", args=[slug]) + "#report")


@staff_member_required
def staff_study_report_plot(request: HttpRequest, slug: str, plot: str) -> HttpResponse:
    study = get_object_or_404(Study, slug=slug)
    png = report.study_report_plot(study=study, name=plot)
    if png is None:
        raise Http404("No such plot, or no report built yet.")
    response = HttpResponse(png, content_type="image/png")
    # The page links each plot with the report's build time, so a rebuilt
    # report has new URLs and an old plot can be cached.
    response["Cache-Control"] = "private, max-age=86400"
    return response


@staff_member_required
def staff_study_heatmap(request: HttpRequest, slug: str, number: int) -> HttpResponse:
    """Where readers looked while zoomed in on one case's image."""
    case = get_object_or_404(
        Case.objects.select_related("image"), study__slug=slug, number=number
    )
    response = HttpResponse(
        interactions.zoom_heatmap_png(case=case), content_type="image/png"
    )
    response["Cache-Control"] = "private, no-cache"
    return response


@staff_member_required
@require_POST
def staff_study_cases(request: HttpRequest, slug: str) -> HttpResponse:
    """Draw the cases of a draft study from the images chosen, as build_cases does."""
    from turingtest.imaging.selectors import case_choice

    study = get_object_or_404(Study, slug=slug)
    form = CasesForm(request.POST)
    if not form.is_valid():
        return render(
            request,
            "studies/staff_study.html",
            _staff_context(request, study, cases_form=form),
            status=400,
        )
    data = form.cleaned_data
    real_from, generators = tuple(data["real_from"]), tuple(data["generator"])
    try:
        counts = services.cases_build(
            study=study,
            per_grade=data["per_grade"],
            seed=data["seed"],
            practice=data["practice"],
            attention=data["attention"],
            **case_choice(real_from, generators),
            exclude_used=data["exclude_used"],
            fill_from_pool=data["fill_from_pool"],
        )
    except ValidationError as exc:
        messages.error(request, " ".join(exc.messages))
        return render(
            request,
            "studies/staff_study.html",
            _staff_context(request, study, cases_form=form),
            status=400,
        )
    for line in counts.fallbacks:
        messages.warning(request, f"Filled from outside the choice: {line}.")
    origins = "; ".join(
        f"{source}: "
        + ", ".join(f"{n} from {label}" for label, n in sorted(by.items()))
        for source, by in sorted(counts.origins.items())
    )
    messages.success(
        request,
        f"{counts.main} main cases, {counts.practice} practice and "
        f"{counts.attention} attention checks drawn ({origins}).",
    )
    return redirect(reverse("staff-study", args=[slug]) + "#cases")


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
