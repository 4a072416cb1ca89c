# shellcheck shell=bash
# placeholder, being written
INTEROP_WORK="${INTEROP_WORK:-/tmp/xmpp-interop}"
