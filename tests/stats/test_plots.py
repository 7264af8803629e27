import pytest

from turingtest.stats import plots
from turingtest.stats.report import build_report
from turingtest.stats.simulate import simulate_rows

PNG = b"\x89PNG\r\n\x1a\n"
FIGURES = ["forest_plot", "roc_plot", "kl_confusion_plot", "realism_histogram"]


@pytest.fixture(scope="module")
def report():
    return build_report(simulate_rows(6, 30, phases=("grading", "detection")), n_boot=0)


@pytest.mark.parametrize("name", FIGURES)
def test_figures_are_png(report, name):
    image = getattr(plots, name)(report)
    assert image.startswith(PNG) and len(image) > 5_000


@pytest.mark.parametrize("name", FIGURES)
def test_figures_explain_missing_data_instead_of_failing(name):
    empty = build_report([])
    assert getattr(plots, name)(empty).startswith(PNG)


def test_figures_do_not_touch_pyplot_state(report):
    import matplotlib

    before = dict(matplotlib.rcParams)
    plots.forest_plot(report)
    assert dict(matplotlib.rcParams) == before
