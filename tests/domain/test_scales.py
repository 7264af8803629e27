import ast
import re
from pathlib import Path

import pytest

from turingtest.domain import protocols, scales
from turingtest.domain.scales import (
    BIRADS,
    DETECTION,
    KL,
    REALISM,
    Kind,
    Scale,
    ScaleError,
)

ROOT = Path(__file__).resolve().parents[2]
SCANNED = ("turingtest", "generator", "templates", "static")
SUFFIXES = {".py", ".html", ".js", ".css", ".txt", ".md"}
OWNER = ROOT / "turingtest" / "domain"

# What restates the KL scale: its labels, its one-line hint, and the number of
# grades written as a number (a range, a tuple of the codes, a bound).
KL_TEXTS = [lv.label for lv in KL.levels] + [KL.hint(), KL.title]
GRADE_COUNT = [
    r"range\(\s*(?:0\s*,\s*)?5\s*\)",
    r"[\(\[]0, 1, 2, 3, 4[\)\]]",
    r"\b(?:KL_|N_)?GRADES\s*=\s*(?:range|[\(\[]|\d)",
    r"kl_grade__lte\s*=\s*4",
    r"clip\([^)]*,\s*0\s*,\s*4\s*\)",
    r"\b0\s*(?:-|–|to)\s*4\b(?!\s*years)",
    r"<kbd>0</kbd>\s*–\s*<kbd>4</kbd>",
    r"\b(?:SmallCNN|n_classes\s*=)\s*\(?\s*5\b",
    r"\b0\s*<=\s*\w+\s*<=\s*4\b",
    r"\)\s*<=\s*4\b",
]


def restatements(root: Path = ROOT) -> list[str]:
    """``path:line: text`` for each line outside the domain module that restates KL."""
    texts = [re.compile(re.escape(t), re.IGNORECASE) for t in KL_TEXTS]
    counts = [re.compile(p) for p in GRADE_COUNT]
    # The viewer knows no scale at all: it renders what the API sends.
    js = re.compile(r"\bKL\b|Kellgren")
    found = []
    for top in SCANNED:
        for path in sorted((root / top).rglob("*")):
            if (
                path.suffix not in SUFFIXES
                or "migrations" in path.parts
                or OWNER in path.parents
                or not path.is_file()
            ):
                continue
            text = path.read_text("utf-8")
            lines = text.splitlines()
            for number, line in enumerate(lines, 1):
                if any(p.search(line) for p in texts + counts) or (
                    path.suffix == ".js" and js.search(line)
                ):
                    found.append(f"{path.relative_to(root)}:{number}: {line.strip()}")
            if path.suffix == ".py":
                found += [
                    f"{path.relative_to(root)}:{n}: {lines[n - 1].strip()}"
                    for n in _scale_name_in_strings(text)
                ]
            elif path.suffix == ".html":
                found += [
                    f"{path.relative_to(root)}:{n}: {line.strip()}"
                    for n, line in enumerate(lines, 1)
                    if SCALE_NAME.search(re.sub(r"\{\{.*?\}\}|\{%.*?%\}", "", line))
                ]
    return list(dict.fromkeys(found))  # a line caught twice is listed once


# The scale's abbreviation written out in text a user reads (a message, a
# help text, a page): it comes from the scale (``KL.abbreviation``).
# Docstrings and comments, read by developers, may name it.
SCALE_NAME = re.compile(r"\bKL\b")


def _scale_name_in_strings(source: str) -> list[int]:
    tree = ast.parse(source)
    docstrings = {
        id(node.body[0].value)
        for node in ast.walk(tree)
        if isinstance(
            node, ast.Module | ast.ClassDef | ast.FunctionDef | ast.AsyncFunctionDef
        )
        and node.body
        and isinstance(node.body[0], ast.Expr)
        and isinstance(node.body[0].value, ast.Constant)
    }
    return sorted(
        {
            node.lineno
            for node in ast.walk(tree)
            if isinstance(node, ast.Constant)
            and isinstance(node.value, str)
            and id(node) not in docstrings
            and SCALE_NAME.search(node.value)
        }
    )


def test_no_kl_label_or_grade_count_outside_the_domain_module():
    found = restatements()
    assert not found, (
        "The KL scale is restated outside turingtest/domain:\n" + "\n".join(found)
    )


def test_the_scan_finds_a_restatement(tmp_path):
    (tmp_path / "turingtest").mkdir()
    (tmp_path / "static").mkdir()
    (tmp_path / "turingtest" / "a.py").write_text(
        "GRADES = range(5)\nhelp = 'doubtful narrowing, possible osteophytic lipping'\n"
        "x = np.clip(g, 0, 4)\nERR = 'a KL grade from 0 to 4'\nok = range(6)\n"
    )
    (tmp_path / "turingtest" / "b.py").write_text(
        '"""Grades on the KL scale (a docstring may name it)."""\n'
        "# and so may a comment: KL\n"
        "ok = f'{KL.abbreviation} grade'\n"
        "bad = f'reference KL grade {g}'\n"
    )
    (tmp_path / "static" / "r.js").write_text("say(`Reference KL grade: ${g}`);\n")
    found = restatements(tmp_path)
    assert [f.split(":")[:2] for f in found] == [
        ["turingtest/a.py", "1"],
        ["turingtest/a.py", "2"],
        ["turingtest/a.py", "3"],
        ["turingtest/a.py", "4"],
        ["turingtest/b.py", "4"],
        ["static/r.js", "1"],
    ]


