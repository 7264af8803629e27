"""Write a procedural knee phantom dataset in the ``{grade}/*.png`` layout."""

from pathlib import Path

from django.core.management.base import BaseCommand, CommandError
from tqdm import tqdm

from turingtest.domain.scales import KL
from turingtest.imaging.phantom import GRADES, phantom_dataset


class Command(BaseCommand):
    help = (
        f"Write synthetic knee radiographs (procedural phantoms) for {KL.abbreviation} grades "
        f"{KL.range_text('-')} "
        "into OUT/{grade}/phantom-{grade}-{i:05d}.png."
    )

    def add_arguments(self, parser):
        parser.add_argument("out", type=Path, help="output folder")
        parser.add_argument("--per-grade", type=int, required=True)
        parser.add_argument("--size", type=int, default=224)
        parser.add_argument("--seed", type=int, default=0)

    def handle(self, *args, out: Path, per_grade: int, size: int, seed: int, **opts):
        if per_grade < 1:
            raise CommandError("--per-grade must be at least 1")
        if size < 8:
            raise CommandError("--size must be at least 8")
        total = per_grade * len(GRADES)
        with tqdm(
            total=total,
            desc="phantoms",
            unit="img",
            file=self.stderr._out,
            disable=opts.get("verbosity", 1) < 1,
        ) as bar:
            paths = phantom_dataset(
                out, per_grade=per_grade, size=size, seed=seed, progress=bar.update
            )
        self.stdout.write(
            f"Wrote {len(paths)} phantoms ({per_grade} per {KL.short_label} "
            f"{KL.range_text('-')}, "
            f"{size}x{size}, seed {seed}) to {out}"
        )
