# Shared set-up for scripts/run and scripts/test: installs what is missing,
# at pinned versions, from the package registries only (crates.io, npm,
# Debian apt). Sourced, not executed.

CARGO_LEPTOS_VERSION=0.3.10
WASM_BINDGEN_VERSION=0.2.130

say() { printf '\033[1;34m==>\033[0m %s\n' "$*"; }
die() { printf '\033[1;31merror:\033[0m %s\n' "$*" >&2; exit 1; }

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$ROOT"
export PATH="$HOME/.cargo/bin:$ROOT/node_modules/.bin:$PATH"

need() { command -v "$1" >/dev/null 2>&1 || die "$1 is required but not installed ($2)"; }

# Runs a set-up command; on failure stops everything with what failed and
# what to do about it, so a broken step can never look like a success.
try() {
  local what=$1; shift
  "$@" || die "$what failed (command: $*). Fix the cause above and run this again."
}

# Runs a command as root: directly when we are root, else through sudo.
as_root() {
  if [ "$(id -u)" -eq 0 ]; then
    "$@"
  elif command -v sudo >/dev/null 2>&1; then
    sudo "$@"
  else
    die "installing system packages needs root; run as root or install sudo (wanted: $*)"
  fi
}

setup_build_tools() {
  need cargo "install Rust with rustup"
  need rustup "install Rust with rustup"
  need node "install Node.js 20+"
  need npm "install npm"
  if ! rustup target list --installed 2>/dev/null | grep -qx wasm32-unknown-unknown; then
    say "adding the wasm32-unknown-unknown target"
    try "adding the wasm32 target" rustup target add wasm32-unknown-unknown
  fi
  if ! cargo leptos --version 2>/dev/null | grep -q " $CARGO_LEPTOS_VERSION\$"; then
    say "installing cargo-leptos $CARGO_LEPTOS_VERSION (one time, ~15 min on 2 cores)"
    # 0.3.11 needs rustc 1.96; --locked keeps 0.3.10's tested dependencies.
    try "installing cargo-leptos" cargo install --locked cargo-leptos --version "$CARGO_LEPTOS_VERSION"
  fi
  if ! wasm-bindgen --version 2>/dev/null | grep -q " $WASM_BINDGEN_VERSION\$"; then
    say "installing wasm-bindgen-cli $WASM_BINDGEN_VERSION (must equal the crate in Cargo.lock)"
    # Not --locked: its lock file names a crate version the registry lacks.
    try "installing wasm-bindgen-cli" cargo install wasm-bindgen-cli --version "$WASM_BINDGEN_VERSION"
  fi
  if [ ! -d node_modules ] || [ package-lock.json -nt node_modules/.package-lock.json ]; then
    say "installing npm packages (tailwindcss, echarts, esbuild, binaryen)"
    # `npm install` honours package-lock.json; npm 11's `npm ci` rejects
    # lock files without every optional platform package of Tailwind.
    try "installing the npm packages" npm install --no-audit --no-fund --loglevel=error
  fi
  for tool in tailwindcss wasm-opt esbuild; do
    [ -x "node_modules/.bin/$tool" ] || die "node_modules/.bin/$tool is missing after npm install; delete node_modules and run this again"
  done
  # ECharts is served from our own origin, never a CDN, and holds only the
  # chart types and components the pages use (style/echarts.js), bundled
  # from the echarts package's modular entry points: about half the size
  # of the whole build.
  [ -d node_modules/echarts/lib ] || die "ECharts is missing from node_modules; delete node_modules and run this again"
  mkdir -p public/vendor
  local bundle=public/vendor/echarts.min.js
  if [ ! -s "$bundle" ] || [ style/echarts.js -nt "$bundle" ] || [ package-lock.json -nt "$bundle" ]; then
    try "bundling ECharts into public/vendor" node_modules/.bin/esbuild style/echarts.js --bundle --minify \
      --format=iife --target=es2020 --legal-comments=eof --log-level=warning --outfile="$bundle"
  fi
}

setup_test_tools() {
  if [ ! -x /usr/bin/chromium ]; then
    say "installing Debian's Chromium for the browser tests"
    need apt-get "the browser tests need Debian's chromium package"
    try "apt-get update" as_root apt-get update -qq
    try "installing chromium with apt-get" as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium
    [ -x /usr/bin/chromium ] || die "apt-get reported success but /usr/bin/chromium is missing"
  fi
  /usr/bin/chromium --version >/dev/null 2>&1 || die "/usr/bin/chromium does not run (chromium --version failed)"
  if [ ! -d end2end/node_modules ] || [ end2end/package-lock.json -nt end2end/node_modules/.package-lock.json ]; then
    say "installing Playwright (the library only; the browser is Debian's)"
    (cd end2end && PLAYWRIGHT_SKIP_BROWSER_DOWNLOAD=1 npm install --no-audit --no-fund --loglevel=error) \
      || die "installing Playwright with npm in end2end/ failed"
  fi
  [ -f end2end/node_modules/@playwright/test/package.json ] || die "Playwright is missing from end2end/node_modules after npm install"
  setup_sdk_venv
}

# The official provider SDKs the proxy test drives, from PyPI, in a
# virtualenv of their own (end2end/.sdk-venv).
setup_sdk_venv() {
  local venv=end2end/.sdk-venv req=end2end/sdk/requirements.txt
  if [ ! -x "$venv/bin/python" ] || [ "$req" -nt "$venv/.installed" ]; then
    need python3 "the proxy SDK test needs Python 3.9+ with venv (Debian: python3-venv)"
    say "installing the openai and anthropic Python SDKs (PyPI) into $venv"
    if ! python3 -m venv "$venv" 2>/dev/null; then
      need apt-get "python3 -m venv failed and Debian's python3-venv cannot be installed without apt-get"
      try "installing python3-venv with apt-get" as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq python3-venv
      try "creating $venv" python3 -m venv "$venv"
    fi
    try "installing the Python SDKs" "$venv/bin/pip" install -q --disable-pip-version-check -r "$req"
    touch "$venv/.installed"
  fi
}

# Builds the server binary and the site (WASM, JS, CSS) with cargo-leptos.
build_site() {
  say "building Tally (cargo leptos build ${1:-})"
  cargo leptos build ${1:-} || die "cargo leptos build ${1:-} failed"
  node scripts/precompress.mjs target/site || die "precompressing target/site failed"
}
