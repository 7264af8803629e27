import subprocess
import sys

CHECK = """
import sys
import generator
assert "torch" not in sys.modules, "import generator loaded torch"
import generator.data, generator.evaluate, generator.machine, generator.networks
import generator.sample
import generator.train, generator.curve, generator.montage
# The generator may use the project's pure packages (turingtest.stats,
# turingtest.domain), never Django, Celery or the web app.
pure = ("turingtest.stats", "turingtest.domain")
bad = sorted(
    m
    for m in sys.modules
    if m.split(".")[0] in ("django", "celery")
    or (m.split(".")[0] == "turingtest" and m != "turingtest" and not m.startswith(pure))
)
assert not bad, bad
"""


def test_generator_imports_without_django_or_the_web_app():
    subprocess.run([sys.executable, "-c", CHECK], check=True, timeout=120)
