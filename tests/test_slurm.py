"""The tiny study through a real one-node SLURM cluster (Debian slurm-wlm) with profiles/slurm-gpu: every job
goes through SLURM, the deep-learning jobs to the gpu partition with one GPU (the test node declares one; the job
finds no CUDA and runs on the CPU). profiles/slurm-gpu equals profiles/slurm apart from those rules
(tests/test_deep.py checks that), so this run covers both profiles."""
from __future__ import annotations

import os
import re
import shutil
import subprocess

import pytest
from helpers import REPO, SNAKEMAKE, STUDY

pytestmark = pytest.mark.e2e
CLUSTER = REPO / "tests" / "slurm" / "cluster.sh"


@pytest.fixture(scope="module")
def slurm(tmp_path_factory):
    if shutil.which("slurmctld") is None and not os.path.exists("/usr/sbin/slurmctld"):
        if os.environ.get("CI"):
            pytest.fail("SLURM is missing; `make test` installs Debian's slurm-wlm and munge as root")
        pytest.skip("SLURM not installed (apt-get install slurm-wlm munge)")
    if os.geteuid() != 0:
        pytest.skip("the test cluster starts its daemons as root")
    state = tmp_path_factory.mktemp("slurm")
    subprocess.run(["bash", str(CLUSTER), "start", str(state)], check=True)
    yield state
    subprocess.run(["bash", str(CLUSTER), "stop", str(state)], check=True)


def gpu_profile_for_test_node(tmp_path):
    """profiles/slurm-gpu as is, except that its GPU jobs ask for 4 CPUs and 16 GB and the test node is this
    machine (command-line --set-resources would replace a rule's whole resource set, partition included)."""
    import yaml

    profile = yaml.safe_load((REPO / "profiles" / "slurm-gpu" / "config.yaml").read_text())
    for rule in ("deep_train", "deep_score"):
        profile["set-resources"][rule].update(cpus_per_task=1, mem_mb=2000)
        profile["set-threads"][rule] = 1
    (tmp_path / "profile").mkdir()
    (tmp_path / "profile" / "config.yaml").write_text(yaml.safe_dump(profile))
    return tmp_path / "profile"


def test_tiny_study_runs_through_slurm(slurm, tmp_path):
    import yaml

    cfg = yaml.safe_load((REPO / "tests" / "configs" / "tiny.yaml").read_text())
    cfg["study"].update(name="slurm", results=str(tmp_path / "results"))
    cfg["deep"] = {**STUDY["deep"], "device": "auto"}  # auto: the rules ask SLURM for a GPU
    # lean: what this test shows is the scheduling, so no contour-robustness re-extraction, no per-case QC
    # pictures and no per-model guardrail jobs (the session study and the demo run those)
    cfg["features"] = {"robustness": {"activate": False}}
    cfg["ingest"] = {"qc_png": False}
    cfg["guardrails"] = {"sample_size": {"activate": False}, "volume_check": {"activate": False}}
    (tmp_path / "config.yaml").write_text(yaml.safe_dump(cfg))
    env = {**os.environ, "SLURM_CONF": str(slurm / "slurm.conf")}
    proc = subprocess.run(
        [str(SNAKEMAKE), "--profile", str(gpu_profile_for_test_node(tmp_path)),
         "--configfile", str(tmp_path / "config.yaml"),
         "--slurm-no-account", "--slurm-status-command", "squeue", "--slurm-init-seconds-before-status-checks", "2",
         "--seconds-between-status-checks", "2"],  # a one-node test cluster: poll often (default 10 s per poll)
        cwd=REPO, env=env, capture_output=True, text=True, timeout=1200)
    assert proc.returncode == 0, proc.stderr[-4000:]
    assert (tmp_path / "results/slurm/report/index.html").is_file()
    # Evidence that the jobs went through SLURM: the controller's own record of each submission.
    log = (slurm / "log" / "slurmctld.log").read_text()
    submitted = re.findall(r"_slurm_rpc_submit_batch_job: JobId=(\d+)", log)
    completed = re.findall(r"_job_complete: JobId=(\d+) done", log)
    print(f"slurmctld: {len(submitted)} batch jobs submitted, {len(completed)} completed")
    print("\n".join(line for line in log.splitlines() if "_slurm_rpc_submit_batch_job" in line)[:4000])
    # 6 shards of per-case work run as 6 group jobs, plus synth, cohort tables, per-centre and study rules
    assert len(submitted) >= 15
    assert set(submitted) <= set(completed)
    assert "has been submitted with SLURM jobid" in proc.stderr and "Group job cases" in proc.stderr
    # ... and SLURM's own client: squeue lists every one of those jobs as COMPLETED (MinJobAge keeps them).
    queue = subprocess.run(["squeue", "-h", "-t", "all", "-o", "%i|%j|%T|%k"], env=env, capture_output=True,
                           text=True, check=True).stdout.split("\n")
    records = {line.split("|")[0]: line for line in queue if line.strip()}
    print("squeue -t all:\n" + "\n".join(records.values()))
    assert set(submitted) <= set(records)
    assert all(records[j].split("|")[2] == "COMPLETED" for j in submitted)
    # the deep rules asked for and got the gpu partition and one GPU; every other job stayed on the default one
    jobs = {j: dict(kv.split("=", 1) for kv in subprocess.run(
        ["scontrol", "-o", "show", "job", j], env=env, capture_output=True, text=True, check=True
    ).stdout.split() if "=" in kv) for j in submitted}
    deep = {j: v for j, v in jobs.items() if v.get("Comment", "").startswith(("rule_deep_train", "rule_deep_score"))}
    print("deep jobs:", {j: (v["Comment"], v["Partition"], v.get("TresPerJob")) for j, v in deep.items()})
    assert len(deep) == 3  # deep_train, deep_score for C2 and C3 ... and C1 is scored out-of-fold in training
    assert all(v["Partition"] == "gpu" and v.get("TresPerJob") == "gres:gpu:1" for v in deep.values())
    assert all(v["Partition"] == "debug" and "TresPerJob" not in v for j, v in jobs.items() if j not in deep)
