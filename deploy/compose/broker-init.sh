#!/usr/bin/env bash
# The broker's users, ACL and TLS certificates for deploy/docker-compose.yml: the steps
# deploy/install.sh takes on a Pi, into the volume the mosquitto service reads. It runs in
# the gateway image as the one-shot service broker-init, before the broker and the
# gateway start, and again on every `docker compose up`: the CA, the certificate and the
# users' passwords stay, users of newly configured MQTT devices are added, the ACL is
# rendered again from the configuration.
#
# Settings, from the environment (the defaults are where compose mounts things):
#   SCGW_MQTT_PASSWORD      the gateway's broker password (required; from .env)
#   SCGW_CONFIG             the gateway's configuration (/etc/scgw/gateway.toml)
#   SCGW_BROKER_DIR         the files the broker reads (/broker)
#   SCGW_BROKER_PATH        that directory as the broker container sees it
#                           (/mosquitto/config/scgw)
#   SCGW_PKI_DIR            the CA's key and the users' passwords, seen by this service
#                           only (/pki)
#   SCGW_MOSQUITTO_OWNER    uid:gid the broker runs as (1883:1883, eclipse-mosquitto's)
#   SCGW_BROKER_NAMES       host names and addresses LAN clients use to reach the Docker
#                           host, space-separated, for the broker's certificate
#   SCGW_RENEW_SERVER_CERT  1: issue new broker and console certificates from the same CA
#   SCGW_CONSOLE_TLS_DIR    the duty console's certificate and key, issued by the same CA
#                           for the same names (/etc/scgw/console, the gateway's view)
#   SCGW_GATEWAY_OWNER      uid:gid the gateway runs as (10001:10001, the image's scgw)
#   SCGW_BROKER_QUEUE_MESSAGES, SCGW_BROKER_QUEUE_BYTES
#                           what the broker queues per client that is away or slow
#                           (100000 messages, 64 MiB); beyond it the broker drops
#                           what comes for that client (docs/reliability.md)
set -euo pipefail

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
# shellcheck source=deploy/mosquitto/broker.sh
. "$HERE/../mosquitto/broker.sh"

: "${SCGW_MQTT_PASSWORD:?is not set: run deploy/compose/make-env.sh}"
CONFIG=${SCGW_CONFIG:-/etc/scgw/gateway.toml}
BROKER_DIR=${SCGW_BROKER_DIR:-/broker}
BROKER_PATH=${SCGW_BROKER_PATH:-/mosquitto/config/scgw}
PKI_DIR=${SCGW_PKI_DIR:-/pki}
OWNER=${SCGW_MOSQUITTO_OWNER:-1883:1883}
# the ports inside the compose network; docker-compose.yml publishes 1883 on the host's
# loopback interface only, 8883 on every address
MQTT_PORT=1883
MQTTS_PORT=8883
BROKER_CHANGED=()
BROKER_ADDED=()

install -d -m 0755 "$BROKER_DIR"
install -d -m 0700 "$PKI_DIR"

# shellcheck disable=SC2206 # SCGW_BROKER_NAMES is a list of words
names=(mosquitto localhost 127.0.0.1 ${SCGW_BROKER_NAMES:-})
if [[ -z ${SCGW_BROKER_NAMES:-} ]]; then
  echo "note: SCGW_BROKER_NAMES is empty: LAN clients will refuse the broker's certificate" \
    "until it names the Docker host (set it in .env, then SCGW_RENEW_SERVER_CERT=1)" >&2
fi
broker_ensure_ca "$PKI_DIR" "scgw compound CA (docker compose)"
broker_ensure_server_cert "$PKI_DIR" "$BROKER_DIR" "${SCGW_RENEW_SERVER_CERT:-0}" "${names[@]}"

# the duty console's certificate, before the configuration naming it is read
CONSOLE_DIR=${SCGW_CONSOLE_TLS_DIR:-/etc/scgw/console}
install -d -m 0755 "$CONSOLE_DIR"
# shellcheck disable=SC2206 # SCGW_BROKER_NAMES is a list of words
console_names=(localhost 127.0.0.1 ${SCGW_BROKER_NAMES:-})
broker_ensure_server_cert "$PKI_DIR" "$CONSOLE_DIR" "${SCGW_RENEW_SERVER_CERT:-0}" \
  "${console_names[@]}" 2> >(sed 's/the broker certificate/the console certificate/' >&2)
chown "${SCGW_GATEWAY_OWNER:-10001:10001}" "$CONSOLE_DIR/server.key"
chmod 0600 "$CONSOLE_DIR/server.key"
chmod 0644 "$CONSOLE_DIR/server.crt" "$CONSOLE_DIR/ca.crt"

users=$(mktemp)
scgw broker users --config "$CONFIG" >"$users"
# the gateway's entry is made again from .env every time, so the two never disagree
broker_sync_users "$BROKER_DIR/passwd" "$PKI_DIR/broker-credentials" "$SCGW_MQTT_PASSWORD" 1 \
  <"$users"

scgw broker acl --config "$CONFIG" >"$BROKER_DIR/acl.new"
if [[ -f $PKI_DIR/broker-local.acl ]]; then
  printf '\n# from broker-local.acl\n' >>"$BROKER_DIR/acl.new"
  cat "$PKI_DIR/broker-local.acl" >>"$BROKER_DIR/acl.new"
fi
mv "$BROKER_DIR/acl.new" "$BROKER_DIR/acl"

QUEUED_MESSAGES=${SCGW_BROKER_QUEUE_MESSAGES:-$BROKER_QUEUED_MESSAGES}
QUEUED_BYTES=${SCGW_BROKER_QUEUE_BYTES:-$BROKER_QUEUED_BYTES}
for bound in "$QUEUED_MESSAGES" "$QUEUED_BYTES"; do
  if [[ ! $bound =~ ^[0-9]{1,12}$ ]]; then
    echo "SCGW_BROKER_QUEUE_MESSAGES/SCGW_BROKER_QUEUE_BYTES: not a whole number: $bound" >&2
    exit 1
  fi
done
broker_render_conf "$HERE/../mosquitto/scgw.conf.in" "$MQTT_PORT" "" "$MQTTS_PORT" \
  "$BROKER_PATH" "$QUEUED_MESSAGES" "$QUEUED_BYTES" >"$BROKER_DIR/scgw.conf.new"
mv "$BROKER_DIR/scgw.conf.new" "$BROKER_DIR/scgw.conf"

# the broker reads these after dropping root, and newer versions refuse files that others
# can read
chown "$OWNER" "$BROKER_DIR/passwd" "$BROKER_DIR/acl" "$BROKER_DIR/server.key"
chmod 0600 "$BROKER_DIR/passwd" "$BROKER_DIR/acl" "$BROKER_DIR/server.key"
chmod 0644 "$BROKER_DIR/scgw.conf" "$BROKER_DIR/ca.crt" "$BROKER_DIR/server.crt"

echo "broker users: $(cut -f2 "$users" | paste -sd ' ')"
rm -f "$users"
echo "passwords of the console and the devices: $PKI_DIR/broker-credentials"
echo "(docker compose run --rm --entrypoint cat broker-init $PKI_DIR/broker-credentials)"
