#!/usr/bin/env bash
# (the project's copy of a tried recipe; started by scripts/test.sh for the S3 stages)
# Single-node Ceph (1 mon, 1 osd on MemStore or BlueStore-in-a-file, optional mgr) + RADOS Gateway (S3) on 127.0.0.1.
# Needs: apt-get install --no-install-recommends ceph-mon ceph-osd radosgw ceph-common [ceph-mgr]
# S3 endpoint: http://127.0.0.1:$RGW_PORT  access key "testak"  secret "testsk"
set -euo pipefail
BASE=${BASE:?set BASE to a scratch directory}
MON_PORT=${MON_PORT:-16789}; RGW_PORT=${RGW_PORT:-17480}
STORE=${CEPH_STORE:-memstore}            # memstore | bluestore
WITH_MGR=${WITH_MGR:-0}
rm -rf "$BASE"; mkdir -p "$BASE"/{mon.a,osd.0,mgr.x,rgw,run,log}
FSID=$(cat /proc/sys/kernel/random/uuid)
CONF=$BASE/ceph.conf
cat > "$CONF" <<EOC
[global]
fsid = $FSID
mon host = v1:127.0.0.1:$MON_PORT
public addr = 127.0.0.1
ms bind ipv6 = false
ms bind msgr2 = false
auth cluster required = none
auth service required = none
auth client required = none
run dir = $BASE/run
admin socket = $BASE/run/\$name.asok
pid file = $BASE/run/\$name.pid
log file = $BASE/log/\$name.log
osd pool default size = 1
osd pool default min size = 1
osd pool default pg num = 8
osd pool default pgp num = 8
osd pool default pg autoscale mode = off
osd crush chooseleaf type = 0
mon allow pool size one = true
mon allow pool delete = true
mon max pg per osd = 1000
mon warn on pool no redundancy = false
mon data avail warn = 2
mon data avail crit = 1
[mon]
mon data = $BASE/mon.\$id
[osd]
osd data = $BASE/osd.\$id
osd objectstore = $STORE
memstore device bytes = ${MEMSTORE_BYTES:-2147483648}
bluestore block path = $BASE/osd.\$id/block.file
bluestore block create = true
bluestore block size = ${BLUESTORE_BYTES:-10737418240}
bluestore fsck on mkfs = false
osd memory target = 939524096
bluestore cache autotune = false
bluestore cache size = 134217728
osd op num shards = 1
osd op num threads per shard = 2
# With auth=none the OSD can send its start-up CRUSH commands before it has the monmap
# (fsid 0000... -> mon replies 'wrong fsid' -> osd exits). Skip them; the script adds the OSD to CRUSH itself.
osd crush update on start = false
osd class update on start = false
[mgr]
mgr data = $BASE/mgr.\$id
[client.rgw.a]
rgw frontends = beast endpoint=127.0.0.1:$RGW_PORT
rgw data = $BASE/rgw
rgw dns name = 127.0.0.1
rgw thread pool size = 64
EOC
C="-c $CONF"
monmaptool --create --fsid "$FSID" --addv a "[v1:127.0.0.1:$MON_PORT]" "$BASE/monmap" >/dev/null
ceph-mon $C --mkfs -i a --monmap "$BASE/monmap"
ceph-mon $C -i a
for i in $(seq 1 100); do ceph $C --connect-timeout 2 mon stat >/dev/null 2>&1 && break; sleep 0.2; done
[ "$WITH_MGR" = 1 ] && ceph-mgr $C -i x
OSD_UUID=$(cat /proc/sys/kernel/random/uuid)
OSD_ID=$(ceph $C osd new "$OSD_UUID")
ceph $C osd crush add "osd.$OSD_ID" 1.0 root=default >/dev/null 2>&1
ceph-osd $C -i "$OSD_ID" --mkfs --osd-uuid "$OSD_UUID" 2>"$BASE/log/osd-mkfs.err"
ceph-osd $C -i "$OSD_ID" 2>>"$BASE/log/osd.stderr"
for i in $(seq 1 150); do ceph $C osd stat 2>/dev/null | grep -q '1 up' && break; sleep 0.2; done
ceph $C osd stat | grep -q '1 up' || { echo "osd did not come up"; tail -n 20 "$BASE/log/osd.$OSD_ID.log"; exit 1; }
radosgw $C -n client.rgw.a
for i in $(seq 1 300); do curl -fs -o /dev/null "http://127.0.0.1:$RGW_PORT/" && break; sleep 0.2; done
curl -fs -o /dev/null "http://127.0.0.1:$RGW_PORT/" || { tail -n 30 "$BASE"/log/client.rgw.a.log; exit 1; }
radosgw-admin $C user create --uid=test --display-name=test --access-key=testak --secret-key=testsk >/dev/null
echo "rgw s3 up on http://127.0.0.1:$RGW_PORT"
