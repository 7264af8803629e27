import subprocess
import sys

# generator may import the pure domain module (the scales), and nothing else
# of turingtest: no Django, no Celery, no app.
CHECK = """
import sys
import generator
assert "torch" not in sys.modules, "import generator loaded torch"
import generator.data, generator.evaluate, generator.machine, generator.networks
import generator.sample
import generator.train, generator.curve, generator.montage
allowed = {"turingtest", "turingtest.domain", "turingtest.domain.scales"}
bad = sorted(
    m for m in sys.modules
    if m.split(".")[0] in ("django", "celery") or
    (m.split(".")[0] == "turingtest" and m not in allowed)
)
assert not bad, bad
"""


def test_generator_imports_without_django_or_the_app():
    subprocess.run([sys.executable, "-c", CHECK], check=True, timeout=120)
