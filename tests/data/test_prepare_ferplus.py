"""``ferlab prepare ferplus``: FERPlus' folders and label files written from fer2013.csv + fer2013new.csv.

Hand-made csvs check each rule (blank names, a name on two rows, pixel duplicates within and across
splits); a subset of the FERPlus development data, turned back into the two csvs, comes out again
byte for byte (label files) and pixel for pixel (PNGs), and trains with ``--label-mode fer2013``."""
import csv
import hashlib
import json
from collections import defaultdict
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from ferlab import classes as C
from ferlab.cli import main
from ferlab.data.ferplus import ferplus
from ferlab.data.prepare_ferplus import FACE_BOX, FOLDERS, VOTE_COLUMNS, prepare_ferplus

FER_HEADER = ["emotion", "pixels", "Usage"]
PLUS_HEADER = ["Usage", "Image name", *VOTE_COLUMNS]


def write_csvs(folder: Path, fer_rows, plus_rows) -> tuple[Path, Path]:
    """``fer2013.csv`` from (emotion, (48, 48) uint8 pixels, usage) and ``fer2013new.csv`` from
    (usage, name, 10 votes), as Kaggle and FERPlus write them."""
    folder.mkdir(parents=True, exist_ok=True)
    fer, plus = folder / "fer2013.csv", folder / "fer2013new.csv"
    with open(fer, "w", newline="") as f:
        w = csv.writer(f, lineterminator="\n")
        w.writerow(FER_HEADER)
        for emotion, pixels, usage in fer_rows:
            w.writerow([emotion, " ".join(str(int(p)) for p in np.asarray(pixels).ravel()), usage])
    with open(plus, "w", newline="") as f:
        w = csv.writer(f, lineterminator="\n")
        w.writerow(PLUS_HEADER)
        for usage, name, votes in plus_rows:
            w.writerow([usage, name, *votes])
    return fer, plus


def pixels_of(path: Path) -> np.ndarray:
    with Image.open(path) as im:
        assert im.mode == "L" and im.size == (48, 48), path
        return np.asarray(im).copy()


def read_csv(path: Path, dicts: bool = False) -> list:
    with open(path, newline="") as f:
        return list(csv.DictReader(f) if dicts else csv.reader(f))


def run_cli(argv, capsys):
    try:
        rc = main(argv)
    except SystemExit as e:
        rc = e.code
    out = capsys.readouterr()
    return rc, out.out, out.err


# -- every rule, on csvs written by hand --------------------------------------------------------------

def image(seed: int) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, (48, 48), dtype=np.uint8)


A, B, CC, D, E = (image(s) for s in range(5))
V = [[i, 10 - i, 0, 0, 0, 0, 0, 0, 0, 0] for i in range(9)]          # distinct vote rows
HAND_FER = [(3, A, "Training"), (2, B, "Training"), (4, CC, "Training"), (5, A, "Training"), (1, D, "Training"),
            (6, E, "PublicTest"), (6, E, "PublicTest"), (0, A, "PrivateTest")]
HAND_PLUS = [("Training", "fer0000000.png", V[0]),
             ("Training", "", V[1]),                        # FERPlus dropped the row: no image
             ("Training", "fer0000001.png", V[2]),          # the name comes again on row 4 ...
             ("Training", "fer0000002.png", V[3]),          # the pixels of row 0, another emotion
             ("Training", "fer0000001.png", V[4]),          # ... whose pixels and votes the file keeps
             ("PublicTest", "fer0000003.png", V[5]),
             ("PublicTest", "fer0000004.png", V[6]),        # the pixels of row 5, the same emotion
             ("PrivateTest", "fer0000005.png", V[7])]       # row 0's pixels, in another split


@pytest.fixture
def hand(tmp_path):
    fer, plus = write_csvs(tmp_path / "csv", HAND_FER, HAND_PLUS)
    out = tmp_path / "out"
    return fer, plus, out, prepare_ferplus(fer, plus, out, progress=False)


