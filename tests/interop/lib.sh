# shellcheck shell=bash
# Interop test infrastructure: install, start and stop real XMPP servers
# (Prosody, ejabberd) on 127.0.0.1 with their own configs, data dirs and ports.
#
# Source this file; it does not change shell options of the caller.
# See README.md in this directory for the contracts of the functions.
#
# Environment (all optional):
#   INTEROP_WORK          work root                   (default /tmp/xmpp-interop)
#   PROSODY_PORT          Prosody c2s port            (default 15222)
#   EJABBERD_PORT         ejabberd c2s port           (default 25222)
#   EJABBERD_DIST_PORT    Erlang distribution port    (default 25299, 127.0.0.1)
#   EJABBERD_SCRAM_HASH   sha | sha256 | sha512       (default sha)
#   INTEROP_LOGLEVEL      server log level: debug|info (default info)
#   INTEROP_START_TIMEOUT seconds to wait for a port  (default 30)

INTEROP_WORK="${INTEROP_WORK:-/tmp/xmpp-interop}"
PROSODY_PORT="${PROSODY_PORT:-15222}"
EJABBERD_PORT="${EJABBERD_PORT:-25222}"
EJABBERD_DIST_PORT="${EJABBERD_DIST_PORT:-25299}"
EJABBERD_SCRAM_HASH="${EJABBERD_SCRAM_HASH:-sha}"
INTEROP_LOGLEVEL="${INTEROP_LOGLEVEL:-info}"
INTEROP_START_TIMEOUT="${INTEROP_START_TIMEOUT:-30}"
INTEROP_DOMAIN=localhost
INTEROP_DIR="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
# Test accounts (user:password), created on every start.
INTEROP_USERS=("alice:alice-pass" "bob:bob-pass")

interop_log() { echo "[interop] $*" >&2; }

# ---------------------------------------------------------------- helpers ---

