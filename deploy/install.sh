#!/usr/bin/env bash
# Install or upgrade the smart-community gateway as a systemd service on Raspberry Pi OS or
# Debian (12 or newer): see `install.sh --help`.
set -euo pipefail

usage() {
  cat <<'EOF'
Usage: sudo deploy/install.sh [OPTIONS]

Installs the smart-community gateway as the systemd service `scgw` on Raspberry Pi OS or
Debian 12+, with a secured Mosquitto and InfluxDB 1.x beside it:

  - Debian packages: python3, python3-venv, mosquitto, influxdb, openssl (and python3-lgpio
    on a Raspberry Pi);
  - the system user `scgw` (groups dialout, and gpio where it exists);
  - the gateway in a virtualenv, /opt/scgw/venv, and a `scgw` command in /usr/local/bin
    that runs it with the service's secrets;
  - /etc/scgw: gateway.toml (made once from deploy/gateway.pi.toml), secrets.env (random
    secrets, read by the service), ca.crt (the broker's CA, for TLS clients) and
    broker-credentials (the duty console's and the MQTT devices' logins, root only);
  - the journal in /var/lib/scgw;
  - Mosquitto: password file, per-user ACL, a plain listener on 127.0.0.1 and a TLS
    listener on the LAN with a certificate from a CA made on the first run; no anonymous
    access anywhere;
  - the duty console's TLS certificate, /etc/scgw/console/server.crt and server.key,
    issued by the same CA for the same names as the broker's (a new gateway.toml turns
    the console's TLS on with it; browsers trust /etc/scgw/ca.crt);
  - the unit /etc/systemd/system/scgw.service (watchdog, restart on failure, hardening).

Running it again upgrades the gateway in place. It keeps the configuration, the journal,
the secrets, the passwords and the certificates, adds broker users for MQTT devices newly
configured, and rewrites the ACL from the configuration.

Options:
  --site NAME           site name for a new /etc/scgw/gateway.toml (default: c1)
  --mqtt-port PORT      the broker's plain listener on 127.0.0.1 (default: 1883, or on a
                        re-run the one installed before)
  --mqtts-port PORT     the broker's TLS listener for the LAN (default: 8883, or on a
                        re-run the one installed before)
  --broker-name NAME    a host name or address LAN clients use for the broker, added to
                        its certificate (repeatable). The host name, NAME.local, localhost
                        and the machine's IPv4 addresses are always in it
  --renew-server-cert   issue new broker and console certificates from the same CA (after
                        a change of host name or address; clients keep trusting the CA)
  --console-user NAME   the duty console's broker user (default: duty-console)
  --broker-queue-messages N
                        QoS 1 messages the broker queues per client that is away or slow
                        (the gateway's sessions); beyond it the broker drops, silently
                        (default: 100000, or on a re-run the value installed before)
  --broker-queue-bytes N
                        the same bound in bytes (default: 67108864, 64 MiB, or on a re-run
                        the value installed before); 0: none
  --with-grafana        also install Grafana from Grafana's APT repository
  --source DIR          the gateway's source tree (default: the tree holding this script)
  --root DIR            install into the directory tree DIR instead of / (to inspect what
                        would be installed, or to test the installer); needs --no-apt and
                        --no-start, and DIR/etc holding passwd, group, shadow and gshadow
  --no-apt              install no Debian packages (they must be there already)
  --no-start            enable, start and restart no service
  -h, --help            this text
EOF
}

# --- options -------------------------------------------------------------------------

if [[ $EUID -ne 0 ]]; then
  case " $* " in
  *" -h "* | *" --help "*) ;;
  *) exec sudo -- bash "$0" "$@" ;;
  esac
fi

# useradd and friends live in sbin, which a plain `su` leaves out of PATH
PATH=$PATH:/usr/sbin:/sbin
HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
SOURCE=$(dirname "$HERE")
ROOT=/
SITE=c1
MQTT_PORT=
MQTTS_PORT=
QUEUED_MESSAGES=
QUEUED_BYTES=
CONSOLE_USER=duty-console
BROKER_NAMES=()
RENEW_CERT=0
WITH_GRAFANA=0
APT=1
START=1

die() {
  printf 'install.sh: %s\n' "$*" >&2
  exit 1
}