def test_every_rule_by_hand(hand):
    out, done = hand[2], hand[3]
    assert (out / "FER2013Train" / "label.csv").read_bytes() == (
        f'fer0000000.png,"{FACE_BOX}",0,10,0,0,0,0,0,0,0,0\n'
        f'fer0000001.png,"{FACE_BOX}",4,6,0,0,0,0,0,0,0,0\n'    # row 4's votes: the file holds row 4's pixels
        f'fer0000002.png,"{FACE_BOX}",3,7,0,0,0,0,0,0,0,0\n').encode()
    assert (out / "FER2013Valid" / "label.csv").read_text() == (
        f'fer0000003.png,"{FACE_BOX}",5,5,0,0,0,0,0,0,0,0\nfer0000004.png,"{FACE_BOX}",6,4,0,0,0,0,0,0,0,0\n')
    assert (out / "FER2013Test" / "label.csv").read_text() == f'fer0000005.png,"{FACE_BOX}",7,3,0,0,0,0,0,0,0,0\n'
    assert (out / "fer2013_labels.csv").read_bytes() == (
        b"row,usage,image_name,fer2013_emotion,status\r\n"
        b"0,Training,fer0000000.png,-1,ambiguous\r\n"          # rows 0 and 3: the same pixels, emotions 3 and 5
        b"1,Training,,-1,ferplus_dropped\r\n"
        b"2,Training,fer0000001.png,-1,no_pixels\r\n"
        b"3,Training,fer0000002.png,-1,ambiguous\r\n"
        b"4,Training,fer0000001.png,1,unique\r\n"
        b"5,PublicTest,fer0000003.png,6,dup_same_label\r\n"
        b"6,PublicTest,fer0000004.png,6,dup_same_label\r\n"
        b"7,PrivateTest,fer0000005.png,0,unique\r\n")   # row 0's pixels in another split: no group
    for folder, name, pixels in [("FER2013Train", "fer0000000.png", A), ("FER2013Train", "fer0000001.png", D),
                                 ("FER2013Train", "fer0000002.png", A), ("FER2013Valid", "fer0000003.png", E),
                                 ("FER2013Valid", "fer0000004.png", E), ("FER2013Test", "fer0000005.png", A)]:
        assert np.array_equal(pixels_of(out / folder / name), pixels), name
    assert sorted(p.name for p in out.rglob("*.png")) == [f"fer000000{i}.png" for i in (0, 1, 2, 3, 4, 5)]
    assert done.splits["FER2013Train"] == {"rows": 5, "images": 3, "dropped": 1, "written_twice": 1}
    assert done.statuses == {"unique": 2, "dup_same_label": 2, "ambiguous": 2, "ferplus_dropped": 1, "no_pixels": 1}
    assert not done.full and done.rows == 8


def test_the_loader_reads_the_prepared_folders(hand):
    out = hand[2]
    ds = ferplus(out, "train", label_mode="fer2013", num_classes=8, drop_unlabeled=False)
    assert ds.meta["names"] == ["fer0000000.png", "fer0000001.png", "fer0000002.png"]
    # FER2013 emotion 1 is disgust; the ambiguous images have no label
    assert ds.labels.tolist() == [-1, C.FERPLUS8.index("disgust"), -1]
    # votes [4, 6, 0...]: happiness has 6 of 10
    assert ds.clean_labels.tolist()[1] == C.FERPLUS8.index("happiness")
    assert len(ferplus(out, "test", label_mode="fer2013")) == 1   # FER2013 0 (anger) is one of the 7 classes


def test_the_command_says_what_it_wrote(tmp_path, capsys):
    fer, plus = write_csvs(tmp_path / "csv", HAND_FER, HAND_PLUS)
    rc, out, err = run_cli(["prepare", "ferplus", "--fer2013-csv", str(fer), "--ferplus-csv", str(plus),
                            "--out", str(tmp_path / "o"), "--no-progress"], capsys)
    assert rc == 0, err
    assert "FER2013Train: 3 PNG + label.csv from 5 rows (1 without an image name not written; 1 name(s) on two " \
           "rows: the later row's image and votes)" in out
    assert "FER2013Valid: 2 PNG + label.csv from 2 rows\n" in out and "FER2013Test: 1 PNG" in out
    assert "fer2013_labels.csv: 8 rows (2 unique, 2 dup_same_label, 2 ambiguous, 1 ferplus_dropped, 1 no_pixels)" in out
    assert "not the 35,887 of the full FER2013" in out
    # a second run into the same folder is refused: it would mix two preparations
    rc, out, err = run_cli(["prepare", "ferplus", "--fer2013-csv", str(fer), "--ferplus-csv", str(plus),
                            "--out", str(tmp_path / "o"), "--no-progress"], capsys)
    assert rc == 2 and err.strip() == (f"ferlab prepare: error: {tmp_path / 'o' / 'FER2013Train' / 'label.csv'}: "
                                       f"already exists; prepare FERPlus into a new folder (or remove the earlier "
                                       f"label files)")


