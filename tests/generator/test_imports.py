import subprocess
import sys

CHECK = """
import sys
import generator
assert "torch" not in sys.modules, "import generator loaded torch"
import generator.data, generator.evaluate, generator.machine, generator.networks
import generator.sample
import generator.train
# The generator may use the project's pure packages (turingtest.stats,
# turingtest.domain), never Django, Celery or the web app.
pure = ("turingtest", "turingtest.stats", "turingtest.domain")
bad = sorted(
    m
    for m in sys.modules
    if m.split(".")[0] in ("django", "celery")
    or (m.split(".")[0] == "turingtest" and not m.startswith(pure[1:]) and m != "turingtest")
)
assert not bad, bad
"""


def test_generator_imports_without_django_or_the_web_app():
    subprocess.run([sys.executable, "-c", CHECK], check=True, timeout=120)
