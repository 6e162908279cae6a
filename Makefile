.PHONY: demo test setup bench gui

# Set up and run the main job: a daemon with the simulated lab, driven over RPC.
demo:
	@bash scripts/setup.sh
	.venv/bin/labd demo

# Set up (Python env, Debian packages, npm) and run lint, types and the whole test suite.
test:
	bash scripts/test.sh

setup:
	bash scripts/setup.sh --system

bench:
	@bash scripts/setup.sh
	.venv/bin/python bench/run_all.py
