"""The SLURM profile against a real Slurm: munge + slurmctld + slurmd for one node on localhost.

Runs Table 2 of config/test.yaml (two rows, one AE + flow; synthetic mirror) through the shipped profiles —
profiles/slurm (executor settings) and the workflow profile profiles/default (GPU requests) replaced by its
CPU-only variant `--workflow-profile none` — with only the site's partition given, and checks that every job
ran as a Slurm job, that the table equals a local `--cores 2` run, that a failing job is reported with its
log and the run exits non-zero, and that a training cancelled with `scancel` resumes from its checkpoint.

Needs root and Debian's `slurm-wlm` and `munge` (`.ci/run` installs them); skipped with the reason otherwise.
"""

from __future__ import annotations

import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd
import pytest

from synthetic import synthetic_env

pytestmark = pytest.mark.slurm

MIRROR = {"n_train": 232, "n_test": 64}  # as tests/test_pipeline.py: 192 training images after 40 validation
# Two Table 2 rows at one K against one OoD set: one dataset, one AE + flow, eight Slurm jobs, so the test
# stays under its 5-minute budget.
OVERLAY = ("ood: {rows: [density, recon], recon_K: 8, density_K: 8, fig5_set: fmnist_hflip,\n"
           "      sets: [{name: fmnist_hflip, dataset: fmnist, transform: hflip, label: FMNIST-hflip}]}\n")
PARTITION = "debug"
SYSTEM_CONF = Path("/etc/slurm/slurm.conf")  # where srun inside a job looks (it does not inherit SLURM_CONF)
BINARIES = ("munged", "slurmctld", "slurmd", "sbatch", "squeue", "scancel", "sinfo")
# Status polling tuned for a test: first check after 2 s, then every few seconds (plugin 2.8 settings).
POLL = ["--slurm-init-seconds-before-status-checks", "2", "--seconds-between-status-checks", "3"]


def _missing() -> str | None:
    if os.name != "posix" or os.geteuid() != 0:
        return "needs root (starts munged, slurmctld and slurmd)"
    absent = [b for b in BINARIES if not shutil.which(b, path=os.environ.get("PATH", "") + ":/usr/sbin:/sbin")]
    if absent:
        return f"Slurm/munge not installed ({', '.join(absent)} missing): apt-get install slurm-wlm munge"
    if SYSTEM_CONF.exists():
        return f"{SYSTEM_CONF} exists: this machine has its own Slurm set-up, which the test leaves alone"
    return None


def _which(name: str) -> str:
    return shutil.which(name, path=os.environ.get("PATH", "") + ":/usr/sbin:/sbin") or name


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _node_memory_mb() -> int:
    """Node RealMemory: 90 % of MemTotal (slurmd refuses a node claiming more than it has)."""
    for line in Path("/proc/meminfo").read_text().splitlines():
        if line.startswith("MemTotal:"):
            return int(int(line.split()[1]) / 1024 * 0.9)
    raise RuntimeError("no MemTotal in /proc/meminfo")


def slurm_conf(state: Path, host: str, cpus: int, memory_mb: int, ports: tuple[int, int]) -> str:
    """A one-node slurm.conf without accounting (the set-up the status-command choice must survive)."""
    return "\n".join([
        "ClusterName=paetest", f"SlurmctldHost={host}", "SlurmUser=root", "AuthType=auth/munge",
        f"SlurmctldPort={ports[0]}", f"SlurmdPort={ports[1]}",
        f"StateSaveLocation={state}/ctld", f"SlurmdSpoolDir={state}/d",
        f"SlurmctldPidFile={state}/slurmctld.pid", f"SlurmdPidFile={state}/slurmd.pid",
        f"SlurmctldLogFile={state}/slurmctld.log", f"SlurmdLogFile={state}/slurmd.log",
        "ProctrackType=proctrack/linuxproc", "TaskPlugin=task/none", "SelectType=select/cons_tres",
        "SelectTypeParameters=CR_Core_Memory", "ReturnToService=2", "JobAcctGatherType=jobacct_gather/none",
        "AccountingStorageType=accounting_storage/none", "MinJobAge=300", "SchedulerParameters=sched_interval=2",
        f"NodeName={host} CPUs={cpus} RealMemory={memory_mb} State=UNKNOWN",
        f"PartitionName={PARTITION} Nodes={host} Default=YES MaxTime=INFINITE State=UP", "",
    ])


def _pid_alive(pid_file: Path) -> int | None:
    try:
        pid = int(pid_file.read_text().split()[0])
        os.kill(pid, 0)
        return pid
    except (OSError, ValueError, IndexError):
        return None


