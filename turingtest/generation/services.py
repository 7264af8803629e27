"""Synthetic images from registered generators: register, queue, run, recover.

A ``GenerationJob`` asks for so many images per KL grade. Image ``i`` of job
``j`` always has the seed :func:`generation_seed` ``(j, i)``, and ``Image``
has a unique ``(job, job_index)``, so running a job again (a retry, a
redelivered message, a second worker) fills exactly the missing indexes and
makes nothing twice.

A running job is leased to one worker process (``worker``, ``heartbeat_at``).
The lease is renewed after every batch; a lease older than
``GENERATION_LEASE_SECONDS`` means the worker died (a killed process never
acknowledges its message, and the embedded filesystem broker does not give
unacknowledged messages back), so :func:`generation_jobs_recover`, run by
every worker in the background, queues the job again.

This module never imports torch at import time: the web process registers
nothing and only queues jobs; workers and commands load the generator.
"""

from __future__ import annotations

import hashlib
import os
import queue
import socket
import sys
import threading
from collections.abc import Iterator, Mapping
from datetime import timedelta
from pathlib import Path

from django.core.exceptions import ValidationError
from django.db import transaction
from django.db.models import F, Q
from django.utils import timezone

from turingtest.conf import project_settings
from turingtest.domain.scales import KL
from turingtest.generation.models import GenerationJob, Generator
from turingtest.imaging.models import Image, Source
from turingtest.imaging.services import image_create, import_batch_get_or_create


def lease_seconds() -> float:
    return project_settings().generation_lease_seconds


def batch_size() -> int:
    return project_settings().generation_batch_size


def worker_name() -> str:
    return f"{socket.gethostname()}:{os.getpid()}"


# --- generators ---------------------------------------------------------------


def file_sha256(path: str | os.PathLike) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def _describe_training_data(data: Mapping) -> str:
    if not data:
        return ""
    per_grade = ", ".join(
        f"{KL.abbreviation}{g}: {n}" for g, n in data.get("per_grade", {}).items()
    )
    return (
        f"{data.get('n_images', '?')} images from {data.get('source', '?')} "
        f"at {data.get('resolution', '?')} px ({per_grade}); "
        f"data sha256 {data.get('sha256', '?')}"
    )


def _entry_point_file(spec: str) -> Path:
    """The source file of an entry point's module: what its hash stands for."""
    from generator.sample import resolve_entry_point

    try:
        function = resolve_entry_point(spec)
    except ValueError as exc:
        raise ValidationError(str(exc)) from exc
    module = sys.modules[function.__module__]
    if not getattr(module, "__file__", None):
        raise ValidationError(f"{spec!r}: its module has no source file to record.")
    return Path(module.__file__)


@transaction.atomic
def generator_register(
    *,
    checkpoint: str | os.PathLike,
    name: str,
    kind: str = Generator.Kind.CHECKPOINT,
) -> Generator:
    """Record a generator: its file's (or entry point module's) sha256 and config.

    ``checkpoint`` is a checkpoint of this project, a TorchScript file, or
    ``package.module:function``, as ``kind`` says. Provenance is by hash: the
    workers refuse a file that changed after registration.
    """
    if kind == Generator.Kind.ENTRYPOINT:
        spec, config, data = str(checkpoint), {"entry_point": str(checkpoint)}, ""
        digest = file_sha256(_entry_point_file(spec))
    else:
        path = Path(checkpoint).resolve()
        if not path.is_file():
            raise ValidationError(f"No file at {path}.")
        spec, digest, data = str(path), file_sha256(path), ""
        if kind == Generator.Kind.TORCHSCRIPT:
            from generator.sample import TorchScriptSampler

            try:
                sampler = TorchScriptSampler(path, device="cpu")
            except ValueError as exc:
                raise ValidationError(str(exc)) from exc
            config = {"name": "torchscript", "z_dim": sampler.z_dim}
        else:
            from generator.networks import checkpoint_load

            try:
                ckpt = checkpoint_load(path)
            except Exception as exc:  # a pickle, a truncated file, another format
                raise ValidationError(
                    f"{path} is not a generator checkpoint: {exc}"
                ) from exc
            config = dict(ckpt["config"]) | {
                "step": int(ckpt.get("step", 0)),
                "checkpoint_version": int(ckpt.get("version", 0)),
                "training_seconds": round(float(ckpt.get("elapsed_s", 0.0)), 1),
            }
            data = _describe_training_data(ckpt.get("data", {}))
    generator = Generator(
        name=name,
        kind=kind,
        checkpoint=spec,
        sha256=digest,
        config=config,
        training_data=data,
    )
    generator.full_clean()
    generator.save()
    return generator


# --- jobs ---------------------------------------------------------------------


def generation_seed(job_id: int, index: int) -> int:
    """The seed of image ``index`` of job ``job_id``: fixed, 63 bits."""
    digest = hashlib.sha256(f"turingtest-generation:{job_id}:{index}".encode()).digest()
    return int.from_bytes(digest[:8], "big") >> 1


