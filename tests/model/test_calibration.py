"""Temperature scaling and the expected calibration error, on made-up logits."""
import numpy as np
import pytest

from biomeseason.model import calibration as C


def overconfident(n=3000, classes=6, sharpness=4.0, seed=0):
    """Logits of a classifier whose calibrated form is known, then sharpened by ``sharpness``.

    Labels are drawn from softmax(z), so softmax(z) is calibrated by
    construction and the over-confident logits are sharpness * z.
    """
    rng = np.random.default_rng(seed)
    z = rng.normal(0, 1.5, (n, classes))
    p = np.exp(z) / np.exp(z).sum(1, keepdims=True)
    labels = np.array([rng.choice(classes, p=row) for row in p])
    return sharpness * z, labels


def test_an_overconfident_head_gets_a_temperature_above_one_and_its_ece_drops():
    logits, labels = overconfident(sharpness=4.0)
    t = C.fit_temperature(logits, labels)
    assert t == pytest.approx(4.0, rel=0.15)  # the sharpening that was applied
    before, after = C.ece(C.softmax(logits), labels), C.ece(C.softmax(logits, t), labels)
    assert before > 0.15 and after < 0.04 and after < before / 4


def test_an_underconfident_head_gets_a_temperature_below_one():
    logits, labels = overconfident(sharpness=0.5, seed=1)
    assert C.fit_temperature(logits, labels) < 0.7


def test_the_temperature_changes_probabilities_but_never_the_answer():
    logits, labels = overconfident()
    t = C.fit_temperature(logits, labels)
    p1, pt = C.softmax(logits), C.softmax(logits, t)
    assert not np.allclose(p1, pt)
    assert np.array_equal(p1.argmax(1), pt.argmax(1))
    assert np.allclose(pt.sum(1), 1.0)


def test_unlabelled_rows_are_left_out_of_the_fit_and_the_error():
    logits, labels = overconfident(n=1500)
    noise = np.random.default_rng(5).normal(0, 30, (500, logits.shape[1]))  # wild logits, no labels
    all_logits = np.concatenate([logits, noise])
    all_labels = np.concatenate([labels, -np.ones(500, int)])
    assert C.fit_temperature(all_logits, all_labels) == pytest.approx(C.fit_temperature(logits, labels), rel=1e-6)
    assert C.ece(C.softmax(all_logits), all_labels) == pytest.approx(C.ece(C.softmax(logits), labels))
    assert C.fit_temperature(noise, -np.ones(500, int)) == 1.0
    assert C.ece(C.softmax(noise), -np.ones(500, int)) is None


def test_ece_matches_a_hand_computation():
    probs = np.array([[0.9, 0.1], [0.8, 0.2], [0.3, 0.7], [0.45, 0.55]])
    labels = np.array([0, 1, 1, 0])
    # Bins (15 on [0, 1]) hold 0.9 | 0.8 | 0.7 | 0.55 alone; right: 1, 0, 1, 0.
    expected = (abs(1 - 0.9) + abs(0 - 0.8) + abs(1 - 0.7) + abs(0 - 0.55)) / 4
    assert C.ece(probs, labels) == pytest.approx(expected)
    r = C.reliability(probs, labels)
    assert r["count"].sum() == 4 and len(r["edges"]) == C.BINS + 1


def test_a_calibrated_head_has_a_small_ece_and_keeps_a_temperature_near_one():
    logits, labels = overconfident(n=4000, sharpness=1.0, seed=2)
    assert C.ece(C.softmax(logits), labels) < 0.03
    summary = C.calibrate_head(logits, labels)
    assert summary["temperature"] == pytest.approx(1.0, abs=0.1)
    assert summary["n"] == 4000 and summary["ece_after"] < 0.03


