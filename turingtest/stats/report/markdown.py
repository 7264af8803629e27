"""The study report as Markdown, and the machine readers beside the people.

:func:`report_markdown` renders a :class:`~turingtest.stats.report.results.Report`;
every number goes through :mod:`turingtest.stats.report.formatting`.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from turingtest.domain.scales import DETECTION, KL
from turingtest.stats.proportions import REAL, SYNTHETIC
from turingtest.stats.report.compute import KL_GRADES, MACHINE, SIMULATED, SOURCES
from turingtest.stats.report.formatting import (
    MISSING,
    ci_text,
    fixed_text,
    interval_text,
    number,
    p_text,
    percent,
    percent_ci_text,
)
from turingtest.stats.report.results import (
    Detection,
    DetectionReader,
    Figure,
    GradeAgreement,
    Grading,
    GradingReader,
    MachineReader,
    Report,
    ReportReader,
)

__all__ = [
    "QUESTION_LABELS",
    "MachineComparison",
    "humans_label",
    "machine_comparison",
    "machine_name",
    "questions_markdown",
    "report_markdown",
]

QUESTION_LABELS = {"kl_grade": KL.short_label, "real_synthetic": DETECTION.short_label}


def _note_key(note: str) -> str:
    # Several estimates leave out the same incomplete cases and each says so,
    # in its own words ("10 cases without an answer from every reader were
    # left out", "10 cases not answered by every reader were left out").
    words = note.strip("*").split()
    if "left out" in note and len(words) > 1 and words[1] == "cases":
        return f"left out: {words[0]} cases"
    return note.strip("*")


def _note(lines: list[str], note: str | None) -> None:
    """Append an estimate's note as its own paragraph, once per section."""
    if not note:
        return
    seen = {_note_key(line) for line in lines if line.startswith("*")}
    if _note_key(note) in seen:
        return
    if lines and lines[-1] != "":
        lines.append("")
    # A blank line after it too: a table straight after a paragraph line
    # would be read as more of that paragraph.
    lines += [f"*{note}*", ""]


def _who(r: DetectionReader | GradingReader) -> str:
    """A reader's code, labelled where the reader is not a person."""
    kind = r.kind
    return f"{r.reader} ({kind})" if kind in (SIMULATED, MACHINE) else str(r.reader)


def humans_label(readers: Iterable[ReportReader]) -> str:
    """What to call the report's (non-machine) readers: "Humans" unless simulated."""
    kinds = [r.kind for r in readers]
    simulated = sum(k == SIMULATED for k in kinds)
    if kinds and simulated == len(kinds):
        return "Simulated readers"
    if simulated:
        return f"Readers ({simulated} of {len(kinds)} simulated)"
    return "Humans"


def machine_name(model: str) -> str:
    """A machine reader's model as people read it."""
    return {
        "c2st": "CNN real vs synthetic (c2st)",
        "kl": f"CNN {KL.abbreviation} grader (kl)",
    }.get(model, model or "machine")


@dataclass(frozen=True)
class MachineComparison:
    """One line of the comparison: the readers' figure beside a machine's.

    ``figure`` is "accuracy" (a proportion, with the AUCs and fake-as-real
    rates beside it) or "kappa on real images" / "kappa on synthetic images".
    """

    phase: str
    figure: str
    humans: str
    n_humans: int
    human: Figure
    reader: object
    machine: str
    value: Figure | None
    auc: Figure | None = None
    human_auc: Figure | None = None
    fake_as_real: Figure | None = None
    human_fake_as_real: Figure | None = None

    @property
    def is_accuracy(self) -> bool:
        return self.figure == "accuracy"


def machine_comparison(report: Report) -> list[MachineComparison]:
    """Per phase, the human readers' headline figure beside each machine reader's.

    Detection phases compare accuracy (pooled over readers and images for
    people, over images for a classifier); grading phases compare the
    quadratic-weighted kappa against the reference grade.
    """
    out = []
    humans = humans_label(report.readers)
    for m in report.machine_readers:
        out += _machine_lines(report, m, humans)
    return out


