import copy
import json
import re

import markdown
import numpy as np
import pytest
from sklearn.metrics import cohen_kappa_score

from turingtest.stats import detection_summary, fleiss_kappa, mrmc_auc
from turingtest.stats.report import (
    IMAGE_COLUMNS,
    READER_COLUMNS,
    REPORT_VERSION,
    Report,
    build_report,
    image_summary_rows,
    imrmc_rows,
    imrmc_text,
    reader_summary_rows,
    report_markdown,
)
from turingtest.stats.simulate import simulate_rows


@pytest.fixture(scope="module")
def rows():
    return simulate_rows(8, 40, phases=("grading", "detection"), seed=11)


@pytest.fixture(scope="module")
def report(rows):
    return build_report(rows, n_boot=200)


def _strict_json(report):
    return json.loads(json.dumps(report.to_json(), allow_nan=False))


def _main(rows, phase):
    return [r for r in rows if r["phase"] == phase and r["role"] == "main"]


def test_report_is_strict_json_without_unexplained_gaps(report):
    assert _strict_json(report) == report.to_json()
    assert report.messages == ()
    assert report.study == "simulated" and report.version == REPORT_VERSION
    assert set(report.detection) == {"detection"}
    assert set(report.grading) == {"grading"}


@pytest.mark.parametrize(
    "phases", [("grading", "detection"), ("combined",), ("detection",)]
)
def test_report_comes_back_from_its_json_unchanged(phases):
    rows = simulate_rows(4, 16, phases=phases, seed=5)
    for i, r in enumerate(rows):
        if i % 11 == 0:  # gaps: figures that are None next to their notes
            r["answer"], r["confidence"], r["kl_grade"] = None, None, None
    rep = build_report(rows, n_boot=20)
    again = Report.from_json(json.loads(json.dumps(rep.to_json(), allow_nan=False)))
    assert again == rep
    assert again.to_json() == rep.to_json()
    assert report_markdown(again) == report_markdown(rep)
    assert reader_summary_rows(again) == reader_summary_rows(rep)
    assert image_summary_rows(again) == image_summary_rows(rep)


def test_a_report_stored_by_an_earlier_version_still_reads(report):
    # Version 2 had no test-retest section; version 1 no machine readers and
    # no reader kinds. Such reports are shown until rebuilt.
    old = _strict_json(report)
    del old["retest"], old["counts"]["repeats"]
    del old["machine_readers"], old["counts"]["machine"]
    for r in old["readers"] + old["detection"]["detection"]["readers"]:
        del r["kind"]
    rep = Report.from_json(old)
    assert rep.retest.readers == () and rep.machine_readers == ()
    assert {r.kind for r in rep.readers} == {"human"}
    assert report_markdown(rep) == report_markdown(report)
    assert reader_summary_rows(rep) == reader_summary_rows(report)


def test_practice_and_attention_rows_are_excluded(rows, report):
    counts = report.counts
    assert counts.main == 2 * 8 * 40
    assert counts.practice == 2 * 8 * 2 and counts.attention == 2 * 8 * 2
    d = report.detection["detection"]
    assert d.n_cases == 40 and d.n_answers == 8 * 40


def test_reader_rows_match_detection_summary(rows, report):
    main = _main(rows, "detection")
    for entry in report.detection["detection"].readers:
        mine = sorted(
            (r for r in main if r["reader"] == entry.reader), key=lambda r: r["case"]
        )
        ref = detection_summary(
            [r["truth"] for r in mine],
            [r["answer"] for r in mine],
            [r["confidence"] for r in mine],
        )
        assert entry.accuracy.estimate == pytest.approx(ref.accuracy.estimate)
        assert entry.fake_as_real.ci == pytest.approx(list(ref.fake_as_real.ci))
        assert entry.d_prime == pytest.approx(ref.d_prime)
        assert entry.auc.estimate == pytest.approx(ref.auc.estimate)


