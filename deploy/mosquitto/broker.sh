# shellcheck shell=bash
# The broker's configuration, TLS certificates and users for the smart-community gateway.
# Sourced by deploy/install.sh and deploy/compose/broker-init.sh: it only defines
# functions. Nothing here replaces what exists, except where a function says so: clients
# keep trusting the CA, and users keep their passwords, across every re-run.
#
# Needs: openssl, mosquitto_passwd, awk, sed, cmp and bash 4.

# A password or key: 48 hex digits (192 bits), safe in env files, TOML and shell words.
broker_random_secret() {
  openssl rand -hex 24
}

# What the broker queues per client by default: messages, and bytes of them (64 MiB)
BROKER_QUEUED_MESSAGES=100000
BROKER_QUEUED_BYTES=67108864

# broker_render_conf TEMPLATE MQTT_PORT MQTT_BIND MQTTS_PORT DIR [QUEUED_MESSAGES [QUEUED_BYTES]]
# Prints the Mosquitto configuration rendered from TEMPLATE; DIR is where the broker finds
# passwd, acl, ca.crt, server.crt and server.key. An empty MQTT_BIND listens on every
# address (inside a container); the installer passes 127.0.0.1. QUEUED_MESSAGES and
# QUEUED_BYTES bound what the broker queues per client (defaults above).
broker_render_conf() {
  local template=$1 mqtt_port=$2 mqtt_bind=$3 mqtts_port=$4 dir=$5
  local queued_messages=${6:-$BROKER_QUEUED_MESSAGES} queued_bytes=${7:-$BROKER_QUEUED_BYTES}
  sed -e "s|@MQTT_PORT@|$mqtt_port|g" -e "s|@MQTT_BIND@|$mqtt_bind|g" \
      -e "s|@MAX_QUEUED_MESSAGES@|$queued_messages|g" \
      -e "s|@MAX_QUEUED_BYTES@|$queued_bytes|g" \
      -e "s|@MQTTS_PORT@|$mqtts_port|g" -e "s|@PASSWORD_FILE@|$dir/passwd|g" \
      -e "s|@ACL_FILE@|$dir/acl|g" -e "s|@CA_FILE@|$dir/ca.crt|g" \
      -e "s|@CERT_FILE@|$dir/server.crt|g" -e "s|@KEY_FILE@|$dir/server.key|g" \
      -e 's/[[:space:]]*$//' "$template"
}

# broker_ensure_ca PKI_DIR NAME
# PKI_DIR/ca.key (0600) and PKI_DIR/ca.crt: the compound's own certificate authority,
# made once and then kept: every TLS client of the broker trusts it.
broker_ensure_ca() {
  local dir=$1 name=$2
  if [[ -s $dir/ca.key && -s $dir/ca.crt ]]; then
    return 0
  fi
  local conf
  conf=$(mktemp)
  cat >"$conf" <<EOF
[req]
distinguished_name = dn
prompt = no
x509_extensions = ca_ext
[dn]
CN = $name
[ca_ext]
basicConstraints = critical, CA:TRUE, pathlen:0
keyUsage = critical, keyCertSign, cRLSign
subjectKeyIdentifier = hash
EOF
  (
    umask 077
    openssl req -x509 -new -config "$conf" -newkey rsa:3072 -nodes -sha256 -days 3650 \
      -keyout "$dir/ca.key.new" -out "$dir/ca.crt.new" 2>/dev/null
  )
  rm -f "$conf"
  chmod 0644 "$dir/ca.crt.new"
  mv "$dir/ca.key.new" "$dir/ca.key"
  mv "$dir/ca.crt.new" "$dir/ca.crt"
  BROKER_CHANGED+=("$dir/ca.crt")
}

# broker_san NAME...: a subjectAltName value; IPv4 and IPv6 addresses become IP entries.
broker_san() {
  local name entries=()
  for name in "$@"; do
    if [[ $name =~ ^[0-9.]+$ || $name == *:* ]]; then
      entries+=("IP:$name")
    else
      entries+=("DNS:$name")
    fi
  done
  local IFS=,
  printf '%s' "${entries[*]}"
}

