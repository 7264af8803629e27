from django.core.exceptions import ValidationError
from django.core.management.base import BaseCommand, CommandError

from turingtest.studies.generation import generator_register


class Command(BaseCommand):
    help = (
        "Record a trained generator checkpoint (its sha256, config and training data)."
    )

    def add_arguments(self, parser):
        parser.add_argument(
            "checkpoint", help="checkpoint.pt written by generator.train"
        )
        parser.add_argument(
            "--name", required=True, help="a short slug, e.g. default-64px"
        )

    def handle(self, *args, **opts):
        try:
            gen = generator_register(checkpoint=opts["checkpoint"], name=opts["name"])
        except ValidationError as exc:
            raise CommandError(" ".join(exc.messages)) from exc
        cfg = gen.config
        self.stdout.write(
            f"{gen.name}: {cfg.get('name')} config, {cfg.get('resolution')} px, "
            f"step {cfg.get('step')}, sha256 {gen.sha256[:16]}…\n"
            f"trained on {gen.training_data or 'unrecorded data'}"
        )
