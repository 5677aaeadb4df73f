# shellcheck shell=bash
# Sourced by scripts/run and scripts/test: the Debian packages respguard needs and how to get them.

# Build, test and run dependencies. The default configure also builds the tests (GoogleTest,
# redis-server for the integration tests), so one list serves both scripts.
# shellcheck disable=SC2034  # used by the scripts that source this file
RESPGUARD_PACKAGES=(
  build-essential cmake ninja-build pkg-config git
  libboost-dev libhiredis-dev libspdlog-dev libyaml-cpp-dev prometheus-cpp-dev libssl-dev openssl
  libgtest-dev redis-server redis-tools prometheus python3-redis python3-yaml
)
# kubectl renders deploy/kubernetes/ in the tests. Debian's package is kubernetes-client, which
# conflicts with the kubectl package (Kubernetes' own apt repository): add it only when no
# kubectl is on the PATH.
command -v kubectl >/dev/null 2>&1 || RESPGUARD_PACKAGES+=(kubernetes-client)

# Installs whichever of the given packages are missing. Runs apt-get update only when something
# is missing, so a prepared machine never touches the network.
install_missing_packages() {
  if ! command -v dpkg-query >/dev/null 2>&1; then
    echo "deps: not a Debian system; make sure these are installed: $*" >&2
    return 0
  fi
  local missing=() pkg
  for pkg in "$@"; do
    dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q 'ok installed' || missing+=("$pkg")
  done
  [ ${#missing[@]} -eq 0 ] && return 0

  local sudo=()
  if [ "$(id -u)" -ne 0 ]; then
    command -v sudo >/dev/null 2>&1 || {
      echo "deps: missing packages and not root: apt-get install ${missing[*]}" >&2
      return 1
    }
    sudo=(sudo)
  fi
  echo "deps: installing ${missing[*]}"
  "${sudo[@]}" apt-get update
  "${sudo[@]}" env DEBIAN_FRONTEND=noninteractive apt-get install -y "${missing[@]}"
}
