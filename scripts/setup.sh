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

setup_build_tools() {
  need cargo "install Rust with rustup"
  need node "install Node.js 20+"
  need npm "install npm"
  if ! rustup target list --installed 2>/dev/null | grep -qx wasm32-unknown-unknown; then
    say "adding the wasm32-unknown-unknown target"
    rustup target add wasm32-unknown-unknown
  fi
  if ! cargo leptos --version 2>/dev/null | grep -q " $CARGO_LEPTOS_VERSION\$"; then
    say "installing cargo-leptos $CARGO_LEPTOS_VERSION (one time, ~15 min on 2 cores)"
    # 0.3.11 needs rustc 1.96; --locked keeps 0.3.10's tested dependencies.
    cargo install --locked cargo-leptos --version "$CARGO_LEPTOS_VERSION"
  fi
  if ! wasm-bindgen --version 2>/dev/null | grep -q " $WASM_BINDGEN_VERSION\$"; then
    say "installing wasm-bindgen-cli $WASM_BINDGEN_VERSION (must equal the crate in Cargo.lock)"
    # Not --locked: its lock file names a crate version the registry lacks.
    cargo install wasm-bindgen-cli --version "$WASM_BINDGEN_VERSION"
  fi
  if [ ! -d node_modules ] || [ package-lock.json -nt node_modules/.package-lock.json ]; then
    say "installing npm packages (tailwindcss, echarts, binaryen)"
    # `npm install` honours package-lock.json; npm 11's `npm ci` rejects
    # lock files without every optional platform package of Tailwind.
    npm install --no-audit --no-fund --loglevel=error
  fi
  # ECharts is served from our own origin, never a CDN.
  mkdir -p public/vendor
  if ! cmp -s node_modules/echarts/dist/echarts.min.js public/vendor/echarts.min.js; then
    cp node_modules/echarts/dist/echarts.min.js public/vendor/echarts.min.js
  fi
}

setup_test_tools() {
  if [ ! -x /usr/bin/chromium ]; then
    say "installing Debian's Chromium for the browser tests"
    local sudo=""
    [ "$(id -u)" -ne 0 ] && sudo="sudo"
    $sudo apt-get update -qq && $sudo DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null
  fi
  if [ ! -d end2end/node_modules ] || [ end2end/package-lock.json -nt end2end/node_modules/.package-lock.json ]; then
    say "installing Playwright (the library only; the browser is Debian's)"
    (cd end2end && PLAYWRIGHT_SKIP_BROWSER_DOWNLOAD=1 npm install --no-audit --no-fund --loglevel=error)
  fi
}

# Builds the server binary and the site (WASM, JS, CSS) with cargo-leptos.
build_site() {
  say "building Tally (cargo leptos build ${1:-})"
  cargo leptos build ${1:-}
}
