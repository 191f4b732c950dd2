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


def test_code_hash_tracks_the_modules_a_rule_runs():
    assert code_hash("model") == code_hash("model")
    assert code_hash("model") != code_hash("harmonise")
    assert code_hash("model", "validate") == code_hash("validate", "model")