# _interop_port_open PORT -> 0 if 127.0.0.1:PORT accepts a TCP connection.
_interop_port_open() {
    (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null
}

# _interop_pid_alive PID
_interop_pid_alive() {
    [ -n "$1" ] && kill -0 "$1" 2>/dev/null
}

# _interop_kill_pid PID [GRACE_SECONDS]: TERM, wait, then KILL. Returns 0 when gone.
_interop_kill_pid() {
    local pid="$1" grace="${2:-10}" i
    _interop_pid_alive "$pid" || return 0
    kill -TERM "$pid" 2>/dev/null
    for ((i = 0; i < grace * 10; i++)); do
        _interop_pid_alive "$pid" || return 0
        sleep 0.1
    done
    interop_log "pid $pid did not stop after ${grace}s, sending KILL"
    kill -KILL "$pid" 2>/dev/null
    for ((i = 0; i < 50; i++)); do
        _interop_pid_alive "$pid" || return 0
        sleep 0.1
    done
    return 1
}

# _interop_log_tail NAME FILE...: print the last lines of the given logs.
_interop_log_tail() {
    local name="$1" f
    shift
    for f in "$@"; do
        [ -f "$f" ] || continue
        echo "----- $name: tail of $f -----" >&2
        tail -n 40 "$f" >&2
    done
    echo "----- end of $name logs -----" >&2
}

# _interop_wait_port PORT PIDFILE_OR_EMPTY -> waits (bounded) for the port.
# Fails early if the pid in PIDFILE (when given and once it exists) dies.
_interop_wait_port() {
    local port="$1" pidfile="$2" deadline=$((SECONDS + INTEROP_START_TIMEOUT)) pid
    while ((SECONDS < deadline)); do
        _interop_port_open "$port" && return 0
        if [ -n "$pidfile" ] && [ -s "$pidfile" ]; then
            pid="$(cat "$pidfile" 2>/dev/null)"
            if ! _interop_pid_alive "$pid"; then
                interop_log "server process $pid died before port $port opened"
                return 1
            fi
        fi
        sleep 0.2
    done
    interop_log "timed out after ${INTEROP_START_TIMEOUT}s waiting for 127.0.0.1:$port"
    return 1
}

# interop_certs: self-signed cert for localhost (CN + SAN), generated once.
#   $INTEROP_WORK/certs/localhost.crt  certificate (also the CA file for clients)
#   $INTEROP_WORK/certs/localhost.key  key
#   $INTEROP_WORK/certs/localhost.pem  cert + key (ejabberd's certfiles format)
interop_certs() {
    local d="$INTEROP_WORK/certs"
    if [ -s "$d/ca.crt" ] && [ -s "$d/localhost.pem" ] && [ -s "$d/localhost.crt" ] && [ -s "$d/localhost.key" ]; then
        return 0
    fi
    mkdir -p "$d"
    # A test CA and a leaf for localhost signed by it: strict verifiers
    # (webpki/rustls) refuse a CA certificate used as the end entity, so the
    # servers present the leaf and clients trust ca.crt.
    {
        openssl req -x509 -newkey rsa:2048 -nodes -sha256 -days 3650 \
            -subj "/CN=xmpp-sansio interop test CA" \
            -addext "basicConstraints=critical,CA:TRUE" \
            -addext "keyUsage=critical,keyCertSign,cRLSign" \
            -keyout "$d/ca.key" -out "$d/ca.crt" &&
            openssl req -new -newkey rsa:2048 -nodes -sha256 -subj "/CN=localhost" \
                -keyout "$d/localhost.key" -out "$d/localhost.csr" &&
            printf 'basicConstraints=critical,CA:FALSE\nkeyUsage=critical,digitalSignature,keyEncipherment\nextendedKeyUsage=serverAuth,clientAuth\nsubjectAltName=DNS:localhost,IP:127.0.0.1\n' >"$d/leaf.ext" &&
            openssl x509 -req -in "$d/localhost.csr" -CA "$d/ca.crt" -CAkey "$d/ca.key" \
                -CAcreateserial -days 3650 -sha256 -extfile "$d/leaf.ext" -out "$d/localhost.crt"
    } >/dev/null 2>&1 || {
        interop_log "openssl failed to create the test certificates"
        return 1
    }
    cat "$d/localhost.crt" "$d/localhost.key" >"$d/localhost.pem"
    chmod 644 "$d/localhost.crt" "$d/ca.crt"
    chmod 600 "$d/localhost.key" "$d/localhost.pem" "$d/ca.key"
}

# --------------------------------------------------------------- install ---

# interop_install: idempotent, quiet install of prosody, ejabberd, openssl,
# python3-venv (apt) and a venv with slixmpp (PyPI) in $INTEROP_WORK/venv.
# The Debian services are kept from starting (policy-rc.d) and stopped if
# they run anyway. Returns non-zero (with the apt/pip log tail) on failure.
interop_install() {
    mkdir -p "$INTEROP_WORK"
    local log="$INTEROP_WORK/install.log" pkgs=(prosody lua-unbound ejabberd openssl python3-venv)
    local missing=() p
    for p in "${pkgs[@]}"; do
        dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
    done
    if ((${#missing[@]})); then
        interop_log "installing Debian packages: ${missing[*]}"
        local made_policy=0 rc=0
        if [ ! -e /usr/sbin/policy-rc.d ]; then
            printf '#!/bin/sh\n# xmpp-sansio interop: keep Debian services from starting\nexit 101\n' >/usr/sbin/policy-rc.d
            chmod 755 /usr/sbin/policy-rc.d
            made_policy=1
        fi
        {
            # apt lists may be missing on a fresh machine; update at most once.
            if ! apt-cache show "${missing[@]}" >/dev/null 2>&1; then
                apt-get update -q
            fi
            DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends \
                -o Dpkg::Options::=--force-confdef -o Dpkg::Options::=--force-confold "${missing[@]}"
        } >>"$log" 2>&1 || rc=$?
        ((made_policy)) && rm -f /usr/sbin/policy-rc.d
        if ((rc)); then
            interop_log "apt-get failed (rc=$rc); tail of $log:"
            tail -n 30 "$log" >&2
            return 1
        fi
    fi
    _interop_stop_system_services

    local venv="$INTEROP_WORK/venv"
    if ! "$venv/bin/python" -c 'import slixmpp' >/dev/null 2>&1; then
        interop_log "creating venv with slixmpp in $venv"
        rm -rf "$venv"
        # Debian's python3 (python3-venv is installed above); fall back to PATH.
        local py=/usr/bin/python3
        [ -x "$py" ] || py="$(command -v python3)"
        { "$py" -m venv "$venv" && "$venv/bin/pip" install -q --disable-pip-version-check "slixmpp>=1.8,<2"; } >>"$log" 2>&1 || {
            interop_log "venv/slixmpp install failed; tail of $log:"
            tail -n 30 "$log" >&2
            return 1
        }
    fi
    interop_certs
}

# Stop the Debian-packaged instances if anything started them (they would
# hold 5222 and, for ejabberd, the default node name). Never touches ours.
_interop_stop_system_services() {
    local pid
    for pf in /run/prosody/prosody.pid /var/run/prosody/prosody.pid; do
        [ -s "$pf" ] && pid="$(cat "$pf")" && _interop_pid_alive "$pid" && {
            interop_log "stopping Debian's prosody service (pid $pid)"
            _interop_kill_pid "$pid" 10
        }
    done
    for pf in /run/ejabberd/ejabberd.pid /var/run/ejabberd/ejabberd.pid; do
        [ -s "$pf" ] && pid="$(cat "$pf")" && _interop_pid_alive "$pid" && {
            interop_log "stopping Debian's ejabberd service (pid $pid)"
            _interop_kill_pid "$pid" 15
        }
    done
    return 0
}

# ---------------------------------------------------------------- prosody ---

PROSODY_DIR="$INTEROP_WORK/prosody"

# prosody_start: fresh Prosody instance on 127.0.0.1:$PROSODY_PORT, domain
# localhost, STARTTLS required, SCRAM (internal_hashed), users alice/bob.
# Bounded by INTEROP_START_TIMEOUT; prints the log tail on failure.
prosody_start() {
    local d="$PROSODY_DIR" cfg="$PROSODY_DIR/prosody.cfg.lua"
    command -v prosody >/dev/null || { interop_log "prosody is not installed (run interop_install)"; return 1; }
    prosody_stop >/dev/null 2>&1
    if _interop_port_open "$PROSODY_PORT"; then
        interop_log "port $PROSODY_PORT is already in use by something else"
        return 1
    fi
    interop_certs || return 1
    rm -rf "$d"
    mkdir -p "$d/data" "$d/certs"
    cp "$INTEROP_WORK/certs/localhost.crt" "$INTEROP_WORK/certs/localhost.key" "$d/certs/"
    # smacks is built into Prosody >= 0.12; only enable it when present.
    local smacks=""
    [ -f /usr/lib/prosody/modules/mod_smacks.lua ] && smacks='"smacks";'
    cat >"$cfg" <<EOF
-- generated by tests/interop/lib.sh; do not edit
run_as_root = true          -- we are started by root in CI; keep it simple
pidfile = "$d/prosody.pid"
data_path = "$d/data"
plugin_paths = { }
log = {
    { levels = { min = "$INTEROP_LOGLEVEL" }, to = "file", filename = "$d/prosody.log" };
}
interfaces = { "127.0.0.1" }
local_interfaces = { "127.0.0.1" }
c2s_interfaces = { "127.0.0.1" }
c2s_ports = { $PROSODY_PORT }
c2s_direct_tls_ports = { }
legacy_ssl_ports = { }
s2s_ports = { }
s2s_direct_tls_ports = { }
component_ports = { }
http_ports = { }
https_ports = { }
modules_enabled = {
    "roster"; "saslauth"; "tls"; "disco"; "ping"; "carbons"; $smacks
    "posix";
}
modules_disabled = { "s2s"; "s2s_auth_certs"; "offline" }
c2s_require_encryption = true
s2s_require_encryption = true
allow_registration = false
authentication = "internal_hashed"
storage = "internal"
certificates = "$d/certs"

VirtualHost "$INTEROP_DOMAIN"
    ssl = {
        certificate = "$d/certs/localhost.crt";
        key = "$d/certs/localhost.key";
    }
EOF
    local u
    for u in "${INTEROP_USERS[@]}"; do
        prosodyctl --config "$cfg" register "${u%%:*}" "$INTEROP_DOMAIN" "${u#*:}" >>"$d/prosodyctl.log" 2>&1 || {
            interop_log "prosodyctl register ${u%%:*} failed"
            _interop_log_tail prosody "$d/prosodyctl.log"
            return 1
        }
    done
    # Foreground (-F) process, backgrounded; $! is Prosody itself (no
    # setsid: it may fork under job control and $! would be the wrong pid).
    # mod_posix also writes $d/prosody.pid.
    prosody --config "$cfg" -F </dev/null >>"$d/stdout.log" 2>&1 &
    echo $! >"$d/launcher.pid"
    if ! _interop_wait_port "$PROSODY_PORT" "$d/launcher.pid"; then
        interop_log "Prosody failed to start"
        _interop_log_tail prosody "$d/stdout.log" "$d/prosody.log"
        prosody_stop >/dev/null 2>&1
        return 1
    fi
    interop_log "Prosody $(prosody_version) up on 127.0.0.1:$PROSODY_PORT (pid $(cat "$d/launcher.pid"))"
}

# prosody_stop: stop our Prosody (pidfile + launcher pid), TERM then KILL.
# Returns 0 when nothing of ours is left running.
prosody_stop() {
    local d="$PROSODY_DIR" pid rc=0
    for pf in "$d/prosody.pid" "$d/launcher.pid"; do
        [ -s "$pf" ] || continue
        pid="$(cat "$pf")"
        _interop_kill_pid "$pid" 10 || rc=1
    done
    rm -f "$d/prosody.pid" "$d/launcher.pid"
    return $rc
}

prosody_version() {
    dpkg-query -W -f='${Version}' prosody 2>/dev/null
}

# --------------------------------------------------------------- ejabberd ---

EJABBERD_DIR="$INTEROP_WORK/ejabberd"
EJABBERD_NODE="ejabberd-interop@localhost"

# _ejabberdctl SECONDS ARGS...: Debian's ejabberdctl bound to our config, spool,
# logs and node name, killed after SECONDS. Debian's ejabberdctl runs
# everything as the 'ejabberd' user (via su) when invoked as root, so
# $EJABBERD_DIR is owned by that user.
_ejabberdctl() {
    local secs="$1"
    shift
    timeout -k 5 "$secs" ejabberdctl --config-dir "$EJABBERD_DIR" \
        --config "$EJABBERD_DIR/ejabberd.yml" \
        --ctl-config "$EJABBERD_DIR/ejabberdctl.cfg" \
        --spool "$EJABBERD_DIR/spool" \
        --logs "$EJABBERD_DIR/logs" \
        --node "$EJABBERD_NODE" "$@"
}

# ejabberd_start: fresh ejabberd node on 127.0.0.1:$EJABBERD_PORT, domain
# localhost, STARTTLS required, SCRAM storage, users alice/bob. Erlang
# distribution on a fixed port ($EJABBERD_DIST_PORT, 127.0.0.1, no epmd) with
# its own cookie. Bounded; prints the log tail on failure.
ejabberd_start() {
    local d="$EJABBERD_DIR"
    command -v ejabberdctl >/dev/null || { interop_log "ejabberd is not installed (run interop_install)"; return 1; }
    ejabberd_stop >/dev/null 2>&1
    if _interop_port_open "$EJABBERD_PORT"; then
        interop_log "port $EJABBERD_PORT is already in use by something else"
        return 1
    fi
    if _interop_port_open "$EJABBERD_DIST_PORT"; then
        interop_log "Erlang distribution port $EJABBERD_DIST_PORT is already in use"
        return 1
    fi
    interop_certs || return 1
    rm -rf "$d"
    mkdir -p "$d/spool" "$d/logs"
    cp "$INTEROP_WORK/certs/localhost.pem" "$d/localhost.pem"
    cat >"$d/ejabberdctl.cfg" <<EOF
# generated by tests/interop/lib.sh; sourced by Debian's ejabberdctl
ERL_DIST_PORT=$EJABBERD_DIST_PORT
ERL_OPTIONS="-setcookie xmpp-sansio-interop -kernel inet_dist_use_interface {127,0,0,1} -env ERL_CRASH_DUMP_BYTES 0"
EJABBERD_PID_PATH=$d/ejabberd.pid
EJABBERD_BYPASS_WARNINGS=true
CONTRIB_MODULES_PATH=$d/contrib
EOF
    # ejabberdctl points ERL_INETRC at <config-dir>/inetrc; an empty one keeps
    # Erlang's defaults and silences "inetrc not found" on every ctl call.
    echo '%% generated by tests/interop/lib.sh' >"$d/inetrc"
    cat >"$d/ejabberd.yml" <<EOF
# generated by tests/interop/lib.sh; do not edit
hosts:
  - $INTEROP_DOMAIN
loglevel: $INTEROP_LOGLEVEL
log_rotate_count: 0
certfiles:
  - "$d/localhost.pem"
auth_method: internal
auth_password_format: scram
auth_scram_hash: $EJABBERD_SCRAM_HASH
s2s_access: none
listen:
  -
    port: $EJABBERD_PORT
    ip: "127.0.0.1"
    module: ejabberd_c2s
    max_stanza_size: 262144
    shaper: c2s_shaper
    access: c2s
    starttls_required: true
acl:
  loopback:
    ip:
      - 127.0.0.0/8
access_rules:
  local:
    allow: all
  c2s:
    allow: all
shaper:
  normal:
    rate: 3000
    burst_size: 20000
  fast: 100000
shaper_rules:
  c2s_shaper:
    fast: all
modules:
  mod_disco: {}
  mod_ping: {}
  mod_roster: {}
  mod_carboncopy: {}   # XEP-0280 (ejabberd calls it carboncopy)
  mod_stream_mgmt: {}
EOF
    chown -R ejabberd:ejabberd "$d" 2>/dev/null
    chmod 700 "$d"
    # The ejabberd user must be able to reach $d (every parent traversable).
    if ! su -s /bin/sh ejabberd -c "test -r '$d/ejabberd.yml' && test -w '$d/spool'" 2>/dev/null; then
        interop_log "user 'ejabberd' cannot access $d; put INTEROP_WORK under a world-traversable path (e.g. /tmp)"
        return 1
    fi
    _ejabberdctl 30 start >>"$d/logs/ctl.log" 2>&1 || {
        interop_log "ejabberdctl start failed"
        _interop_log_tail ejabberd "$d/logs/ctl.log" "$d/logs/ejabberd.log" "$d/logs/error.log"
        return 1
    }
    if ! _interop_wait_port "$EJABBERD_PORT" "$d/ejabberd.pid"; then
        interop_log "ejabberd failed to start"
        _interop_log_tail ejabberd "$d/logs/ctl.log" "$d/logs/ejabberd.log" "$d/logs/error.log"
        ejabberd_stop >/dev/null 2>&1
        return 1
    fi
    local u
    for u in "${INTEROP_USERS[@]}"; do
        _ejabberdctl 30 register "${u%%:*}" "$INTEROP_DOMAIN" "${u#*:}" >>"$d/logs/ctl.log" 2>&1 || {
            interop_log "ejabberdctl register ${u%%:*} failed"
            _interop_log_tail ejabberd "$d/logs/ctl.log" "$d/logs/ejabberd.log" "$d/logs/error.log"
            ejabberd_stop >/dev/null 2>&1
            return 1
        }
    done
    interop_log "ejabberd $(ejabberd_version) up on 127.0.0.1:$EJABBERD_PORT (pid $(cat "$d/ejabberd.pid" 2>/dev/null))"
}

# ejabberd_stop: 'ejabberdctl stop' (bounded), then kill the beam pid if it
# is still there. Returns 0 when nothing of ours is left running.
ejabberd_stop() {
    local d="$EJABBERD_DIR" pid="" rc=0
    [ -f "$d/ejabberd.yml" ] || return 0
    [ -s "$d/ejabberd.pid" ] && pid="$(cat "$d/ejabberd.pid")"
    if _interop_pid_alive "$pid"; then
        _ejabberdctl 20 stop >>"$d/logs/ctl.log" 2>&1
        local i
        for ((i = 0; i < 100; i++)); do
            _interop_pid_alive "$pid" || break
            sleep 0.1
        done
        _interop_kill_pid "$pid" 5 || rc=1
    fi
    # Leftovers of our node (e.g. pidfile never written): match our node name only.
    local p
    for p in $(pgrep -f -- "-sname $EJABBERD_NODE" 2>/dev/null); do
        _interop_kill_pid "$p" 5 || rc=1
    done
    rm -f "$d/ejabberd.pid"
    return $rc
}

ejabberd_version() {
    dpkg-query -W -f='${Version}' ejabberd 2>/dev/null
}

# interop_stop_all: stop every server this file can start (for traps).
interop_stop_all() {
    prosody_stop >/dev/null 2>&1
    ejabberd_stop >/dev/null 2>&1
    return 0
}

# interop_smoke PORT [SMOKE_ARGS...]: run smoke.py from the venv against
# 127.0.0.1:PORT, domain localhost, trusting our self-signed cert. smoke.py
# bounds itself (--timeout, 20 s); the outer timeout is a backstop.
interop_smoke() {
    local port="$1"
    shift
    timeout -k 5 60 "$INTEROP_WORK/venv/bin/python" "$INTEROP_DIR/smoke.py" \
        --jid-domain "$INTEROP_DOMAIN" --host 127.0.0.1 --port "$port" \
        --cafile "$INTEROP_WORK/certs/ca.crt" "$@"
}