need_value() {
  [[ $# -ge 2 && -n $2 ]] || die "$1 needs a value (see --help)"
}

while [[ $# -gt 0 ]]; do
  case $1 in
  --site) need_value "$@"; SITE=$2; shift 2 ;;
  --mqtt-port) need_value "$@"; MQTT_PORT=$2; shift 2 ;;
  --mqtts-port) need_value "$@"; MQTTS_PORT=$2; shift 2 ;;
  --broker-name) need_value "$@"; BROKER_NAMES+=("$2"); shift 2 ;;
  --renew-server-cert) RENEW_CERT=1; shift ;;
  --console-user) need_value "$@"; CONSOLE_USER=$2; shift 2 ;;
  --broker-queue-messages) need_value "$@"; QUEUED_MESSAGES=$2; shift 2 ;;
  --broker-queue-bytes) need_value "$@"; QUEUED_BYTES=$2; shift 2 ;;
  --with-grafana) WITH_GRAFANA=1; shift ;;
  --source) need_value "$@"; SOURCE=$2; shift 2 ;;
  --root) need_value "$@"; ROOT=$2; shift 2 ;;
  --no-apt) APT=0; shift ;;
  --no-start) START=0; shift ;;
  -h | --help) usage; exit 0 ;;
  *) die "unknown option $1 (see --help)" ;;
  esac
done

SOURCE=$(cd "$SOURCE" 2>/dev/null && pwd) || die "--source: no such directory"
ROOT=$(cd "$ROOT" 2>/dev/null && pwd) || die "--root: no such directory"

# On a re-run the ports stay those of the installed broker configuration.
installed_port() {
  local conf=${ROOT%/}/etc/mosquitto/conf.d/scgw.conf
  [[ -f $conf ]] || return 0
  if [[ $1 == plain ]]; then
    awk '$1 == "listener" && $3 == "127.0.0.1" { print $2; exit }' "$conf"
  else
    awk '$1 == "listener" && $3 == "" { print $2; exit }' "$conf"
  fi
}
MQTT_PORT=${MQTT_PORT:-$(installed_port plain)}
MQTT_PORT=${MQTT_PORT:-1883}
MQTTS_PORT=${MQTTS_PORT:-$(installed_port tls)}
MQTTS_PORT=${MQTTS_PORT:-8883}
# the broker's queue bounds too
installed_setting() {
  local conf=${ROOT%/}/etc/mosquitto/conf.d/scgw.conf
  [[ -f $conf ]] || return 0
  awk -v name="$1" '$1 == name { print $2; exit }' "$conf"
}
QUEUED_MESSAGES=${QUEUED_MESSAGES:-$(installed_setting max_queued_messages)}
QUEUED_BYTES=${QUEUED_BYTES:-$(installed_setting max_queued_bytes)}

for port in "$MQTT_PORT" "$MQTTS_PORT"; do
  [[ $port =~ ^[0-9]+$ && $port -ge 1 && $port -le 65535 ]] || die "not a port: $port"
done
[[ $MQTT_PORT != "$MQTTS_PORT" ]] || die "--mqtt-port and --mqtts-port must differ"
[[ $SITE =~ ^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$ ]] ||
  die "--site: 1 to 64 letters, digits, '_', '.' or '-', starting with a letter or digit"
[[ -f $SOURCE/pyproject.toml && -f $SOURCE/gateway/ops/cli.py ]] ||
  die "--source $SOURCE is not the gateway's source tree"
if [[ $ROOT != / ]]; then
  [[ $APT == 0 && $START == 0 ]] || die "--root needs --no-apt and --no-start"
  for f in passwd group shadow gshadow; do
    [[ -f $ROOT/etc/$f ]] || die "--root $ROOT has no etc/$f (useradd needs it)"
  done
fi
[[ $WITH_GRAFANA == 0 || $APT == 1 ]] || die "--with-grafana installs with apt: drop --no-apt"

# A path of the target system, inside --root.
R() {
  printf '%s%s' "${ROOT%/}" "$1"
}

step() {
  printf '\n==> %s\n' "$*"
}

say() {
  printf '    %s\n' "$*"
}

warn() {
  printf '    warning: %s\n' "$*" >&2
}

# Files that changed on this run: decides what to restart.
CHANGED=()
BROKER_CHANGED=()
BROKER_ADDED=()

# put_file TMP DEST MODE OWNER: TMP becomes DEST when their contents differ; DEST gets
# MODE and OWNER (numeric uid:gid, resolved inside --root) either way.
put_file() {
  local tmp=$1 dest=$2 mode=$3 owner=$4
  if [[ -f $dest ]] && cmp -s "$tmp" "$dest"; then
    rm -f "$tmp"
  else
    mv "$tmp" "$dest"
    CHANGED+=("$dest")
  fi
  chmod "$mode" "$dest"
  chown "$owner" "$dest"
}

# The numeric ids of a user or group of the target system (its own passwd and group).
uid_of() {
  awk -F: -v name="$1" '$1 == name { print $3; found = 1 } END { exit !found }' \
    "$(R /etc/passwd)"
}
gid_of() {
  awk -F: -v name="$1" '$1 == name { print $3; found = 1 } END { exit !found }' \
    "$(R /etc/group)"
}
has_group() {
  gid_of "$1" >/dev/null
}

