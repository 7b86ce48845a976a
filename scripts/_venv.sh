# Sourced by scripts/test and scripts/demo: create .venv and install the project once.
# A stamp holding the hash of pyproject.toml skips the install when nothing changed.
ensure_venv() {
  local py="${PYTHON:-python3}"
  if [ ! -x .venv/bin/python ]; then
    echo "==> creating .venv" >&2
    "$py" -m venv .venv
  fi
  local want have=""
  want=$(cat pyproject.toml | sha256sum | cut -d' ' -f1)
  [ -f .venv/.swarm-installed ] && have=$(cat .venv/.swarm-installed)
  if [ "$want" != "$have" ]; then
    echo "==> installing swarm-runner and its test tools into .venv" >&2
    .venv/bin/python -m pip install --quiet --upgrade pip >&2
    .venv/bin/python -m pip install --quiet -e '.[test]' >&2
    echo "$want" > .venv/.swarm-installed
  fi
  export PATH="$PWD/.venv/bin:$PATH"
}
