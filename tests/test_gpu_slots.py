"""pae.files.gpu_slots: with N GPUs each concurrent GPU job gets its own CUDA_VISIBLE_DEVICES (no GPU needed)."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

from pae.files import gpu_slots


def fake_driver(tmp_path: Path, n: int) -> Path:
    folder = tmp_path / "gpus"
    for i in range(n):
        (folder / f"0000:0{i}:00.0").mkdir(parents=True)
    return folder


def test_visible_gpus_from_driver_or_user_restriction(tmp_path):
    driver = fake_driver(tmp_path, 3)
    assert gpu_slots.visible_gpus({}, driver) == ["0", "1", "2"]
    assert gpu_slots.visible_gpus({"CUDA_VISIBLE_DEVICES": "2,3"}, driver) == ["2", "3"]
    assert gpu_slots.visible_gpus({}, tmp_path / "absent") == []


def test_concurrent_jobs_get_distinct_gpus_and_a_finished_job_frees_its_own(tmp_path):
    """Three job processes hold slots at once (like `--resources gpu=3` on a 3-GPU machine); a fourth finds
    none free; once a holder exits, its GPU is the one handed out next."""
    locks = tmp_path / "locks"
    job = textwrap.dedent(f"""
        import sys, time
        from pae.files import gpu_slots
        env = {{}}
        gpu_slots.visible_gpus = lambda env: ["0", "1", "2"]
        print(gpu_slots.use_own_gpu(1, {str(locks)!r}, env), env.get("CUDA_VISIBLE_DEVICES"), flush=True)
        sys.stdin.readline()  # hold the slot until told to finish
    """)
    holders = [subprocess.Popen([sys.executable, "-c", job], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                text=True) for _ in range(3)]
    seen = [(h.stdout.readline(), h.stdout.readline().split())[1] for h in holders]  # after "GPU slot: ..."
    assert sorted(gpu for gpu, _ in seen) == ["0", "1", "2"] and all(g == v for g, v in seen)
    assert gpu_slots.claim_slot(["0", "1", "2"], locks) is None  # every slot held
    finished = seen.index(["1", "1"])
    holders[finished].communicate("\n")
    assert gpu_slots.claim_slot(["0", "1", "2"], locks) == "1"
    for h in holders:
        if h.poll() is None:
            h.communicate("\n")


def test_no_assignment_under_slurm_or_without_a_gpu_request(tmp_path):
    env = {"SLURM_JOB_ID": "7"}
    assert gpu_slots.use_own_gpu(1, tmp_path, env) is None and "CUDA_VISIBLE_DEVICES" not in env
    env = {"CUDA_VISIBLE_DEVICES": "0,1"}
    assert gpu_slots.use_own_gpu(0, tmp_path, env) is None and env["CUDA_VISIBLE_DEVICES"] == "0,1"
    assert gpu_slots.use_own_gpu(1, tmp_path, env) == "0" and env["CUDA_VISIBLE_DEVICES"] == "0"