def test_kl_scale():
    assert KL.codes == (0, 1, 2, 3, 4)
    assert (KL.min, KL.max, KL.count) == (0, 4, 5)
    assert KL.kind is Kind.ORDINAL
    assert KL.label(0) == "No features of osteoarthritis"
    assert KL.value_text(3) == "KL 3"
    assert KL.range_text() == "0 to 4"
    assert KL.hint() == "0 none · 1 doubtful · 2 minimal · 3 moderate · 4 severe"
    assert KL.within_one(2, 3) and not KL.within_one(0, 2)
    assert 4 in KL and 5 not in KL and True not in KL and "1" not in KL


def test_detection_scale_splits_real_from_synthetic():
    assert DETECTION.count == 6
    assert scales.detection_codes("real") == (1, 2, 3)
    assert scales.detection_codes("synthetic") == (4, 5, 6)
    assert DETECTION.choices()[0] == (1, "Definitely real")
    assert DETECTION.choices()[-1] == (6, "Definitely synthetic")


def test_builtin_scales():
    assert BIRADS.count == 7 and BIRADS.codes == tuple(range(7))
    assert REALISM.count == 5 and (REALISM.min, REALISM.max) == (1, 5)
    assert scales.scale_named("birads") is BIRADS
    assert set(scales.scale_names()) >= {
        "kl",
        "real-synthetic-6",
        "realism-5",
        "birads",
    }
    with pytest.raises(LookupError, match="lung-rads"):
        scales.scale_named("lung-rads")


def test_custom_scales(monkeypatch):
    # The registration below is this test's own: the registry is the
    # process's, and other tests rely on "lung-rads" being unknown.
    monkeypatch.setattr(scales, "_REGISTRY", dict(scales._REGISTRY))
    artefact = Scale.custom(
        name="artefact",
        title="What gave it away?",
        kind="nominal",
        levels=[("texture", "Bone texture"), ("edges", "Edges"), ("none", "Nothing")],
    )
    assert artefact.codes == ("texture", "edges", "none")
    assert artefact.label("edges") == "Edges"
    with pytest.raises(TypeError):
        artefact.within_one("texture", "edges")
    with pytest.raises(TypeError):
        artefact.max  # noqa: B018
    lung = Scale.custom(
        name="lung-rads",
        title="Lung-RADS",
        kind=Kind.ORDINAL,
        levels=[
            (1, "Negative"),
            (2, "Benign"),
            (3, "Probably benign"),
            (4, "Suspicious"),
        ],
    )
    assert lung.within_one(3, 4) and lung.short_label == "Lung-RADS"
    assert scales.register(lung) is lung
    assert scales.scale_named("lung-rads") is lung
    with pytest.raises(ScaleError, match="already named"):
        scales.register(
            Scale.custom(
                name="kl", title="x", kind="nominal", levels=[(1, "a"), (2, "b")]
            )
        )


@pytest.mark.parametrize(
    ("kind", "levels", "message"),
    [
        ("ordinal", [], "at least two"),
        ("ordinal", [(1, "One")], "at least two"),
        ("ordinal", [(1, "One"), (1, "Uno")], "duplicate codes 1"),
        ("nominal", [("a", "A"), ("a", "B")], "duplicate codes a"),
        ("ordinal", [(1, "One"), (2, " ")], "needs a label"),
        ("ordinal", [(1, "Same"), (2, "same")], "same label"),
        ("ordinal", [(2, "Two"), (1, "One")], "increase"),
        ("ordinal", [("a", "A"), ("b", "B")], "whole numbers"),
        ("nominal", [(True, "Yes"), (False, "No")], "not a whole number"),
        ("nominal", [("", "Blank"), ("x", "X")], "code is empty"),
        ("interval", [(1, "One"), (2, "Two")], "'ordinal' or 'nominal'"),
        ("ordinal", [(1, "One", "extra")], "pair"),
    ],
)
def test_custom_scale_errors(kind, levels, message):
    with pytest.raises(ScaleError, match=message):
        Scale.custom(name="mine", title="Mine", kind=kind, levels=levels)


def test_custom_scale_needs_a_name_and_title():
    with pytest.raises(ScaleError, match="name"):
        Scale.custom(
            name="My Scale", title="Mine", kind="nominal", levels=[(1, "a"), (2, "b")]
        )
    with pytest.raises(ScaleError, match="title"):
        Scale.custom(name="mine", title="", kind="nominal", levels=[(1, "a"), (2, "b")])


def test_scales_are_frozen():
    with pytest.raises(AttributeError):
        KL.title = "Other"  # type: ignore[misc]


def test_reference_protocol_is_kl_grading_then_detection():
    grading, detection = protocols.REFERENCE.phases
    assert grading.kind == "grading" and [q.scale for q in grading.questions] == [KL]
    assert detection.kind == "detection"
    assert [q.scale for q in detection.questions] == [DETECTION]
    assert [q.field for q in protocols.phase_questions("combined")] == [
        "confidence",
        "kl_grade",
    ]
    assert protocols.protocol_named("reference") is protocols.REFERENCE
