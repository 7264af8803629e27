"""Reads of the image pool: the one filter that the pool page, ``build_cases``
and the study page's case form all use.

An :class:`ImageFilter` says which images of the pool count; an empty field
does not filter. Fields combine with AND, the values of one field with OR.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, fields, replace

from django.core.exceptions import ValidationError
from django.db.models import Count, Exists, OuterRef, Q, QuerySet

from turingtest.domain.references import (
    is_name,
    known_scale,
    on_scale,
    stored_number,
)
from turingtest.domain.scales import KL
from turingtest.imaging.models import Image, ImportBatch, Source, Tag

# ``used``: any image, images no study uses, images some study uses, or the
# slug of one study.
GRADE_ERROR = f"A {KL.short_label} is a whole number from {KL.range_text()}."


def _related(model, name: str):
    """The model at the other end of one of ``model``'s relations.

    The pool page filters by generator and shows which studies use an image.
    It reaches those models through the pool's own relations (``Image.cases``,
    ``Image.generator``) instead of importing the generation and studies
    apps, which import the pool: the import graph stays without cycles.
    """
    return model._meta.get_field(name).related_model


def _cases():
    return _related(Image, "cases")


def generator_model():
    """The generation app's Generator model, reached through ``Image.generator``."""
    return _related(Image, "generator")


MAX_REFERENCES = 50  # values in one ?ref= filter
USED_NONE = "none"
USED_ANY = "any"


@dataclass(frozen=True)
class ImageFilter:
    source: str = ""
    grades: tuple[int, ...] = ()
    generators: tuple[str, ...] = ()  # generator names
    batches: tuple[str, ...] = ()  # import batch names
    tags: tuple[str, ...] = ()
    # Import batch or tag names: an image comes from one of them if its batch
    # or one of its tags is so named (build_cases --real-from).
    origins: tuple[str, ...] = ()
    used: str = ""  # "", USED_NONE, USED_ANY or a study's slug
    # Reference values on other scales, "scale:value" ("birads:4"): an image
    # passes if it holds any of them.
    references: tuple[str, ...] = ()

    # --- as GET parameters, so that a filter can be bookmarked

    LIST_FIELDS = ("grades", "generators", "batches", "tags", "origins", "references")
    PARAMS = {
        "source": "source",
        "grades": "grade",
        "references": "ref",
        "generators": "generator",
        "batches": "batch",
        "tags": "tag",
        "origins": "from",
        "used": "used",
    }

    @classmethod
    def from_query(cls, query: Mapping) -> ImageFilter:
        """From GET parameters (``?source=real&grade=2&grade=3&batch=…``).

        Raises ValidationError, naming the parameter, for values that cannot
        be read; names that match nothing simply match no image.
        """
        values: dict = {}
        for name, param in cls.PARAMS.items():
            if name in cls.LIST_FIELDS:
                raw = query.getlist(param) if hasattr(query, "getlist") else []
                items = [v.strip() for r in raw for v in str(r).split(",")]
                values[name] = tuple(dict.fromkeys(v for v in items if v))
            else:
                values[name] = str(query.get(param, "") or "").strip()
        try:
            values["grades"] = tuple(sorted({int(g) for g in values["grades"]}))
        except ValueError:
            raise ValidationError({"grade": GRADE_ERROR}) from None
        values["references"] = tuple(
            dict.fromkeys(
                f"{scale.strip().lower()}:{value.strip()}"
                if sep
                else scale  # refused by check(), as given
                for scale, sep, value in (
                    r.partition(":") for r in values["references"]
                )
            )
        )
        filt = cls(**values)
        filt.check()
        return filt

    def check(self) -> None:
        errors = {}
        if self.source and self.source not in Source.values:
            errors["source"] = f"Source is one of {', '.join(Source.values)}."
        if any(g not in KL for g in self.grades):
            errors["grade"] = GRADE_ERROR
        if len(self.references) > MAX_REFERENCES:
            errors["ref"] = f"At most {MAX_REFERENCES} reference values at once."
        for item in self.references:
            scale, _, value = item.partition(":")
            if not is_name(scale):
                value = ""
            if scale == KL.name:
                errors["ref"] = (
                    f"The {KL.short_label} has its own filter (grade=), not ref=."
                )
            elif not value:
                errors["ref"] = f"{item!r}: a reference is SCALE:VALUE, e.g. birads:4."
        if errors:
            raise ValidationError(errors)

    def query_items(self) -> list[tuple[str, str]]:
        """The filter as (parameter, value) pairs, for links and bookmarks."""
        items = []
        for f in fields(self):
            value = getattr(self, f.name)
            param = self.PARAMS[f.name]
            if f.name in self.LIST_FIELDS:
                items += [(param, str(v)) for v in value]
            elif value:
                items.append((param, value))
        return items

    def with_(self, **changes) -> ImageFilter:
        return replace(self, **changes)

    def __bool__(self) -> bool:
        return any(getattr(self, f.name) for f in fields(self))

    def describe(self) -> str:
        """In words, for messages: "real, from oai-2024 or curated"."""
        parts = []
        if self.source:
            parts.append(self.source)
        if self.grades:
            parts.append(f"{KL.abbreviation} " + ", ".join(map(str, self.grades)))
        if self.references:
            parts.append(" or ".join(_reference_words(r) for r in self.references))
        if self.generators:
            parts.append("from generator " + " or ".join(self.generators))
        if self.origins:
            parts.append("from " + " or ".join(self.origins))
        if self.batches:
            parts.append("import batch " + " or ".join(self.batches))
        if self.tags:
            parts.append("tagged " + " or ".join(self.tags))
        if self.used == USED_NONE:
            parts.append("used by no study")
        elif self.used == USED_ANY:
            parts.append("used by a study")
        elif self.used:
            parts.append(f"used by {self.used}")
        return ", ".join(parts) or "the whole pool"


