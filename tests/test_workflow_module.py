"""The workflow deploys as a Snakemake module: a Snakefile in another folder imports it with
`module ... use rule *` and plans Table 2 with its own config (what snakedeploy writes)."""

from __future__ import annotations

import subprocess
import sys
import textwrap

import yaml


def _module_snakefile(repo_root, prefix: str) -> str:
    return textwrap.dedent(
        f"""
        configfile: "config/config.yaml"

        module pae:
            snakefile: "{repo_root / 'workflow' / 'Snakefile'}"
            config: config

        use rule * from pae{' as ' + prefix + '*' if prefix else ''}
        """
    )


def _dry_run(folder, target: str) -> subprocess.CompletedProcess:
    cmd = [sys.executable, "-m", "snakemake", "-n", "--cores", "1", target]
    return subprocess.run(cmd, cwd=folder, capture_output=True, text=True, timeout=300)


def test_imported_as_a_module_from_another_folder_plans_table2(repo_root, tmp_path):
    """The importing workflow's own config (outdir, seeds) decides the plan; the module's configfile is
    skipped, its schema and rule files are found relative to the module, and prefixed rule names work."""
    config = yaml.safe_load((repo_root / "config" / "config.yaml").read_text())
    config |= {"outdir": "mine", "seeds": [3]}
    (tmp_path / "config").mkdir()
    (tmp_path / "config" / "config.yaml").write_text(yaml.safe_dump(config))
    (tmp_path / "Snakefile").write_text(_module_snakefile(repo_root, "pae_"))
    proc = _dry_run(tmp_path, "pae_table2")
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    out = proc.stdout
    for rule in ("pae_train_ae", "pae_train_flow", "pae_ood_scores", "pae_make_table2"):
        assert f"rule {rule}:" in out or f"localrule {rule}:" in out, rule
    assert "mine/fmnist/K64/seed3/ae.pt" in out and "mine/table2.csv" in out
    assert "results/" not in out  # nothing from the module's own config


def test_module_config_errors_name_the_key(repo_root, tmp_path):
    """The importing config is validated by the module's schema like a direct run."""
    config = yaml.safe_load((repo_root / "config" / "config.yaml").read_text())
    config["ae"]["lr"] = "fast"
    (tmp_path / "config").mkdir()
    (tmp_path / "config" / "config.yaml").write_text(yaml.safe_dump(config))
    (tmp_path / "Snakefile").write_text(_module_snakefile(repo_root, ""))
    proc = _dry_run(tmp_path, "table2")
    assert proc.returncode != 0
    assert "ae.lr" in proc.stdout + proc.stderr
