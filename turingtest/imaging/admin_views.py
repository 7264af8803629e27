"""Staff pages of the image pool: the pool with its filters, and uploads.

The pool page lists the pool's images through
:class:`~turingtest.imaging.selectors.ImageFilter`, the filter that
``build_cases`` also takes, as GET parameters, so a filter can be bookmarked.

Uploads: images or ZIP archives into the pool.

The body size is checked twice: from Content-Length before anything is read,
and while streaming (for chunked requests) by an upload handler that stops
the request at the limit. Uploads live in a temporary folder that is removed
when the request ends; archives are checked for bombs before any image is
imported, and an upload that fails part-way takes back what it imported.
"""

from __future__ import annotations

import tempfile
from pathlib import Path

from django import forms
from django.contrib import admin, messages
from django.contrib.admin.views.decorators import staff_member_required
from django.core.exceptions import ValidationError
from django.core.files.uploadhandler import FileUploadHandler, StopUpload
from django.core.paginator import Paginator
from django.db.models import Count
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.urls import reverse
from django.utils.http import urlencode
from django.utils.text import get_valid_filename
from django.views.decorators.csrf import csrf_exempt, csrf_protect
from django.views.decorators.http import require_POST

from turingtest.conf import project_settings
from turingtest.domain.references import ReferenceValueError, parse_assignment
from turingtest.domain.scales import KL
from turingtest.imaging.models import ImportBatch, Source, Tag
from turingtest.imaging.selectors import (
    USED_ANY,
    USED_NONE,
    ImageFilter,
    generator_model,
    image_filter,
    pool_choices,
    pool_counts,
    pool_montage,
    pool_page_images,
    reference_counts,
)
from turingtest.imaging.services import (
    MIN_IMAGE_SIZE,
    ImportRefused,
    ImportResult,
    archive_check,
    images_discard,
    images_import,
    images_tag,
    import_batch_default_name,
    import_batch_drop_if_empty,
    import_batch_get_or_create,
)

TEMPLATE = "imaging/upload.html"
POOL_PAGE_SIZE = 48
MONTAGE_PER_CELL = 8
# Local file header, and the end record that an empty archive starts with.
ZIP_HEADS = (b"PK\x03\x04", b"PK\x05\x06")


def max_upload_bytes() -> int:
    return project_settings().max_upload_bytes


class MultipleFileInput(forms.ClearableFileInput):
    allow_multiple_selected = True


class MultipleFileField(forms.FileField):
    def __init__(self, *args, **kwargs):
        kwargs.setdefault("widget", MultipleFileInput())
        super().__init__(*args, **kwargs)

    def clean(self, data, initial=None):
        if isinstance(data, list | tuple):
            return [super(MultipleFileField, self).clean(d, initial) for d in data]
        return [super().clean(data, initial)]


class UploadForm(forms.Form):
    files = MultipleFileField(
        label="Images or ZIP archives",
        help_text="PNG, JPEG, TIFF or DICOM files, or ZIPs laid out {grade}/* or "
        "{split}/{grade}/*, or holding a manifest.csv at their top (columns path "
        "and kl_grade or reference_<scale>, e.g. reference_birads).",
    )
    source = forms.ChoiceField(choices=Source.choices)
    grade = forms.TypedChoiceField(
        label=KL.short_label,
        choices=[("", "from folder names in the ZIP")]
        + [(str(g), KL.value_text(g)) for g in KL.codes],
        coerce=int,
        empty_value=None,
        required=False,
        help_text="Needed for individual files; overrides folder names in ZIPs.",
    )
    reference = forms.CharField(
        label="Or a reference on another scale",
        required=False,
        max_length=120,
        help_text="For individual files of a pool graded on another scale: "
        "SCALE=VALUE, e.g. birads=4.",
    )
    split = forms.CharField(
        required=False, max_length=80, help_text="Which split of a dataset ZIP."
    )
    generator = forms.ModelChoiceField(
        queryset=generator_model().objects.all(),
        required=False,
        help_text="For synthetic images only.",
    )
    batch = forms.CharField(
        label="Import batch",
        required=False,
        max_length=ImportBatch._meta.get_field("name").max_length,
        help_text="Name the new images are recorded under (default: “upload by "
        "you” and the time); an existing name adds to that batch.",
    )
    tags = forms.CharField(
        required=False,
        max_length=500,
        help_text="Comma-separated tags for every uploaded image.",
    )
    size = forms.IntegerField(
        label="Image size (px)",
        required=False,
        min_value=MIN_IMAGE_SIZE,
        help_text="Side length the images are stored at (default "
        "TURINGTEST_IMAGE_SIZE). A study draws the pool's images of its own size.",
    )

    def clean_tags(self):
        names = [t.strip() for t in self.cleaned_data["tags"].split(",") if t.strip()]
        for name in names:
            try:
                Tag(name=name).clean_fields()
            except forms.ValidationError:
                raise forms.ValidationError(
                    f"Tag {name!r}: use letters, digits, hyphens and underscores only."
                ) from None
        return names

    def clean(self):
        data = super().clean()
        if data.get("generator") and data.get("source") != Source.SYNTHETIC:
            self.add_error("generator", "Only synthetic images come from a generator.")
        return data

    def clean_reference(self) -> dict | None:
        text = self.cleaned_data.get("reference", "").strip()
        if not text:
            return None
        try:
            return parse_assignment(text)
        except ReferenceValueError as exc:
            raise forms.ValidationError(str(exc)) from None


