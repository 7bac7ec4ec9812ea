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
