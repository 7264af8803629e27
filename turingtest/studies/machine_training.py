"""Train a machine reader's classifiers and let it answer: the torch side.

Called by ``add_machine_reader`` and by the ``machine_reader_run`` Celery
task (the "gpu" queue); never by the web process. torch is imported when a
classifier is trained, not when this module loads.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from django.core.exceptions import ValidationError
from PIL import Image as PILImage

from turingtest.domain.scales import KL
from turingtest.studies.machine import (
    MachineAnswers,
    answered_cases,
    machine_reader_add,
    machine_reader_check,
    machine_training_images,
)
from turingtest.studies.models import Enrollment, Study

# Fewer images per class than this teach a classifier nothing worth reporting.
MIN_PER_CLASS = 4


@dataclass(frozen=True)
class MachineRun:
    enrollment: Enrollment
    phases: list[str]
    cases: int
    seconds: float
    trained_on: str
    kl_cached: bool


def _pixels(images) -> np.ndarray:
    from generator.data import to_square

    arrays = []
    for image in images:
        with image.file.open("rb") as fh, PILImage.open(fh) as img:
            arrays.append(to_square(img, None))
    return np.stack(arrays)


def machine_reader_train(
    *,
    study: Study,
    model: str,
    train: str | None = None,
    resolution: int | None = None,
    epochs: int | None = None,
    seed: int = 0,
    cache: str | None = None,
    threads: int | None = None,
    progress: bool = False,
) -> MachineRun:
    """Train ``model``'s classifiers, then enroll its machine reader with their answers.

    ``train``: a folder of real graded images for the KL classifier (else the
    pool's real images outside the study). ``cache``: the KL classifiers'
    folder, "" for none, None for ``generator.evaluate``'s default. Every
    problem with the input is a ValidationError raised before anything is
    written.
    """
    phases = machine_reader_check(study=study, model=model)
    cases = answered_cases(study=study)
    pool = machine_training_images(study=study)
    if model == "c2st" and len(pool.synthetic) < MIN_PER_CLASS:
        raise ValidationError(
            f"{len(pool.synthetic)} synthetic images of this study's generators "
            f"are outside its cases; the classifier needs at least {MIN_PER_CLASS} "
            "to learn from. Generate more (generate_images) and try again."
        )
    if model == "c2st" and len(pool.real) < MIN_PER_CLASS:
        raise ValidationError(
            f"{len(pool.real)} real images are outside the study's cases; the "
            f"classifier needs at least {MIN_PER_CLASS}. Import more "
            "(import_images) and try again."
        )
    needs_grade = any(p.asks_grade for p in phases)
    graded_real = [i for i in pool.real if i.kl_grade is not None]
    if needs_grade and train and not Path(train).exists():
        raise ValidationError(f"--train {train}: no such folder or file.")
    if needs_grade and train is None and not graded_real:
        raise ValidationError(
            f"No real images outside the study's cases to train the {KL.abbreviation} "
            "classifier on; give --train DIR."
        )

    import torch

    from generator import machine
    from generator.data import load_dataset
    from generator.evaluate import default_cache_dir

    if threads:
        torch.set_num_threads(threads)
    resolution = resolution or machine.RESOLUTION
    fit = {"epochs": epochs} if epochs else {}
    start = time.monotonic()
    query = _pixels([c.image for c in cases])
    p_synthetic: dict[int, float] = {}
    kl_probabilities: dict[int, list[float]] = {}
    trained_on = []
    cached = False
    if model == "c2st":
        scores = machine.realism_scores(
            _pixels(pool.real),
            _pixels(pool.synthetic),
            query,
            resolution=resolution,
            seed=seed,
            progress=progress,
            **fit,
        )
        p_synthetic = {
            c.pk: float(p) for c, p in zip(cases, scores.p_synthetic, strict=True)
        }
        trained_on.append(
            f"{scores.n_per_class} real and {scores.n_per_class} synthetic pool "
            "images outside the study"
        )
    if needs_grade:
        if train:
            try:
                data = load_dataset(train, resolution, split="train")
            except (OSError, ValueError) as exc:
                raise ValidationError(f"--train {train}: {exc}") from exc
            images, labels = data.images, data.labels
            source = f"{len(labels)} real images from {train}"
        else:
            images = _pixels(graded_real)
            labels = np.array([i.kl_grade for i in graded_real])
            source = f"{len(labels)} real pool images outside the study"
        folder = None if cache == "" else Path(cache or default_cache_dir())
        try:
            probs, cached = machine.grade_probabilities(
                images,
                labels,
                query,
                resolution=resolution,
                seed=seed,
                cache=folder,
                progress=progress,
                **fit,
            )
        except ValueError as exc:
            raise ValidationError(str(exc)) from exc
        kl_probabilities = {c.pk: p.tolist() for c, p in zip(cases, probs, strict=True)}
        trained_on.append(f"{KL.abbreviation} grades from {source}")
    enrollment = machine_reader_add(
        study=study,
        model=model,
        answers=MachineAnswers(p_synthetic, kl_probabilities),
        trained_on="; ".join(trained_on),
    )
    return MachineRun(
        enrollment=enrollment,
        phases=[p.kind for p in phases],
        cases=len(cases),
        seconds=time.monotonic() - start,
        trained_on="; ".join(trained_on),
        kl_cached=cached,
    )