def _lines(text: str) -> list[str]:
    return [x for x in text.splitlines() if x.strip()]


@pytest.mark.parametrize("case, needles", [
    ("fer-short", ["fer2013.csv: 7 rows, but", "fer2013new.csv has 8", "35,887"]),
    ("plus-short", ["fer2013new.csv: 7 rows, but", "fer2013.csv has 8"]),
    ("fer-reordered", ["fer2013.csv:2: row 0 has Usage 'PrivateTest' but", "fer2013new.csv:2 has 'Training'",
                       "do not line up"]),
    ("fer-cut-mid-row", ["fer2013.csv:9: 2 columns, expected emotion, pixels and Usage", "truncated"]),
    ("fer-header", ["fer2013.csv:1: header lacks Usage"]),
    ("plus-votes", ["fer2013new.csv:3: vote counts must be integers"]),
    ("plus-path-name", ["fer2013new.csv:2: image name '../x.png' is not a plain file name"]),
])
def test_bad_csvs_are_one_line_exit_2_and_write_nothing(tmp_path, capsys, case, needles):
    fer_rows, plus_rows = list(HAND_FER), [list(r) for r in HAND_PLUS]
    if case == "fer-short":
        fer_rows = fer_rows[:-1]
    elif case == "plus-short":
        plus_rows = plus_rows[:-1]
    elif case == "fer-reordered":
        fer_rows = fer_rows[::-1]
    elif case == "plus-votes":
        plus_rows[1][2] = [0] * 9 + ["x"]
    elif case == "plus-path-name":
        plus_rows[0][1] = "../x.png"
    fer, plus = write_csvs(tmp_path / "csv", fer_rows, plus_rows)
    if case == "fer-cut-mid-row":
        data = fer.read_bytes()
        fer.write_bytes(data[:data.rfind(b"\n", 0, len(data) - 1) + 1 + 4000])   # the last row cut short
    elif case == "fer-header":
        fer.write_text(fer.read_text().replace("Usage", "usage_", 1))
    out = tmp_path / "out"
    rc, _, err = run_cli(["prepare", "ferplus", "--fer2013-csv", str(fer), "--ferplus-csv", str(plus),
                          "--out", str(out), "--no-progress"], capsys)
    assert rc == 2 and "Traceback" not in err
    assert len(_lines(err)) == 1 and err.startswith("ferlab prepare: error: "), err
    for needle in needles:
        assert needle in err, (needle, err)
    assert not out.exists() or not any(out.rglob("*.*")), "nothing is written before both files are checked"


def test_missing_file_and_flag_are_one_line(tmp_path, capsys):
    fer, plus = write_csvs(tmp_path / "csv", HAND_FER, HAND_PLUS)
    rc, _, err = run_cli(["prepare", "ferplus", "--fer2013-csv", str(tmp_path / "nope.csv"), "--ferplus-csv",
                          str(plus), "--out", str(tmp_path / "o")], capsys)
    expected = (f"ferlab prepare: error: {tmp_path / 'nope.csv'}: not found (expected Kaggle's fer2013.csv with "
                f"columns emotion, pixels, Usage)")
    assert rc == 2 and _lines(err) == [expected]
    rc, _, err = run_cli(["prepare", "ferplus", "--fer2013-csv", str(fer), "--out", str(tmp_path / "o")], capsys)
    assert rc == 2 and len(_lines(err)) == 1 and "--ferplus-csv" in err


# -- the development data, round trip ------------------------------------------------------------------

