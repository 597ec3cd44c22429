#!/usr/bin/env bash
# Make sure the system programs a make target needs are here. For each missing one, install it
# with apt-get when we run as root on Debian/Ubuntu; otherwise print ONE line saying what to
# install, and fail (a missing browser outside CI is only a warning: browser tests skip).
#
# Usage: tools/require.sh [python] [redis] [browser] [nginx] [display] [sandbox | test-sandbox]
set -uo pipefail

PYTHON=${PYTHON:-python3}
apt_updated=no

# WORKSHOP_NO_INSTALL=1 never installs (the tests use it to see the "what to install" lines).
can_apt() { [ -z "${WORKSHOP_NO_INSTALL:-}" ] && [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; }

apt_install() {
  can_apt || return 1
  if [ "$apt_updated" = no ]; then
    apt-get update -qq >/dev/null 2>&1 || true
    apt_updated=yes
  fi
  echo "Installing $* with apt-get ..."
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "$@" >/dev/null
}

fail() { echo "$*" >&2; exit 1; }

in_ci() { case "${CI:-}" in 1 | true | TRUE | yes) return 0 ;; *) return 1 ;; esac; }

require_python() {
  command -v "$PYTHON" >/dev/null 2>&1 ||
    fail "$PYTHON not found: install Python 3.11 or newer (Debian/Ubuntu: sudo apt-get install python3; macOS: brew install python)."
  "$PYTHON" -c 'import sys; sys.exit(sys.version_info < (3, 11))' ||
    fail "Python 3.11 or newer is needed, $PYTHON is $("$PYTHON" -V 2>&1 | cut -d' ' -f2): install a newer one and run make PYTHON=python3.11 ..."
  "$PYTHON" -c 'import ensurepip, venv' >/dev/null 2>&1 && return 0
  apt_install python3-venv && "$PYTHON" -c 'import ensurepip, venv' >/dev/null 2>&1 && return 0
  fail "$PYTHON cannot create virtual environments: run sudo apt-get install python3-venv."
}

require_redis() {
  command -v redis-server >/dev/null 2>&1 && return 0
  apt_install redis-server && command -v redis-server >/dev/null 2>&1 && return 0
  fail "redis-server is not installed: run sudo apt-get install redis-server (Debian/Ubuntu) or brew install redis (macOS)."
}

browser_found() {
  [ -n "${CHROME_BIN:-}" ] && [ -x "${CHROME_BIN}" ] && return 0
  command -v chromium >/dev/null 2>&1 && command -v chromedriver >/dev/null 2>&1 && return 0
  command -v chromium-browser >/dev/null 2>&1 && return 0
  command -v google-chrome >/dev/null 2>&1 && return 0
  [ -d "/Applications/Google Chrome.app" ] && return 0
  return 1
}

require_browser() {
  browser_found && return 0
  apt_install chromium chromium-driver && browser_found && return 0
  local how="install Chromium and its driver (sudo apt-get install chromium chromium-driver) or Google Chrome"
  in_ci && fail "No Chromium/Chrome for the browser tests: $how."
  echo "warning: no Chromium/Chrome found, so the browser tests will be skipped: $how." >&2
}

# The grading sandbox: bubblewrap, and util-linux's setpriv and prlimit (on every Debian).
require_sandbox() {
  command -v bwrap >/dev/null 2>&1 && return 0
  apt_install bubblewrap && command -v bwrap >/dev/null 2>&1 && return 0
  fail "bubblewrap is not installed, and grading runs students' code in it: run sudo apt-get install bubblewrap (Debian/Ubuntu); elsewhere pass UNSANDBOXED=1."
}

# nginx in front of stage 9's workers (Debian installs it in /usr/sbin).
nginx_found() { command -v nginx >/dev/null 2>&1 || [ -x /usr/sbin/nginx ]; }

require_nginx() {
  nginx_found && return 0
  apt_install nginx && nginx_found && return 0
  local how="run sudo apt-get install nginx (Debian/Ubuntu) or brew install nginx (macOS)"
  in_ci && fail "nginx is not installed, and stage 9's tests run it: $how."
  echo "warning: nginx is not installed, so stage 9's deployment tests will be skipped and make step9 cannot run: $how." >&2
}

# A virtual display (Xvfb) for a student's own tests that open a visible Chrome (stage 6).
require_display() {
  command -v Xvfb >/dev/null 2>&1 && return 0
  apt_install xvfb && command -v Xvfb >/dev/null 2>&1 && return 0
  in_ci && fail "No Xvfb (a virtual display) for stage 6's tests: run sudo apt-get install xvfb."
  echo "warning: no Xvfb, so stage-6 tests that open a visible Chrome fail when graded (Debian/Ubuntu: sudo apt-get install xvfb)." >&2
}

# `make test` on a machine without bubblewrap (macOS): the workshop's own stages run
# unsandboxed and the sandbox's tests are skipped; in CI that is a failure.
require_test_sandbox() {
  command -v bwrap >/dev/null 2>&1 && return 0
  apt_install bubblewrap && command -v bwrap >/dev/null 2>&1 && return 0
  in_ci && fail "No bubblewrap for the sandbox tests: run sudo apt-get install bubblewrap."
  echo "warning: no bubblewrap, so the stages run unsandboxed and the sandbox tests are skipped (Linux: sudo apt-get install bubblewrap)." >&2
}

for need in "$@"; do
  case "$need" in
    python) require_python ;;
    redis) require_redis ;;
    browser) require_browser ;;
    sandbox) require_sandbox ;;
    test-sandbox) require_test_sandbox ;;
    display) require_display ;;
    nginx) require_nginx ;;
    *) fail "tools/require.sh: unknown requirement '$need' (python, redis, browser, nginx, sandbox, test-sandbox or display)." ;;
  esac
done