def test_pooled_and_mrmc_figures_match_the_functions(rows, report):
    main = _main(rows, "detection")
    d = report.detection["detection"]
    correct = np.mean([r["answer"] == r["truth"] for r in main])
    assert d.pooled_accuracy.estimate == pytest.approx(correct)
    readers = sorted({r["reader"] for r in main})
    cases = sorted({r["case"] for r in main})
    scores = np.zeros((len(readers), len(cases)))
    truth = np.zeros(len(cases), bool)
    for r in main:
        scores[readers.index(r["reader"]), cases.index(r["case"])] = r["confidence"]
        truth[cases.index(r["case"])] = r["truth"] == "synthetic"
    ref = mrmc_auc(truth, scores)
    assert d.mrmc_auc.estimate == pytest.approx(ref.estimate)
    assert d.mrmc_auc.ci == pytest.approx(list(ref.ci))
    calls = np.array(
        [[r["answer"] == "synthetic" for r in main if r["case"] == c] for c in cases]
    )
    counts = np.stack([(~calls).sum(1), calls.sum(1)], axis=1)
    assert d.agreement.fleiss_kappa.estimate == pytest.approx(
        fleiss_kappa(counts).estimate
    )
    kappa = np.array(d.agreement.cohen_kappa.get("matrix"))
    assert kappa.shape == (8, 8) and np.allclose(np.diag(kappa), 1.0)


def test_images_are_ranked_by_realism(report):
    images = report.detection["detection"].images
    fractions = [i.fraction_real for i in images]
    assert fractions == sorted(fractions, reverse=True)
    assert [i.rank for i in images] == list(range(1, 41))
    for i in images:
        assert i.n_called_real / i.n == pytest.approx(i.fraction_real)


def test_grading_agreement_is_split_by_real_and_synthetic(rows, report):
    main = _main(rows, "grading")
    g = report.grading["grading"]
    for entry in g.readers:
        for source in ("real", "synthetic"):
            mine = [
                r for r in main if r["reader"] == entry.reader and r["truth"] == source
            ]
            grades = [r["kl_grade"] for r in mine]
            ref = [r["reference_kl"] for r in mine]
            expected = cohen_kappa_score(
                grades, ref, weights="quadratic", labels=range(5)
            )
            agreement = getattr(entry, source)
            assert agreement.kappa_quadratic.estimate == pytest.approx(expected)
            exact = np.mean(np.array(grades) == np.array(ref))
            assert agreement.exact.estimate == pytest.approx(exact)
    total = sum(np.sum(g.confusion[s]) for s in ("real", "synthetic"))
    assert total == g.n_grades == 8 * 40
    assert g.inter_reader_alpha["all"].estimate is not None


def test_attention_failures_are_reported_per_reader(rows):
    changed = copy.deepcopy(rows)
    target = next(
        r for r in changed if r["role"] == "attention" and r["phase"] == "detection"
    )
    target["answer"] = "real" if target["truth"] == "synthetic" else "synthetic"
    rep = build_report(changed, n_boot=0)
    entry = next(e for e in rep.attention.readers if e.reader == target["reader"])
    assert entry.n_failed >= 1
    assert any(
        f.case == target["case"] and f.failed == ["realism"] for f in entry.failed
    )
    # Attention cases never reach the statistics.
    d = rep.detection["detection"]
    assert target["case"] not in {i.case for i in d.images}


def test_same_answers_give_the_same_report(rows, report):
    assert build_report(iter(rows), n_boot=200) == report


def _detection_rows(**kw):
    return simulate_rows(5, 20, phases=("detection",), seed=3, **kw)


