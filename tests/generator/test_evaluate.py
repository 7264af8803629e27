import json
import shutil

import numpy as np
import pytest
import torch
from scipy import linalg

from generator.evaluate import (
    EvalOptions,
    c2st,
    density_coverage,
    evaluate,
    frechet_distance,
    precision_recall,
)
from generator.sample import main as sample_main


def _noise(n, seed, bright=0.0):
    rng = np.random.default_rng(seed)
    x = rng.normal(110, 25, (n, 16, 16))
    x[:, 4:12, 4:12] += bright
    return np.clip(x, 0, 255).astype(np.uint8)


def test_c2st_cannot_separate_one_distribution_from_itself():
    res = c2st(_noise(150, 0), _noise(150, 1), folds=3, epochs=3)
    assert abs(res.auc - 0.5) < 0.15
    assert res.ci_low < 0.5 < res.ci_high


def test_c2st_separates_clearly_different_distributions():
    res = c2st(_noise(100, 0), _noise(100, 1, bright=60), folds=3, epochs=3)
    assert res.auc > 0.95
    assert res.p_value < 1e-6


def test_feature_distances_on_known_sets():
    rng = np.random.default_rng(0)
    x, y = rng.normal(size=(400, 6)), rng.normal(size=(300, 6)) * 1.5 + 0.3
    s1, s2 = np.cov(x, rowvar=False), np.cov(y, rowvar=False)
    ref = ((x.mean(0) - y.mean(0)) ** 2).sum() + np.trace(
        s1 + s2 - 2 * linalg.sqrtm(s1 @ s2).real
    )
    assert frechet_distance(x, y) == pytest.approx(ref, rel=1e-6)
    assert frechet_distance(x, x) == pytest.approx(0, abs=1e-6)
    assert precision_recall(x, x) == (1.0, 1.0)
    assert precision_recall(x, x + 100) == (0.0, 0.0)
    assert density_coverage(x, x + 100) == (0.0, 0.0)
    assert density_coverage(x, x)[1] == 1.0


def test_machine_turing_test_end_to_end(tiny_checkpoint, knee_data, tmp_path, capsys):
    synthetic = tmp_path / "synthetic"
    sample_main([str(tiny_checkpoint), "--seeds", "0-3", "--out", str(synthetic)])
    # A training image passed off as synthetic must be caught as a copy.
    planted = sorted((knee_data / "train" / "2").glob("*.png"))[0]
    shutil.copy(planted, synthetic / "2" / "planted.png")
    out = tmp_path / "eval"
    options = EvalOptions(
        real=str(knee_data / "test"),
        synthetic=str(synthetic),
        train=str(knee_data / "train"),
        out=str(out),
        cache=str(tmp_path / "cache"),
        classifier_epochs=1,
        c2st_epochs=1,
        folds=2,
    )
    report = evaluate(options)
    stages = capsys.readouterr().err
    for stage in ("1/4", "2/4", "3/4", "4/4"):
        assert stage in stages
    assert "(cached)" not in stages
    # The classifier and the floor do not depend on the synthetic images.
    again = evaluate(options)
    assert capsys.readouterr().err.count("(cached)") == 2
    assert again["features"]["floor"] == report["features"]["floor"]
    assert report["n"]["synthetic"] == 21 and report["n"]["real"] == 20
    for key in ("synthetic", "floor"):
        assert 0 <= report["c2st"][key]["auc"] <= 1
        assert np.isfinite(report["features"][key]["frechet_distance"])
    assert set(report["grade_fidelity"]) == {"synthetic", "real_test"}
    mem = report["memorisation"]
    assert mem["flagged_by_correlation"] >= 1
    assert any(p["synthetic"].endswith("planted.png") for p in mem["pairs"])
    assert (out / mem["pairs"][0]["file"]).exists()
    assert json.loads((out / "report.json").read_text())["resolution"] == 32
    text = (out / "report.md").read_text()
    assert "C2ST" in text or "two-sample" in text
    for plot in (
        "c2st_roc.png",
        "grade_confusion.png",
        "features_pca.png",
        "nearest_train_correlation.png",
        "closest_pairs.png",
    ):
        assert (out / plot).exists(), plot


def test_without_training_images_memorisation_is_skipped(
    tiny_checkpoint, knee_data, tmp_path
):
    synthetic = tmp_path / "s"
    sample_main([str(tiny_checkpoint), "--seeds", "0-1", "--out", str(synthetic)])
    report = evaluate(
        EvalOptions(
            real=str(knee_data / "test"),
            synthetic=str(synthetic),
            out=str(tmp_path / "e"),
            cache="",
            classifier_epochs=1,
            c2st_epochs=1,
            folds=2,
        )
    )
    assert report["memorisation"] is None
    assert "no `--train`" in (tmp_path / "e" / "report.md").read_text()


def test_the_kl_classifier_is_trained_once_per_training_set(tmp_path, knee_data):
    from generator.data import load_dataset
    from generator.evaluate import kl_classifier

    train = load_dataset(knee_data, 32)
    cache = tmp_path / "cache"
    first, hit = kl_classifier(
        train.images, train.labels, epochs=1, seed=0, cache=cache, progress=False
    )
    assert not hit and len(list(cache.glob("kl-classifier-*.pt"))) == 1
    again, hit = kl_classifier(
        train.images, train.labels, epochs=1, seed=0, cache=cache, progress=False
    )
    assert hit
    x = torch.from_numpy(train.images[:4]).unsqueeze(1).float() / 127.5 - 1
    with torch.no_grad():
        assert torch.allclose(first(x), again(x))
    other = train.images.copy()
    other[0, 0, 0] ^= 1  # one pixel of other training data: another classifier
    _, hit = kl_classifier(
        other, train.labels, epochs=1, seed=0, cache=cache, progress=False
    )
    assert not hit
