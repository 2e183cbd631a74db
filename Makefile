# Two commands do everything on a fresh machine: `make table2` (main job) and `make test`.
# Each creates .venv on first use and installs the pinned environment (requirements.lock).
PYTHON ?= python3
VENV   ?= .venv
BIN     = $(VENV)/bin
CORES  ?= 2
QUICK   = --configfile config/quick.yaml
SMK     = $(BIN)/snakemake --cores $(CORES) --printshellcmds --show-failed-logs

.PHONY: venv table2 table2-all-rows table2-seeds table2-reverse paper-quick schedule-comparison table1 figures data paper test lint report snapshot config-docs

venv: $(VENV)/.installed
$(VENV)/.installed: pyproject.toml requirements.lock
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	# torch first and pinned: anything needing torchvision would otherwise replace it. Byte-compile at install
	# time (no --no-compile): where PYTHONDONTWRITEBYTECODE is set, every job would otherwise compile its
	# imports from source again (measured: 8.9 s instead of 4.1 s per job's imports)
	$(BIN)/python -m pip install --quiet -c requirements.lock torch torchvision
	$(BIN)/python -m pip install --quiet -c requirements.lock -e '.[test]'
	touch $@

table2: venv            ## main job: Table 2 with the quick CPU configuration
	$(SMK) table2 $(QUICK)
table2-all-rows: venv   ## Table 2 with its MAP, Laplace and VAE rows too (a VAE and two slower score jobs more)
	$(SMK) table2 $(QUICK) config/quick-all-rows.yaml
table2-seeds: venv      ## Table 2 over the seeds of ood.table2_seeds (mean ± std per cell): table2_seeds.{csv,md}
	$(SMK) table2_seeds $(QUICK)
table2-reverse: venv    ## Table 2 with MNIST in-distribution (config/reverse.yaml): results/reverse/table2.{csv,md}
	$(SMK) table2 $(QUICK) config/reverse.yaml
# Fig. 6 first: its chain (MNIST K = 8 AE → flow → four posterior jobs) is the longest; started last it runs alone
paper-quick: venv       ## the whole quick paper in one run: tables, figures, battery, recon vs K, report
	$(SMK) paper_quick $(QUICK) config/quick-all-rows.yaml --prioritize fig6
# Table 2 and the battery for the quick AE schedule, the former one and the paper's at 3 epochs (config/schedules/).
# The quick run's tables are kept as they are when they exist (--rerun-triggers mtime): after make paper-quick
# they hold all seven rows, and the comparison uses the rows every schedule scored.
schedule-comparison: venv  ## AE schedules compared on Table 2 and the OoD battery: docs/results/schedules.md
	$(SMK) table2 battery $(QUICK) --rerun-triggers mtime
	$(SMK) table2 battery $(QUICK) config/schedules/former.yaml
	$(SMK) table2 battery $(QUICK) config/schedules/paper-3-epochs.yaml
	$(BIN)/python benchmarks/compare_schedules.py quick=results/quick former=results/schedule-former \
	  paper-3-epochs=results/schedule-paper-3-epochs --out docs/results/schedules.md
table1: venv            ## Table 1 (FIDs) with the quick configuration
	$(SMK) table1 $(QUICK)
figures: venv           ## Figures 2, 3, 5 with the quick configuration
	$(SMK) figures $(QUICK)
data: venv              ## data stage alone (downloads / mirror, checksums, preprocessing)
	$(SMK) data $(QUICK)
paper: venv             ## everything at paper scale (GPU strongly advised)
	$(SMK) all
# The report shows the files as they are: no rerun of a table because the overlay differs from the run that made
# it (--rerun-triggers mtime), and always rewritten (--forcerun write_report).
report: venv            ## results/quick/report.{md,html,json} of whatever has run (Table 2 at least)
	$(SMK) reproduction_report $(QUICK) --rerun-triggers mtime --forcerun write_report
snapshot: venv          ## copy the quick report into docs/results/quick.{md,html,json} and docs/results/quick/
	$(BIN)/python -m pae.stages.report snapshot results/quick docs/results

# The real-Slurm test runs beside everything else (it mostly waits on Slurm's polling), verbose into a log that
# is printed at the end (its PASSED or SKIPPED line, with the reason, and its wall time); the rest runs quietly.
# The exit status is non-zero when either part fails.
test: venv              ## the test suite (uses PAE_DATA_MIRROR when set)
	@log=$$(mktemp); \
	$(BIN)/python -m pytest -v -rs --durations=4 -m slurm tests/test_slurm.py > $$log 2>&1 & slurm_pid=$$!; \
	$(BIN)/python -m pytest -q --durations=8 -m "not slurm" tests; rest=$$?; \
	wait $$slurm_pid; slurm=$$?; echo "---- tests/test_slurm.py (run beside the rest)"; cat $$log; rm -f $$log; \
	[ $$rest -eq 0 ] && [ $$slurm -eq 0 ]

config-docs: venv      ## config/README.md from the schema (tests/test_config.py checks it is current)
	$(BIN)/python -c "from pae.config import reference_markdown; print(reference_markdown(), end='')" > config/README.md

lint: venv
	$(BIN)/snakemake --lint
	$(BIN)/ruff check src tests benchmarks workflow/scripts
	$(BIN)/snakefmt --check workflow/Snakefile workflow/rules