def _machine_lines(
    report: Report, m: MachineReader, humans: str
) -> list[MachineComparison]:
    out = []
    phase = m.phase
    if m.detection and phase in report.detection:
        d = report.detection[phase]
        out.append(
            MachineComparison(
                phase=phase,
                figure="accuracy",
                humans=humans,
                n_humans=d.n_readers,
                human=d.pooled_accuracy,
                reader=m.reader,
                machine=machine_name(m.model),
                value=m.detection.accuracy,
                auc=m.detection.auc,
                human_auc=d.mrmc_auc,
                fake_as_real=m.detection.fake_as_real,
                human_fake_as_real=d.error_asymmetry.fake_as_real.pooled,
            )
        )
    if m.grading and phase in report.grading:
        g = report.grading[phase]
        for source in SOURCES:
            mine: GradeAgreement = m.grading[source]
            if not mine.n:
                continue
            out.append(
                MachineComparison(
                    phase=phase,
                    figure=f"kappa on {source} images",
                    humans=humans,
                    n_humans=g.n_readers,
                    human=getattr(g.summary, source).mean_kappa_quadratic,
                    reader=m.reader,
                    machine=machine_name(m.model),
                    value=mine.kappa_quadratic,
                )
            )
    return out


def _markdown_machines(report: Report) -> list[str]:
    rows = machine_comparison(report)
    if not rows:
        return []
    out = [
        "## Machine readers",
        "",
        "Classifiers of the machine Turing test answered the same cases; they are "
        "not among the readers of any figure above.",
        "",
        "| Phase | Figure | Readers | Machine reader |",
        "|---|---|---|---|",
    ]
    for r in rows:
        fmt = percent_ci_text if r.is_accuracy else ci_text
        out.append(
            f"| {r.phase} | {r.figure} | {r.humans} ({r.n_humans}): "
            f"{fmt(r.human)} | {r.machine} {r.reader}: {fmt(r.value)} |"
        )
        if r.is_accuracy and r.auc:
            out.append(
                f"| {r.phase} | AUC | {r.humans} (MRMC): {ci_text(r.human_auc)} | "
                f"{r.machine} {r.reader}: {ci_text(r.auc)} |"
            )
    out.append("")
    return out


def report_markdown(report: Report) -> str:
    """Render a report from :func:`~turingtest.stats.report.build_report` as Markdown."""
    out: list[str] = [
        f"# Visual Turing test report: {report.study or 'study'}",
        "",
    ]
    c = report.counts
    pct = f"{round(report.settings.level * 100)}%"
    simulated = sum(r.kind == SIMULATED for r in report.readers)
    machines = len({m.reader for m in report.machine_readers})
    out.append(
        f"{len(report.readers)} readers"
        + (f" ({simulated} simulated)" if simulated else "")
        + (f", and {machines} machine readers reported apart" if machines else "")
        + f"; {c.main} answers analysed "
        f"({c.practice} practice and {c.attention} attention-check answers "
        f"excluded). Intervals are {pct} confidence intervals."
    )
    out.append("")
    for phase, d in report.detection.items():
        out += _markdown_detection(phase, d, pct)
    for phase, g in report.grading.items():
        out += _markdown_grading(phase, g)
    out += _markdown_machines(report)
    out += _markdown_retest(report)
    out += questions_markdown(list(report.questions or []))
    a = report.attention
    out += ["## Attention checks", ""]
    if a.readers:
        out += ["| Reader | Checks | Failed | Unanswered |", "|---|---|---|---|"]
        for e in a.readers:
            out.append(f"| {e.reader} | {e.n} | {e.n_failed} | {e.n_unanswered} |")
    else:
        out.append(a.note or "None.")
    out.append("")
    if report.messages:
        out += ["## Messages", ""]
        out += [f"- {m}" for m in report.messages]
        out.append("")
    return "\n".join(out)


