#!/bin/sh
# Print the path of a Python X.Y interpreter, installing one if this machine has none.
#
#   sh tools/find_python.sh 3.12
#
# Looks, in order: pythonX.Y on PATH (a pyenv shim counts only if it runs), a pyenv
# version X.Y.*, uv's managed interpreters; then installs: Debian's pythonX.Y (as root with
# apt-get, where the release has it: bookworm ships 3.11 only), pyenv install X.Y, uv
# python install X.Y. Messages go to stderr; the path alone to stdout.
set -eu

want="${1:?usage: find_python.sh X.Y}"

runs() {  # $1 is an interpreter of version $want
    [ -n "$1" ] && "$1" -c "import sys; sys.exit(f'{sys.version_info[0]}.{sys.version_info[1]}' != '$want')" 2>/dev/null
}

found() {
    "$1" -c "import sys; print(sys.executable)"
    exit 0
}

from_pyenv() {
    command -v pyenv >/dev/null 2>&1 || return 1
    version=$(pyenv versions --bare 2>/dev/null | grep -E "^$want(\.[0-9]+)?$" | sort -t. -k3 -n | tail -1)
    [ -n "$version" ] || return 1
    echo "$(pyenv root)/versions/$version/bin/python$want"
}

if runs "$(command -v "python$want" 2>/dev/null || true)"; then found "python$want"; fi
candidate=$(from_pyenv || true)
if runs "$candidate"; then found "$candidate"; fi
if command -v uv >/dev/null 2>&1; then
    candidate=$(uv python find "$want" 2>/dev/null || true)
    if runs "$candidate"; then found "$candidate"; fi
fi

if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1 && apt-cache show "python$want-venv" >/dev/null 2>&1; then
    echo "installing python$want from the distribution" >&2
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "python$want" "python$want-venv" >&2
    if runs "/usr/bin/python$want"; then found "/usr/bin/python$want"; fi
fi
if command -v pyenv >/dev/null 2>&1; then
    echo "installing Python $want with pyenv (builds from source: a few minutes)" >&2
    if pyenv install --skip-existing "$want" >&2; then
        candidate=$(from_pyenv || true)
        if runs "$candidate"; then found "$candidate"; fi
    fi
fi
if command -v uv >/dev/null 2>&1; then
    echo "installing Python $want with uv" >&2
    if uv python install "$want" >&2; then
        candidate=$(uv python find "$want" 2>/dev/null || true)
        if runs "$candidate"; then found "$candidate"; fi
    fi
fi
echo "find_python.sh: no Python $want here, and none could be installed (tried PATH, pyenv, uv, apt-get)" >&2
exit 1