def _reference_words(item: str) -> str:
    """ "birads:4" as "BI-RADS 4"; a scale the registry does not know as
    "density c"."""
    name, _, value = item.partition(":")
    scale = known_scale(name)
    code = on_scale(scale, value) if scale is not None else None
    if scale is not None and code is not None and scale.abbreviation:
        return scale.value_text(code)
    return f"{name} {value}"


def _reference_q(item: str) -> Q:
    """Images holding the reference value ``item`` ("birads:4"), stored as a
    number or as text."""
    name, _, value = item.partition(":")
    # __exact ends the path: a scale named like a lookup ("contains") is a key.
    lookup = f"references__{name}__exact"
    q = Q(**{lookup: value})
    number = stored_number(value)  # as references.parse keeps numbers
    if number is not None:
        q |= Q(**{lookup: number})
    return q


def case_choice(
    real_from: Iterable[str] = (), generators: Iterable[str] = ()
) -> dict[str, ImageFilter | None]:
    """``cases_build``'s ``real`` and ``synthetic`` filters from the names an
    admin chose (import batches or tags; generators); None where none was."""
    real_from, generators = tuple(real_from), tuple(generators)
    return {
        "real": ImageFilter(source=Source.REAL, origins=real_from)
        if real_from
        else None,
        "synthetic": ImageFilter(source=Source.SYNTHETIC, generators=generators)
        if generators
        else None,
    }


def _tagged(names: Iterable[str]):
    return Image.tags.through.objects.filter(tag__name__in=list(names)).values(
        "image_id"
    )


def image_filter(filt: ImageFilter, images: QuerySet | None = None) -> QuerySet:
    """The images of ``images`` (default: the whole pool) that ``filt`` lets through."""
    qs = Image.objects.all() if images is None else images
    if filt.source:
        qs = qs.filter(source=filt.source)
    if filt.grades:
        qs = qs.filter(kl_grade__in=filt.grades)
    if filt.references:
        wanted = Q()
        for item in filt.references:
            wanted |= _reference_q(item)
        qs = qs.filter(wanted)
    if filt.generators:
        qs = qs.filter(generator__name__in=filt.generators)
    if filt.batches:
        qs = qs.filter(batch__name__in=filt.batches)
    if filt.tags:
        qs = qs.filter(pk__in=_tagged(filt.tags))
    if filt.origins:
        qs = qs.filter(
            Q(batch__name__in=filt.origins) | Q(pk__in=_tagged(filt.origins))
        )
    if filt.used:
        cases = _cases().objects.filter(image=OuterRef("pk"))
        if filt.used == USED_NONE:
            qs = qs.filter(~Exists(cases))
        elif filt.used == USED_ANY:
            qs = qs.filter(Exists(cases))
        else:
            qs = qs.filter(Exists(cases.filter(study__slug=filt.used)))
    return qs


def origins_check(names: Iterable[str]) -> None:
    """Raise ValidationError for a name that is neither an import batch nor a tag."""
    names = list(names)
    known = set(
        ImportBatch.objects.filter(name__in=names).values_list("name", flat=True)
    )
    known |= set(Tag.objects.filter(name__in=names).values_list("name", flat=True))
    unknown = [n for n in names if n not in known]
    if unknown:
        batches = ", ".join(ImportBatch.objects.values_list("name", flat=True)[:20])
        tags = ", ".join(Tag.objects.values_list("name", flat=True)[:20])
        raise ValidationError(
            f"No import batch or tag named {', '.join(map(repr, unknown))} "
            f"(import batches: {batches or 'none'}; tags: {tags or 'none'})."
        )


def generators_check(names: Iterable[str]) -> None:
    names = list(names)
    generators = generator_model().objects
    known = set(generators.filter(name__in=names).values_list("name", flat=True))
    unknown = [n for n in names if n not in known]
    if unknown:
        all_names = ", ".join(generators.values_list("name", flat=True))
        raise ValidationError(
            f"No generator named {', '.join(map(repr, unknown))} "
            f"(generators: {all_names or 'none'})."
        )


