#!/usr/bin/env bash
# Starts a single-node Ceph cluster with a RADOS Gateway (S3) on loopback, for the object-store
# tests and benchmarks: one monitor, one OSD whose objects live in memory (memstore), one radosgw,
# and one S3 user. No systemd, no root beyond the container's; every daemon runs in the foreground
# (-f) in its own session and is stopped by PID (test/s3/stop-rgw.sh).
#
#   test/s3/start-rgw.sh            start (or reuse the running cluster in $CKPTD_RGW_DIR)
#   . "$CKPTD_RGW_DIR/env"          S3 endpoint (CKPTD_S3_ENDPOINT), credentials (AWS_*)
#   test/s3/stop-rgw.sh rgw; test/s3/start-rgw.sh   restart the gateway alone, keeping the cluster
#
# Environment:
#   CKPTD_RGW_DIR   where the cluster keeps its state, logs and pid files (default /tmp/ckptd-rgw)
#   CKPTD_RGW_PORT  the S3 endpoint's port on 127.0.0.1 (default 7480)
#   CKPTD_MON_PORT  the monitor's msgr2 port on 127.0.0.1 (default 3300)
#   CKPTD_RGW_MEM_MIB  bytes the in-memory OSD may hold (default 8192)
# Needs Debian's ceph-mon, ceph-osd, radosgw and ceph-common (.ci/run installs them).
set -euo pipefail

dir="${CKPTD_RGW_DIR:-/tmp/ckptd-rgw}"
rgw_port="${CKPTD_RGW_PORT:-7480}"
mon_port="${CKPTD_MON_PORT:-3300}"
mem_mib="${CKPTD_RGW_MEM_MIB:-8192}"
endpoint="http://127.0.0.1:${rgw_port}"