def job_slots(job: GenerationJob) -> list[tuple[int, int]]:
    """(index, grade) for every image of the job, grades in ascending order."""
    slots, index = [], 0
    for grade in KL.codes:
        for _ in range(int(job.per_grade.get(str(grade), 0))):
            slots.append((index, grade))
            index += 1
    return slots


def per_grade_normalise(per_grade: Mapping) -> dict[str, int]:
    out = {}
    for grade, count in per_grade.items():
        g, n = int(grade), int(count)
        if g not in KL:
            raise ValidationError(
                f"{KL.short_label} {g} is not {KL.range_text(between='-')}."
            )
        if n < 0:
            raise ValidationError(f"Negative count for {KL.short_label} {g}.")
        if n:
            out[str(g)] = n
    if not out:
        raise ValidationError("A generation job needs at least one image.")
    return out


def _queue(job_id: int) -> None:
    # Imported here: the tasks module imports this one.
    from turingtest.generation.tasks import generation_job_run

    generation_job_run.delay(job_id)


@transaction.atomic
def generation_job_create(
    *,
    generator: Generator,
    per_grade: Mapping[int | str, int],
    image_size: int | None = None,
) -> GenerationJob:
    """A job for ``per_grade`` images, queued on the "gpu" queue once committed;
    stored at ``image_size`` px (the configured size by default)."""
    per_grade = per_grade_normalise(per_grade)
    job = GenerationJob(
        generator=generator,
        per_grade=per_grade,
        total=sum(per_grade.values()),
        heartbeat_at=timezone.now(),
    )
    if image_size is not None:
        job.image_size = image_size
    job.full_clean()
    job.save()
    transaction.on_commit(lambda: _queue(job.pk))
    return job


def generation_job_requeue(*, job: GenerationJob) -> None:
    """Queue an unfinished job again (its message may have been lost before a
    worker took it). Running it twice is safe: the lease lets one worker in."""
    if job.status in (GenerationJob.Status.PENDING, GenerationJob.Status.RUNNING):
        transaction.on_commit(lambda: _queue(job.pk))


def _claim(job_id: int, me: str) -> GenerationJob | None:
    """Take the job's lease, unless it is finished or a live worker holds it."""
    now = timezone.now()
    stale = now - timedelta(seconds=lease_seconds())
    claimable = Q(status=GenerationJob.Status.PENDING) | Q(
        status=GenerationJob.Status.RUNNING, heartbeat_at__lt=stale
    )
    with transaction.atomic():
        taken = GenerationJob.objects.filter(claimable, pk=job_id).update(
            status=GenerationJob.Status.RUNNING,
            worker=me,
            heartbeat_at=now,
            attempts=F("attempts") + 1,
            error="",
        )
        if not taken:
            return None
        GenerationJob.objects.filter(pk=job_id, started_at__isnull=True).update(
            started_at=now
        )
    return GenerationJob.objects.select_related("generator").get(pk=job_id)


def _renew(job: GenerationJob, me: str, done: int) -> bool:
    """Record progress and renew the lease; False if another worker took it."""
    return bool(
        GenerationJob.objects.filter(
            pk=job.pk, worker=me, status=GenerationJob.Status.RUNNING
        ).update(done=done, heartbeat_at=timezone.now())
    )


class LeaseLost(RuntimeError):
    pass


_sha_cache: dict[tuple[str, int, int], str] = {}


def _checked_sampler(generator: Generator):
    """The generator's sampler, loaded once per process and file version.

    The file (for an entry point, its module's source file) must still be the
    one registered: provenance is by hash.
    """
    import generator as generator_pkg

    if generator.kind == Generator.Kind.ENTRYPOINT:
        path = _entry_point_file(generator.checkpoint)
    else:
        path = Path(generator.checkpoint)
    st = path.stat()
    key = (str(path), st.st_mtime_ns, st.st_size)
    if key not in _sha_cache:
        _sha_cache[key] = file_sha256(path)
    if _sha_cache[key] != generator.sha256:
        raise ValidationError(
            f"{path} has changed since it was registered as {generator.name!r} "
            f"(sha256 {_sha_cache[key][:12]}, registered {generator.sha256[:12]})."
        )
    return generator_pkg.sample.load(generator.checkpoint, kind=generator.kind)


def _batches(sampler, todo: list[tuple[int, int]], seeds: dict[int, int], size: int):
    """Yield (slots, pixels) batches, each batch of one grade."""
    by_grade: dict[int, list[int]] = {}
    for index, grade in todo:
        by_grade.setdefault(grade, []).append(index)
    for grade, indexes in by_grade.items():
        for k in range(0, len(indexes), size):
            chunk = indexes[k : k + size]
            pixels = sampler(grade, [seeds[i] for i in chunk], batch_size=size)
            yield [(i, grade) for i in chunk], pixels


