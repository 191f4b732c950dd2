from pathlib import Path

import pytest
from mcrad.config import load_config
from mcrad.errors import ConfigError
from mcrad.plan import code_hash, options, plan_study


def test_synthetic_plan_shards_every_case(demo_config):
    plan = plan_study(load_config(demo_config))
    assert plan.synthetic and plan.centres == ["C1", "C2", "C3", "C4"]
    assert sum(len(v) for v in plan.shards.values()) == 160
    assert plan.shards_of("C2") == ["C2.000", "C2.001"]


def test_synthetic_centre_without_role_is_refused(demo_config):
    demo_config["design"].update(external=["C2", "C3"], prospective=[])
    with pytest.raises(ConfigError, match=r"\['C4'\] have no role"):
        plan_study(load_config(demo_config))


def test_options_are_compact_sorted_json(demo_config):
    cfg = load_config(demo_config)
    assert options(cfg, "harmonise").startswith('{"activate":true,')
    assert set(__import__("json").loads(options(cfg, "study", "design"))) == {"study", "design"}


def test_code_hash_follows_each_commands_imports():
    from mcrad.plan import module_closure

    def names(command):
        root = Path(__import__("mcrad").__file__).parent
        return {str(p.relative_to(root)) for p in module_closure(command)}

    ingest, model, prospective = names("ingest"), names("model"), names("prospective")
    assert "cli/ingest.py" in ingest and "dicom.py" in ingest and "files.py" in ingest
    assert not any(n.startswith(("model/", "validate/", "report/")) for n in ingest)
    # every CLI module registers its subcommand on import, but what another command runs is not followed
    assert "cli/model.py" in ingest and "model/train.py" not in ingest
    assert {"model/survival.py", "model/nomogram.py", "stats.py", "endpoints.py"} <= model
    assert "validate/metrics.py" in prospective
    assert code_hash("model") == code_hash("model") and code_hash("model") != code_hash("harmonise")


def test_study_files_list_what_the_rules_declare(demo_config, tmp_path):
    from mcrad.dag import StudyFiles, alternatives
    from mcrad.paths import Paths

    demo_config["study"]["results"] = str(tmp_path)
    cfg = load_config(demo_config)
    plan = plan_study(cfg)
    files = StudyFiles(cfg, plan, Paths.from_config(cfg))
    paths = files.paths
    assert files.shard_tables("features", ["C2"]) == [paths.shard_table("features", s) for s in ("C2.000", "C2.001")]
    assert len(files.shard_tables("ingest")) == len(plan.shards)
    bench = files.benchmark_files()
    assert len(bench) == len(set(bench)) and paths.benchmark("features", "C1.000") in bench
    assert all(paths.benchmark("validate", ep) in bench for ep in files.endpoints)
    # the deep stage scores every centre but the training one; the training centre's scores come from its CV
    assert [p for p in bench if "deep_score" in str(p)] == [
        paths.benchmark("deep_score", f"{ep}.{c}") for ep in plan.deep_endpoints for c in plan.centres
        if c not in plan.train]
    kinds = {(f["labels"]["endpoint"], f["labels"]["figure"]) for f in files.report_figures()}
    assert {("grade", "confusion"), ("nodal_metastasis", "roc"), ("overall_survival", "km")} <= kinds
    assert ("grade", "roc") not in kinds  # a multi-class endpoint draws no binary ROC figure
    assert files.root() == str(tmp_path / cfg["study"]["name"])
    assert alternatives([]) == "$^" and alternatives(["a.b"]) == r"a\.b"
