import time

from django.core.exceptions import ValidationError
from django.core.management.base import BaseCommand, CommandError

from turingtest.domain.scales import KL
from turingtest.generation.models import GenerationJob, Generator
from turingtest.generation.services import generation_job_create


class Command(BaseCommand):
    help = (
        f"Queue a generation job on the 'gpu' queue: N synthetic images per "
        f"{KL.short_label} into the pool. A worker must consume it: "
        "celery -A turingtest worker -Q gpu"
    )

    def add_arguments(self, parser):
        parser.add_argument("--generator", required=True, help="registered name")
        parser.add_argument("--per-grade", type=int, required=True)
        parser.add_argument("--grades", default=",".join(map(str, KL.codes)))
        parser.add_argument(
            "--size",
            type=int,
            default=None,
            help="side length the images are stored at, px "
            "(default TURINGTEST_IMAGE_SIZE); a study draws images of its own size",
        )
        parser.add_argument(
            "--wait", action="store_true", help="follow progress to the end"
        )
        parser.add_argument(
            "--timeout", type=float, default=None, help="seconds to wait"
        )

    def handle(self, *args, **opts):
        gen = Generator.objects.filter(name=opts["generator"]).first()
        if gen is None:
            raise CommandError(
                f"No generator {opts['generator']!r}; register_generator first."
            )
        try:
            grades = [int(g) for g in opts["grades"].split(",") if g.strip()]
            job = generation_job_create(
                generator=gen,
                per_grade={g: opts["per_grade"] for g in grades},
                image_size=opts["size"],
            )
        except (ValidationError, ValueError) as exc:
            raise CommandError(" ".join(getattr(exc, "messages", [str(exc)]))) from exc
        self.stdout.write(
            f"job {job.pk}: {job.total} images of {job.image_size} px from "
            f"{gen.name}, queued"
        )
        if not opts["wait"]:
            return
        started, last = time.monotonic(), None
        while True:
            job.refresh_from_db()
            if (job.status, job.done) != last:
                self.stdout.write(f"job {job.pk}: {job.status} {job.done}/{job.total}")
                last = (job.status, job.done)
            if job.status == GenerationJob.Status.DONE:
                if job.error:
                    self.stdout.write(job.error)
                return
            if job.status == GenerationJob.Status.FAILED:
                raise CommandError(f"job {job.pk} failed: {job.error}")
            if (
                opts["timeout"] is not None
                and time.monotonic() - started > opts["timeout"]
            ):
                raise CommandError(
                    f"job {job.pk} not finished after {opts['timeout']} s"
                )
            time.sleep(0.5)
