#!/usr/bin/env bash
# Re-make docs/screenshot.png: the GUI on a simulated lab, after a scan script ran.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
xvfb-run -a -s "-screen 0 1600x1000x24" .venv/bin/labd gui --sim --script-actions docs/screenshot-actions.json
rm -f docs/screenshot.json docs/screenshot.npy docs/screenshot.*.npy docs/screenshot-actions.json.result.json