is_raspberry_pi() {
  [[ $ROOT == / ]] && grep -q "Raspberry Pi" /proc/device-tree/model 2>/dev/null
}

# shellcheck source=deploy/mosquitto/broker.sh
. "$HERE/mosquitto/broker.sh"
QUEUED_MESSAGES=${QUEUED_MESSAGES:-$BROKER_QUEUED_MESSAGES}
QUEUED_BYTES=${QUEUED_BYTES:-$BROKER_QUEUED_BYTES}
for bound in "$QUEUED_MESSAGES" "$QUEUED_BYTES"; do
  [[ $bound =~ ^[0-9]{1,12}$ ]] || die "--broker-queue-messages/--broker-queue-bytes: not a whole number: $bound"
done

PYTHON=/usr/bin/python3 # Debian's: python3-lgpio is built for it
VENV=/opt/scgw/venv
CONFIG=/etc/scgw/gateway.toml
SECRETS=/etc/scgw/secrets.env
CREDENTIALS=/etc/scgw/broker-credentials
BROKER_DIR=/etc/mosquitto/scgw
PKI_DIR=/etc/scgw/pki
CONSOLE_TLS_DIR=/etc/scgw/console
CONSOLE_SCHEME=http
STAGE=$(mktemp -d)
trap 'rm -rf "$STAGE"' EXIT

# --- Debian packages -----------------------------------------------------------------

install_packages() {
  step "Debian packages"
  if [[ $APT == 0 ]]; then
    say "skipped (--no-apt)"
    return
  fi
  local packages=(python3 python3-venv mosquitto mosquitto-clients influxdb openssl passwd)
  if is_raspberry_pi; then
    packages+=(python3-lgpio)
  fi
  export DEBIAN_FRONTEND=noninteractive
  say "apt-get install ${packages[*]}"
  apt-get update -qq
  apt-get install -y -qq "${packages[@]}" >/dev/null
  if [[ $WITH_GRAFANA == 1 ]]; then
    install_grafana
  fi
}

install_grafana() {
  say "Grafana from https://apt.grafana.com"
  apt-get install -y -qq ca-certificates curl gnupg >/dev/null
  install -d -m 0755 /etc/apt/keyrings
  curl -fsSL https://apt.grafana.com/gpg.key | gpg --dearmor --yes -o /etc/apt/keyrings/grafana.gpg
  echo "deb [signed-by=/etc/apt/keyrings/grafana.gpg] https://apt.grafana.com stable main" \
    >/etc/apt/sources.list.d/grafana.list
  apt-get update -qq
  apt-get install -y -qq grafana >/dev/null
  if [[ $START == 1 ]]; then
    systemctl enable --now grafana-server
  fi
  say "Grafana on port 3000 (its provisioning follows below)"
}