class SizeLimitUploadHandler(FileUploadHandler):
    """Stops reading the body once it exceeds ``limit`` bytes."""

    def __init__(self, request, limit: int):
        super().__init__(request)
        self.limit = limit
        self.received = 0
        self.exceeded = False

    def handle_raw_input(
        self, input_data, META, content_length, boundary, encoding=None
    ):
        if content_length and content_length > self.limit:
            self.exceeded = True
            raise StopUpload(connection_reset=True)

    def receive_data_chunk(self, raw_data, start):
        self.received += len(raw_data)
        if self.received > self.limit:
            self.exceeded = True
            raise StopUpload(connection_reset=True)
        return raw_data

    def file_complete(self, file_size):
        return None


def _too_large(request: HttpRequest, limit: int) -> HttpResponse:
    message = (
        f"The upload is larger than the limit of {limit / 2**20:,.0f} MiB. "
        "Split it into smaller archives, or import it on the server with "
        "'manage.py import_images'."
    )
    context = _page_context(request, limit) | {"form": UploadForm(), "error": message}
    return render(request, TEMPLATE, context, status=413)


def _page_context(request: HttpRequest, limit: int) -> dict:
    # The admin's own context gives the page its header, user links and sidebar.
    return admin.site.each_context(request) | {"limit": limit, "title": "Upload images"}


@csrf_exempt
@staff_member_required
def upload(request: HttpRequest) -> HttpResponse:
    limit = max_upload_bytes()
    if request.method == "POST":
        try:
            length = int(request.META.get("CONTENT_LENGTH") or 0)
        except ValueError:
            length = 0
        if length > limit:
            return _too_large(request, limit)
        # Must be in place before anything reads request.POST or FILES.
        guard = SizeLimitUploadHandler(request, limit)
        request.upload_handlers.insert(0, guard)
        return _upload(request, guard=guard, limit=limit)
    return _upload(request, guard=None, limit=limit)


@csrf_protect
def _upload(
    request: HttpRequest, *, guard: SizeLimitUploadHandler | None, limit: int
) -> HttpResponse:
    context = _page_context(request, limit)
    if request.method != "POST":
        context["form"] = UploadForm()
        return render(request, TEMPLATE, context)
    form = UploadForm(request.POST, request.FILES)
    if guard is not None and guard.exceeded:
        return _too_large(request, limit)
    context["form"] = form
    if not form.is_valid():
        return render(request, TEMPLATE, context, status=400)

    data = form.cleaned_data
    with tempfile.TemporaryDirectory(prefix="turingtest-upload-") as tmp:
        archives, loose = _save_uploads(data["files"], Path(tmp))
        if loose and data["grade"] is None and not data["reference"]:
            form.add_error(
                "grade",
                f"Choose a {KL.abbreviation} grade or a reference on another scale "
                "for individual files (ZIP archives take it from their folder names "
                "or their manifest.csv).",
            )
            return render(request, TEMPLATE, context, status=400)
        batch = None
        try:
            for archive in archives:
                archive_check(archive)
            batch = import_batch_get_or_create(
                name=data["batch"]
                or import_batch_default_name(f"upload by {request.user}"),
                description=f"upload by {request.user}: "
                + ", ".join(
                    [p.name for p in archives] + (["single files"] if loose else [])
                ),
                created_by=request.user,
            )
            result = _import_all(
                archives,
                loose,
                data,
                origin_prefix=f"upload by {request.user}: ",
                batch=batch,
            )
        except ImportRefused as exc:
            context["error"] = str(exc)
            return render(request, TEMPLATE, context, status=400)
        finally:
            if batch is not None:
                import_batch_drop_if_empty(batch=batch)
    if not result.total:
        context["error"] = (
            "Nothing was imported: the upload holds no image files (archives "
            "are searched for images in {grade}/ or {split}/{grade}/ folders, "
            "or for the files their manifest.csv lists)."
        )
        return render(request, TEMPLATE, context, status=400)
    context["result"] = result
    context["form"] = UploadForm(
        initial={"source": data["source"], "split": data["split"]}
    )
    return render(request, TEMPLATE, context, status=200)


