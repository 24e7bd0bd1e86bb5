"""Adapters on the real label files of the public sets (from the torchxrayvision wheel) and
on generated folders that follow the documented layouts of the others."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from cxrkit.data.table import load_table
from cxrkit.datasets import get_dataset, list_datasets, prepare_dataset
from cxrkit.datasets.siim import decode_rle
from cxrkit.datasets.vinbigdata import fuse_boxes, reader_counts
from cxrkit.errors import DatasetError
from datasets_fixtures import excerpt, film, link, mask, xrv_data_dir

# NIH ChestX-ray14's published per-finding image counts (README_CHESTXRAY, NIH 2017).
NIH_COUNTS = {
    "Atelectasis": 11559, "Cardiomegaly": 2776, "Consolidation": 4667, "Edema": 2303,
    "Emphysema": 2516, "Fibrosis": 1686, "Hernia": 227, "Infiltration": 19894, "Mass": 5782,
    "Nodule": 6331, "Pleural Effusion": 13317, "Pleural Thickening": 3385, "Pneumonia": 1431,
    "Pneumothorax": 5302,
}  # fmt: skip


def _rows(out: Path) -> list[dict[str, str]]:
    with (out / "labels.csv").open(newline="") as fh:
        return list(csv.DictReader(fh))


def test_registry_lists_every_set_with_licence_and_citation():
    names = [s.name for s in list_datasets()]
    assert names == sorted(names) and len(names) == 12
    for spec in list_datasets():
        assert spec.licence and spec.citation and spec.labels and spec.layout
        assert spec.downloadable or spec.access  # either a download or how to obtain it
    assert get_dataset("VinBigData").name == "vindr"
    with pytest.raises(DatasetError, match="did you mean"):
        get_dataset("chexpertt")


def test_nih_real_table_counts(tmp_path):
    data = xrv_data_dir()
    root = tmp_path / "nih"
    link(data / "Data_Entry_2017_v2020.csv.gz", root)
    link(data / "BBox_List_2017.csv.gz", root)
    (root / "train_val_list.txt").write_text("00000001_000.png\n")
    (root / "test_list.txt").write_text("00000001_001.png\n")
    info = prepare_dataset("nih", root, tmp_path / "out", check_files=False)
    assert info["films"] == 112_120 and info["patients"] == 30_805
    assert info["counts"] == NIH_COUNTS
    boxes = list(csv.DictReader((tmp_path / "out" / "boxes.csv").open()))
    assert len(boxes) == 984 and len({b["path"] for b in boxes}) == 880
    assert "Infiltration" in {b["finding"] for b in boxes}  # NIH's "Infiltrate" spelling mapped
    rows = _rows(tmp_path / "out")
    assert rows[0]["label"] == "Cardiomegaly" and rows[0]["split"] == "train"
    assert rows[1]["split"] == "test" and rows[2]["split"] == ""
    assert {r["view"] for r in rows} == {"PA", "AP"}
    assert (
        sum(r["view"] == "PA" for r in rows) == 67_310
    )  # as awk counts column 7 of the same table


@pytest.mark.slow
def test_nih_prepare_on_all_112120_file_names_then_load_table(tmp_path):
    import time

    data = xrv_data_dir()
    root = tmp_path / "nih"
    link(data / "Data_Entry_2017_v2020.csv.gz", root)
    images = root / "images"
    images.mkdir()
    names = [r["Image Index"] for r in _gz_rows(data / "Data_Entry_2017_v2020.csv.gz")]
    for name in names:
        (images / name).touch()
    t0 = time.monotonic()
    info = prepare_dataset("nih", root, tmp_path / "out")
    table = load_table(tmp_path / "out")
    elapsed = time.monotonic() - t0
    assert info["films"] == len(table) == 112_120 and len(set(table.patient_ids())) == 30_805
    assert table.task == "multilabel" and len(table.class_names) == 14
    assert elapsed < 60, f"prepare + load_table took {elapsed:.1f} s"


def _gz_rows(path: Path) -> list[dict[str, str]]:
    import gzip

    with gzip.open(path, "rt", newline="") as fh:
        return list(csv.DictReader(fh))


def test_vindr_real_table_three_readers_majority_and_any(tmp_path):
    data = xrv_data_dir()
    root = tmp_path / "vin"
    link(data / "vinbigdata-train.csv.gz", root)
    counts = reader_counts(root)
    assert len(counts) == 15_000 and set(counts.values()) == {3}
    major = prepare_dataset("vindr", root, tmp_path / "maj", check_files=False)
    anyone = prepare_dataset("vindr", root, tmp_path / "any", readers="any", check_files=False)
    assert major["films"] == anyone["films"] == 15_000
    for name, n in major["counts"].items():
        assert anyone["counts"][name] > n  # one reader is enough: more positives
    assert major["uncertain_films"] > 0 and anyone["uncertain_films"] == 0
    boxes = list(csv.DictReader((tmp_path / "maj" / "boxes.csv").open()))
    readers = {b["reader"] for b in boxes}
    assert {"R8", "R9", "R10"} <= readers and any(r.startswith("fused") for r in readers)


def test_fuse_boxes_groups_overlapping_readers():
    boxes = [
        ("R1", (10.0, 10.0, 50.0, 50.0)),
        ("R2", (12.0, 11.0, 52.0, 49.0)),
        ("R3", (200.0, 200.0, 220.0, 220.0)),
    ]
    fused = fuse_boxes(boxes, min_readers=2)
    assert len(fused) == 1 and fused[0][1] == 2
    assert fused[0][0] == pytest.approx((11.0, 10.5, 51.0, 49.5))
    assert len(fuse_boxes(boxes, min_readers=1)) == 2


def test_openi_real_reports_and_xvision_task(tmp_path):
    data = xrv_data_dir()
    root = tmp_path / "openi"
    link(data / "NLMCXR_reports.tgz", root)
    info = prepare_dataset("openi", root, tmp_path / "out", check_files=False)
    assert info["notes"][0] == "3955 reports read" and info["films"] == 7470
    rows = _rows(tmp_path / "out")
    assert all(r["patient_id"].startswith("CXR") for r in rows)
    unindexed = [r for r in rows if r["mesh"] == "No Indexing"]
    assert unindexed and all(r["uncertain"] and not r["label"] for r in unindexed)
    nodule = prepare_dataset(
        "openi", root, tmp_path / "xv", task="nodule-vs-normal", check_files=False
    )
    assert set(nodule["counts"]) == {"nodule", "normal"}
    rows = _rows(tmp_path / "xv")
    by_patient: dict[str, set[str]] = {}
    for r in rows:
        by_patient.setdefault(r["patient_id"], set()).add(r["label"])
    assert all(len(labels) == 1 for labels in by_patient.values())  # a report: one label
    assert nodule["patients"] < nodule["films"]  # frontal + lateral share a patient id


def test_rsna_real_labels_and_boxes(tmp_path):
    data = xrv_data_dir()
    root = tmp_path / "rsna"
    link(data / "kaggle_stage_2_train_labels.csv.zip", root)
    link(data / "kaggle_stage_2_train_images_dicom_headers.csv.gz", root)
    info = prepare_dataset("rsna", root, tmp_path / "out", check_files=False)
    assert info["films"] == 26_684 and info["counts"] == {"Pneumonia": 6012}
    assert info["boxes"] == 9555
    assert {r["view"] for r in _rows(tmp_path / "out")} == {"PA", "AP"}


def test_chexpert_real_excerpt_uncertain_policies(tmp_path):
    data = xrv_data_dir()
    root = tmp_path / "chex"
    src = excerpt(data / "chexpert_train.csv.gz", root / "train.csv", 2000)
    n_unc = sum(any(v == "-1.0" for v in r.values()) for r in src)
    ignore = prepare_dataset("chexpert", root, tmp_path / "ign", check_files=False)
    ones = prepare_dataset("chexpert", root, tmp_path / "one", uncertain="ones", check_files=False)
    zeros = prepare_dataset(
        "chexpert", root, tmp_path / "zero", uncertain="zeros", check_files=False
    )
    assert ignore["films"] == 2000 and ignore["uncertain_films"] == n_unc > 0
    assert ones["uncertain_films"] == zeros["uncertain_films"] == 0
    for name, n in ignore["counts"].items():
        assert zeros["counts"][name] == n <= ones["counts"][name]
    assert "No Finding" not in ignore["counts"]
    row = _rows(tmp_path / "ign")[1]  # patient00002: Cardiomegaly -1, Lung Opacity 1, ...
    assert row["patient_id"] == "patient00002" and row["view"] == "AP"
    assert row["label"].split("|") == ["Lung Opacity", "Fracture"]
    assert set(row["uncertain"].split("|")) == {
        "Cardiomegaly", "Edema", "Consolidation", "Atelectasis", "Pleural Effusion",
    }  # fmt: skip


@pytest.mark.slow
def test_chexpert_and_padchest_full_real_tables(tmp_path):
    data = xrv_data_dir()
    link(data / "chexpert_train.csv.gz", tmp_path / "chex")
    chex = prepare_dataset("chexpert", tmp_path / "chex", tmp_path / "c", check_files=False)
    assert chex["films"] == 223_414 and chex["patients"] == 64_540
    link(data / "PADCHEST_chest_x_ray_images_labels_160K_01.02.19.csv.gz", tmp_path / "pad")
    pad = prepare_dataset("padchest", tmp_path / "pad", tmp_path / "p", check_files=False)
    assert pad["films"] + pad["dropped"]["view"] > 150_000


def test_padchest_real_excerpt_synonyms_and_views(tmp_path):
    data = xrv_data_dir()
    root = tmp_path / "pad"
    src = excerpt(
        data / "PADCHEST_chest_x_ray_images_labels_160K_01.02.19.csv.gz",
        root / "PADCHEST_chest_x_ray_images_labels_160K_01.02.19.csv",
        1500,
    )
    info = prepare_dataset("padchest", root, tmp_path / "out", views=["PA"], check_files=False)
    rows = _rows(tmp_path / "out")
    assert {r["view"] for r in rows} == {"PA"} and info["dropped"]["view"] > 0
    assert all(r["patient_id"] and r["raw_labels"] is not None for r in rows)
    pf = [r for r in rows if "pulmonary fibrosis" in r["raw_labels"].split("|")]
    assert pf and all("Fibrosis" in r["label"].split("|") for r in pf)
    normal = [r for r in rows if r["raw_labels"] == "normal"]
    assert normal and all(r["label"] == "" for r in normal)
    assert len(src) == 1500


def test_siim_real_rle_excerpt_decodes_to_masks(tmp_path):
    data = xrv_data_dir()
    root = tmp_path / "siim"
    src = excerpt(data / "siim-pneumothorax-train-rle.csv.gz", root / "train-rle.csv", 120)
    info = prepare_dataset("siim", root, tmp_path / "out", check_files=False)
    positives = {r["ImageId"] for r in src if r[" EncodedPixels"].strip() != "-1"}
    assert info["counts"].get("Pneumothorax", 0) == len(positives) > 0
    rows = _rows(tmp_path / "out")
    with_mask = [r for r in rows if r["mask"]]
    assert len(with_mask) == len(positives)
    arr = np.asarray(Image.open(tmp_path / "out" / with_mask[0]["mask"]))
    assert arr.shape == (1024, 1024) and set(np.unique(arr)) == {0, 255}
    # relative RLE: "start length" pairs counted from the previous run's end, column-major
    m = decode_rle("5 2 3 1", height=4, width=4)
    assert np.argwhere(m.T.reshape(-1) == 255).ravel().tolist() == [5, 6, 10]
    with pytest.raises(DatasetError):
        decode_rle("10 10", height=2, width=2)


def test_siim_sample_dicom_is_found_by_image_id(tmp_path, samples_dir):
    uid = "1.2.276.0.7230010.3.1.4.8323329.6904.1517875201.850819"
    root = tmp_path / "siim"
    (root / "dicom-images-train" / "a" / "b").mkdir(parents=True)
    (root / "dicom-images-train" / "a" / "b" / f"{uid}.dcm").symlink_to(samples_dir / f"{uid}.dcm")
    (root / "train-rle.csv").write_text(f"ImageId, EncodedPixels\n{uid}, -1\n")
    prepare_dataset("siim", root, tmp_path / "out")
    rows = _rows(tmp_path / "out")
    assert len(rows) == 1 and rows[0]["label"] == "" and rows[0]["path"].endswith(".dcm")


def _mimic_root(tmp: Path) -> Path:
    root = tmp / "mimic"
    cols = "subject_id,study_id,Atelectasis,Cardiomegaly,Edema,No Finding,Pleural Effusion"
    (root).mkdir(parents=True)
    (root / "mimic-cxr-2.0.0-chexpert.csv").write_text(
        cols + "\n10000032,50414267,,,,1.0,\n10000032,53189527,-1.0,1.0,0.0,,\n"
    )
    (root / "mimic-cxr-2.0.0-metadata.csv").write_text(
        "dicom_id,subject_id,study_id,ViewPosition\n"
        "02aa804e-bde0afdd-112c0b34-7bc16630-4e384014,10000032,50414267,PA\n"
        "174413ec-4ec4c1f7-34ea26b7-c5f994f8-79ef1962,10000032,50414267,LATERAL\n"
        "2a2277a9-b0ded155-c0de8eb9-c124d10e-82c5caab,10000032,53189527,AP\n"
        "68b5c4b1-227d0485-9cc38c3f-7b84ab51-4b472714,10000033,59999999,AP\n"
    )
    (root / "mimic-cxr-2.0.0-split.csv").write_text(
        "dicom_id,study_id,subject_id,split\n"
        "02aa804e-bde0afdd-112c0b34-7bc16630-4e384014,50414267,10000032,train\n"
    )
    for line in (root / "mimic-cxr-2.0.0-metadata.csv").read_text().splitlines()[1:]:
        dicom, subject, study, _ = line.split(",")
        film(root / "files" / f"p{subject[:2]}" / f"p{subject}" / f"s{study}" / f"{dicom}.jpg",
             fmt="JPEG")  # fmt: skip
    return root


def test_mimic_generated_layout(tmp_path):
    info = prepare_dataset("mimic", _mimic_root(tmp_path), tmp_path / "out", views=["PA", "AP"])
    rows = _rows(tmp_path / "out")
    assert info["films"] == 3 and info["dropped"]["view"] == 1  # the lateral film
    assert [r["view"] for r in rows] == ["PA", "AP", "AP"]
    assert rows[0]["label"] == "" and rows[0]["split"] == "train"
    assert rows[1]["label"] == "Cardiomegaly" and rows[1]["uncertain"] == "Atelectasis"
    assert len(rows[2]["uncertain"].split("|")) == 13  # unlabelled study: all unknown
    table = load_table(tmp_path / "out")
    assert table.task == "multilabel" and table.records[1].uncertain == ("Atelectasis",)


def test_shenzhen_generated_layout(tmp_path):
    root = tmp_path / "ChinaSet_AllFiles"
    for i, tb in enumerate([0, 0, 1, 1]):
        stem = f"CHNCXR_{i + 1:04d}_{tb}"
        film(root / "CXR_png" / f"{stem}.png", seed=i)
        (root / "ClinicalReadings").mkdir(exist_ok=True)
        reading = "normal" if not tb else "PTB in the right upper field"
        (root / "ClinicalReadings" / f"{stem}.txt").write_text(f"male 45yrs\n{reading}\n")
    (root / "CXR_png" / "Thumbs.db").write_bytes(b"junk")
    info = prepare_dataset("shenzhen", root, tmp_path / "out")
    rows = _rows(tmp_path / "out")
    assert info["counts"] == {"normal": 2, "tb": 2}
    assert rows[2]["sex"] == "M" and rows[2]["age"] == "45" and "PTB" in rows[2]["reading"]
    table = load_table(tmp_path / "out")
    assert table.task == "binary" and table.class_names == ["normal", "tb"]


def _montgomery_root(tmp: Path, n: int = 4) -> Path:
    root = tmp / "MontgomerySet"
    for i in range(n):
        stem = f"MCUCXR_{i + 1:04d}_{i % 2}"
        film(root / "CXR_png" / f"{stem}.png", seed=i)
        mask(root / "ManualMask" / "leftMask" / f"{stem}.png", left=True)
        mask(root / "ManualMask" / "rightMask" / f"{stem}.png", left=False)
        (root / "ClinicalReadings").mkdir(exist_ok=True)
        (root / "ClinicalReadings" / f"{stem}.txt").write_text(
            f"Patient's Sex: F\nPatient's Age: 0{40 + i}Y\n{'normal' if i % 2 == 0 else 'TB'}\n"
        )
    return root


def test_montgomery_masks_are_merged(tmp_path):
    info = prepare_dataset("montgomery", _montgomery_root(tmp_path), tmp_path / "out")
    rows = _rows(tmp_path / "out")
    assert info["films"] == 4 and info["counts"] == {"normal": 2, "tb": 2}  # masks not films
    merged = np.asarray(Image.open(tmp_path / "out" / rows[0]["mask"]))
    assert merged[20, 10] == 255 and merged[20, 30] == 255 and merged[2, 2] == 0
    assert rows[1]["sex"] == "F" and rows[1]["age"] == "41"


def test_tbx11k_shared_sample(tmp_path, shared_data):
    root = shared_data / "samples" / "tbx11k"
    if not root.is_dir():
        pytest.skip("shared TBX11K sample not here")
    info = prepare_dataset("tbx11k", root, tmp_path / "out")
    assert info["counts"] == {"healthy": 1, "tb": 2}
    boxes = list(csv.DictReader((tmp_path / "out" / "boxes.csv").open()))
    coco = json.loads((root / "annotations" / "json" / "TBX11K_train.json").read_text())
    assert len(boxes) == len(coco["annotations"]) > 0
    assert {b["finding"] for b in boxes} <= {
        "ActiveTuberculosis", "ObsoletePulmonaryTuberculosis", "PulmonaryTuberculosis",
    }  # fmt: skip
    table = load_table(tmp_path / "out")
    assert len(table) == 3 and table.task == "binary"


def test_kermany_generated_layout(tmp_path):
    root = tmp_path / "ChestXRay2017" / "chest_xray"
    names = {
        "train/NORMAL": ["IM-0115-0001.jpeg", "NORMAL2-IM-1427-0001.jpeg"],
        "train/PNEUMONIA": ["person1_bacteria_1.jpeg", "person1_virus_6.jpeg"],
        "test/NORMAL": ["IM-0001-0001.jpeg"],
        "test/PNEUMONIA": ["person100_bacteria_475.jpeg"],
    }
    for i, (folder, files) in enumerate(names.items()):
        for j, name in enumerate(files):
            film(root / folder / name, seed=i * 3 + j, fmt="JPEG")
    (root / "train" / "NORMAL" / ".DS_Store").write_bytes(b"x")
    info = prepare_dataset("kermany", tmp_path / "ChestXRay2017", tmp_path / "out")
    rows = {Path(r["path"]).name: r for r in _rows(tmp_path / "out")}
    assert info["films"] == 6
    assert rows["person1_virus_6.jpeg"]["subtype"] == "viral"
    assert rows["person1_bacteria_1.jpeg"]["patient_id"] == "person1"
    assert rows["NORMAL2-IM-1427-0001.jpeg"]["patient_id"] == "NORMAL2-IM-1427"
    assert rows["IM-0001-0001.jpeg"]["split"] == "test"


def test_bad_options_and_empty_roots_are_clear_errors(tmp_path):
    (tmp_path / "empty").mkdir()
    with pytest.raises(DatasetError, match="uncertain must be one of"):
        prepare_dataset("nih", tmp_path / "empty", tmp_path / "o", uncertain="maybe")
    with pytest.raises(DatasetError, match="Data_Entry_2017"):
        prepare_dataset("nih", tmp_path / "empty", tmp_path / "o")
    with pytest.raises(DatasetError, match="no such folder"):
        prepare_dataset("nih", tmp_path / "nowhere", tmp_path / "o")
    with pytest.raises(DatasetError, match="no films left"):
        _montgomery_root(tmp_path)
        prepare_dataset("montgomery", tmp_path / "MontgomerySet", tmp_path / "o", views=["AP"])