def _stop(pid_file: Path) -> None:
    pid = _pid_alive(pid_file)
    if pid is None:
        return
    os.kill(pid, signal.SIGTERM)
    for _ in range(50):
        if _pid_alive(pid_file) is None:
            return
        time.sleep(0.1)
    os.kill(pid, signal.SIGKILL)


@pytest.fixture(scope="module")
def slurm(tmp_path_factory):
    """A running one-node Slurm; yields the environment for its clients. Daemons stopped, state and the
    generated /etc/slurm/slurm.conf removed afterwards, also when a test fails (finalizer)."""
    reason = _missing()
    if reason:
        print(f"test_slurm skipped: {reason}")
        pytest.skip(reason)
    state = Path(tmp_path_factory.mktemp("slurm"))
    munge_pid = Path("/run/munge/munged.pid")
    started_munge = False
    cleanups = []

    def finalize():
        for f in reversed(cleanups):
            f()
        shutil.rmtree(state, ignore_errors=True)

    try:
        if not Path("/etc/munge/munge.key").exists():
            subprocess.run([_which("mungekey"), "-c"], check=True)
        if _pid_alive(munge_pid) is None:
            Path("/run/munge").mkdir(parents=True, exist_ok=True)
            shutil.chown("/run/munge", "munge", "munge")
            subprocess.run(["runuser", "-u", "munge", "--", _which("munged")], check=True)
            started_munge = True
            cleanups.append(lambda: _stop(munge_pid) if started_munge else None)
        host = socket.gethostname().split(".")[0]
        for sub in ("ctld", "d"):
            (state / sub).mkdir()
        conf = SYSTEM_CONF
        conf.parent.mkdir(parents=True, exist_ok=True)
        cleanups.append(lambda: conf.unlink(missing_ok=True))
        conf.write_text(slurm_conf(state, host, os.cpu_count() or 1, _node_memory_mb(),
                                   (_free_port(), _free_port())))
        env = dict(os.environ, SLURM_CONF=str(conf))
        cleanups.append(lambda: _stop(state / "slurmctld.pid"))
        subprocess.run([_which("slurmctld")], env=env, check=True)
        cleanups.append(lambda: _stop(state / "slurmd.pid"))
        subprocess.run([_which("slurmd")], env=env, check=True)
        deadline = time.time() + 60
        while time.time() < deadline:
            out = subprocess.run(["sinfo", "-h", "-o", "%T"], env=env, capture_output=True, text=True)
            if out.stdout.strip() == "idle":
                break
            time.sleep(0.5)
        else:
            pytest.fail("the Slurm node did not become idle within 60 s: "
                        + (state / "slurmctld.log").read_text()[-2000:] + (state / "slurmd.log").read_text()[-2000:])
    except BaseException:
        finalize()
        raise
    yield env
    finalize()


def snakemake(repo: Path, work: Path, *args: str, slurm: bool) -> list[str]:
    base = [sys.executable, "-m", "snakemake", "-s", str(repo / "workflow" / "Snakefile"), "--directory", str(work)]
    configs = ["--configfile", str(repo / "config" / "test.yaml"), str(work / "overlay.yaml")]
    if not slurm:
        return base + ["--cores", "2", *args, *configs]
    # the shipped profile; the CPU-only variant (no workflow profile: no GPU requests); the site's partition
    return base + ["--profile", str(repo / "profiles" / "slurm"), "--workflow-profile", "none",
                   "--default-resources", f"slurm_partition={PARTITION}", *POLL, *args, *configs]


def _run(cmd: list[str], env: dict[str, str], timeout: int = 600) -> subprocess.CompletedProcess:
    return subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=timeout)