def _save_uploads(files, folder: Path) -> tuple[list[Path], Path | None]:
    """Write uploads to ``folder``: ZIPs apart, single files into ``files/``."""
    archives: list[Path] = []
    loose_dir = folder / "files"
    loose_dir.mkdir()
    has_loose = False
    for number, upload in enumerate(files):
        name = _storable(
            get_valid_filename(Path(upload.name or "upload").name) or "upload"
        )
        head = upload.read(4)
        upload.seek(0)
        # Whatever starts like a ZIP is an archive, readable or not: a damaged
        # one is then refused as damaged instead of vanishing from the result.
        is_archive = head in ZIP_HEADS
        target_dir = folder / f"archive-{number}" if is_archive else loose_dir
        target_dir.mkdir(exist_ok=True)
        target = target_dir / name
        if target.exists():
            target = target_dir / f"{number}-{name}"
        with open(target, "wb") as out:
            for chunk in upload.chunks():
                out.write(chunk)
        if is_archive:
            archives.append(target)
        else:
            has_loose = True
    return archives, loose_dir if has_loose else None


def _storable(name: str, limit: int = 200) -> str:
    """``name`` cut to fit the file system (255 bytes a name), its suffix kept;
    a browser may send a longer one and it would fail the whole upload."""
    if len(name.encode()) <= limit:
        return name
    suffix = Path(name).suffix
    suffix = suffix if len(suffix.encode()) <= 16 else ""
    stem = name[: len(name) - len(suffix)].encode()
    return stem[: limit - len(suffix.encode())].decode(errors="ignore") + suffix


def _import_all(
    archives: list[Path],
    loose: Path | None,
    data: dict,
    *,
    origin_prefix: str,
    batch: ImportBatch,
) -> ImportResult:
    result = ImportResult(batch=batch)
    options = {
        "batch": batch,
        "tags": data["tags"],
        "source": data["source"],
        "generator": data["generator"],
        "split": data["split"] or None,
        "grade": data["grade"],
        "references": data["reference"],
        "origin_prefix": origin_prefix,
        "all_or_nothing": True,
        "size": data.get("size"),
    }
    try:
        for archive in archives:
            result.extend(images_import(archive, **options))
        if loose is not None:
            result.extend(images_import(loose, **options))
    except BaseException:
        images_discard(images=[o.image for o in result.imported if o.image])
        raise
    return result


# --- the pool --------------------------------------------------------------


def _pool_url(filt: ImageFilter) -> str:
    query = urlencode(filt.query_items())
    return reverse("imaging:pool") + (f"?{query}" if query else "")


@staff_member_required
def pool(request: HttpRequest) -> HttpResponse:
    context = admin.site.each_context(request) | {"title": "Image pool"}
    status = 200
    try:
        filt = ImageFilter.from_query(request.GET)
    except ValidationError as exc:
        context["errors"] = exc.messages
        filt, status = ImageFilter(), 400
    images = image_filter(filt).select_related("generator", "batch").order_by("id")
    page = Paginator(images, POOL_PAGE_SIZE).get_page(request.GET.get("page"))
    query = urlencode(filt.query_items())
    context |= {
        "filter": filt,
        "filter_text": filt.describe(),
        "query": query,
        "choices": pool_choices(),
        "used_none": USED_NONE,
        "used_any": USED_ANY,
        "grades": KL.codes,
        "counts": pool_counts(filt),
        "reference_counts": reference_counts(filt),
        "montage": pool_montage(filt, per_cell=MONTAGE_PER_CELL),
        "montage_per_cell": MONTAGE_PER_CELL,
        "page": page,
        "rows": pool_page_images(page.object_list),
        "batches": ImportBatch.objects.select_related("created_by")
        .annotate(n=Count("images"))
        .order_by("-created_at", "name"),
    }
    return render(request, "imaging/pool.html", context, status=status)


@staff_member_required
@require_POST
def pool_tag(request: HttpRequest) -> HttpResponse:
    """Put a tag on every image of a filter of the pool page (or take it off)."""
    try:
        filt = ImageFilter.from_query(request.POST)
    except ValidationError as exc:
        messages.error(request, " ".join(exc.messages))
        return redirect("imaging:pool")
    back = _pool_url(filt)
    name = request.POST.get("tag_name", "").strip()
    try:
        Tag(name=name).clean_fields()
    except ValidationError:
        messages.error(
            request,
            f"Tag {name!r}: use letters, digits, hyphens and underscores only. "
            "Nothing was tagged.",
        )
        return redirect(back)
    remove = request.POST.get("action") == "remove"
    n = images_tag(images=image_filter(filt), names=[name], remove=remove)
    if remove:
        messages.success(
            request, f"Tag {name!r} taken off {n} images ({filt.describe()})."
        )
    else:
        messages.success(request, f"Tagged {n} images {name!r} ({filt.describe()}).")
    return redirect(back)
