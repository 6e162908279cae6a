#!/usr/bin/env bash
# Set up a development checkout: the Python environment from the lock file, and with
# --system also the Debian packages and npm modules the full test suite needs.
set -euo pipefail
cd "$(dirname "$0")/.."

if ! command -v uv >/dev/null 2>&1; then
    echo "setup: installing uv with pip" >&2
    python3 -m pip install --quiet uv
fi
# --inexact: keep packages a user added to .venv (ipykernel, polars, ...).
uv sync --locked --inexact --quiet

if [[ "${1:-}" == "--system" ]]; then
    # Toolchains for the WASM examples, the official capnp compiler, and a virtual
    # screen for the GUI tests. Installed only when missing: apt is slow.
    packages=(clang lld rustc libstd-rust-dev-wasm32 capnproto libcapnp-dev xvfb xauth libgl1-mesa-dri)
    SUDO=""; [[ $(id -u) -ne 0 ]] && SUDO="sudo"
    missing=()
    for p in "${packages[@]}"; do
        dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
    done
    if ((${#missing[@]})); then
        echo "setup: installing Debian packages: ${missing[*]}" >&2
        $SUDO apt-get update -qq
        DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq "${missing[@]}" >/dev/null
    fi
    if [[ -f wasm_scripts/package-lock.json ]]; then
        # AssemblyScript for the WASM examples, pinned by the lock file.
        if ! command -v npm >/dev/null 2>&1; then
            echo "setup: installing Debian packages: nodejs npm" >&2
            $SUDO apt-get update -qq
            DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq nodejs npm >/dev/null
        fi
        (cd wasm_scripts && npm ci --silent --no-audit --no-fund)
    fi
fi