def _markdown_retest(report: Report) -> list[str]:
    retest = report.retest
    if not retest.readers:
        return []
    out = [
        "## Test-retest agreement",
        "",
        "Each reader's answers to the cases shown twice in a phase; the second "
        f"showings are in no other figure. {KL.abbreviation} grades by quadratic-weighted kappa, "
        "the real/synthetic call by Cohen's kappa. Flagged: kappa below "
        f"{number(retest.threshold, 2)}.",
        "",
        "| Reader | Phase | Question | Pairs | Same answer | Kappa | CI | Flag |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for e in retest.readers:
        out.append(
            f"| {e.reader} | {e.phase} | {QUESTION_LABELS[e.question]} "
            f"| {e.n} | {e.same} | {number(e.kappa)} | {interval_text(e.ci)} "
            f"| {'below' if e.flagged else ''} |"
        )
    out.append("")
    return out


def _markdown_detection(phase: str, d: Detection, pct: str) -> list[str]:
    out = [
        f"## Real or synthetic ({phase} phase)",
        "",
        f"{d.n_readers} readers, {d.n_cases} images ({d.n_real} real, "
        f"{d.n_synthetic} synthetic), {d.n_answers} answers.",
        "",
    ]
    _note(out, d.note)
    pa, pc, auc = d.pooled_accuracy, d.mrmc_percent_correct, d.mrmc_auc
    out += [
        "| Figure | Estimate (" + pct + " CI) | p |",
        "|---|---|---|",
        f"| Pooled accuracy (GEE, readers x images) | {ci_text(pa)} | {p_text(pa.p_value)} |",
        f"| Accuracy, MRMC (readers and images random) | {ci_text(pc)} | "
        f"{p_text(pc.p_value)} |",
        f"| AUC, MRMC (Obuchowski-Rockette, Hillis df) | {ci_text(auc)} | "
        f"{p_text(auc.p_value)} |",
    ]
    asym = d.error_asymmetry
    out += [
        f"| Fakes taken for real (pooled) | {ci_text(asym.fake_as_real.pooled)} | |",
        f"| Reals taken for fake (pooled) | {ci_text(asym.real_as_fake.pooled)} | |",
        f"| Difference, paired by reader | {ci_text(asym.difference)} | "
        f"{p_text(asym.difference.p_value)} |",
    ]
    eq = d.equivalence
    for e, label in ((eq.readers, "readers"), (eq.mrmc, "MRMC")):
        if e.estimate is not None:
            verdict = "equivalent" if e.get("equivalent") else "not shown equivalent"
            out.append(
                f"| TOST within 0.5 +/- {eq.margin} ({label}) | "
                f"{ci_text(e)} (90% CI): {verdict} | {p_text(e.p_value)} |"
            )
    ag = d.agreement
    for figure, label in (
        (ag.fleiss_kappa, "Fleiss' kappa"),
        (ag.krippendorff_alpha, "Krippendorff's alpha (calls)"),
        (
            ag.krippendorff_alpha_confidence,
            "Krippendorff's alpha (confidence, ordinal)",
        ),
    ):
        if figure is not None:
            out.append(f"| {label} | {ci_text(figure)} | {p_text(figure.p_value)} |")
    if ag.cohen_kappa.get("mean") is not None:
        out.append(
            f"| Mean pairwise Cohen's kappa | {number(ag.cohen_kappa.get('mean'))} | |"
        )
    out.append("")
    for item in (pa, pc, auc, eq.readers, eq.mrmc, ag.fleiss_kappa):
        _note(out, item.note)
    out += [
        "### Readers",
        "",
        "| Reader | Profession | Years | n | Accuracy | Sensitivity | Specificity "
        "| Fake as real | Real as fake | p | d' | c | AUC |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in d.readers:
        out.append(
            f"| {_who(r)} | {r.profession} | {number(r.experience_years)} | "
            f"{r.n} | {ci_text(r.accuracy)} | {number(r.sensitivity.estimate)} | "
            f"{number(r.specificity.estimate)} | {number(r.fake_as_real.estimate)} | "
            f"{number(r.real_as_fake.estimate)} | {p_text(r.p_value)} | "
            f"{number(r.d_prime, 2)} | {number(r.criterion, 2)} | "
            f"{number(r.auc.estimate) if r.auc else 'n/a'} |"
        )
    out.append("")
    out += [
        "### Subgroups",
        "",
        "| Grouping | Group | Readers | Mean accuracy | Pooled accuracy |",
        "|---|---|---|---|---|",
    ]
    for key in ("profession", "experience"):
        for g in d.subgroups[key]:
            out.append(
                f"| {key} | {g.group} | {g.n_readers} | {ci_text(g.mean_accuracy)} | "
                f"{ci_text(g.pooled_accuracy)} |"
            )
    out.append("")
    syn = [i for i in d.images if i.truth == SYNTHETIC and i.fraction_real is not None]
    if syn:
        out += [
            "### Most convincing synthetic images",
            "",
            "| Case | Image | Called real | Generator |",
            "|---|---|---|---|",
        ]
        for i in syn[:10]:
            out.append(
                f"| {i.case} | {i.image} | {number(i.fraction_real, 2)} "
                f"({i.n_called_real}/{i.n}) | {i.generator} |"
            )
        out.append("")
    t = d.reading_time
    if t.real.median is not None or t.synthetic.median is not None:
        out += [
            "### Reading time",
            "",
            f"Median seconds per image: real {number(t.real.median, 1)}, "
            f"synthetic {number(t.synthetic.median, 1)}; per-reader difference "
            f"{ci_text(t.difference, digits=2)}, p = {p_text(t.difference.p_value)}.",
            "",
        ]
    return out


def _markdown_grading(phase: str, g: Grading) -> list[str]:
    out = [
        f"## {KL.system.replace('–', '-')} grades ({phase} phase)",
        "",
        f"{g.n_readers} readers, {g.n_cases} images, {g.n_grades} grades.",
        "",
    ]
    _note(out, g.note)
    s = g.summary
    alpha = g.inter_reader_alpha
    out += [
        "| | Real images | Synthetic images |",
        "|---|---|---|",
        f"| Mean quadratic kappa vs reference | {ci_text(s.real.mean_kappa_quadratic)} | "
        f"{ci_text(s.synthetic.mean_kappa_quadratic)} |",
        f"| Exact agreement (pooled) | {ci_text(s.real.pooled_exact)} | "
        f"{ci_text(s.synthetic.pooled_exact)} |",
        f"| Inter-reader alpha (ordinal) | {ci_text(alpha[REAL])} | "
        f"{ci_text(alpha[SYNTHETIC])} |",
        "",
        f"Kappa real minus synthetic, paired by reader: {ci_text(s.kappa_difference)}, "
        f"p = {p_text(s.kappa_difference.p_value)}.",
        "",
        "| Reader | kappa real | kappa synthetic | exact real | exact synthetic "
        "| within one real | within one synthetic |",
        "|---|---|---|---|---|---|---|",
    ]

    def cell(d: GradeAgreement, figure: Figure | None) -> str:
        if not d.n or figure is None:
            return "n/a"
        return number(figure.estimate)

    for r in g.readers:
        real, syn = r.real, r.synthetic
        out.append(
            f"| {_who(r)} | {cell(real, real.kappa_quadratic)} | "
            f"{cell(syn, syn.kappa_quadratic)} | {cell(real, real.exact)} | "
            f"{cell(syn, syn.exact)} | {cell(real, real.within_one)} | "
            f"{cell(syn, syn.within_one)} |"
        )
    out.append("")
    for source in SOURCES:
        out += [
            f"Confusion, {source} images (rows reference, columns reader):",
            "",
            "| ref \\ reader | " + " | ".join(map(str, KL_GRADES)) + " |",
            "|---" * (len(KL_GRADES) + 1) + "|",
        ]
        for grade, row in zip(KL_GRADES, g.confusion[source], strict=True):
            out.append(f"| {grade} | " + " | ".join(map(str, row)) + " |")
        out.append("")
    return out


def questions_markdown(questions: Sequence[Mapping[str, Any]]) -> list[str]:
    """The report's section on the study's own questions (from ``to_dict``)."""
    if not questions:
        return []
    out = [
        "## Questions of this study",
        "",
        "Agreement between readers: the mean over reader pairs of Cohen's kappa, "
        "quadratic-weighted on ordinal scales, unweighted on nominal ones. Main "
        "cases, first showings.",
        "",
        "| Phase | Question | Readers | Images | Kappa (range) | Real: mean | "
        "Synthetic: mean |",
        "|---|---|---|---|---|---|---|",
    ]
    for q in questions:
        spread = {s["source"]: s for s in q["by_source"]}
        kappa = fixed_text(q["kappa"])
        if q["n_pairs"]:
            kappa += f" ({fixed_text(q['kappa_min'])} to {fixed_text(q['kappa_max'])})"
        out.append(
            f"| {q['phase']} | {q['key']} ({q['kind']}) | {q['n_readers']} | "
            f"{q['n_images']} | {kappa} | {fixed_text(spread['real']['mean'])} | "
            f"{fixed_text(spread['synthetic']['mean'])} |"
        )
    out.append("")
    for q in questions:
        spread = {s["source"]: s for s in q["by_source"]}
        out += [
            f"**{q['key']}**, answers per value:",
            "",
            "| Value | Real | Synthetic |",
            "|---|---|---|",
        ]
        for i, (code, label) in enumerate(zip(q["codes"], q["labels"], strict=True)):
            out.append(
                f"| {code} {label} | {spread['real']['counts'][i]} | "
                f"{spread['synthetic']['counts'][i]} |"
            )
        out.append("")
        out += _reference_markdown(q)
    return out


def _reference_markdown(q: Mapping[str, Any]) -> list[str]:
    """One question's answers against the pool's reference values."""
    ref = q.get("reference")
    if not ref:
        return []
    ordinal = ref["kind"] == "ordinal"
    by_source = ref["exact_by_source"]
    out = [
        f"**{q['key']}** against the reference values on the scale "
        f"{ref['scale']} ({ref['n_answers']} answers on {ref['n_images']} images "
        "with a reference value): exact agreement "
        f"{percent_ci_text(Figure.of(ref['exact']))}"
        + (
            f", within one step {percent_ci_text(Figure.of(ref['within_one']))}"
            if ordinal
            else ""
        )
        + "; exact on real images "
        + (MISSING if by_source["real"] is None else percent(by_source["real"]))
        + ", on synthetic images "
        + (
            MISSING
            if by_source["synthetic"] is None
            else percent(by_source["synthetic"])
        )
        + f"; mean kappa against the reference ({ref['weights']} weights) "
        f"{fixed_text(ref['mean_kappa'])}.",
        "",
        "| Reader | Answers | Exact | "
        + ("Within one | " if ordinal else "")
        + "Kappa |",
        "|---|---|---|" + ("---|" if ordinal else "") + "---|",
    ]
    for r in ref["readers"]:
        out.append(
            f"| {r['reader']} | {r['n']} | {percent_ci_text(Figure.of(r['exact']))} | "
            + (f"{percent_ci_text(Figure.of(r['within_one']))} | " if ordinal else "")
            + f"{ci_text(Figure.of(r['kappa']), 2)} |"
        )
    out.append("")
    codes = [str(c) for c in q["codes"]]
    for source in ("real", "synthetic"):
        out += [
            f"Confusion, {source} images (rows reference, columns reader):",
            "",
            "| ref \\ reader | " + " | ".join(codes) + " |",
            "|---" * (len(codes) + 1) + "|",
        ]
        for code, row in zip(codes, ref["confusion"][source], strict=True):
            out.append(f"| {code} | " + " | ".join(map(str, row)) + " |")
        out.append("")
    if ref.get("note"):
        out += [ref["note"], ""]
    return out