# broker_ensure_server_cert PKI_DIR OUT_DIR RENEW NAME...
# OUT_DIR/server.key and OUT_DIR/server.crt for the NAMEs (host names and addresses the
# LAN clients connect to), signed by PKI_DIR's CA, and OUT_DIR/ca.crt. Made when missing,
# when RENEW is 1, or when the certificate expires within 30 days; otherwise kept, with a
# warning for every NAME it does not cover.
broker_ensure_server_cert() {
  local pki=$1 out=$2 renew=$3
  shift 3
  local names=("$@")
  if ! cmp -s "$pki/ca.crt" "$out/ca.crt"; then
    cp "$pki/ca.crt" "$out/ca.crt.new"
    chmod 0644 "$out/ca.crt.new"
    mv "$out/ca.crt.new" "$out/ca.crt"
    BROKER_CHANGED+=("$out/ca.crt")
  fi
  if [[ $renew != 1 && -s $out/server.key && -s $out/server.crt ]] &&
    openssl x509 -checkend $((30 * 86400)) -noout -in "$out/server.crt" >/dev/null; then
    local san name
    san=$(openssl x509 -noout -ext subjectAltName -in "$out/server.crt" 2>/dev/null || true)
    for name in "${names[@]}"; do
      if [[ $name != *:* && $san != *":$name,"* && $san != *":$name" ]]; then
        printf 'warning: the broker certificate does not cover %s; clients connecting by that name will refuse it (re-run with --renew-server-cert)\n' "$name" >&2
      fi
    done
    return 0
  fi
  local conf
  conf=$(mktemp)
  cat >"$conf" <<EOF
[req]
distinguished_name = dn
prompt = no
[dn]
CN = ${names[0]}
[server_ext]
basicConstraints = critical, CA:FALSE
keyUsage = critical, digitalSignature, keyEncipherment
extendedKeyUsage = serverAuth
subjectAltName = $(broker_san "${names[@]}")
authorityKeyIdentifier = keyid
subjectKeyIdentifier = hash
EOF
  (
    umask 077
    # RSA 2048: the TLS stacks of small devices (NB-IoT modules, ESP8266) handle it
    openssl req -new -config "$conf" -newkey rsa:2048 -nodes -keyout "$out/server.key.new" \
      -out "$out/server.csr" 2>/dev/null
    # 825 days: the longest validity some clients (Apple's) accept for a server certificate
    openssl x509 -req -in "$out/server.csr" -CA "$pki/ca.crt" -CAkey "$pki/ca.key" \
      -set_serial "0x$(openssl rand -hex 16)" -days 825 -sha256 -extfile "$conf" \
      -extensions server_ext -out "$out/server.crt.new" 2>/dev/null
  )
  rm -f "$conf" "$out/server.csr"
  chmod 0644 "$out/server.crt.new"
  mv "$out/server.key.new" "$out/server.key"
  mv "$out/server.crt.new" "$out/server.crt"
  BROKER_CHANGED+=("$out/server.crt")
}

# broker_sync_users PASSWD CREDENTIALS GATEWAY_PASSWORD RESET_GATEWAY < USERS
# USERS: `role<TAB>name` lines (`scgw broker users`). Every user missing from PASSWD is
# added with a password of its own: the gateway's is GATEWAY_PASSWORD, the others' are
# random and appended to CREDENTIALS (0600), the one place their plain text is kept.
# Users already in PASSWD keep their password, except the gateway's when RESET_GATEWAY is
# 1 (its password was just made). Users are never removed: one that no longer appears in
# USERS is granted nothing by the ACL.
broker_sync_users() {
  local passwd=$1 creds=$2 gateway_password=$3 reset_gateway=$4
  local role name password existing new
  touch "$passwd" "$creds"
  chmod 0600 "$creds"
  new=$(mktemp "$passwd.new.XXXXXX")
  while IFS=$'\t' read -r role name; do
    [[ -n $name ]] || continue
    if [[ $role == gateway && $reset_gateway == 1 ]]; then
      existing=$(mktemp "$passwd.old.XXXXXX")
      awk -F: -v user="$name" '$1 != user' "$passwd" >"$existing"
      cat "$existing" >"$passwd"
      rm -f "$existing"
    fi
    if awk -F: -v user="$name" '$1 == user { found = 1 } END { exit !found }' "$passwd"; then
      continue
    fi
    if [[ $role == gateway ]]; then
      password=$gateway_password
    else
      password=$(broker_random_secret)
      if [[ ! -s $creds ]]; then
        printf '# Broker logins for the duty console and the MQTT devices: user, password, role.\n# Mosquitto keeps only hashes: this file is the one copy of the plain passwords.\n' >"$creds"
      fi
      printf '%s\t%s\t%s\n' "$name" "$password" "$role" >>"$creds"
    fi
    # written to a file and hashed there: a password never appears on a command line
    printf '%s:%s\n' "$name" "$password" >>"$new"
    BROKER_ADDED+=("$name")
  done
  if [[ -s $new ]]; then
    mosquitto_passwd -U "$new"
    cat "$new" >>"$passwd"
    BROKER_CHANGED+=("$passwd")
  fi
  rm -f "$new"
}