def dev_subset(root: Path, first: int = 60) -> list[int]:
    """Rows of the development data to rebuild: the first ``first`` rows of each Usage (blank names,
    the names' lag, pixel duplicates), every row of a name FERPlus used twice, and whole groups of
    PNGs of a split that hold the same pixels (statuses dup_same_label / ambiguous hold only for the
    whole group): those of the rows above and every group with conflicting labels. Left out: 'ambiguous' rows
    whose pixels no other PNG repeats -- the data's label recovery (JPEG copies) flagged them, which no rule on
    the csv's pixels reproduces."""
    table = read_csv(root / "fer2013_labels.csv", dicts=True)
    chosen = set()
    seen = defaultdict(int)
    for i, r in enumerate(table):
        seen[r["usage"]] += 1
        if seen[r["usage"]] <= first:
            chosen.add(i)
    rows_of = defaultdict(list)
    for i, r in enumerate(table):
        if r["image_name"]:
            rows_of[(r["usage"], r["image_name"])].append(i)
    twice = [rows for rows in rows_of.values() if len(rows) > 1]
    chosen |= {i for rows in twice if all(table[j]["status"] in ("no_pixels", "unique") for j in rows) for i in rows}
    groups = defaultdict(list)
    for i, r in enumerate(table):
        if r["status"] in ("dup_same_label", "ambiguous"):
            digest = hashlib.sha1(pixels_of(root / FOLDERS[r["usage"]] / r["image_name"]).tobytes()).digest()
            groups[(r["usage"], digest)].append(i)
    group_of = {i: members for members in groups.values() for i in members}
    chosen |= {min(m) for m in groups.values() if len(m) > 1 and table[m[0]]["status"] == "ambiguous"}
    for i in list(chosen):
        if i in group_of:
            chosen |= set(group_of[i])
    return sorted(i for i in chosen if i not in group_of or len(group_of[i]) > 1)


@pytest.fixture(scope="module")
def round_trip(ferplus_root, tmp_path_factory):
    """The two csvs rebuilt from a subset of the development data (PNG pixels, label.csv votes,
    fer2013_labels.csv emotions), and the expected label files."""
    root = Path(ferplus_root)
    rows = dev_subset(root)
    plus_all = read_csv(root / "fer2013new.csv")[1:]
    table = read_csv(root / "fer2013_labels.csv", dicts=True)
    table_lines = (root / "fer2013_labels.csv").read_bytes().split(b"\r\n")
    label_lines = {}
    for folder in FOLDERS.values():
        for line in (root / folder / "label.csv").read_bytes().splitlines(keepends=True):
            label_lines[(folder, line.split(b",", 1)[0].decode())] = line
    group = defaultdict(int)
    fer_rows, plus_rows = [], []
    for i in rows:
        r, usage, name = table[i], plus_all[i][0], plus_all[i][1]
        folder = FOLDERS[usage]
        has_png = r["status"] not in ("ferplus_dropped", "no_pixels")
        pixels = pixels_of(root / folder / name) if has_png else image(1000 + i)
        if r["status"] == "ambiguous":      # the group's members get different emotions
            key = hashlib.sha1(pixels.tobytes()).digest()
            emotion, group[key] = group[key], group[key] + 1
        elif has_png:
            emotion = int(r["fer2013_emotion"])
        else:
            emotion = i % 7
        votes = (next(csv.reader([label_lines[(folder, name)].decode()]))[2:] if name else plus_all[i][2:])
        fer_rows.append((emotion, pixels, usage))
        plus_rows.append((usage, name, votes))
    work = tmp_path_factory.mktemp("ferplus_round_trip")
    fer, plus = write_csvs(work / "csv", fer_rows, plus_rows)
    names = {f: {plus_all[i][1] for i in rows if plus_all[i][1] and FOLDERS[plus_all[i][0]] == f}
             for f in FOLDERS.values()}
    expected_labels = {f: b"".join(line for (g, n), line in label_lines.items() if g == f and n in names[f])
                       for f in FOLDERS.values()}     # label_lines keeps each file's order
    expected_table = b"".join([table_lines[0] + b"\r\n"] + [
        f"{j},".encode() + table_lines[1 + i].split(b",", 1)[1] + b"\r\n" for j, i in enumerate(rows)])
    return {"root": root, "rows": rows, "table": table, "fer": fer, "plus": plus, "work": work, "names": names,
            "expected_labels": expected_labels, "expected_table": expected_table}