@dataclass(frozen=True)
class PoolCounts:
    """Images per KL grade and source."""

    cells: dict[tuple[int | None, str], int]

    def rows(self) -> list[tuple[int | None, int, int, int]]:
        """(grade, real, synthetic, total) per KL grade, then (None, ...) for
        the images without one (a pool graded on another scale)."""
        grades: list[int | None] = list(KL.codes)
        if any(g is None for g, _ in self.cells):
            grades.append(None)
        return [
            (
                g,
                self.cells.get((g, Source.REAL), 0),
                self.cells.get((g, Source.SYNTHETIC), 0),
                self.cells.get((g, Source.REAL), 0)
                + self.cells.get((g, Source.SYNTHETIC), 0),
            )
            for g in grades
        ]

    def total(self, source: str | None = None) -> int:
        return sum(n for (_, s), n in self.cells.items() if source in (None, s))

    @property
    def total_real(self) -> int:
        return self.total(Source.REAL)

    @property
    def total_synthetic(self) -> int:
        return self.total(Source.SYNTHETIC)


def pool_counts(filt: ImageFilter) -> PoolCounts:
    rows = (
        image_filter(filt)
        .order_by()
        .values("kl_grade", "source")
        .annotate(n=Count("id"))
    )
    return PoolCounts({(r["kl_grade"], r["source"]): r["n"] for r in rows})


def reference_counts(filt: ImageFilter) -> list[dict]:
    """Images per reference value and source on each scale other than KL
    (``Image.references``): ``[{"scale", "title", "rows": [(value, real,
    synthetic, total)]}]``, values in the scale's order where it is known."""
    cells: dict[str, dict[object, dict[str, int]]] = {}
    rows = (
        image_filter(filt)
        .exclude(references={})
        .order_by()
        .values_list("references", "source")
    )
    for references, source in rows.iterator(chunk_size=5000):
        for name, value in (references or {}).items():
            by_value = cells.setdefault(name, {}).setdefault(value, {})
            by_value[source] = by_value.get(source, 0) + 1
    out = []
    for name in sorted(cells):
        scale = known_scale(name)
        values = list(cells[name])
        if scale is not None:
            values.sort(key=lambda v: scale.rank(v) if v in scale else len(scale.codes))
        else:
            values.sort(key=lambda v: (isinstance(v, str), str(v).zfill(12)))
        out.append(
            {
                "scale": name,
                "title": scale.short_label if scale is not None else name,
                "rows": [
                    (
                        v,
                        cells[name][v].get(Source.REAL, 0),
                        cells[name][v].get(Source.SYNTHETIC, 0),
                        sum(cells[name][v].values()),
                    )
                    for v in values
                ],
            }
        )
    return out


def pool_montage(filt: ImageFilter, *, per_cell: int = 8) -> list[dict]:
    """Up to ``per_cell`` images per KL grade and source, the oldest first:
    one row per grade, real beside synthetic, then one (grade None) of the
    images without a KL grade (a pool graded on another scale)."""
    rows = []
    base = image_filter(filt).order_by("id")
    for grade in (*KL.codes, None):
        row = {"grade": grade}
        for source in Source.values:
            row[source] = list(
                base.filter(kl_grade=grade, source=source).values_list(
                    "token", flat=True
                )[:per_cell]
            )
        if row[Source.REAL] or row[Source.SYNTHETIC]:
            rows.append(row)
    return rows


def pool_choices() -> dict[str, list[str]]:
    """What the pool page's filters can choose from."""
    studies = _related(_cases(), "study").objects
    return {
        "generators": list(generator_model().objects.values_list("name", flat=True)),
        "batches": list(
            ImportBatch.objects.order_by("-created_at", "name").values_list(
                "name", flat=True
            )
        ),
        "tags": list(Tag.objects.values_list("name", flat=True)),
        "studies": list(studies.order_by("slug").values_list("slug", flat=True)),
    }


def pool_page_images(images: Iterable[Image]) -> list[dict]:
    """Each image of a page of the pool list with its batch, tags and studies."""
    images = list(images)
    ids = [i.pk for i in images]
    studies: dict[int, list[str]] = {}
    case = _cases()
    for image_id, slug, role in (
        case.objects.filter(image_id__in=ids)
        .order_by("study__slug")
        .values_list("image_id", "study__slug", "role")
    ):
        label = slug if role == case.Role.MAIN else f"{slug} ({role})"
        studies.setdefault(image_id, []).append(label)
    tags: dict[int, list[str]] = {}
    for image_id, name in Image.tags.through.objects.filter(
        image_id__in=ids
    ).values_list("image_id", "tag__name"):
        tags.setdefault(image_id, []).append(name)
    return [
        {
            "image": i,
            "studies": studies.get(i.pk, []),
            "tags": sorted(tags.get(i.pk, [])),
        }
        for i in images
    ]
