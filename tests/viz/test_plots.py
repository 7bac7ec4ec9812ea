from ferlab.viz.plots import memorisation_curves, save_figure


def test_memorisation_curves_writes_png_and_svg(tmp_path):
    rows = [{"epoch": e, "test_acc": 0.5 + 0.01 * e, "val_acc": 0.6 - 0.01 * e} for e in range(1, 5)]
    rows[1]["train_fit"] = {"memorised_flipped": 0.2, "acc_intact": 0.8}
    rows[3]["train_fit"] = {"memorised_flipped": 0.6, "acc_intact": 0.9}
    fig = memorisation_curves({"baseline": rows, "eac": rows[:2]}, title="t")
    ax_test, ax_fit = fig.axes
    assert len(ax_test.lines) == 2 and len(ax_fit.lines) == 4          # 2 runs; flipped + intact each
    marker = ax_test.collections[0].get_offsets()[0]
    assert tuple(marker) == (1.0, 0.51)                                   # best *validation* epoch, not best test
    paths = save_figure(fig, tmp_path / "fig")
    assert [p.suffix for p in paths] == [".png", ".svg"] and all(p.stat().st_size > 0 for p in paths)


def test_noise_signal_histograms_report_the_auroc_of_each_signal():
    import numpy as np

    from ferlab.viz.plots import noise_signal_histograms
    flipped = np.arange(100) < 30
    perfect = flipped.astype(float) + np.linspace(0, 0.1, 100)
    inverted = 1 - perfect
    fig = noise_signal_histograms({"perfect": (perfect, flipped), "inverted": (inverted, flipped)})
    titles = [ax.get_title() for ax in fig.axes]
    assert titles == ["perfect\nAUROC 1.000", "inverted\nAUROC 0.000"]


def test_confusion_matrices_are_row_normalised_with_accuracy_in_the_title():
    import numpy as np

    from ferlab.viz.plots import confusion_matrices
    cm = np.array([[8, 2], [1, 9]])
    fig = confusion_matrices({"run": cm}, ["anger", "happiness"])
    ax = fig.axes[0]
    assert ax.get_title() == "run (acc 85.0%)"
    assert np.allclose(ax.images[0].get_array(), [[0.8, 0.2], [0.1, 0.9]])
    assert [t.get_text() for t in ax.texts] == ["80", "20", "10", "90"]


def test_label_distributions_draw_one_bar_group_per_source():
    import numpy as np

    from ferlab.viz.plots import label_distributions
    imgs = np.zeros((2, 3, 8, 8), dtype=np.uint8)
    votes = np.array([[0.5, 0.5, 0.0], [0.0, 0.1, 0.9]])
    fig = label_distributions(imgs, {"votes": votes, "dmue": votes[::-1]}, ["a", "b", "c"], titles=["x", "y"])
    bars = fig.axes[2].patches          # second row, first image
    assert len(bars) == 6 and [round(b.get_height(), 2) for b in bars[:3]] == [0.5, 0.5, 0.0]


def test_labelled_faces_mark_the_flipped_labels():
    import numpy as np

    from ferlab.viz.plots import labelled_faces
    imgs = np.arange(5 * 3 * 4 * 4, dtype=np.uint8).reshape(5, 3, 4, 4)
    fig = labelled_faces(imgs, np.array([0, 1, 2, 0, 1]), np.array([0, 2, 2, -1, 1]), ["a", "b", "c"], cols=3)
    axes = fig.axes
    assert len(axes) == 6 and not axes[5].images                     # 2 rows of 3, the last tile empty
    assert [ax.get_title() for ax in axes[:5]] == ["a", "given: b\nclean: c", "c", "a", "b"]
    red = [ax.title.get_color() for ax in axes[:5]]
    assert red[1] == "tab:red" and red.count("tab:red") == 1
    assert (axes[0].images[0].get_array() == imgs[0].transpose(1, 2, 0)).all()     # drawn channels-last
    assert [ax.get_title() for ax in labelled_faces(imgs[:2], [1, 1], None, ["a", "b"], cols=2).axes] == ["b", "b"]


def test_accuracy_vs_noise_averages_seeds_and_places_real_noise_apart():
    from ferlab.viz.plots import accuracy_vs_noise

    def row(m, s, v, seed=0):
        return {"method": m, "setting": s, "seed": seed, "protocol": {"mean_last_k": v}}
    rows = [row("baseline", "clean", 0.8), row("baseline", "sym30", 0.5), row("baseline", "sym30", 0.6, 1),
            row("eac", "clean", 0.82), row("eac", "sym30", 0.7), row("eac", "fer2013", 0.65)]
    fig = accuracy_vs_noise(rows)
    ax = fig.axes[0]
    lines = {c.get_label(): c.lines[0] for c in ax.containers if not c.get_label().startswith("_")}
    assert list(lines["baseline"].get_xdata()) == [0, 30]
    assert list(lines["baseline"].get_ydata()) == [80.0, 55.0]          # mean of the two seeds
    labels = [t.get_text() for t in ax.get_xticklabels()]
    assert labels[-1] == "FER2013\nlabels"