def test_a_handful_of_validation_images_pull_the_temperature_less_far_from_one(monkeypatch):
    logits, labels = overconfident(n=12, sharpness=0.3, seed=3)  # under-confident, and very few images
    with_prior = C.fit_temperature(logits, labels)
    monkeypatch.setattr(C, "PRIOR_SD", 1e6)
    data_alone = C.fit_temperature(logits, labels)
    assert data_alone < with_prior < 1
    big_logits, big_labels = overconfident(n=3000, sharpness=0.3, seed=3)
    assert C.fit_temperature(big_logits, big_labels) == pytest.approx(0.3, rel=0.15)  # enough data: the truth


def drifting(n=3000, classes=6, seed=0, start=1.0, power=1.5):
    """Logits equally sure of themselves near and far, but whose truth softens with the
    distance: labels drawn from softmax(z / T(d)), T(d) = max(1, d / start) ** power."""
    rng = np.random.default_rng(seed)
    z = rng.normal(0, 3.0, (n, classes))
    d = rng.uniform(0.2, 3.0, n)
    t = np.maximum(1.0, d / start) ** power
    p = np.exp(z / t[:, None])
    p /= p.sum(1, keepdims=True)
    labels = np.array([rng.choice(classes, p=row) for row in p])
    return z, labels, d


def test_the_temperature_grows_with_the_distance_as_the_truth_does():
    z, labels, d = drifting()
    head = C.calibrate_head(z, labels, d, levels=(d > 1).astype(int))
    assert head["temperature"] == pytest.approx(1.0, abs=0.15)
    assert head["drift_start"] == pytest.approx(1.0, abs=0.3) and head["drift_power"] == pytest.approx(1.5, abs=0.3)
    # Far images: one temperature for all leaves them over-confident; the distance fixes that.
    plain = C.calibrate_head(z, labels)
    far = d > 2
    t = C.temperature_at(head, d)
    assert C.ece(C.softmax(z[far], t[far]), labels[far]) < 0.5 * C.ece(C.softmax(z[far], plain["temperature"]),
                                                                         labels[far])
    assert np.array_equal(C.softmax(z, t).argmax(1), z.argmax(1))   # no answer changes
    assert head["ece_drifted_after"] < head["ece_drifted_before"]


def test_a_head_without_drift_has_one_temperature_for_every_image():
    head = {"temperature": 1.7, "drift_start": None, "drift_power": None}
    assert C.temperature_at(head, np.array([0.1, 5.0])) == 1.7
    assert C.temperature_at({"temperature": 1.7, "drift_start": 0.5, "drift_power": 2.0}) == 1.7   # no distances
    t = C.temperature_at({"temperature": 1.0, "drift_start": 0.5, "drift_power": 2.0}, np.array([0.25, 1.0]))
    assert t.tolist() == [1.0, 4.0]


def test_drift_leaves_level_0_alone_and_moves_images_further_at_each_level():
    import torch

    images = torch.rand(4, 3, 32, 32, generator=torch.Generator().manual_seed(0))
    assert torch.equal(C.drift(images, 0), images)
    changes = [float((C.drift(images, level, torch.Generator().manual_seed(1)) - images).abs().mean())
               for level in (1, 2, 3, 4)]
    assert changes == sorted(changes) and changes[0] > 0.01
    out = C.drift(images, 4, torch.Generator().manual_seed(1))
    assert out.shape == images.shape and float(out.min()) >= 0 and float(out.max()) <= 1


def test_drift_blurs_a_few_images_at_a_time_to_what_the_whole_batch_gives(monkeypatch):
    import torch

    images = torch.rand(7, 3, 24, 24, generator=torch.Generator().manual_seed(0))
    monkeypatch.setattr(C, "BLUR_CHUNK", 1000)
    whole = C.drift(images, 3, torch.Generator().manual_seed(1))
    monkeypatch.setattr(C, "BLUR_CHUNK", 3)
    parts = C.drift(images, 3, torch.Generator().manual_seed(1))
    torch.testing.assert_close(parts, whole, rtol=0, atol=1e-6)   # the same images, the same random draws
    assert not torch.equal(parts, C.drift(images, 3, torch.Generator().manual_seed(2)))
