"""Import images into the pool; prints every rejected file with its reason."""

from django.core.exceptions import ValidationError
from django.core.management.base import BaseCommand, CommandError
from tqdm import tqdm

from turingtest.domain.references import ReferenceValueError, parse_assignment
from turingtest.domain.scales import KL
from turingtest.imaging.models import Source
from turingtest.imaging.selectors import generator_model
from turingtest.imaging.services import (
    ImportRefused,
    images_import,
    import_batch_drop_if_empty,
    import_batch_get_or_create,
    pool_orphans_remove,
)


class Command(BaseCommand):
    help = (
        "Import a file, a {grade}/* folder, a {split}/{grade}/* dataset, a ZIP or "
        "a CSV manifest (path, kl_grade or reference_<scale>[, source, patient, "
        "side, note]) into the "
        "image pool in canonical form."
    )

    def add_arguments(self, parser):
        parser.add_argument("path")
        parser.add_argument("--source", required=True, choices=Source.values)
        parser.add_argument(
            "--manifest",
            help="CSV with columns path, kl_grade or reference_<scale>, ...",
        )
        parser.add_argument("--generator", help="Generator name (synthetic only).")
        parser.add_argument("--split", help="Which split of a {split}/{grade}/* set.")
        parser.add_argument(
            "--grade",
            type=int,
            choices=KL.codes,
            help=f"{KL.short_label} of every file.",
        )
        parser.add_argument(
            "--reference",
            metavar="SCALE=VALUE",
            help="A reference value on another scale for every file, e.g. "
            "birads=4 (a manifest gives one per file: reference_<scale> columns).",
        )
        parser.add_argument(
            "--batch",
            help="Name of the import batch the new images are recorded under "
            "(default: the folder's name and the time); an existing name adds to it.",
        )
        parser.add_argument(
            "--tag",
            action="append",
            default=[],
            help="Tag every image of the import (repeatable, or comma-separated).",
        )
        parser.add_argument(
            "--size",
            type=int,
            default=None,
            help="Side length of the stored square images, px (default "
            "TURINGTEST_IMAGE_SIZE). A study draws the pool's images of its own "
            "size: import chest or mammography images at, say, 1024.",
        )
        parser.add_argument(
            "--no-progress", action="store_true", help="No progress bar."
        )

    def handle(self, *args, **opts):
        generator = None
        if opts["generator"]:
            try:
                generator = generator_model().objects.get(name=opts["generator"])
            except generator_model().DoesNotExist:
                raise CommandError(
                    f"no generator named {opts['generator']!r}"
                ) from None

        tags = [
            t.strip() for value in opts["tag"] for t in value.split(",") if t.strip()
        ]
        batch = None
        if opts["batch"]:
            try:
                batch = import_batch_get_or_create(
                    name=opts["batch"],
                    description=f"import_images {opts['path']} --source {opts['source']}",
                )
            except ValidationError as exc:
                raise CommandError(" ".join(exc.messages)) from None

        removed = pool_orphans_remove()
        if removed:
            self.stdout.write(
                f"removed {len(removed)} files left by an earlier interrupted import"
            )

        bar = None

        def progress(done: int, total: int) -> None:
            nonlocal bar
            if bar is None:
                bar = tqdm(total=total, unit="img", file=self.stderr._out)
            bar.update(done - bar.n)

        references = None
        if opts["reference"]:
            try:
                references = parse_assignment(opts["reference"])
            except ReferenceValueError as exc:
                raise CommandError(f"--reference {exc}") from None
        try:
            result = images_import(
                opts["path"],
                source=opts["source"],
                manifest=opts["manifest"],
                generator=generator,
                split=opts["split"],
                grade=opts["grade"],
                references=references,
                progress=None if opts["no_progress"] else progress,
                batch=batch,
                tags=tags,
                size=opts["size"],
            )
        except ImportRefused as exc:
            raise CommandError(str(exc)) from None
        finally:
            if bar is not None:
                bar.close()
            if batch is not None:
                import_batch_drop_if_empty(batch=batch)

        for outcome in result.duplicates:
            self.stdout.write(f"duplicate  {outcome.file}: {outcome.reason}")
        for outcome in result.rejected:
            self.stdout.write(f"rejected   {outcome.file}: {outcome.reason}")
        self.stdout.write(result.summary())
        if result.failed:
            raise CommandError("nothing could be imported")
