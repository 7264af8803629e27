import subprocess
import sys

CHECK = """
import sys
import generator
assert "torch" not in sys.modules, "import generator loaded torch"
import generator.data, generator.evaluate, generator.machine, generator.networks
import generator.sample
import generator.train
bad = sorted(m for m in sys.modules if m.split(".")[0] in ("django", "turingtest"))
assert not bad, bad
"""


def test_generator_imports_without_django_or_turingtest():
    subprocess.run([sys.executable, "-c", CHECK], check=True, timeout=120)