def test_a_reader_who_answers_everything_real():
    rows = _detection_rows()
    for r in rows:
        if r["reader"] == "R002":
            r["answer"], r["confidence"] = "real", 2
    rep = _strict_json(build_report(rows, n_boot=50))
    entry = next(
        e for e in rep["detection"]["detection"]["readers"] if e["reader"] == "R002"
    )
    assert entry["sensitivity"]["estimate"] == 0.0
    assert entry["specificity"]["estimate"] == 1.0
    assert entry["d_prime"] == pytest.approx(0.0, abs=1e-12)
    assert entry["auc"]["estimate"] == 0.5
    assert not [m for m in rep["messages"] if "not computable" in m]


def test_a_study_with_one_reader():
    rows = [r for r in _detection_rows() if r["reader"] == "R001"]
    rep = _strict_json(build_report(rows, n_boot=50))
    d = rep["detection"]["detection"]
    assert "One reader" in d["mrmc_auc"]["note"]
    assert d["agreement"]["fleiss_kappa"]["estimate"] is None
    assert "two readers" in d["agreement"]["fleiss_kappa"]["note"]
    assert "two readers" in d["equivalence"]["readers"]["note"]
    assert not [m for m in rep["messages"] if "not computable" in m]


def test_missing_answers():
    rows = _detection_rows()
    for i, r in enumerate(rows):
        if i % 9 == 0:
            r["answer"], r["confidence"] = None, None
    rep = _strict_json(build_report(rows, n_boot=50))
    d = rep["detection"]["detection"]
    assert d["n_missing"] > 0 and "no real/synthetic answer" in d["note"]
    assert "left out" in d["mrmc_auc"]["note"]
    assert "left out" in d["agreement"]["fleiss_kappa"]["note"]

    # In the Markdown each note is its own paragraph, said once per section,
    # and every table is a table once rendered.
    md = report_markdown(build_report(rows, n_boot=50))
    section = md.split("## Real or synthetic")[1].split("\n## ")[0]
    assert len(re.findall(r"\d+ cases .*left out", section)) == 1
    html = markdown.markdown(md, extensions=["extra"])
    rules = [line for line in md.splitlines() if line.startswith("|---")]
    assert html.count("<table>") == len(rules) > 0
    assert not [line for line in html.splitlines() if line.lstrip().startswith("|")]


def test_a_grade_nobody_used():
    rows = simulate_rows(4, 20, phases=("grading",), seed=2)
    for r in rows:
        r["kl_grade"] = min(r["kl_grade"], 3)
    rep = _strict_json(build_report(rows, n_boot=50))
    g = rep["grading"]["grading"]
    assert all(
        row[4] == 0
        for s in ("real", "synthetic")
        for row in np.array(g["confusion"][s]).T[[4]]
    )
    assert g["readers"][0]["real"]["kappa_quadratic"]["estimate"] is not None
    assert "No real/synthetic answers" in " ".join(rep["messages"])


def test_an_empty_phase_and_an_empty_study():
    rows = [dict(r, answer=None, confidence=None) for r in _detection_rows()]
    rep = _strict_json(build_report(rows))
    assert rep["detection"] == {}
    assert any("no real/synthetic answers yet" in m for m in rep["messages"])
    empty = _strict_json(build_report([]))
    assert empty["detection"] == {} and empty["grading"] == {}
    assert empty["counts"]["rows"] == 0
    assert "no" in report_markdown(build_report([])).lower()


def test_no_confidence_ratings():
    rows = [dict(r, confidence=None) for r in _detection_rows()]
    rep = _strict_json(build_report(rows, n_boot=50))
    d = rep["detection"]["detection"]
    assert d["mrmc_auc"]["estimate"] is None and "confidence" in d["mrmc_auc"]["note"]
    assert d["readers"][0]["auc"] is None


def test_combined_phase_gives_both_sections():
    rep = _strict_json(
        build_report(simulate_rows(3, 12, phases=("combined",)), n_boot=50)
    )
    assert set(rep["detection"]) == {"combined"} and set(rep["grading"]) == {"combined"}


