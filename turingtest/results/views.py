"""Staff's study page: its set-up, progress, invitations and results in one place.

The page gathers what the other apps own (cases from the pool, invitations,
the report, the blinding audit), so it lives in the app that sits above them
all in the import graph.
"""

from django.contrib import admin, messages
from django.contrib.admin.views.decorators import staff_member_required
from django.core.exceptions import ValidationError
from django.http import Http404, HttpRequest, HttpResponse, StreamingHttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.urls import reverse
from django.views.decorators.http import require_POST

from turingtest.imaging.audit import audit_study
from turingtest.imaging.selectors import case_choice
from turingtest.results import report
from turingtest.results.exports import results_zip_stream
from turingtest.studies import interactions, selectors, services
from turingtest.studies.forms import CasesForm, InviteForm
from turingtest.studies.models import Case, Study


def _staff_context(request: HttpRequest, study: Study, **extra) -> dict:
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
                scales=selectors.balance_scales(study),
                default_scale=selectors.default_balance_scale(study),
                initial={
                    "scale": selectors.default_balance_scale(study),
                    "seed": study.seed,
                    "practice": study.practice_count,
                    "attention": 0,
                },
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
    study = get_object_or_404(Study, slug=slug)
    form = CasesForm(
        request.POST,
        scales=selectors.balance_scales(study),
        default_scale=selectors.default_balance_scale(study),
    )
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
            scale=data["scale"],
            grades=data["grades"],
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
