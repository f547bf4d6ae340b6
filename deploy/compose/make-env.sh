#!/bin/sh
# Writes the .env that deploy/docker-compose.yml reads: a random value for every secret it
# needs (compose refuses to start without them; there are no default passwords). A value
# already in the file is kept, so running it again changes nothing.
#
# Usage: sh deploy/compose/make-env.sh [ENV_FILE]     (default: deploy/.env)
set -eu

ENV_FILE=${1:-$(cd "$(dirname "$0")/.." && pwd)/.env}

umask 077
touch "$ENV_FILE"
for name in SCGW_MQTT_PASSWORD SCGW_STORE_TOKEN SCGW_PSEUDONYM_KEY INFLUXDB_ADMIN_PASSWORD \
  GRAFANA_ADMIN_PASSWORD; do
  if ! grep -q "^$name=" "$ENV_FILE"; then
    # 48 hex digits: 192 bits, and no character any of the consumers would trip over
    printf '%s=%s\n' "$name" "$(openssl rand -hex 24)" >>"$ENV_FILE"
    echo "made $name"
  fi
done
if ! grep -q '^SCGW_BROKER_NAMES=' "$ENV_FILE"; then
  {
    echo "# host names and addresses LAN clients use for this machine (the broker's certificate)"
    printf 'SCGW_BROKER_NAMES=%s' "$(hostname)"
    for address in $(hostname -I 2>/dev/null || true); do
      case $address in *:*) ;; *) printf ' %s' "$address" ;; esac
    done
    echo
  } >>"$ENV_FILE"
fi
echo "secrets in $ENV_FILE (mode 0600): keep a copy somewhere safe"
