import signal
from pathlib import Path

from django.core.management import call_command
from django.core.management.base import BaseCommand

from turingtest.demo import DemoOptions, demo_build, worker_stop
from turingtest.domain.scales import KL


class Command(BaseCommand):
    help = "Build the demo study (once) and serve it with a Celery worker beside the web server."

    def add_arguments(self, parser):
        parser.add_argument(
            "--data",
            default=None,
            help="Real images (any layout import_images accepts), or 'phantom' for "
            "procedural knees; default: the shipped sample of real radiographs.",
        )
        parser.add_argument("--addr", default="127.0.0.1:8000")
        parser.add_argument("--readers", type=int, default=20)
        parser.add_argument(
            "--per-grade",
            type=int,
            default=6,
            help=f"Main cases per {KL.abbreviation} grade and source.",
        )
        parser.add_argument(
            "--workdir",
            default=None,
            help="Where the demo keeps its files (default var/demo).",
        )
        length = parser.add_mutually_exclusive_group()
        length.add_argument(
            "--train-minutes",
            type=float,
            default=None,
            help="Train a generator for this long instead of using the shipped one.",
        )
        length.add_argument(
            "--train-steps",
            type=int,
            default=None,
            help="Train a generator this many steps instead of using the shipped one.",
        )
        parser.add_argument(
            "--no-serve", action="store_true", help="Build only, then exit."
        )

    def handle(self, *args, **opts):
        # SIGTERM (what `kill` and `make` send on) ends the demo as Ctrl-C
        # does: the finally below stops the Celery worker too. SIGINT is set
        # as well: a process started in the background of a script inherits
        # it ignored, and Ctrl-C must still stop the demo.
        signal.signal(signal.SIGTERM, _interrupt)
        signal.signal(signal.SIGINT, _interrupt)
        base_url = f"http://{opts['addr']}"
        options = DemoOptions(
            data=opts["data"],
            readers=opts["readers"],
            per_grade=opts["per_grade"],
            say=self.stdout.write,
        )
        if opts["workdir"]:
            options.workdir = Path(opts["workdir"])
        if opts["train_steps"] or opts["train_minutes"]:
            length = (
                ("--steps", str(opts["train_steps"]))
                if opts["train_steps"]
                else ("--minutes", str(opts["train_minutes"]))
            )
            options.train_args = ("--config", "tiny", "--resolution", "64", *length)
        result, worker = demo_build(options, base_url=base_url)
        try:
            study = result.study
            self.stdout.write(
                self.style.SUCCESS("\nturingtest demo is ready")
                + f"\n  Reading and results: {base_url}/"
                + f"\n  Admin:               {base_url}/admin/  user {result.admin_user!r}, password {result.admin_password!r}"
                + f"\n  Study page:          {base_url}/staff/studies/{study.slug}/"
                + "\n  Invitation links for real readers (single use):\n    "
                + "\n    ".join(result.links)
                + "\n  Signing up confirms the address by mail; without EMAIL_URL the"
                + "\n  mail, with its confirmation link, is printed below."
                + "\n\nCtrl-C (or SIGTERM) stops the web server and the worker.\n"
            )
            if not opts["no_serve"]:
                call_command("runserver", opts["addr"], use_reloader=False)
        except KeyboardInterrupt:
            pass
        finally:
            # A second signal must not cut the worker's shutdown short.
            signal.signal(signal.SIGTERM, signal.SIG_IGN)
            signal.signal(signal.SIGINT, signal.SIG_IGN)
            worker_stop(worker)


def _interrupt(signum, frame):
    raise KeyboardInterrupt
