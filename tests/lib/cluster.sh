# tests/lib/cluster.sh — two wharf replicas behind nginx, for the tests that
# need the whole scale-out set-up. Source after common.sh.
#
# cluster_up DIR SHARED_CFG [EXTRA_YAML]: replicas A and B, each SHARED_CFG
# (the metadata and storage sections they share) plus a cluster: section
# (advertised address, one secret file), trusted_proxies 127.0.0.1 and
# EXTRA_YAML; then nginx on a port of its own balancing over both
# (tests/lib/nginx-two-replicas.conf, the tried recipe). With WHARF_AUTH=1
# both replicas get the same key directory (DIR/keys) unless WHARF_KEY_DIR
# is set. Sets CLUSTER_ADDR (nginx, host:port), REPLICA_A and REPLICA_B
# (host:port), REPLICA_A_PID, REPLICA_B_PID and NGINX_PID, and adds the PIDs
# to PIDS (stopped by common.sh's cleanup). Returns non-zero when something
# does not answer.
#
# CLUSTER_SIZE=1 starts replica A only, nginx in front of it alone (the
# benchmark's one-replica figures).
#
# replica_up DIR NAME: starts replica NAME (A or B) again with the same
# configuration (after a kill), updating its PID variable.
# replica_config DIR SHARED_CFG PORT [EXTRA_YAML]: writes DIR/replica-PORT.yaml
# (SHARED_CFG plus a cluster: section advertising 127.0.0.1:PORT, replica id
# rPORT, the secret DIR/secret, made on first use, and EXTRA_YAML) and prints
# its path: for the scripts that start their replicas themselves.
replica_config() {
  local dir=$1 shared=$2 port=$3 extra=${4:-} out=$1/replica-$3.yaml
  [ -f "$dir/secret" ] || openssl rand -hex 32 >"$dir/secret"
  {
    cat "$shared"
    printf 'cluster: {advertise: "127.0.0.1:%s", replica_id: "r%s", secret_file: "%s"}\n' "$port" "$port" "$dir/secret"
    if [ -n "$extra" ]; then printf '%s\n' "$extra"; fi
  } >"$out"
  echo "$out"
}
cluster_up() {
  local dir=$1 shared=$2 extra=${3:-} n
  mkdir -p "$dir"
  openssl rand -hex 32 >"$dir/secret"
  [ "${WHARF_AUTH:-0}" = 1 ] && export WHARF_KEY_DIR=${WHARF_KEY_DIR:-$dir/keys}
  REPLICA_A=127.0.0.1:$(free_port)
  REPLICA_B=127.0.0.1:$(free_port)
  local names=(A B)
  [ "${CLUSTER_SIZE:-2}" = 1 ] && names=(A)
  for n in "${names[@]}"; do
    local addr; [ $n = A ] && addr=$REPLICA_A || addr=$REPLICA_B
    {
      cat "$shared"
      printf 'cluster: {advertise: "%s", replica_id: "%s", secret_file: "%s"}\n' "$addr" "$n" "$dir/secret"
      printf 'trusted_proxies: ["127.0.0.1"]\n'
      [ -n "$extra" ] && printf '%s\n' "$extra"
    } >"$dir/replica-$n.yaml"
    replica_up "$dir" $n || return 1
  done
  nginx_up "$dir"
}
# nginx_up DIR: nginx on a free port in front of REPLICA_A and REPLICA_B
# (REPLICA_A only with CLUSTER_SIZE=1), whatever serves there; sets
# CLUSTER_ADDR and NGINX_PID.
nginx_up() {
  local dir=$1 np drop_b=""
  mkdir -p "$dir/nginx/tmp"
  np=$(free_port)
  CLUSTER_ADDR=127.0.0.1:$np
  [ "${CLUSTER_SIZE:-2}" = 1 ] && drop_b="/@B@/d;"
  sed -e "${drop_b}s|@LISTEN@|$CLUSTER_ADDR|; s|@A@|$REPLICA_A|; s|@B@|$REPLICA_B|" \
    "$(dirname "${BASH_SOURCE[0]}")/nginx-two-replicas.conf" >"$dir/nginx/nginx.conf"
  nginx -p "$dir/nginx" -c "$dir/nginx/nginx.conf" -e "$dir/nginx/error.log" >>"$dir/nginx/out.log" 2>&1 &
  NGINX_PID=$!
  PIDS+=("$NGINX_PID")
  wait_http "http://$CLUSTER_ADDR/v2/" || { cat "$dir/nginx/error.log" "$dir/nginx/out.log" >&2; return 1; }
}
replica_up() {
  local dir=$1 n=$2 addr
  [ "$n" = A ] && addr=$REPLICA_A || addr=$REPLICA_B
  start_wharf "${addr#*:}" "$dir/data-$n" "$dir/replica-$n.log" --config "$dir/replica-$n.yaml" || return 1
  PIDS+=("$WHARF_PID")
  if [ "$n" = A ]; then REPLICA_A_PID=$WHARF_PID; else REPLICA_B_PID=$WHARF_PID; fi
}
