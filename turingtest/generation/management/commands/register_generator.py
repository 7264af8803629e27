from django.core.exceptions import ValidationError
from django.core.management.base import BaseCommand, CommandError

from turingtest.generation.models import Generator
from turingtest.generation.services import generator_register


class Command(BaseCommand):
    help = (
        "Record a trained generator (its sha256, config and training data): a "
        "checkpoint of generator.train, a TorchScript file, or an entry point."
    )

    def add_arguments(self, parser):
        parser.add_argument(
            "checkpoint",
            help="checkpoint.pt written by generator.train, a TorchScript file "
            "(--kind torchscript) or package.module:function (--kind entrypoint)",
        )
        parser.add_argument(
            "--kind",
            choices=Generator.Kind.values,
            default=Generator.Kind.CHECKPOINT,
            help="what CHECKPOINT is; see generator.sample for the signatures",
        )
        parser.add_argument(
            "--name", required=True, help="a short slug, e.g. default-64px"
        )

    def handle(self, *args, **opts):
        try:
            gen = generator_register(
                checkpoint=opts["checkpoint"], name=opts["name"], kind=opts["kind"]
            )
        except ValidationError as exc:
            raise CommandError(" ".join(exc.messages)) from exc
        cfg = gen.config
        if gen.kind != Generator.Kind.CHECKPOINT:
            self.stdout.write(
                f"{gen.name}: {gen.get_kind_display()} {gen.checkpoint}, "
                f"sha256 {gen.sha256[:16]}…"
            )
            return
        self.stdout.write(
            f"{gen.name}: {cfg.get('name')} config, {cfg.get('resolution')} px, "
            f"step {cfg.get('step')}, sha256 {gen.sha256[:16]}…\n"
            f"trained on {gen.training_data or 'unrecorded data'}"
        )
