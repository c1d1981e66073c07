#!/bin/bash
# Build a 3-layer OCI image layout (with whiteouts) offline using tar+gzip+sha256sum.
# usage: make-oci-image.sh OUTDIR TAG  (our copy of the shared recipe)
# BIG_MB=N adds an incompressible N MiB file to layer 3 (data/big.bin), for
# builds that take a while; its layers are then compressed with gzip -1.
set -euo pipefail
OUT=${1:?out}; TAG=${2:-v1}
W=$(mktemp -d)
rm -rf "$OUT"; mkdir -p "$OUT/blobs/sha256"
TARFLAGS=(--sort=name --mtime=@0 --owner=0 --group=0 --numeric-owner --format=gnu)
# layer 1
mkdir -p $W/l1/etc $W/l1/dir/sub $W/l1/bin
echo hello-v1 > $W/l1/etc/hello.txt
echo keep > $W/l1/dir/keep
echo old  > $W/l1/dir/sub/file1
printf '#!/bin/sh\necho hi\n' > $W/l1/bin/hi; chmod 755 $W/l1/bin/hi
# layer 2: modify, whiteout a file, opaque-whiteout a dir
mkdir -p $W/l2/etc $W/l2/dir/sub
echo hello-v2 > $W/l2/etc/hello.txt
: > $W/l2/dir/.wh.keep
: > $W/l2/dir/sub/.wh..wh..opq
echo new > $W/l2/dir/sub/file2
# layer 3: new file + hardlink + symlink
mkdir -p $W/l3/data
head -c 100000 /dev/urandom > $W/l3/data/rand.bin
ln $W/l3/data/rand.bin $W/l3/data/rand-hardlink.bin
ln -s ../etc/hello.txt $W/l3/data/link
GZ=-9
if [ -n "${BIG_MB:-}" ]; then head -c $((BIG_MB << 20)) /dev/urandom > $W/l3/data/big.bin; GZ=-1; fi
layers=(); diffids=(); sizes=()
for l in l1 l2 l3; do
  tar -C $W/$l "${TARFLAGS[@]}" -cf $W/$l.tar .
  diffid=$(sha256sum $W/$l.tar | cut -d' ' -f1)
  gzip -n $GZ -c $W/$l.tar > $W/$l.tar.gz
  dg=$(sha256sum $W/$l.tar.gz | cut -d' ' -f1)
  cp $W/$l.tar.gz "$OUT/blobs/sha256/$dg"
  layers+=("$dg"); diffids+=("$diffid"); sizes+=("$(stat -c%s $W/$l.tar.gz)")
done
cfg=$(printf '{"architecture":"amd64","os":"linux","config":{"Env":["PATH=/usr/bin:/bin"],"Cmd":["/bin/hi"]},"rootfs":{"type":"layers","diff_ids":["sha256:%s","sha256:%s","sha256:%s"]},"history":[{"created_by":"l1"},{"created_by":"l2"},{"created_by":"l3"}]}' "${diffids[@]}")
printf '%s' "$cfg" > $W/config.json
cd=$(sha256sum $W/config.json | cut -d' ' -f1); cs=$(stat -c%s $W/config.json)
cp $W/config.json "$OUT/blobs/sha256/$cd"
L='application/vnd.oci.image.layer.v1.tar+gzip'
man=$(printf '{"schemaVersion":2,"mediaType":"application/vnd.oci.image.manifest.v1+json","config":{"mediaType":"application/vnd.oci.image.config.v1+json","digest":"sha256:%s","size":%s},"layers":[{"mediaType":"%s","digest":"sha256:%s","size":%s},{"mediaType":"%s","digest":"sha256:%s","size":%s},{"mediaType":"%s","digest":"sha256:%s","size":%s}]}' \
  $cd $cs $L ${layers[0]} ${sizes[0]} $L ${layers[1]} ${sizes[1]} $L ${layers[2]} ${sizes[2]})
printf '%s' "$man" > $W/manifest.json
md=$(sha256sum $W/manifest.json | cut -d' ' -f1); ms=$(stat -c%s $W/manifest.json)
cp $W/manifest.json "$OUT/blobs/sha256/$md"
printf '{"imageLayoutVersion":"1.0.0"}' > "$OUT/oci-layout"
printf '{"schemaVersion":2,"manifests":[{"mediaType":"application/vnd.oci.image.manifest.v1+json","digest":"sha256:%s","size":%s,"annotations":{"org.opencontainers.image.ref.name":"%s"}}]}' $md $ms "$TAG" > "$OUT/index.json"
rm -rf $W
echo "manifest sha256:$md"
