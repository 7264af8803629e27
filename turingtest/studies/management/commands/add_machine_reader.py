import time
from pathlib import Path

import numpy as np
from django.core.exceptions import ValidationError
from django.core.management.base import BaseCommand, CommandError
from PIL import Image as PILImage

from turingtest.studies.machine import (
    MachineAnswers,
    answered_cases,
    machine_label,
    machine_reader_add,
    machine_reader_check,
    machine_training_images,
)
from turingtest.studies.models import Study

# Fewer images per class than this teach a classifier nothing worth reporting.
MIN_PER_CLASS = 4


def _pixels(images) -> np.ndarray:
    from generator.data import to_square

    arrays = []
    for image in images:
        with image.file.open("rb") as fh, PILImage.open(fh) as img:
            arrays.append(to_square(img, None))
    return np.stack(arrays)


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
            "study answers real or synthetic; kl: the real-trained KL classifier "
            "grades.",
        )
        parser.add_argument(
            "--train",
            help="Real images with KL grades for the KL classifier (a dataset "
            "folder {split}/{grade}/* or {grade}/*; its train split). Default: the "
            "pool's real images that are not cases of the study.",
        )
        parser.add_argument("--resolution", type=int, help="Analysis side in pixels.")
        parser.add_argument("--epochs", type=int, help="Training epochs.")
        parser.add_argument("--seed", type=int, default=0)
        parser.add_argument("--threads", type=int, help="torch CPU threads.")
        parser.add_argument(
            "--cache",
            help="Folder of cached KL classifiers; '' for none (default: "
            "$XDG_CACHE_HOME/turingtest/evaluate, shared with generator.evaluate).",
        )

    def handle(self, *args, **opts):
        study = Study.objects.filter(slug=opts["slug"]).first()
        if study is None:
            raise CommandError(f"No study {opts['slug']!r}.")
        model = opts["model"]
        try:
            phases = machine_reader_check(study=study, model=model)
        except ValidationError as exc:
            raise CommandError(" ".join(exc.messages)) from exc
        cases = answered_cases(study=study)
        needs_grade = any(p.asks_grade for p in phases)
        pool = machine_training_images(study=study)
        if model == "c2st" and len(pool.synthetic) < MIN_PER_CLASS:
            raise CommandError(
                f"{len(pool.synthetic)} synthetic images of this study's generators "
                f"are outside its cases; the classifier needs at least {MIN_PER_CLASS} "
                "to learn from. Generate more (generate_images) and try again."
            )
        if model == "c2st" and len(pool.real) < MIN_PER_CLASS:
            raise CommandError(
                f"{len(pool.real)} real images are outside the study's cases; the "
                f"classifier needs at least {MIN_PER_CLASS}. Import more "
                "(import_images) and try again."
            )

        import torch

        from generator import machine
        from generator.data import load_dataset
        from generator.evaluate import default_cache_dir

        if opts["threads"]:
            torch.set_num_threads(opts["threads"])
        resolution = opts["resolution"] or machine.RESOLUTION
        progress = opts["verbosity"] > 0
        start = time.monotonic()
        query = _pixels([c.image for c in cases])
        answers = MachineAnswers()
        trained_on = []
        if model == "c2st":
            kwargs = {"epochs": opts["epochs"]} if opts["epochs"] else {}
            scores = machine.realism_scores(
                _pixels(pool.real),
                _pixels(pool.synthetic),
                query,
                resolution=resolution,
                seed=opts["seed"],
                progress=progress,
                **kwargs,
            )
            answers = MachineAnswers(
                p_synthetic={
                    c.pk: float(p)
                    for c, p in zip(cases, scores.p_synthetic, strict=True)
                }
            )
            trained_on.append(
                f"{scores.n_per_class} real and {scores.n_per_class} synthetic pool "
                "images outside the study"
            )
        if needs_grade:
            if opts["train"]:
                try:
                    data = load_dataset(opts["train"], resolution, split="train")
                except (OSError, ValueError) as exc:
                    raise CommandError(f"--train {opts['train']}: {exc}") from exc
                images, labels = data.images, data.labels
                source = f"{len(labels)} real images from {opts['train']}"
            else:
                if not pool.real:
                    raise CommandError(
                        "No real images outside the study's cases to train the KL "
                        "classifier on; give --train DIR."
                    )
                images = _pixels(pool.real)
                labels = np.array([i.kl_grade for i in pool.real])
                source = f"{len(labels)} real pool images outside the study"
            cache = opts["cache"]
            cache = None if cache == "" else Path(cache or default_cache_dir())
            kwargs = {"epochs": opts["epochs"]} if opts["epochs"] else {}
            try:
                probs, cached = machine.grade_probabilities(
                    images,
                    labels,
                    query,
                    resolution=resolution,
                    seed=opts["seed"],
                    cache=cache,
                    progress=progress,
                    **kwargs,
                )
            except ValueError as exc:
                raise CommandError(str(exc)) from exc
            answers = MachineAnswers(
                p_synthetic=answers.p_synthetic,
                kl_probabilities={
                    c.pk: p.tolist() for c, p in zip(cases, probs, strict=True)
                },
            )
            trained_on.append(f"KL grades from {source}")
            if cached and progress:
                self.stdout.write("KL classifier loaded from the cache.")
        try:
            enrollment = machine_reader_add(
                study=study,
                model=model,
                answers=answers,
                trained_on="; ".join(trained_on),
            )
        except ValidationError as exc:
            raise CommandError(" ".join(exc.messages)) from exc
        self.stdout.write(
            f"Machine reader {enrollment.reader.code} ({machine_label(model)}) "
            f"answered {len(cases)} cases in "
            f"{', '.join(p.kind for p in phases)} "
            f"in {time.monotonic() - start:.1f} s; trained on "
            f"{'; '.join(trained_on)}."
        )
