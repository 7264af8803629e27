from django.core.exceptions import ValidationError
from django.core.management.base import BaseCommand, CommandError
from tqdm import tqdm

from turingtest.studies.models import Study
from turingtest.studies.simulation import readers_simulate


class Command(BaseCommand):
    help = "Add simulated readers who answer every case, through the same services as the web."

    def add_arguments(self, parser):
        parser.add_argument("slug")
        parser.add_argument("--readers", type=int, required=True)
        parser.add_argument(
            "--accuracy",
            type=float,
            default=0.6,
            help="Mean real/synthetic accuracy (0–1).",
        )
        parser.add_argument("--seed", type=int, default=0)

    def handle(self, *args, **opts):
        study = Study.objects.filter(slug=opts["slug"]).first()
        if study is None:
            raise CommandError(f"No study {opts['slug']!r}.")
        with tqdm(
            total=opts["readers"],
            desc="readers",
            unit="reader",
            disable=opts["verbosity"] == 0,
        ) as bar:
            try:
                done = readers_simulate(
                    study=study,
                    readers=opts["readers"],
                    accuracy=opts["accuracy"],
                    seed=opts["seed"],
                    progress=bar.update,
                )
            except ValidationError as exc:
                raise CommandError(" ".join(exc.messages)) from exc
        answers = sum(r.answers for r in done)
        self.stdout.write(
            f"{len(done)} simulated readers gave {answers} answers in {study.slug}."
        )