def test_unknown_values_are_reported_not_fatal():
    rows = _detection_rows()
    rows[0]["phase"] = "weird"
    rows[1]["answer"] = "fake"
    rep = _strict_json(build_report(rows, n_boot=50))
    assert any("unknown phase" in m for m in rep["messages"])
    assert any("Unknown answers" in m for m in rep["messages"])


def test_markdown_has_the_main_figures(report):
    md = report_markdown(report)
    for text in ("Pooled accuracy", "MRMC", "Fleiss' kappa", "TOST", "quadratic kappa"):
        assert text in md
    assert not re.search(r"\bnan\b", md.lower())


def test_reader_and_image_summary_rows(report):
    readers = reader_summary_rows(report)
    assert len(readers) == 16  # 8 readers x 2 phases
    assert all(tuple(r) == READER_COLUMNS for r in readers)
    det = [r for r in readers if r["phase"] == "detection"]
    assert all(r["accuracy"] is not None and r["kappa_real"] is None for r in det)
    images = image_summary_rows(report)
    assert len(images) == 80
    assert all(tuple(r) == IMAGE_COLUMNS for r in images)


def test_imrmc_rows_follow_the_imrmc_format(rows):
    out = imrmc_rows(rows)
    truth = [r for r in out if r["readerID"] == "-1"]
    scores = [r for r in out if r["readerID"] != "-1"]
    assert out[: len(truth)] == truth  # truth rows first
    assert len(truth) == 40 and {r["score"] for r in truth} == {"0", "1"}
    assert all(r["modalityID"] == "truth" for r in truth)
    assert len(scores) == 8 * 40
    assert {r["modalityID"] for r in scores} == {"detection"}
    assert all(set(r) == {"readerID", "caseID", "modalityID", "score"} for r in out)
    text = imrmc_text(rows, title="my study")
    assert "BEGIN DATA:" in text and "NR: 8" in text and "N0:" in text
    assert "-1,C00001,truth,0" in text or "-1,C00001,truth,1" in text
    assert "my_study" in text.splitlines()[0]


def _imrmc_header(text: str) -> dict[str, int]:
    """Read a header as iMRMC 4.0.3's InputFile does: a size key anywhere in
    a line is parsed from that line's fourth character on."""
    sizes = {}
    for line in text.splitlines():
        upper = line.upper()
        if upper.startswith("BEGIN DATA:"):
            return sizes
        for key in ("NR:", "N0:", "N1:", "NM:"):
            if key in upper:
                sizes[key[:2]] = int(upper[3:].strip())
    raise AssertionError("no BEGIN DATA: line")


def test_imrmc_file_names_the_study_and_export_and_parses_as_imrmc_does(rows):
    text = imrmc_text(
        rows,
        title="knee-2026",
        study_name="Knee: NR: N0: tricky name",
        exported_at="2026-12-02T01:05:00+00:00",
    )
    lines = text.splitlines()
    assert lines[0].startswith("knee-2026: visual Turing test")
    assert "Study - Knee - NR - N0 - tricky name" in lines
    assert "Exported by turingtest at 2026-12-02T01 -05 -00+00 -00" in lines
    assert _imrmc_header(text) == {"NR": 8, "N0": 20, "N1": 20, "NM": 1}
    data = lines[lines.index("BEGIN DATA:") + 1 :]
    # Rows only, no CSV header: exactly the rows of the plain CSV.
    expected = [",".join(r.values()) for r in imrmc_rows(rows)]
    assert data == expected


def test_the_statistics_package_imports_neither_django_nor_torch():
    import ast
    from pathlib import Path

    import turingtest.stats as package

    for path in Path(package.__file__).parent.rglob("*.py"):
        tree = ast.parse(path.read_text())
        for node in ast.walk(tree):
            names = []
            if isinstance(node, ast.Import):
                names = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom):
                names = [node.module or ""]
            for name in names:
                assert name.split(".")[0] not in {"django", "torch"}, (path, name)
