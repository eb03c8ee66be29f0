#!/usr/bin/env bash
# Starts or stops an emulated AWS (moto from .tools/, through scripts/moto_server.py,
# which fixes a few places where moto 5.2.1 differs from AWS) on a free loopback port.
#   scripts/emulator.sh start DIR [--tls] -> DIR/url holds http://127.0.0.1:PORT, DIR/pid the pid
#   scripts/emulator.sh stop DIR
# --tls serves HTTPS with a certificate of a throwaway CA (scripts/tls_cert.py): DIR/url
# holds https://127.0.0.1:PORT and DIR/ca.pem the CA, for AWS_CA_BUNDLE. Over HTTPS the
# state buckets get their TLS-only policy, as on AWS.
set -euo pipefail
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
action=${1:?usage: emulator.sh start|stop DIR [--tls]}
dir=${2:?usage: emulator.sh start|stop DIR [--tls]}
tls=${3:-}
mkdir -p "$dir"

case "$action" in
start)
  py="${STAMP_TOOLS_DIR:-$root/.tools}/venv/bin/python"
  [ -x "$py" ] || { echo "emulator: $py is missing: run scripts/setup-tools.sh" >&2; exit 1; }
  port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
  # The real stacks attach AWS-managed IAM policies (AmazonSSMManagedInstanceCore,
  # AmazonRDSEnhancedMonitoringRole): moto knows them only when told to load them.
  scheme=http
  cert=()
  if [ "$tls" = --tls ]; then
    "$py" "$root/scripts/tls_cert.py" "$dir"
    scheme=https
    cert=(-c "$dir/server.pem" -k "$dir/server.key")
  fi
  MOTO_IAM_LOAD_MANAGED_POLICIES=true nohup "$py" "$root/scripts/moto_server.py" -H 127.0.0.1 -p "$port" "${cert[@]}" > "$dir/emulator.log" 2>&1 &
  echo $! > "$dir/pid"
  url="$scheme://127.0.0.1:$port"
  for _ in $(seq 1 300); do
    if python3 -c "import ssl,sys,urllib.request; urllib.request.urlopen(sys.argv[1], timeout=1, context=ssl.create_default_context(cafile=sys.argv[2] or None))" "$url" "$([ "$tls" = --tls ] && echo "$dir/ca.pem")" 2>/dev/null; then
      echo "$url" > "$dir/url"
      echo "emulator: moto on $url (pid $(cat "$dir/pid"))" >&2
      exit 0
    fi
    kill -0 "$(cat "$dir/pid")" 2>/dev/null || { cat "$dir/emulator.log" >&2; exit 1; }
    sleep 0.2
  done
  echo "emulator: moto did not answer on $url" >&2
  exit 1
  ;;
stop)
  if [ -f "$dir/pid" ]; then
    kill "$(cat "$dir/pid")" 2>/dev/null || true
    rm -f "$dir/pid" "$dir/url"
  fi
  ;;
*)
  echo "usage: emulator.sh start|stop DIR" >&2
  exit 2
  ;;
esac
