#!/bin/sh
# Install Debian's chromium for the browser tests (tests/e2e) when it is missing, and the Noto CJK
# fonts that the Japanese and Chinese editions need (plots and pages without tofu).
# Playwright drives this system browser; `playwright install` is never needed.
# Exit status: 0 when /usr/bin/chromium and a CJK font are usable afterwards, non-zero otherwise.
set -eu
CHROMIUM=${CHROMIUM:-/usr/bin/chromium}
has_cjk_font() { fc-list :lang=ja 2>/dev/null | grep -q . && fc-list :lang=zh-cn 2>/dev/null | grep -q .; }
if [ -x "$CHROMIUM" ] && has_cjk_font; then
    exit 0
fi
if ! command -v apt-get >/dev/null 2>&1; then
    echo "install_browser.sh: no apt-get on this machine; install chromium by hand" >&2
    exit 2
fi
SUDO=""
if [ "$(id -u)" -ne 0 ]; then
    if command -v sudo >/dev/null 2>&1 && sudo -n true 2>/dev/null; then
        SUDO="sudo -n"
    else
        echo "install_browser.sh: not root and no password-less sudo; cannot apt-get install chromium" >&2
        exit 3
    fi
fi
echo "install_browser.sh: installing Debian's chromium and Noto CJK fonts with apt-get" >&2
$SUDO env DEBIAN_FRONTEND=noninteractive apt-get update -q >&2
$SUDO env DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends chromium fonts-dejavu-core fonts-noto-cjk >&2
test -x "$CHROMIUM"
has_cjk_font
"$CHROMIUM" --version >&2