say() { echo "start-rgw: $*" >&2; }
die() { say "$*"; for f in "$dir"/log/*.log; do [ -f "$f" ] && { say "--- tail of $f"; tail -n 20 "$f" >&2; }; done; exit 1; }

for bin in ceph-mon ceph-osd radosgw radosgw-admin ceph ceph-authtool monmaptool curl; do
  command -v "$bin" >/dev/null || { say "$bin not found (apt-get install --no-install-recommends ceph-mon ceph-osd radosgw ceph-common curl)"; exit 2; }
done

alive() { [ -f "$dir/run/$1.pid" ] && kill -0 "$(cat "$dir/run/$1.pid")" 2>/dev/null; }

s3_up() { curl -s -o /dev/null --max-time 2 "$endpoint/" ; }

conf="$dir/ceph.conf"
start() { # name, command...
  local name="$1"; shift
  setsid "$@" </dev/null >>"$dir/log/$name.out" 2>&1 &
  echo $! > "$dir/run/$name.pid"
}

if alive mon && alive osd && alive rgw && [ -f "$dir/env" ] && s3_up; then
  say "already running in $dir ($endpoint)"
  exit 0
fi
# Only the gateway is down (`stop-rgw.sh rgw`): start it again on the same cluster, so the user,
# buckets and objects stay.
if alive mon && alive osd && ! alive rgw && [ -f "$dir/env" ]; then
  start rgw radosgw -c "$conf" -f -n client.rgw.a -k "$dir/rgw/keyring"
  for _ in $(seq 300); do s3_up && break; sleep 0.1; done
  s3_up || die "radosgw did not answer on $endpoint"
  say "gateway restarted on $endpoint (state in $dir)"
  exit 0
fi
# Anything half-started goes first.
"$(dirname "$0")/stop-rgw.sh" >/dev/null 2>&1 || true
rm -rf "$dir"
mkdir -p "$dir"/{mon,osd,rgw,run,log}

fsid="$(cat /proc/sys/kernel/random/uuid)"
cat > "$conf" <<CONF
[global]
fsid = $fsid
mon host = [v2:127.0.0.1:$mon_port]
mon initial members = a
auth cluster required = cephx
auth service required = cephx
auth client required = cephx
keyring = $dir/keyring
run dir = $dir/run
admin socket = $dir/run/\$name.asok
log file = $dir/log/\$name.log
log to stderr = false
err to stderr = false
ms bind msgr1 = false
ms bind msgr2 = true
osd pool default size = 1
osd pool default min size = 1
osd pool default pg num = 8
osd pool default pgp num = 8
osd pool default pg autoscale mode = off
mon allow pool size one = true
mon warn on pool no redundancy = false
mon max pg per osd = 1000
paxos propose interval = 0.05
osd objectstore = memstore
memstore device bytes = $((mem_mib * 1024 * 1024))
osd data = $dir/osd
mon data = $dir/mon
osd crush chooseleaf type = 0
osd max object name len = 460
osd max object namespace len = 64
rgw data = $dir/rgw
[client.rgw.a]
rgw frontends = beast endpoint=127.0.0.1:$rgw_port
rgw dns name = 127.0.0.1
rgw enable usage log = false
rgw thread pool size = 64
CONF

# Keys: the monitor's, the admin's (which the scripts use), then the OSD's and the gateway's.
ceph-authtool --create-keyring "$dir/keyring" --gen-key -n mon. --cap mon 'allow *' >/dev/null
ceph-authtool "$dir/keyring" --gen-key -n client.admin --cap mon 'allow *' --cap osd 'allow *' --cap mgr 'allow *' >/dev/null
monmaptool --create --addv a "[v2:127.0.0.1:$mon_port]" --fsid "$fsid" "$dir/monmap" >/dev/null
ceph-mon -c "$conf" --mkfs -i a --monmap "$dir/monmap" --keyring "$dir/keyring" >"$dir/log/mkfs-mon.out" 2>&1 || die "ceph-mon --mkfs failed"

ceph_() { timeout 30 ceph -c "$conf" "$@"; }

start mon ceph-mon -c "$conf" -f -i a
for _ in $(seq 100); do ceph_ --connect-timeout 1 mon stat >/dev/null 2>&1 && break; sleep 0.1; done
ceph_ mon stat >/dev/null 2>&1 || die "the monitor did not come up"

osd_uuid="$(cat /proc/sys/kernel/random/uuid)"
osd_id="$(ceph_ osd new "$osd_uuid")"
[ "$osd_id" = 0 ] || die "unexpected OSD id $osd_id"
ceph-authtool --create-keyring "$dir/osd/keyring" --gen-key -n osd.0 >/dev/null
ceph_ auth add osd.0 osd 'allow *' mon 'allow profile osd' mgr 'allow profile osd' -i "$dir/osd/keyring" >/dev/null 2>&1 || die "ceph auth add osd.0 failed"
ceph-osd -c "$conf" -i 0 --mkfs --osd-uuid "$osd_uuid" --keyring "$dir/osd/keyring" >"$dir/log/mkfs-osd.out" 2>&1 || die "ceph-osd --mkfs failed"
start osd ceph-osd -c "$conf" -f -i 0 --keyring "$dir/osd/keyring"
ceph_ osd crush add osd.0 1.0 host=localhost root=default >/dev/null 2>&1 || true
for _ in $(seq 200); do ceph_ osd stat 2>/dev/null | grep -q "1 up" && break; sleep 0.1; done
ceph_ osd stat 2>/dev/null | grep -q "1 up" || die "the OSD did not come up"

ceph_ auth get-or-create client.rgw.a mon 'allow rw' osd 'allow rwx' -o "$dir/rgw/keyring" >/dev/null
start rgw radosgw -c "$conf" -f -n client.rgw.a -k "$dir/rgw/keyring"
for _ in $(seq 300); do s3_up && break; sleep 0.1; done
s3_up || die "radosgw did not answer on $endpoint"

access="ckptdtest$(head -c 6 /dev/urandom | od -An -tx1 | tr -d ' \n')"
secret="$(head -c 24 /dev/urandom | od -An -tx1 | tr -d ' \n')"
timeout 60 radosgw-admin -c "$conf" -n client.admin user create --uid=ckptd --display-name=ckptd \
  --access-key="$access" --secret-key="$secret" >"$dir/log/user.out" 2>&1 || die "radosgw-admin user create failed"

cat > "$dir/env" <<ENV
export CKPTD_S3_ENDPOINT=$endpoint
export AWS_ACCESS_KEY_ID=$access
export AWS_SECRET_ACCESS_KEY=$secret
export AWS_REGION=us-east-1
ENV
say "S3 endpoint $endpoint ready (state in $dir; credentials in $dir/env)"
