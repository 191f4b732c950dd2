import numpy as np
import pandas as pd
import pytest
from mcrad.config import load_config
from mcrad.errors import ConfigError
from mcrad.files import read_shard, read_table, stable_hash, write_table
from mcrad.paths import Paths


def test_defaults_are_filled_from_the_schema(demo_config):
    cfg = load_config(demo_config)
    assert cfg["preprocess"]["spacing_mm"] == [1.0, 1.0, 1.0]
    assert cfg["segment"]["peritumoral"]["radius_mm"] == 3
    assert cfg["execution"]["shard_size"] == 20
    assert cfg["study"]["strict"] is False
    assert demo_config.get("preprocess") is None, "the caller's dict must not be modified"


def test_unknown_option_is_named_with_its_path(demo_config):
    demo_config["preprocess"] = {"spacing": [1, 1, 1]}
    with pytest.raises(ConfigError, match=r"config\.preprocess.*spacing"):
        load_config(demo_config)


def test_wrong_type_is_named(demo_config):
    demo_config["harmonise"] = {"activate": "yes"}
    with pytest.raises(ConfigError, match=r"config\.harmonise\.activate"):
        load_config(demo_config)


def test_centre_cannot_be_train_and_external(demo_config):
    demo_config["design"] = {"train": ["C1"], "external": ["C1", "C2"]}
    with pytest.raises(ConfigError, match="both train and external"):
        load_config(demo_config)


def test_endpoint_cannot_be_a_clinical_predictor(demo_config):
    demo_config["endpoints"] = [{"name": "x", "column": "age"}]
    with pytest.raises(ConfigError, match="outcome cannot be used to predict itself"):
        load_config(demo_config)


def test_multiclass_endpoints_need_their_classes_and_read_them_as_text(demo_config):
    demo_config["endpoints"] = [{"name": "stage", "type": "multiclass", "column": "t_stage", "classes": [1, 2, 3, 4]}]
    demo_config["cohort"] = {**demo_config["cohort"], "clinical": [{"name": "age", "type": "numeric"}]}
    cfg = load_config(demo_config)
    assert cfg["endpoints"][0]["classes"] == ["1", "2", "3", "4"] and cfg["endpoints"][0]["ordinal"] is False
    demo_config["endpoints"] = [{"name": "grade", "type": "multiclass", "column": "grade"}]
    with pytest.raises(ConfigError, match="a multiclass endpoint needs `classes`"):
        load_config(demo_config)
    demo_config["endpoints"] = [{"name": "n", "column": "nodal_metastasis", "classes": ["a", "b", "c"]}]
    with pytest.raises(ConfigError, match="`classes` is for multiclass endpoints only"):
        load_config(demo_config)
    demo_config["endpoints"] = [{"name": "g", "type": "multiclass", "column": "grade", "classes": ["G1", "G2"]}]
    with pytest.raises(ConfigError, match=r"endpoints\.0\.classes"):
        load_config(demo_config)


def test_paths_are_built_under_the_study_root(demo_config):
    paths = Paths.from_config(load_config(demo_config))
    assert str(paths.metrics("nodal_metastasis")) == "results/demo/validation/nodal_metastasis/metrics.tsv"
    assert str(paths.shard_table("ingest", "C1.000")) == "results/demo/shards/ingest/C1.000.tsv"


def test_stable_hash_ignores_key_order():
    assert stable_hash({"a": 1, "b": [1, 2]}) == stable_hash({"b": [1, 2], "a": 1})
    assert stable_hash({"a": 1}) != stable_hash({"a": 2})


def test_tables_read_back_the_exact_floats_they_were_written_with(tmp_path):
    """pandas' default parser is one unit in the last place off for about a third of numbers (0.43195455395117843
    reads as 0.4319545539511784): a locked threshold or a score must come back bit for bit."""
    values = np.random.default_rng(0).random(2000).tolist() + [0.43195455395117843]
    df = pd.DataFrame({"patient_id": [f"P{i}" for i in range(len(values))], "centre": "C1", "score": values})
    write_table(df, tmp_path / "t.tsv")
    for read in (read_table, read_shard):
        assert read(tmp_path / "t.tsv")["score"].tolist() == values
