import pandas as pd
import pytest
from helpers import write_pair
from mcrad.cohort import centre_table, load_sheet, make_shards, validate_sheet
from mcrad.config import load_config
from mcrad.errors import CohortError


@pytest.fixture()
def cfg(demo_config):
    demo_config["design"] = {"train": ["A"], "external": ["B"]}
    return load_config(demo_config)


@pytest.fixture()
def sheet(tmp_path):
    rows = []
    for i, centre in enumerate(["A", "A", "B"]):
        ip, mp = write_pair(tmp_path / "img", f"p{i}")
        rows.append({"patient_id": f"p{i}", "centre": centre, "image": f"img/{ip.name}", "mask": str(mp),
                     "age": "60", "sex": "M", "t_stage": "2", "hpv": "positive", "smoking": "never",
                     "nodal_metastasis": str(i % 2), "os_event": str(1 - i % 2), "os_months": "30",
                     "grade": f"G{i + 1}"})
    path = tmp_path / "cohort.tsv"
    pd.DataFrame(rows).to_csv(path, sep="\t", index=False)
    return path


def rewrite(path, change):
    df = pd.read_csv(path, sep="\t", dtype=str, keep_default_na=False)
    df = change(df)
    df.to_csv(path, sep="\t", index=False)
    return path


def test_valid_sheet_loads_with_relative_and_absolute_paths(cfg, sheet):
    df = load_sheet(sheet, cfg)
    assert list(df["patient_id"]) == ["p0", "p1", "p2"]


def test_missing_column_is_named(cfg, sheet):
    rewrite(sheet, lambda d: d.drop(columns=["hpv"]))
    with pytest.raises(CohortError, match=r"missing column\(s\) \['hpv'\]"):
        load_sheet(sheet, cfg)


def test_unknown_design_centre_is_named(cfg, sheet):
    cfg["design"]["external"] = ["B", "Z"]
    with pytest.raises(CohortError, match="design names centre 'Z'"):
        load_sheet(sheet, cfg)


def test_centre_without_role_names_line_and_column(cfg, sheet):
    rewrite(sheet, lambda d: d.assign(centre=["A", "A", "Q"]))
    with pytest.raises(CohortError, match=r"line 4 \(patient p2\), column 'centre': centre 'Q' has no role"):
        load_sheet(sheet, cfg)


def test_missing_file_names_line_column_and_path(cfg, sheet):
    rewrite(sheet, lambda d: d.assign(image=["img/p0_ct.nii.gz", "img/nope.nii.gz", "img/p2_ct.nii.gz"]))
    with pytest.raises(CohortError, match=r"line 3 \(patient p1\), column 'image': file not found: .*nope\.nii\.gz"):
        load_sheet(sheet, cfg)


def test_every_problem_is_listed_at_once(cfg, sheet):
    rewrite(sheet, lambda d: d.assign(patient_id=["p0", "p0", "bad id"], nodal_metastasis=["0", "yes", "1"],
                                      age=["60", "sixty", "70"]))
    with pytest.raises(CohortError) as err:
        load_sheet(sheet, cfg)
    msg = str(err.value)
    assert "'bad id' is not a valid id" in msg
    assert "lines 2, 3, column 'patient_id': 'p0' appears more than once" in msg
    assert "column 'nodal_metastasis': label 'yes' is not 0 or 1" in msg
    assert "column 'age': 'sixty' is not a number" in msg


def test_missing_sheet_says_what_to_do(cfg, tmp_path):
    with pytest.raises(CohortError, match="does not exist. Fix"):
        load_sheet(tmp_path / "none.tsv", cfg)


def test_shards_stay_within_a_centre_and_keep_order():
    index = pd.DataFrame({"patient_id": [f"p{i}" for i in range(7)], "centre": list("AAAAABB")})
    shards = make_shards(index, 2)
    assert shards == {"A.000": ["p0", "p1"], "A.001": ["p2", "p3"], "A.002": ["p4"], "B.000": ["p5", "p6"]}


def test_centre_table_has_no_image_paths(cfg, sheet):
    df = load_sheet(sheet, cfg)
    table = centre_table(df, cfg, "A")
    assert list(table["patient_id"]) == ["p0", "p1"]
    assert "image" not in table.columns and "mask" not in table.columns
    validate_sheet(df, cfg, sheet)  # unchanged


@pytest.fixture()
def mr_cfg(cfg):
    cfg["cohort"]["sequences"] = ["T1", "T2", "ADC"]
    return cfg


def add_sequences(sheet):
    def change(d):
        for seq in ("T2", "ADC"):
            d[f"image_{seq}"] = d["image"]
        d["mask_T2"] = ["", d.at[1, "mask"], ""]  # a sequence's own mask is optional, per case
        return d
    return rewrite(sheet, change)


def test_multi_sequence_sheet_loads_and_keeps_image_column_meaning(mr_cfg, sheet):
    df = load_sheet(add_sequences(sheet), mr_cfg)
    assert list(df["image_ADC"]) == list(df["image"])
    table = centre_table(df, mr_cfg, "A")
    assert not [c for c in table.columns if c.startswith(("image", "mask"))], "no image paths in clinical tables"


def test_multi_sequence_sheet_problems_are_listed_by_line_and_column(mr_cfg, sheet):
    def change(d):
        d = d.assign(image_T2=["img/p0_ct.nii.gz", "img/gone_t2.nii.gz", ""], image_ADC=d["image"])
        return d.assign(image_T1=d["image"], image_DWI=d["image"], mask_T2=["", "", "img/nomask.nii.gz"])
    rewrite(sheet, change)
    with pytest.raises(CohortError) as err:
        load_sheet(sheet, mr_cfg)
    msg = str(err.value)
    assert "line 3 (patient p1), column 'image_T2': file not found: " in msg and "gone_t2.nii.gz" in msg
    assert "line 4 (patient p2), column 'image_T2': empty path" in msg
    assert "line 4 (patient p2), column 'mask_T2': file not found" in msg
    assert "column 'image_T1': sequence T1 is the reference, whose image goes in column 'image'" in msg
    assert "column 'image_DWI': sequence 'DWI' is not in cohort.sequences" in msg
    assert "5 problem(s)" in msg


def test_multi_sequence_sheet_without_a_sequence_column_names_it(mr_cfg, sheet):
    rewrite(sheet, lambda d: d.assign(image_T2=d["image"]))
    with pytest.raises(CohortError, match=r"missing column\(s\) \['image_ADC'\].*cohort.clinical / endpoints / seq"):
        load_sheet(sheet, mr_cfg)


def test_single_image_sheet_may_have_other_image_columns(cfg, sheet):
    """Without cohort.sequences the sheet works as before; unrelated columns pass through to clinical tables."""
    df = load_sheet(rewrite(sheet, lambda d: d.assign(image_date="2020-01-01")), cfg)
    assert "image_date" in centre_table(df, cfg, "A").columns


def test_a_multiclass_label_outside_the_classes_names_line_patient_and_classes(cfg, sheet):
    rewrite(sheet, lambda df: df.assign(grade=["G1", "G4", " G2"]))
    with pytest.raises(CohortError) as err:
        load_sheet(sheet, cfg)
    msg = str(err.value)
    assert ("line 3 (patient p1), column 'grade': label 'G4' is not one of the classes ['G1', 'G2', 'G3'] of "
            "endpoint 'grade'") in msg
    assert "line 4 (patient p2), column 'grade': label ' G2'" in msg