check_tools() {
  local tool missing=()
  for tool in "$PYTHON" openssl mosquitto_passwd useradd usermod awk sed cmp; do
    command -v "$tool" >/dev/null || missing+=("$tool")
  done
  [[ ${#missing[@]} -eq 0 ]] ||
    die "missing: ${missing[*]} (install python3 python3-venv mosquitto openssl passwd, or drop --no-apt)"
  "$PYTHON" -c 'import sys; sys.exit(sys.version_info < (3, 11))' ||
    die "$PYTHON is older than 3.11: Debian 12 (bookworm) or newer is needed"
  "$PYTHON" -c 'import ensurepip, venv' 2>/dev/null || die "$PYTHON has no venv module: install python3-venv"
  uid_of mosquitto >/dev/null || die "no user mosquitto on the target system: install mosquitto"
}

# --- the service user and its directories ----------------------------------------------

create_user() {
  step "Service user scgw"
  local root_opt=()
  [[ $ROOT == / ]] || root_opt=(--root "$ROOT")
  if uid_of scgw >/dev/null; then
    say "exists"
  else
    useradd "${root_opt[@]}" --system --user-group --home-dir /var/lib/scgw --no-create-home \
      --shell /usr/sbin/nologin --comment "smart-community gateway" scgw
    say "created"
  fi
  if [[ $ROOT == / ]] && ! has_group gpio && compgen -G "/dev/gpiochip*" >/dev/null; then
    # Debian on a Pi has no gpio group (Raspberry Pi OS has one with a udev rule)
    groupadd --system gpio
    printf '%s\n' '# GPIO chips for the gpio group (installed by the smart-community gateway installer)' \
      'SUBSYSTEM=="gpio", KERNEL=="gpiochip*", GROUP="gpio", MODE="0660"' \
      >/etc/udev/rules.d/60-scgw-gpio.rules
    udevadm trigger --subsystem-match=gpio || true
    say "created the group gpio and a udev rule giving it /dev/gpiochip*"
  fi
  local groups=dialout
  if has_group gpio; then
    groups=dialout,gpio
  fi
  usermod "${root_opt[@]}" --append --groups "$groups" scgw
  say "member of $groups"
  SCGW_UID=$(uid_of scgw)
  SCGW_GID=$(gid_of scgw)
  MOSQ_UID=$(uid_of mosquitto)
  MOSQ_GID=$(gid_of mosquitto)
  install -d -m 0750 -o 0 -g "$SCGW_GID" "$(R /etc/scgw)"
  install -d -m 0700 -o 0 -g 0 "$(R $PKI_DIR)"
  install -d -m 0750 -o "$SCGW_UID" -g "$SCGW_GID" "$(R /var/lib/scgw)"
  install -d -m 0755 -o 0 -g 0 "$(R /opt/scgw)" "$(R /usr/local/bin)" \
    "$(R /etc/systemd/system)" "$(R /etc/mosquitto/conf.d)"
  install -d -m 0750 -o 0 -g "$MOSQ_GID" "$(R $BROKER_DIR)"
}

# --- the gateway -----------------------------------------------------------------------

install_gateway() {
  step "Gateway in $VENV"
  local venv
  venv=$(R $VENV)
  if [[ -x $venv/bin/python ]] &&
    "$venv/bin/python" -c 'import sys; print(sys.version_info[:2])' >"$STAGE/venv-version" 2>/dev/null &&
    "$PYTHON" -c 'import sys; print(sys.version_info[:2])' | cmp -s - "$STAGE/venv-version"; then
    say "upgrading the existing virtualenv"
  else
    # system site packages: python3-lgpio comes from Debian, built for its Python
    "$PYTHON" -m venv --clear --system-site-packages "$venv"
    say "created the virtualenv (with the system's site packages, for python3-lgpio)"
  fi
  # a copy without the checkout's build products and virtualenvs: pip builds in place
  tar -C "$SOURCE" --exclude=./.git --exclude=./.venv --exclude=./build --exclude='*.egg-info' \
    --exclude=__pycache__ --exclude=./.demo --exclude=./.mypy_cache --exclude=./.ruff_cache \
    --exclude=./.pytest_cache --exclude=./.hypothesis --exclude=./.fuzz -cf - . |
    (mkdir "$STAGE/src" && tar -C "$STAGE/src" -xf -)
  "$venv/bin/pip" install --quiet --disable-pip-version-check --root-user-action=ignore \
    "$STAGE/src"
  say "installed smart-community-gateway $("$venv/bin/python" -c \
    'from importlib.metadata import version; print(version("smart-community-gateway"))')"

  local wrapper
  wrapper=$(mktemp "$(R /usr/local/bin)/.scgw.XXXXXX")
  cat >"$wrapper" <<EOF
#!/bin/sh
# scgw with the gateway service's secrets and, unless another is named, its
# configuration: for check-config, status, doctor, alerts, rules and broker (installed by
# the smart-community gateway's deploy/install.sh). The gateway itself runs as the
# service: systemctl start|stop|reload scgw.
set -eu
if [ "\${1:-}" = run ]; then
  echo "the gateway runs as a service: sudo systemctl start scgw (its log: journalctl -u scgw)" >&2
  exit 2
fi
# the service's configuration unless another is named
case " \$* " in
*" --config "* | *" --config="* | *" -c "*) ;;
*)
  case "\${1:-} \${2:-}" in
  "status "* | "doctor "* | "alerts list" | "alerts ack" | "rules reload" | "broker users" | "broker acl")
    set -- "\$@" --config $CONFIG
    ;;
  esac
  ;;
esac
if [ -r $SECRETS ]; then
  set -a
  . $SECRETS
  set +a
fi
exec $VENV/bin/scgw "\$@"
EOF
  put_file "$wrapper" "$(R /usr/local/bin/scgw)" 0755 0:0
}

# --- configuration and secrets ---------------------------------------------------------

# The value of a key of the gateway's configuration (empty when not set).
config_value() {
  "$(R $VENV)/bin/python" - "$(R $CONFIG)" "$1" "$2" <<'EOF'
import sys
import tomllib

with open(sys.argv[1], "rb") as f:
    table = tomllib.load(f)
section, key = sys.argv[2], sys.argv[3]
value = (table.get(section, {}) if section else table).get(key)
print("" if value is None else value)
EOF
}