@pytest.fixture(scope="module")
def runs(slurm, repo_root, tmp_path_factory):
    """Table 2 run locally (--cores 2) and through Slurm, each in its own folder; (local, cluster, proc)."""
    tmp = tmp_path_factory.mktemp("slurm_runs")
    env = synthetic_env(tmp, **MIRROR) | {"SLURM_CONF": slurm["SLURM_CONF"]}
    folders = {}
    for name in ("local", "cluster"):
        work = tmp / name
        work.mkdir()
        (work / "overlay.yaml").write_text(OVERLAY)
        folders[name] = work
    # side by side: the Slurm run mostly waits (job start-up, status polls), the local one computes
    started = {name: subprocess.Popen(snakemake(repo_root, folders[name], "table2", slurm=name == "cluster"),
                                      env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
               for name in ("cluster", "local")}
    done = {name: proc.communicate(timeout=600) for name, proc in started.items()}
    assert started["local"].returncode == 0, done["local"][1][-4000:]
    cluster = subprocess.CompletedProcess(started["cluster"].args, started["cluster"].returncode, *done["cluster"])
    assert cluster.returncode == 0, cluster.stdout[-3000:] + cluster.stderr[-5000:]
    return folders["local"], folders["cluster"], cluster, env


def _jobs(text: str) -> tuple[list[str], list[str], list[str]]:
    """(rules of every job, rules run locally, Slurm job ids) of a snakemake printout."""
    rules = re.findall(r"^(?:local)?rule (\w+):$", text, re.M)
    local = re.findall(r"^localrule (\w+):$", text, re.M)
    ids = re.findall(r"submitted with SLURM jobid (\d+)|external jobid '(\d+)'", text)
    return rules, local, [a or b for a, b in ids]


def test_every_job_ran_as_a_slurm_job(runs):
    _, work, proc, env = runs
    rules, local, ids = _jobs(proc.stdout + proc.stderr)
    remote = [r for r in rules if r not in local]
    assert remote and {"train_ae", "train_flow", "ood_scores", "make_table2"} <= set(remote), rules
    assert len(ids) == len(remote) and len(set(ids)) == len(ids), (remote, ids)
    assert set(local) <= {"table2", "fetch_raw"}, local  # target and download rules stay on the submit host
    prov = (work / "results" / "test" / "table2.provenance.json").read_text()
    assert re.search(r'"slurm_job_id": "(\d+)"', prov) and "--gpus" not in proc.stdout + proc.stderr


def test_cluster_table_equals_local_run(runs):
    local, cluster, _, _ = runs
    a = pd.read_csv(local / "results" / "test" / "table2.csv")
    b = pd.read_csv(cluster / "results" / "test" / "table2.csv")
    assert len(a) and list(a.columns) == list(b.columns)
    pd.testing.assert_frame_equal(a, b)


def test_failing_job_is_reported_with_its_log(runs, repo_root):
    """A user dataset whose npz is not an npz: its preprocess job fails on the node; the run says so."""
    _, work, _, env = runs
    bad = work / "broken.npz"
    bad.write_text("not an npz file\n")
    (work / "overlay_bad.yaml").write_text(f"datasets: {{fmnist: null, broken: {{kind: npz, path: {bad}}}}}\n")
    cmd = snakemake(repo_root, work, "data/processed/broken.npz", slurm=True)
    cmd += [str(work / "overlay_bad.yaml"), "--retries", "0"]
    proc = _run(cmd, env, timeout=300)
    text = proc.stdout + proc.stderr
    assert proc.returncode != 0, text[-3000:]
    assert re.search(r"Error in rule preprocess_dataset", text), text[-3000:]
    assert re.search(r"SLURM jobid (\d+)|external jobid '(\d+)'", text), text[-3000:]
    log = work / "results" / "test" / "logs" / "preprocess_dataset" / "broken.log"
    assert "broken.npz" in log.read_text() and str(log.relative_to(work)) in text


def test_scancelled_training_resumes(runs, repo_root):
    """scancel a running train_ae after its first checkpoint; the profile's retry resubmits it, and the new
    job continues from the checkpoint."""
    _, work, _, env = runs
    (work / "overlay_long.yaml").write_text("ae: {epochs: 5}\n")  # the cancel comes right after epoch 1
    target = "results/test/fmnist/K4/seed0/ae.pt"
    cmd = snakemake(repo_root, work, target, slurm=True) + [str(work / "overlay_long.yaml")]
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    checkpoint = work / "results" / "test" / "fmnist" / "K4" / "seed0" / "ae.ckpt"
    deadline = time.time() + 180
    while not checkpoint.exists() and time.time() < deadline and proc.poll() is None:
        time.sleep(0.2)
    assert checkpoint.exists(), "train_ae wrote no checkpoint"
    queue = subprocess.run(["squeue", "-h", "-o", "%i %k"], env=env, capture_output=True, text=True).stdout
    ids = [line.split()[0] for line in queue.splitlines() if "train_ae" in line]
    assert len(ids) == 1, queue
    subprocess.run(["scancel", ids[0]], env=env, check=True)
    out, _ = proc.communicate(timeout=300)
    assert proc.returncode == 0, out[-4000:]
    assert re.search(r"CANCELLED|cancel", out, re.I), out[-3000:]
    log = (work / "results" / "test" / "logs" / "train_ae" / "fmnist_K4_seed0.log").read_text()
    assert "resumed from" in log, log[-2000:]
    assert (checkpoint.parent / "ae.pt").exists() and not checkpoint.exists()
