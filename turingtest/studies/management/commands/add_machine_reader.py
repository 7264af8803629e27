from django.core.exceptions import ValidationError
from django.core.management.base import BaseCommand, CommandError
from django.db import transaction

from turingtest.domain.scales import KL
from turingtest.studies.machine import machine_label, machine_reader_check
from turingtest.studies.machine_training import machine_reader_train
from turingtest.studies.models import Study
from turingtest.studies.tasks import machine_reader_run


class Command(BaseCommand):
    help = (
        "Add a machine reader to a study: a classifier of the machine Turing test "
        "that answers the study's cases through the same services as people."
    )

    def add_arguments(self, parser):
        parser.add_argument("slug")
        parser.add_argument(
            "--model",
            choices=["c2st", "kl"],
            required=True,
            help="c2st: a CNN trained on real vs synthetic pool images outside the "
            f"study answers real or synthetic; kl: the real-trained {KL.abbreviation} classifier "
            "grades.",
        )
        parser.add_argument(
            "--train",
            help=f"Real images with {KL.abbreviation} grades for the {KL.abbreviation} classifier (a dataset "
            "folder {split}/{grade}/* or {grade}/*; its train split). Default: the "
            "pool's real images that are not cases of the study.",
        )
        parser.add_argument("--resolution", type=int, help="Analysis side in pixels.")
        parser.add_argument("--epochs", type=int, help="Training epochs.")
        parser.add_argument("--seed", type=int, default=0)
        parser.add_argument("--threads", type=int, help="torch CPU threads.")
        parser.add_argument(
            "--cache",
            help=f"Folder of cached {KL.abbreviation} classifiers; '' for none (default: "
            "$XDG_CACHE_HOME/turingtest/evaluate, shared with generator.evaluate).",
        )
        parser.add_argument(
            "--queue",
            action="store_true",
            help="Queue it for a worker of the gpu queue (with the default "
            "options) instead of training here.",
        )

    def handle(self, *args, **opts):
        study = Study.objects.filter(slug=opts["slug"]).first()
        if study is None:
            raise CommandError(f"No study {opts['slug']!r}.")
        model = opts["model"]
        if opts["queue"]:
            try:
                machine_reader_check(study=study, model=model)
            except ValidationError as exc:
                raise CommandError(" ".join(exc.messages)) from exc
            transaction.on_commit(
                lambda: machine_reader_run.apply_async(args=[study.pk, model])
            )
            self.stdout.write(
                f"{machine_label(model)} queued for {study.slug} on the gpu queue."
            )
            return
        try:
            run = machine_reader_train(
                study=study,
                model=model,
                train=opts["train"],
                resolution=opts["resolution"],
                epochs=opts["epochs"],
                seed=opts["seed"],
                cache=opts["cache"],
                threads=opts["threads"],
                progress=opts["verbosity"] > 0,
            )
        except ValidationError as exc:
            raise CommandError(" ".join(exc.messages)) from exc
        if run.kl_cached and opts["verbosity"] > 0:
            self.stdout.write(f"{KL.abbreviation} classifier loaded from the cache.")
        self.stdout.write(
            f"Machine reader {run.enrollment.reader.code} ({machine_label(model)}) "
            f"answered {run.cases} cases in {', '.join(run.phases)} "
            f"in {run.seconds:.1f} s; trained on {run.trained_on}."
        )