def _prefetched(iterator: Iterator, depth: int = 2) -> Iterator:
    """Run ``iterator`` in a thread, ``depth`` items ahead of the consumer.

    The generator computes the next batch (torch releases the GIL) while this
    thread encodes and stores the previous one.
    """
    items: queue.Queue = queue.Queue(maxsize=depth)
    stop = threading.Event()
    end = object()

    def produce():
        try:
            for item in iterator:
                while not stop.is_set():
                    try:
                        items.put(("item", item), timeout=0.5)
                        break
                    except queue.Full:
                        continue
                if stop.is_set():
                    return
            items.put(("end", end))
        except BaseException as exc:  # handed to the consumer
            items.put(("error", exc))

    thread = threading.Thread(target=produce, name="generation-batches", daemon=True)
    thread.start()
    try:
        while True:
            kind, value = items.get()
            if kind == "end":
                return
            if kind == "error":
                raise value
            yield value
    finally:
        stop.set()
        thread.join(timeout=30)


def generation_job_execute(*, job_id: int) -> GenerationJob | None:
    """Make the job's missing images. Safe to call any number of times.

    Returns the finished job, or None when there was nothing to do here (the
    job is finished, or another live worker holds it).
    """
    me = worker_name()
    job = _claim(job_id, me)
    if job is None:
        return None
    try:
        gen = job.generator
        slots = job_slots(job)
        present = set(
            Image.objects.filter(job=job, job_index__isnull=False).values_list(
                "job_index", flat=True
            )
        )
        todo = [(i, g) for i, g in slots if i not in present]
        done = len(slots) - len(todo)
        duplicates = 0
        if not _renew(job, me, done):
            raise LeaseLost
        if todo:
            into = import_batch_get_or_create(
                name=f"{gen.name} job {job.pk}",
                description=f"generation job {job.pk} of generator {gen.name} "
                f"(sha256 {gen.sha256[:12]})",
            )
            sampler = _checked_sampler(gen)
            seeds = {i: generation_seed(job.pk, i) for i, _ in todo}
            for batch, pixels in _prefetched(
                _batches(sampler, todo, seeds, batch_size())
            ):
                for (index, grade), array in zip(batch, pixels, strict=True):
                    seed = seeds[index]
                    image = image_create(
                        pixels=array,
                        size=job.image_size,
                        source=Source.SYNTHETIC,
                        kl_grade=grade,
                        generator=gen,
                        seed=seed,
                        job=job,
                        job_index=index,
                        batch=into,
                        origin=f"generator {gen.name} (sha256 {gen.sha256[:12]}), "
                        f"{KL.value_text(grade)}, seed {seed}; job {job.pk} image {index}",
                    )
                    if image.job_id != job.pk or image.job_index != index:
                        # The same pixels are in the pool already (a collapsed
                        # generator can repeat itself): kept once, counted done.
                        duplicates += 1
                    done += 1
                if not _renew(job, me, done):
                    raise LeaseLost
        finished = GenerationJob.objects.filter(pk=job.pk, worker=me).update(
            status=GenerationJob.Status.DONE,
            done=done,
            finished_at=timezone.now(),
            worker="",
            error=(
                f"{duplicates} image(s) repeated pixels already in the pool and "
                "were not stored twice."
                if duplicates
                else ""
            ),
        )
        if not finished:
            raise LeaseLost
    except LeaseLost:
        return None  # the worker that took over finishes the job
    except Exception as exc:
        GenerationJob.objects.filter(pk=job.pk, worker=me).update(
            status=GenerationJob.Status.FAILED,
            finished_at=timezone.now(),
            worker="",
            error=f"{type(exc).__name__}: {exc}",
        )
        raise
    job.refresh_from_db()
    return job


def generation_jobs_recover() -> list[int]:
    """Queue again every job left without a worker; returns their ids.

    A running job whose lease has run out lost its worker. A pending job not
    taken within a lease may have lost its message (a broker restarted, or a
    queueing that failed after commit); a second message is harmless, since
    the lease lets one worker in. Several workers may run this at once: the
    conditional update lets exactly one of them requeue each job.
    """
    stale = timezone.now() - timedelta(seconds=lease_seconds())
    unfinished = (GenerationJob.Status.RUNNING, GenerationJob.Status.PENDING)
    requeued = []
    candidates = GenerationJob.objects.filter(
        status__in=unfinished, heartbeat_at__lt=stale
    ).values_list("pk", "status", "heartbeat_at")
    for pk, status, heartbeat in candidates:
        with transaction.atomic():
            taken = GenerationJob.objects.filter(
                pk=pk, status=status, heartbeat_at=heartbeat
            ).update(
                status=GenerationJob.Status.PENDING,
                worker="",
                heartbeat_at=timezone.now(),
            )
            if taken:
                transaction.on_commit(lambda pk=pk: _queue(pk))
                requeued.append(pk)
    return requeued
