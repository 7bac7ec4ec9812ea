import numpy as np
import pytest

from ferlab.engine.metrics import confusion_matrix, mean_class_accuracy, noise_detection_auroc, train_fit_report
from ferlab.engine.protocol import summarize


def test_protocol_numbers_by_hand():
    hist = [{"epoch": 1, "val_acc": 0.5, "test_acc": 0.40}, {"epoch": 2, "val_acc": 0.7, "test_acc": 0.60},
            {"epoch": 3, "val_acc": 0.6, "test_acc": 0.80}, {"epoch": 4, "val_acc": 0.7, "test_acc": 0.50}]
    s = summarize(hist, k=2)
    assert s["last"] == 0.5 and s["mean_last_k"] == pytest.approx(0.65)
    assert s["best_val"] == 0.6 and s["best_val_epoch"] == 2  # first epoch with the best val accuracy
    assert s["best_test"]["value"] == 0.8 and "optimistic" in s["best_test"]["flag"]


def test_confusion_and_mean_class_accuracy():
    cm = confusion_matrix([0, 0, 0, 1, -1], [0, 0, 1, 1, 0], 3)
    assert cm.tolist() == [[2, 1, 0], [0, 1, 0], [0, 0, 0]]
    assert mean_class_accuracy(cm) == pytest.approx((2 / 3 + 1) / 2)


def test_train_fit_report():
    clean = np.array([0, 1, 2, 3])
    noisy = np.array([0, 1, 0, 0])  # last two flipped
    preds = np.array([0, 2, 0, 3])  # memorises one flip, recovers the other
    r = train_fit_report(preds, noisy, clean)
    assert r["acc_intact"] == 0.5 and r["memorised_flipped"] == 0.5 and r["recovered_flipped"] == 0.5


def test_auroc():
    assert noise_detection_auroc([0.1, 0.2, 0.8, 0.9], [0, 0, 1, 1]) == 1.0
    assert np.isnan(noise_detection_auroc([0.1, 0.2], [0, 0]))