install_config() {
  step "Configuration in /etc/scgw"
  local config
  config=$(R $CONFIG)
  if [[ -f $config ]]; then
    say "keeping $CONFIG"
  else
    # the console over TLS with the certificate issued below
    sed -e "s/^site = \"c1\"$/site = \"$SITE\"/" -e "s/^port = 1883$/port = $MQTT_PORT/" \
      -e 's|^# \[console\.tls\]$|[console.tls]|' \
      -e "s|^# cert_file = \"$CONSOLE_TLS_DIR/server.crt\"$|cert_file = \"$CONSOLE_TLS_DIR/server.crt\"|" \
      -e "s|^# key_file = \"$CONSOLE_TLS_DIR/server.key\"$|key_file = \"$CONSOLE_TLS_DIR/server.key\"|" \
      "$HERE/gateway.pi.toml" >"$config.new"
    mv "$config.new" "$config"
    say "wrote $CONFIG (site $SITE) from deploy/gateway.pi.toml"
  fi
  chown "0:$SCGW_GID" "$config"
  chmod 0640 "$config"

  local secrets name
  secrets=$(R $SECRETS)
  if [[ ! -f $secrets ]]; then
    printf '# Secrets of the scgw service (its EnvironmentFile); made by deploy/install.sh.\n' >"$secrets"
  fi
  chown "0:$SCGW_GID" "$secrets"
  chmod 0640 "$secrets"
  GATEWAY_PASSWORD_ENV=$(config_value broker password_env)
  GATEWAY_PASSWORD_RESET=0
  for name in "$GATEWAY_PASSWORD_ENV" "$(config_value '' pseudonym_key_env)"; do
    [[ -n $name ]] || continue
    if ! grep -q "^$name=" "$secrets"; then
      printf '%s=%s\n' "$name" "$(broker_random_secret)" >>"$secrets"
      say "made a random $name in $SECRETS"
      [[ $name != "$GATEWAY_PASSWORD_ENV" ]] || GATEWAY_PASSWORD_RESET=1
    fi
  done
  [[ -n $GATEWAY_PASSWORD_ENV ]] ||
    die "$CONFIG: [broker] has no password_env: the broker accepts no client without a password"

  install_console_tls # the certificate it names exists before it is checked

  step "Configuration: check"
  say "scgw check-config $CONFIG"
  with_secrets "$(R $VENV)/bin/scgw" check-config "$(seen_config)" >/dev/null ||
    die "$CONFIG has problems (listed above): fix them and run the installer again"
  local host port
  host=$(config_value broker host)
  port=$(config_value broker port)
  if [[ ${host:-127.0.0.1} =~ ^(127\.0\.0\.1|localhost|::1)$ && ${port:-1883} != "$MQTT_PORT" ]]; then
    warn "$CONFIG has broker.port = ${port:-1883} but the broker listens on $MQTT_PORT: change one"
  fi
}

# The configuration as the gateway will read it on the target system: with --root, a copy
# whose files under /etc/scgw (the console's certificate) are named inside the root.
seen_config() {
  if [[ $ROOT == / ]]; then
    printf '%s' "$CONFIG"
  else
    sed "s|\"/etc/scgw/|\"${ROOT%/}/etc/scgw/|g" "$(R $CONFIG)" >"$STAGE/gateway.toml"
    printf '%s' "$STAGE/gateway.toml"
  fi
}

# Run a command with the service's secrets in its environment.
with_secrets() {
  (
    set -a
    # shellcheck disable=SC1090
    . "$(R $SECRETS)"
    set +a
    "$@"
  )
}

# --- the broker ------------------------------------------------------------------------

# Host names and addresses for the broker's certificate.
broker_names() {
  local host ip names=()
  host=$(hostname)
  names+=("$host" "$host.local" localhost 127.0.0.1 ::1)
  for ip in $(hostname -I 2>/dev/null || true); do
    [[ $ip == *:* ]] || names+=("$ip") # IPv6 LAN addresses change too often
  done
  names+=("${BROKER_NAMES[@]}")
  printf '%s\n' "${names[@]}" | awk '!seen[$0]++'
}