@pytest.mark.realdata
@pytest.mark.slow
def test_development_data_round_trips_exactly(round_trip, capsys):
    rt = round_trip
    statuses = {rt["table"][i]["status"] for i in rt["rows"]}
    assert statuses == {"unique", "dup_same_label", "ambiguous", "ferplus_dropped", "no_pixels"}, statuses
    out = rt["work"] / "prepared"
    rc, text, err = run_cli(["prepare", "ferplus", "--fer2013-csv", str(rt["fer"]), "--ferplus-csv",
                             str(rt["plus"]), "--out", str(out), "--no-progress"], capsys)
    assert rc == 0, err
    for folder in FOLDERS.values():
        got = (out / folder / "label.csv").read_bytes()
        assert got == rt["expected_labels"][folder], folder
        assert sorted(p.name for p in (out / folder).glob("*.png")) == sorted(rt["names"][folder])
        for name in rt["names"][folder]:
            assert np.array_equal(pixels_of(out / folder / name), pixels_of(rt["root"] / folder / name)), name
        images = len(rt["names"][folder])
        assert f"{folder}: {images:,} PNG + label.csv" in text
    assert (out / "fer2013_labels.csv").read_bytes() == rt["expected_table"]


@pytest.mark.realdata
def test_truncated_and_reordered_development_csvs_are_one_line(round_trip, capsys):
    rt = round_trip
    lines = rt["fer"].read_bytes().splitlines(keepends=True)
    bad = rt["work"] / "bad"
    bad.mkdir(exist_ok=True)
    (bad / "truncated.csv").write_bytes(b"".join(lines[:-3]))
    (bad / "reordered.csv").write_bytes(lines[0] + b"".join(lines[:0:-1]))
    n = len(lines) - 1
    for name, needle in [("truncated.csv", f"truncated.csv: {n - 3:,} rows, but {rt['plus']} has {n:,}"),
                         ("reordered.csv", "reordered.csv:2: row 0 has Usage 'PrivateTest'")]:
        rc, _, err = run_cli(["prepare", "ferplus", "--fer2013-csv", str(bad / name), "--ferplus-csv",
                              str(rt["plus"]), "--out", str(bad / name.replace(".csv", "_out")), "--no-progress"],
                             capsys)
        assert rc == 2 and len(_lines(err)) == 1 and needle in err and "Traceback" not in err, err


@pytest.mark.realdata
def test_train_with_fer2013_labels_on_the_prepared_folders(round_trip, capsys):
    rt = round_trip
    out = rt["work"] / "prepared_for_train"
    assert main(["prepare", "ferplus", "--fer2013-csv", str(rt["fer"]), "--ferplus-csv", str(rt["plus"]),
                 "--out", str(out), "--no-progress"]) == 0
    assert main(["datasets", "ferplus", "--data-root", str(out), "--label-mode", "fer2013"]) == 0
    counts = capsys.readouterr().out
    train = ferplus(out, "train", label_mode="fer2013")
    assert f"ferplus train: {len(train)} images" in counts
    runs = rt["work"] / "runs"
    rc = main(["train", "--method", "baseline", "--dataset", "ferplus", "--data-root", str(out), "--label-mode",
               "fer2013", "--backbone", "resnet10", "--input-size", "32", "--image-size", "32", "--epochs", "1",
               "--batch-size", "16", "--device", "cpu", "--out-dir", str(runs), "--name", "fer2013", "--no-progress"])
    assert rc == 0, capsys.readouterr().err
    summary = json.loads((runs / "fer2013" / "summary.json").read_text())
    assert summary["dataset"] == "ferplus-train-fer2013"
    # the run trained on the original FER2013 labels of the prepared table, which differ from the majority
    table = {r["image_name"]: int(r["fer2013_emotion"]) for r in read_csv(out / "fer2013_labels.csv", dicts=True)
             if r["image_name"] and r["status"] != "no_pixels"}
    expected = C.remap([table[n] for n in train.meta["names"]], C.FER2013, C.FERPLUS7)
    assert np.array_equal(train.labels, expected) and (train.labels != train.clean_labels).any()