install_broker() {
  step "Mosquitto: users, ACL, TLS"
  local broker pki names
  broker=$(R $BROKER_DIR)
  pki=$(R $PKI_DIR)
  broker_ensure_ca "$pki" "scgw $(config_value '' site) compound CA ($(hostname))"
  mapfile -t names < <(broker_names)
  broker_ensure_server_cert "$pki" "$broker" "$RENEW_CERT" "${names[@]}"
  say "server certificate for: $(openssl x509 -noout -ext subjectAltName -in "$broker/server.crt" | tail -n +2 | sed 's/^ *//')"
  cp "$broker/ca.crt" "$STAGE/ca.crt"
  put_file "$STAGE/ca.crt" "$(R /etc/scgw/ca.crt)" 0644 0:0

  local password
  password=$(with_secrets printenv "$GATEWAY_PASSWORD_ENV")
  with_secrets "$(R $VENV)/bin/scgw" broker users --config "$(seen_config)" \
    --console-user "$CONSOLE_USER" >"$STAGE/users"
  broker_sync_users "$broker/passwd" "$(R $CREDENTIALS)" "$password" "$GATEWAY_PASSWORD_RESET" \
    <"$STAGE/users"
  chown 0:0 "$(R $CREDENTIALS)"
  if [[ ${#BROKER_ADDED[@]} -gt 0 ]]; then
    say "new broker users: ${BROKER_ADDED[*]} (the gateway's password is in $SECRETS,"
    say "the others' in $CREDENTIALS)"
  fi

  local acl
  acl=$(mktemp "$broker/acl.XXXXXX")
  with_secrets "$(R $VENV)/bin/scgw" broker acl --config "$(seen_config)" \
    --console-user "$CONSOLE_USER" >"$acl"
  if [[ -f $(R /etc/scgw/broker-local.acl) ]]; then
    # users added by hand (a zigbee2mqtt bridge, say): their ACL lines live here
    printf '\n# from /etc/scgw/broker-local.acl\n' >>"$acl"
    cat "$(R /etc/scgw/broker-local.acl)" >>"$acl"
  fi
  put_file "$acl" "$broker/acl" 0600 "$MOSQ_UID:$MOSQ_GID"
  # Mosquitto reads these after dropping root: its own user must own them, and nobody
  # else may read them (newer versions refuse files that others can read)
  chown "$MOSQ_UID:$MOSQ_GID" "$broker/passwd" "$broker/server.key"
  chmod 0600 "$broker/passwd" "$broker/server.key"

  local conf
  conf=$(mktemp "$(R /etc/mosquitto/conf.d)/.scgw.XXXXXX")
  broker_render_conf "$HERE/mosquitto/scgw.conf.in" "$MQTT_PORT" 127.0.0.1 "$MQTTS_PORT" \
    "$BROKER_DIR" "$QUEUED_MESSAGES" "$QUEUED_BYTES" >"$conf"
  put_file "$conf" "$(R /etc/mosquitto/conf.d/scgw.conf)" 0644 0:0
  say "listeners: $MQTT_PORT on 127.0.0.1 (plain), $MQTTS_PORT on every address (TLS)"
  say "the broker queues at most $QUEUED_MESSAGES message(s), $QUEUED_BYTES byte(s) per client"

  local other
  for other in "$(R /etc/mosquitto/conf.d)"/*.conf "$(R /etc/mosquitto/mosquitto.conf)"; do
    [[ -f $other && $other != "$(R /etc/mosquitto/conf.d/scgw.conf)" ]] || continue
    if grep -qE '^[[:space:]]*(listener|port|password_file|acl_file|allow_anonymous|per_listener_settings)[[:space:]]' "$other"; then
      warn "${other#"${ROOT%/}"} also sets listeners or access rules: Mosquitto may refuse to start, or let in more than scgw.conf allows"
    fi
  done
}

# --- the duty console's TLS ---------------------------------------------------------------

# The console's TLS files the configuration names: "cert key", or nothing without them.
console_tls_files() {
  "$(R $VENV)/bin/python" - "$(R $CONFIG)" <<'EOF'
import sys
import tomllib

with open(sys.argv[1], "rb") as f:
    console = tomllib.load(f).get("console")
tls = console.get("tls") if isinstance(console, dict) else None
if isinstance(tls, dict) and tls.get("cert_file") and tls.get("key_file"):
    print(tls["cert_file"], tls["key_file"])
EOF
}

install_console_tls() {
  step "Duty console: TLS certificate"
  local dir names
  dir=$(R $CONSOLE_TLS_DIR)
  install -d -m 0750 "$dir"
  chown "0:$SCGW_GID" "$dir"
  mapfile -t names < <(broker_names)
  # the same CA and names as the broker's: the duty office's browsers trust /etc/scgw/ca.crt
  broker_ensure_ca "$(R $PKI_DIR)" "scgw $(config_value '' site) compound CA ($(hostname))"
  broker_ensure_server_cert "$(R $PKI_DIR)" "$dir" "$RENEW_CERT" "${names[@]}" 2>"$STAGE/console-cert"
  sed 's/the broker certificate/the console certificate/' "$STAGE/console-cert" >&2
  # the gateway reads its key after starting as scgw; nobody else may
  chown "0:$SCGW_GID" "$dir/server.crt" "$dir/server.key" "$dir/ca.crt"
  chmod 0640 "$dir/server.key"
  chmod 0644 "$dir/server.crt" "$dir/ca.crt"
  say "console certificate $CONSOLE_TLS_DIR/server.crt, issued by the compound's CA"
  local files
  files=$(console_tls_files)
  if [[ -n $files ]]; then
    CONSOLE_SCHEME=https
    [[ $files == "$CONSOLE_TLS_DIR/server.crt $CONSOLE_TLS_DIR/server.key" ]] ||
      say "$CONFIG names other console TLS files ($files): kept"
  elif grep -q '^\[console\]' "$(R $CONFIG)"; then
    warn "$CONFIG serves the console without TLS: add [console.tls] with"
    warn "  cert_file = \"$CONSOLE_TLS_DIR/server.crt\" and key_file = \"$CONSOLE_TLS_DIR/server.key\""
  fi
}

# --- the service -----------------------------------------------------------------------

install_unit() {
  step "systemd unit scgw.service"
  local unit
  unit=$(mktemp "$(R /etc/systemd/system)/.scgw.XXXXXX")
  if has_group gpio; then
    cp "$HERE/systemd/scgw.service" "$unit"
  else
    # a missing supplementary group would stop the service from starting
    sed 's/^SupplementaryGroups=dialout gpio$/SupplementaryGroups=dialout/' \
      "$HERE/systemd/scgw.service" >"$unit"
    say "no gpio group on this system: the service gets dialout only"
  fi
  put_file "$unit" "$(R /etc/systemd/system/scgw.service)" 0644 0:0
}

# Grafana on this machine gets the gateway's data source, dashboard and alert rules.
install_grafana_provisioning() {
  step "Grafana provisioning"
  local source=$SOURCE/deploy/grafana/provisioning
  if [[ ! -d $(R /etc/grafana) || ! -d $source ]]; then
    say "skipped: Grafana is not installed here (--with-grafana installs it)"
    return
  fi
  local owner=0:0 mode=0644 file target
  if has_group grafana; then
    owner=0:$(gid_of grafana)
    mode=0640
  fi
  while IFS= read -r -d '' file; do
    target=$(R /etc/grafana/provisioning)/${file#"$source"/}
    install -d -m 0755 "$(dirname "$target")"
    cp "$file" "$STAGE/provisioning.tmp"
    put_file "$STAGE/provisioning.tmp" "$target" "$mode" "$owner"
  done < <(find "$source" -type f -print0 | sort -z)
  say "deploy/grafana/provisioning copied to /etc/grafana/provisioning"
}

# Debian's InfluxDB 1.x answers everyone on port 8086 without authentication: keep it on
# the loopback interface, where the gateway and a local Grafana reach it.
install_influxdb_dropin() {
  step "InfluxDB on the loopback interface only"
  install -d -m 0755 "$(R /etc/systemd/system/influxdb.service.d)"
  local dropin
  dropin=$(mktemp "$(R /etc/systemd/system/influxdb.service.d)/.scgw.XXXXXX")
  cat >"$dropin" <<'EOF'
# Installed by the smart-community gateway's deploy/install.sh. InfluxDB 1.x has no
# authentication by default, so it listens on the loopback interface only. To reach it from
# elsewhere, turn authentication on first, then remove this file and restart influxdb.
[Service]
Environment=INFLUXDB_HTTP_BIND_ADDRESS=127.0.0.1:8086
EOF
  put_file "$dropin" "$(R /etc/systemd/system/influxdb.service.d/scgw-loopback.conf)" 0644 0:0
  say "/etc/systemd/system/influxdb.service.d/scgw-loopback.conf"
}

create_database() {
  step "InfluxDB database"
  if [[ $(config_value store api) != v1 ]]; then
    say "skipped: the store is not InfluxDB 1.x (store.api)"
    return
  fi
  local url database
  url=$(config_value store url)
  database=$(config_value store database)
  database=${database:-scgw}
  if [[ $START == 0 ]]; then
    say "skipped (--no-start): once influxdb runs, create it with"
    say "  influx -execute 'CREATE DATABASE \"$database\"'"
    return
  fi
  with_secrets "$(R $VENV)/bin/python" - "$url" "$database" \
    "$(config_value store username)" "$(config_value store password_env)" <<'EOF'
import os
import sys
import time
import urllib.error
import urllib.parse
import urllib.request

url, database, user, password_env = sys.argv[1:]
deadline = time.monotonic() + 60  # a freshly installed influxd takes a moment
while True:
    try:
        urllib.request.urlopen(f"{url}/ping", timeout=2).close()
        break
    except OSError as exc:
        if time.monotonic() > deadline:
            sys.exit(f"InfluxDB does not answer at {url}: {exc}")
        time.sleep(1)
params = {"q": f'CREATE DATABASE "{database}"'}
if user:
    params |= {"u": user, "p": os.environ.get(password_env, "")}
try:
    urllib.request.urlopen(f"{url}/query", urllib.parse.urlencode(params).encode(),
                           timeout=10).close()
except urllib.error.HTTPError as exc:
    sys.exit(f"CREATE DATABASE {database} at {url}: HTTP {exc.code} {exc.read().decode()}")
print(f"    database {database} at {url}")
EOF
}

start_services() {
  step "Services"
  if [[ $START == 0 ]]; then
    say "skipped (--no-start)"
    return
  fi
  systemctl daemon-reload
  systemctl enable --quiet mosquitto influxdb scgw
  local file restart_broker=0 reload_broker=0 restart_influxdb=0 restart_grafana=0
  for file in "${CHANGED[@]}" "${BROKER_CHANGED[@]}"; do
    case $file in
    */scgw/console/*) ;; # the gateway's own: it restarts below
    */conf.d/scgw.conf | */server.crt | */ca.crt) restart_broker=1 ;;
    */passwd | */acl) reload_broker=1 ;;
    */influxdb.service.d/*) restart_influxdb=1 ;;
    */grafana/provisioning/*) restart_grafana=1 ;;
    esac
  done
  if [[ $restart_broker == 1 ]] || ! systemctl is-active --quiet mosquitto; then
    systemctl restart mosquitto
    say "mosquitto restarted"
  elif [[ $reload_broker == 1 ]]; then
    systemctl reload mosquitto # rereads the password file and the ACL
    say "mosquitto reloaded its users and ACL"
  fi
  if [[ $restart_influxdb == 1 ]] || ! systemctl is-active --quiet influxdb; then
    systemctl restart influxdb
    say "influxdb restarted"
  fi
  if [[ $restart_grafana == 1 ]] && systemctl is-enabled --quiet grafana-server 2>/dev/null; then
    systemctl restart grafana-server
    say "grafana-server restarted on its new provisioning"
  fi
}

start_gateway() {
  step "The gateway"
  if [[ $START == 0 ]]; then
    say "skipped (--no-start); then: sudo systemctl enable --now scgw"
    return
  fi
  # Type=notify: this returns once the gateway reported READY=1, or fails
  systemctl restart scgw
  say "scgw running: $(systemctl show -p StatusText --value scgw)"
}

# --- guidance --------------------------------------------------------------------------

uart_guidance() {
  is_raspberry_pi || return 0
  step "Raspberry Pi UART (RS-485 on /dev/serial0)"
  local boot=/boot/firmware
  [[ -f $boot/config.txt ]] || boot=/boot
  if [[ -e /dev/serial0 ]]; then
    say "/dev/serial0 is $(readlink -f /dev/serial0)"
    if [[ $(readlink -f /dev/serial0) == /dev/ttyS0 ]]; then
      say "that is the mini UART, whose baud rate follows the core clock: for RS-485 give"
      say "serial0 the full UART with dtoverlay=disable-bt (or miniuart-bt) in $boot/config.txt"
    fi
    if grep -qE 'console=(serial0|ttyS0|ttyAMA0)' "$boot/cmdline.txt" 2>/dev/null; then
      warn "a login console runs on the UART and will garble the bus; turn it off with"
      warn "  sudo raspi-config nonint do_serial_cons 1    (then reboot)"
    fi
  else
    say "/dev/serial0 is missing: the UART is off. To use it for RS-485:"
    say "  sudo raspi-config nonint do_serial_hw 0     # UART on"
    say "  sudo raspi-config nonint do_serial_cons 1   # no login console on it"
    say "or set enable_uart=1 in $boot/config.txt, remove console=serial0,115200 from"
    say "$boot/cmdline.txt, and reboot. USB RS-485 adapters (/dev/ttyUSB*) need none of this."
  fi
}

summary() {
  step "Done"
  say "configuration:  $CONFIG (then: sudo scgw check-config $CONFIG;"
  say "                sudo systemctl restart scgw)"
  say "state:          systemctl status scgw; journalctl -u scgw; sudo scgw status -c $CONFIG"
  say "LAN MQTT:       TLS on port $MQTTS_PORT; clients trust /etc/scgw/ca.crt and log in"
  say "                with a user of $CREDENTIALS (duty console: $CONSOLE_USER)"
  local console_port
  console_port=$(config_value console port)
  if [[ -n $console_port ]]; then
    say "duty console:   $CONSOLE_SCHEME://$(hostname).local:$console_port/ (browsers trust"
    say "                /etc/scgw/ca.crt; accounts: sudo -u scgw scgw users add NAME --role officer)"
  fi
  if [[ $ROOT != / ]]; then
    say "installed into $ROOT"
  fi
}

install_packages
check_tools
create_user
install_gateway
install_config
install_broker
install_unit
install_influxdb_dropin
install_grafana_provisioning
start_services
create_database
start_gateway
uart_guidance
summary
