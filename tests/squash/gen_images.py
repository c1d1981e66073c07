#!/usr/bin/env python3
"""Generates the merge-semantics test images for /c1/squash (tests/squash).

usage: gen_images.py OUTDIR

Writes, offline and deterministically (Python stdlib and the `zstd` CLI):
  OUTDIR/layout/      one OCI image layout holding every case under its own tag
                      (CASE), plus a "CASE.ref" twin for cases umoci 0.4.7
                      cannot read as pushed (zstd layers, media types that do
                      not match the compression): same uncompressed tar bytes,
                      so the same diff_ids, stored as plain `tar` layers
                      (for PAX global headers, which umoci refuses, the twin
                      leaves them out).
  OUTDIR/cases.json   what run.sh needs per case: tag, reference tag, whether
                      it is an error case (and what to break), the
                      expectations (the spec's answer, checked independently of
                      umoci) and the documented normalizations.

Each case is a small multi-layer image. Layer tars are written entry by entry
with tarfile.TarInfo.tobuf(), so one layer can mix ustar, GNU and PAX headers,
repeat a path, and end with or without the end-of-archive blocks.
"""
import base64
import gzip
import hashlib
import json
import os
import random
import shutil
import subprocess
import sys
import tarfile

T0 = 1700000000  # base mtime; layers use T0 + k so metadata changes are visible

MT_TAR = "application/vnd.oci.image.layer.v1.tar"
MT_GZ = "application/vnd.oci.image.layer.v1.tar+gzip"
MT_ZST = "application/vnd.oci.image.layer.v1.tar+zstd"
MT_DOCKER_GZ = "application/vnd.docker.image.rootfs.diff.tar.gzip"
MT_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
MT_CONFIG = "application/vnd.oci.image.config.v1+json"
MT_FOREIGN_GZ = "application/vnd.oci.image.layer.nondistributable.v1.tar+gzip"
UMOCI_OK = {MT_TAR: "none", MT_GZ: "gzip"}  # what umoci 0.4.7 decodes, by media type

# Placeholder for the foreign-layer case; squashcheck.py push-all puts the
# address of run.sh's listener there (which must see no request).
FOREIGN_URL = "http://FOREIGN-LISTENER/layers/"

FMT = {"pax": tarfile.PAX_FORMAT, "gnu": tarfile.GNU_FORMAT, "ustar": tarfile.USTAR_FORMAT}

# security.capability v2: cap_net_bind_service+ep (what `setcap` writes)
CAP_NET_BIND = base64.b64decode("AQAAAgAEAAAAAAAAAAAAAAAAAAA=")


def blob(seed, n):
    """n deterministic pseudo-random bytes."""
    return random.Random(seed).randbytes(n)


def text(seed, n):
    """n deterministic bytes of compressible text: deflate makes several
    Huffman blocks of it, which is what inflate checkpoints need."""
    r = random.Random(seed)
    words = [b"layer", b"image", b"wharf", b"squash", b"opaque", b"whiteout", b"registry", b"0x1f8b"]
    out = bytearray()
    while len(out) < n:
        out += r.choice(words) + (b"\n" if r.random() < 0.1 else b" ") + (str(r.randrange(10**6)).encode() if r.random() < 0.2 else b"")
    return bytes(out[:n])


# ---------------------------------------------------------------- entries

class E:
    """One tar entry as written (the path is written verbatim)."""

    def __init__(self, name, kind, data=b"", mode=None, uid=0, gid=0, uname="", gname="",
                 mtime=T0, ns=None, link="", dev=(0, 0), xattrs=None, fmt=None, pax=None):
        self.name, self.kind, self.data = name, kind, data
        self.mode = mode if mode is not None else (0o755 if kind in ("dir",) else 0o644)
        self.uid, self.gid, self.uname, self.gname = uid, gid, uname, gname
        self.mtime, self.ns, self.link, self.dev = mtime, ns, link, dev
        self.xattrs = xattrs or {}
        self.fmt, self.pax = fmt, dict(pax or {})

    def tobuf(self, layer_fmt):
        fmt = self.fmt or layer_fmt
        if self.kind == "global":  # a PAX global header ('g'), as git archive writes
            return tarfile.TarInfo.create_pax_global_header(dict(self.pax))
        ti = tarfile.TarInfo(self.name)
        ti.type = {"file": tarfile.REGTYPE, "dir": tarfile.DIRTYPE, "symlink": tarfile.SYMTYPE,
                   "hardlink": tarfile.LNKTYPE, "fifo": tarfile.FIFOTYPE, "chr": tarfile.CHRTYPE,
                   "blk": tarfile.BLKTYPE}[self.kind]
        ti.mode = self.mode
        ti.uid, ti.gid, ti.uname, ti.gname = self.uid, self.gid, self.uname, self.gname
        ti.mtime = self.mtime
        ti.linkname = self.link
        ti.devmajor, ti.devminor = self.dev
        ti.size = len(self.data) if self.kind == "file" else 0
        pax = dict(self.pax)
        if self.ns is not None:
            assert fmt == "pax", self.name
            pax["mtime"] = "%d.%09d" % (self.mtime, self.ns)
        for k, v in self.xattrs.items():
            assert fmt == "pax", self.name
            if isinstance(v, bytes):
                v = v.decode("utf-8", "surrogateescape")
            pax["SCHILY.xattr." + k] = v
        ti.pax_headers = pax
        buf = ti.tobuf(FMT[fmt], "utf-8", "surrogateescape")
        if self.kind == "file":
            buf += self.data + b"\0" * ((512 - len(self.data) % 512) % 512)
        return buf


def F(name, data=b"", **kw): return E(name, "file", data=data if isinstance(data, bytes) else data.encode(), **kw)
def D(name, **kw): return E(name if name.endswith("/") else name + "/", "dir", **kw)
def S(name, target, **kw): return E(name, "symlink", link=target, mode=kw.pop("mode", 0o777), **kw)
def H(name, target, **kw): return E(name, "hardlink", link=target, **kw)
def W(path, **kw):
    """Whiteout for `path` (a regular file named .wh.BASENAME)."""
    d, b = os.path.split(path)
    return F(os.path.join(d, ".wh." + b), b"", mode=0o600, **kw)
def OPQ(dirpath, **kw): return F(os.path.join(dirpath, ".wh..wh..opq"), b"", mode=0o600, **kw)
def FIFO(name, **kw): return E(name, "fifo", **kw)
def GLOBAL(**pax): return E("", "global", pax=pax)
def CHR(name, major, minor, **kw): return E(name, "chr", dev=(major, minor), **kw)
def BLK(name, major, minor, **kw): return E(name, "blk", dev=(major, minor), **kw)


class Layer:
    """entries, or raw=bytes for a hand-made layer. compress: none|gzip|gzip2 (two
    members)|zstd|zstd2 (two frames)|random (the raw bytes as they are). media: the
    declared media type (default: the one matching the compression)."""

    def __init__(self, entries=(), fmt="pax", compress="gzip", media=None, end_blocks=True, raw=None):
        self.entries, self.fmt, self.compress = list(entries), fmt, compress
        self.media, self.end_blocks, self.raw = media, end_blocks, raw

    def tar_bytes(self, for_umoci=False):
        """for_umoci: without PAX global headers, which umoci 0.4.7 (Go's
        archive/tar hands them to it as entries) refuses as an unknown type."""
        if self.raw is not None:
            return self.raw
        out = b"".join(e.tobuf(self.fmt) for e in self.entries if not (for_umoci and e.kind == "global"))
        if self.end_blocks:
            out += b"\0" * 1024
        return out


def zstd(data, level=3):
    return subprocess.run(["zstd", "-q", "-c", "-%d" % level, "--no-check"], input=data,
                          stdout=subprocess.PIPE, check=True).stdout


def compress(data, how):
    if how == "none":
        return data
    if how == "gzip":
        return gzip.compress(data, compresslevel=6, mtime=0)
    if how == "gzip2":  # two gzip members, split mid-header
        cut = len(data) // 2 + 100
        return gzip.compress(data[:cut], mtime=0) + gzip.compress(data[cut:], mtime=0)
    if how == "zstd":
        return zstd(data)
    if how == "zstd-long":  # a frame that declares a 128 MiB window
        return subprocess.run(["zstd", "-q", "-c", "--long=27", "--no-check"], input=data,
                              stdout=subprocess.PIPE, check=True).stdout
    if how == "zstd2":  # two zstd frames
        cut = len(data) // 2 + 300
        return zstd(data[:cut]) + zstd(data[cut:])
    raise ValueError(how)


def natural_media(how):
    return {"none": MT_TAR, "gzip": MT_GZ, "gzip2": MT_GZ, "zstd": MT_ZST, "zstd2": MT_ZST, "zstd-long": MT_ZST}[how]


def actual_compression(how):
    return {"none": "none", "gzip": "gzip", "gzip2": "gzip", "zstd": "zstd", "zstd2": "zstd", "zstd-long": "zstd"}[how]


# ---------------------------------------------------------------- cases
# Each case: name -> dict(desc, layers, expect=[...], ignore_time=[(path, why)], implied=[path], error).
# implied: directories no layer declares; the squashed layer.tar must not
# contain them either (an extractor creates them, as it does for the layers),
# so in both unpacked trees their time is the time of the run, never 1970.
# error=None for a merge case; for an error case a dict: hint (a regex the
# error message must match), optionally truncate_layer/truncate_to (a blob cut
# short), corrupt_stored_layer/corrupt_offset or delete_stored_layer (damage to
# wharf's blob store, applied by squashcheck.py at the time "fault" says),
# no_index (use the wharf that does not index on push), foreign_layer (a layer
# only described, with urls), cut_body_ok (a 200 cut short is acceptable).
# Expectations (checked on the squashed tree, and on the umoci reference to
# spot disagreements): ("absent", p) ("file", p, content) ("dir", p)
# ("symlink", p, target) ("meta", p, {mode, uid, gid, mtime_ns}) ("links", [p...])
# ("xattrs", p, {name: bytes}) ("type", p, "fifo"|"chr"|"blk", (major, minor)).

CASES = {}


def case(name, desc, layers, expect=(), ignore_time=(), error=None, implied=()):
    assert name not in CASES, name
    CASES[name] = dict(desc=desc, layers=layers, expect=list(expect), ignore_time=list(ignore_time), error=error,
                       implied=list(implied))


def ns(sec, nsec=0):
    return sec * 10**9 + nsec


case("replace-file", "a file replaced in an upper layer (content, mode, owner, mtime change)", [
    Layer([D("etc"), F("etc/a", "v1\n"), F("etc/b", "keep\n"), F("top", "top-v1\n")]),
    Layer([D("etc"), F("etc/a", "version-2\n", mode=0o600, uid=5, gid=6, mtime=T0 + 2)]),
    Layer([F("top", "top-v3\n", mtime=T0 + 3)]),
], expect=[("file", "etc/a", "version-2\n"), ("meta", "etc/a", dict(mode=0o600, uid=5, gid=6, mtime_ns=ns(T0 + 2))),
           ("file", "etc/b", "keep\n"), ("file", "top", "top-v3\n")])

case("whiteout-file", ".wh.NAME deletes a file (also at the top level, and whatever the whiteout's entry type)", [
    Layer([D("d"), F("d/x", "x\n"), F("d/y", "y\n"), F("d/z", "z\n"), F("d/v", "v\n"), F("rootfile", "r\n"), F("keep", "k\n")]),
    Layer([D("d", mtime=T0 + 1), W("d/x"), W("rootfile"),
           S("d/.wh.z", "whatever"),          # a whiteout written as a symlink
           D("d/.wh.v")]),                   # ... and as a directory
], expect=[("absent", "d/x"), ("absent", "rootfile"), ("absent", "d/z"), ("absent", "d/v"),
           ("absent", "d/.wh.x"), ("absent", ".wh.rootfile"), ("absent", "d/.wh.z"), ("absent", "d/.wh.v"),
           ("file", "d/y", "y\n"), ("file", "keep", "k\n")])

case("whiteout-dir", ".wh.NAME deletes a whole directory; a later layer recreates it without the old children", [
    Layer([D("a"), D("a/b"), F("a/b/c", "c\n"), F("a/f", "f\n"), D("a2", mode=0o700), D("a2/old"), F("a2/old/x", "x\n"), F("sib", "s\n")]),
    Layer([W("a"), W("a2")]),
    Layer([D("a2", mode=0o751, uid=3, mtime=T0 + 3), F("a2/new", "new\n", mtime=T0 + 3)]),
], expect=[("absent", "a"), ("absent", "a/b/c"), ("absent", "a2/old"), ("file", "a2/new", "new\n"),
           ("meta", "a2", dict(mode=0o751, uid=3, mtime_ns=ns(T0 + 3))), ("file", "sib", "s\n")])

case("opaque", ".wh..wh..opq hides what lower layers put in a directory; the directory stays, with the upper metadata", [
    Layer([D("o"), F("o/x", "x\n"), D("o/sub"), F("o/sub/y", "y\n"), D("o/deep"), D("o/deep/er"), F("o/deep/er/f", "f\n"),
           D("o2"), F("o2/old", "old\n"), F("out", "out\n")]),
    Layer([D("o", mode=0o750, uid=7, gid=8, mtime=T0 + 1), OPQ("o"), F("o/new", "new\n", mtime=T0 + 1),
           D("o/deep", mode=0o700, mtime=T0 + 1),           # lower o/deep/er must still vanish
           OPQ("o2")]),                                     # opaque marker without a dir entry
    Layer([F("o2/later", "later\n", mtime=T0 + 2)]),
], expect=[("absent", "o/x"), ("absent", "o/sub"), ("absent", "o/deep/er"), ("dir", "o/deep"), ("file", "o/new", "new\n"),
           ("meta", "o", dict(mode=0o750, uid=7, gid=8, mtime_ns=ns(T0 + 1))), ("absent", "o2/old"),
           ("file", "o2/later", "later\n"), ("absent", "o/.wh..wh..opq"), ("file", "out", "out\n")])

case("opaque-root", "an opaque whiteout at the top level hides every lower path", [
    Layer([F("a", "a\n"), D("b"), F("b/c", "c\n")]),
    Layer([OPQ(""), F("z", "z\n")]),
], expect=[("absent", "a"), ("absent", "b"), ("file", "z", "z\n")])

case("opaque-after-entries", "an opaque marker after the layer's own entries in that directory still only hides lower ones", [
    Layer([D("p"), F("p/lower1", "1\n"), F("p/lower2", "2\n")]),
    Layer([D("p", mtime=T0 + 1), F("p/upper", "u\n", mtime=T0 + 1), F("p/lower2", "2-upper\n", mtime=T0 + 1), OPQ("p")]),
], expect=[("absent", "p/lower1"), ("file", "p/upper", "u\n"), ("file", "p/lower2", "2-upper\n")])

case("dir-to-file", "a directory (with a subtree) replaced by a regular file", [
    Layer([D("p"), D("p/q"), F("p/q/r", "r\n"), F("p/s", "s\n")]),
    Layer([F("p", "now a file\n", mtime=T0 + 1)]),
], expect=[("file", "p", "now a file\n"), ("absent", "p/q"), ("absent", "p/s")])

case("dir-to-symlink", "a directory replaced by a symlink (the subtree goes)", [
    Layer([D("m"), F("m/n", "n\n"), D("t"), F("t/n2", "n2\n")]),
    Layer([S("m", "t", mtime=T0 + 1)]),
], expect=[("symlink", "m", "t"), ("file", "t/n2", "n2\n")])

case("file-to-dir", "the reverse: a file and a symlink replaced by directories with children", [
    Layer([F("f", "file\n"), S("s", "elsewhere"), D("elsewhere"), F("elsewhere/e", "e\n")]),
    Layer([D("f", mode=0o711, mtime=T0 + 1), F("f/child", "c\n", mtime=T0 + 1),
           D("s", mtime=T0 + 1), F("s/child", "sc\n", mtime=T0 + 1)]),
], expect=[("dir", "f"), ("file", "f/child", "c\n"), ("meta", "f", dict(mode=0o711)), ("dir", "s"),
           ("file", "s/child", "sc\n"), ("absent", "elsewhere/child"), ("file", "elsewhere/e", "e\n")])

case("same-path-twice", "the same path twice in one layer: the last one wins (file/file, file->dir, dir->file, symlink->file)", [
    Layer([F("x", "first\n"), F("x", "second\n", mode=0o600, mtime=T0 + 5),
           F("y", "y-file\n"), D("y", mode=0o700),
           D("z"), F("z/c", "c\n"), F("z", "z-file\n"),
           S("l", "somewhere"), F("l", "l-file\n")]),
    Layer([F("x", "third\n", mtime=T0 + 6), F("x", "fourth\n", mtime=T0 + 7), D("y"), F("y/in", "in\n")]),
], expect=[("file", "x", "fourth\n"), ("meta", "x", dict(mtime_ns=ns(T0 + 7))), ("dir", "y"),
           ("file", "z", "z-file\n"), ("absent", "z/c"), ("file", "l", "l-file\n"), ("file", "y/in", "in\n")])

case("whiteout-same-layer", "a whiteout applies only to lower layers, wherever it stands in its own layer", [
    Layer([D("w"), F("w/a", "lower-a\n"), F("w/b", "lower-b\n"), F("w/c", "lower-c\n"),
           D("w/d"), F("w/d/old", "old\n")]),
    Layer([D("w", mtime=T0 + 1),
           F("w/a", "upper-a\n", mtime=T0 + 1), W("w/a"),    # file, then its own whiteout: the file stays
           W("w/b"), F("w/b", "upper-b\n", mtime=T0 + 1),    # whiteout, then the file
           W("w/c"),                                        # plain whiteout
           D("w/d", mtime=T0 + 1), F("w/d/new", "new\n", mtime=T0 + 1), W("w/d")]),  # dir, child, then its whiteout
], expect=[("file", "w/a", "upper-a\n"), ("file", "w/b", "upper-b\n"), ("absent", "w/c"), ("dir", "w/d"),
           ("file", "w/d/new", "new\n"), ("absent", "w/d/old"), ("meta", "w/d", dict(mtime_ns=ns(T0 + 1)))],
   ignore_time=[("w/d", "umoci 0.4.7 deletes w/d/old after extracting w/d (the whiteout comes later in the stream) "
                        "and only restores the mtime of the whiteout's parent w, so the reference's w/d gets the time "
                        "of the run; the expectation checks w/d's mtime instead")])

case("dir-over-dir", "a directory over a directory keeps the lower children, takes the upper mode/owner/mtime/xattrs", [
    Layer([D("dd", mode=0o755, mtime=T0, xattrs={"user.lower": "1", "user.both": "lower"}),
           F("dd/child1", "1\n"), D("dd/sub"), F("dd/sub/x", "x\n")]),
    Layer([D("dd", mode=0o2770, uid=1000, gid=1001, mtime=T0 + 9, ns=123456789,
             xattrs={"user.upper": "2", "user.both": "upper"}),
           F("dd/child2", "2\n", mtime=T0 + 9)]),
], expect=[("file", "dd/child1", "1\n"), ("file", "dd/sub/x", "x\n"), ("file", "dd/child2", "2\n"),
           ("meta", "dd", dict(mode=0o2770, uid=1000, gid=1001, mtime_ns=ns(T0 + 9, 123456789))),
           ("xattrs", "dd", {"user.upper": b"2", "user.both": b"upper"})])

case("hardlink-target-deleted", "hardlinks whose target is deleted in an upper layer keep the content; "
     "the first surviving link becomes the file", [
    Layer([D("h"), F("h/orig", "content-A\n", mode=0o640, uid=7, gid=9, mtime=T0 + 1), H("h/link1", "h/orig"),
           H("h/link2", "./h/orig"), H("h/link3", "/h/orig")]),
    Layer([W("h/orig")]),
], expect=[("absent", "h/orig"), ("file", "h/link1", "content-A\n"), ("file", "h/link2", "content-A\n"),
           ("links", ["h/link1", "h/link2", "h/link3"]), ("meta", "h/link2", dict(mode=0o640, uid=7, gid=9))])

case("hardlink-target-replaced", "a hardlink keeps the old content when its target is replaced (by a file or a directory)", [
    Layer([D("g"), F("g/t", "old\n"), H("g/l", "g/t"), F("g/t2", "old2\n"), H("g/l2", "g/t2"), H("g/l3", "g/t2")]),
    Layer([F("g/t", "new\n", mtime=T0 + 1), D("g/t2", mtime=T0 + 1), F("g/t2/in", "in\n")]),
], expect=[("file", "g/l", "old\n"), ("file", "g/t", "new\n"), ("file", "g/l2", "old2\n"), ("links", ["g/l2", "g/l3"]),
           ("dir", "g/t2")])

case("hardlink-cross-layer", "a hardlink in an upper layer to a lower file, then the target is replaced", [
    Layer([D("c"), F("c/t", "T\n", mode=0o604), F("c/u", "U\n")]),
    Layer([H("c/l", "c/t"), H("c/m", "c/u")]),
    Layer([F("c/t", "T3\n", mtime=T0 + 3), W("c/u")]),
], expect=[("file", "c/l", "T\n"), ("file", "c/t", "T3\n"), ("file", "c/m", "U\n"), ("absent", "c/u")])

case("hardlink-special", "hardlinks to an empty file, a symlink, a fifo; a link to a link", [
    Layer([D("k"), F("k/empty", ""), H("k/empty-l", "k/empty"), S("k/sym", "target"), H("k/sym-l", "k/sym"),
           FIFO("k/fifo", mode=0o600), H("k/fifo-l", "k/fifo"),
           F("k/data", "d\n"), H("k/l1", "k/data"), H("k/l2", "k/l1")]),
    Layer([W("k/empty"), W("k/data")]),
], expect=[("file", "k/empty-l", ""), ("links", ["k/sym", "k/sym-l"]), ("links", ["k/fifo", "k/fifo-l"]),
           ("links", ["k/l1", "k/l2"]), ("file", "k/l2", "d\n")])

case("symlinks", "symlinks: relative, absolute, dangling, escaping, to a directory; owner and ns mtime kept", [
    Layer([D("target"), F("target/file", "tf\n"), D("sl"),
           S("sl/rel", "../target/file"), S("sl/abs", "/target/file"), S("sl/dang", "nowhere/at/all"),
           S("sl/esc", "../../../../outside"), S("sl/dir", "../target"), S("sl/self", "self"),
           S("sl/owned", "x", uid=1234, gid=4321, mtime=T0 + 4, ns=5)]),
    Layer([S("sl/rel", "../target/file2", mtime=T0 + 1), F("target/file2", "tf2\n")]),
], expect=[("symlink", "sl/rel", "../target/file2"), ("symlink", "sl/abs", "/target/file"),
           ("symlink", "sl/dang", "nowhere/at/all"), ("symlink", "sl/esc", "../../../../outside"),
           ("meta", "sl/owned", dict(uid=1234, gid=4321, mtime_ns=ns(T0 + 4, 5)))])


def long_names(fmt):
    c100 = "c" * 100
    c255 = "n" * 255
    p150 = "d150/" + "q" * 60 + "/" + "r" * 80                           # 146 bytes: a ustar prefix/name split
    deep = "deep/" + "/".join(["s" * 50] * 6)                           # a directory path of 311 bytes
    p300 = deep + "/" + "f" * 120                                       # > 255 bytes
    p600 = deep + "/" + c255                                            # > 255, a 255-byte basename
    t150 = "../" * 20 + "t" * 90
    t1000 = "/".join(["L" * 99] * 10)
    lay1 = [D("d150"), D("d150/" + "q" * 60), F(p150, "p150\n", fmt="ustar" if fmt == "pax" else None),
            D("deep")]
    d = "deep"
    for _ in range(6):
        d += "/" + "s" * 50
        lay1.append(D(d))
    a155, d100 = "A" * 155, "e" * 49 + "/" + "f" * 50                  # 256 = 155 + '/' + 100; a 100-byte dir
    lay1 += [D(a155), F(a155 + "/" + "B" * 100, "p256\n"), D("e" * 49), D(d100), F(d100 + "/x", "x\n"),
             F("t" * 100, "t100\n"), S("l" * 100, "k" * 100)]
    lay1 += [F(p300, "p300\n"), F(p600, "p600\n"), D(c100), F(c100 + "/" + c100, "c100\n"),
             S("longlink150", t150), S("longlink1000", t1000), H("hard-to-long", p600),
             F(deep + "/" + "w" * 200, "to-be-deleted\n")]
    lay2 = [S(deep + "/" + "y" * 200, t1000), W(deep + "/" + "w" * 200), H(deep + "/" + "h" * 200, p300)]
    return [Layer(lay1, fmt=fmt), Layer(lay2, fmt=fmt)], [
        ("file", "A" * 155 + "/" + "B" * 100, "p256\n"), ("dir", "e" * 49 + "/" + "f" * 50),
        ("symlink", "l" * 100, "k" * 100), ("file", "t" * 100, "t100\n"),
        ("file", p150, "p150\n"), ("file", p300, "p300\n"), ("file", p600, "p600\n"), ("file", c100 + "/" + c100, "c100\n"),
        ("symlink", "longlink150", t150), ("symlink", "longlink1000", t1000), ("links", ["hard-to-long", p600]),
        ("symlink", deep + "/" + "y" * 200, t1000), ("absent", deep + "/" + "w" * 200), ("links", [p300, deep + "/" + "h" * 200])]


_l, _x = long_names("pax")
case("long-names-pax", "names over 100 and 255 bytes and long link targets, PAX headers (and one ustar prefix split)", _l, expect=_x)
_l, _x = long_names("gnu")
case("long-names-gnu", "the same with GNU ././@LongLink names and link targets", _l, expect=_x)

case("xattrs", "xattrs: security.capability, user.* (text and binary values), trusted.*, on files and directories", [
    Layer([D("x", xattrs={"user.dirattr": "on-dir"}),
           F("x/ping", blob(1, 3000), mode=0o755, xattrs={"security.capability": CAP_NET_BIND}),
           F("x/user", "u\n", xattrs={"user.mime_type": "text/plain", "user.bin": b"\x00\x01\xff\xfe\n=",
                                      "user.long": "v" * 3000}),
           F("x/trusted", "t\n", xattrs={"trusted.overlay.something": "y", "trusted.plain": "p"}),
           F("x/replaced", "r\n", xattrs={"user.old": "gone"})]),
    Layer([F("x/replaced", "r2\n", xattrs={"user.new": "here"}, mtime=T0 + 1)]),
], expect=[("xattrs", "x/ping", {"security.capability": CAP_NET_BIND}),
           ("xattrs", "x/user", {"user.mime_type": b"text/plain", "user.bin": b"\x00\x01\xff\xfe\n=", "user.long": b"v" * 3000}),
           ("xattrs", "x/replaced", {"user.new": b"here"}), ("xattrs", "x", {"user.dirattr": b"on-dir"})])

case("ownership-modes", "uid/gid (incl. > 2^21: PAX), uname/gname, setuid/setgid/sticky, mode 000, "
     "mtimes with nanoseconds, at 0, at 2^31-1 and before the epoch", [
    Layer([D("m"), F("m/suid", "s\n", mode=0o4755, uid=1000, gid=1000), F("m/sgid", "g\n", mode=0o2711, gid=50),
           D("m/sticky", mode=0o1777), F("m/none", "n\n", mode=0o000),
           F("m/bigid", "b\n", uid=3000000, gid=4000000, uname="someone", gname="somegroup"),
           F("m/nobody", "n\n", uid=65534, gid=65534, uname="nobody", gname="nogroup"),
           F("m/ns", "ns\n", mtime=T0, ns=123456789), F("m/ns1", "ns1\n", mtime=T0, ns=1),
           D("m/nsdir", mtime=T0 + 1, ns=999999999),
           F("m/epoch", "e\n", mtime=0), F("m/future", "f\n", mtime=2147483647, ns=500000000),
           F("m/past", "p\n", mtime=-100, ns=250000000),
           ]),
    Layer([F("m/suid2", "s2\n", mode=0o6755, uid=1, gid=2, mtime=T0 + 1, ns=42)]),
], expect=[("meta", "m/suid", dict(mode=0o4755, uid=1000, gid=1000)), ("meta", "m/sticky", dict(mode=0o1777)),
           ("meta", "m/none", dict(mode=0)), ("meta", "m/bigid", dict(uid=3000000, gid=4000000)),

           ("meta", "m/ns", dict(mtime_ns=ns(T0, 123456789))), ("meta", "m/nsdir", dict(mtime_ns=ns(T0 + 1, 999999999))),
           ("meta", "m/future", dict(mtime_ns=ns(2147483647, 500000000))),
           ("meta", "m/past", dict(mtime_ns=-100 * 10**9 - 250000000)),
           ("meta", "m/suid2", dict(mode=0o6755, uid=1, gid=2, mtime_ns=ns(T0 + 1, 42)))])

case("gnu-base256", "GNU headers with base-256 numbers: uid/gid over 2^21, an mtime before the epoch "
     "(negative base-256) and one past 2^33 (the file system may clip it; both trees the same way)", [
    Layer([D("g"), F("g/bigid", "gb\n", uid=3000000, gid=5000000),
           F("g/past", "gp\n", mtime=-1000),
           F("g/far", "gf\n", mtime=2 ** 33 + 5)], fmt="gnu"),
], expect=[("meta", "g/bigid", dict(uid=3000000, gid=5000000)), ("meta", "g/past", dict(mtime_ns=-1000 * 10**9))])

case("special-files", "fifos, character and block devices (incl. large major/minor); a device replaced by a file", [
    Layer([D("dev"), FIFO("dev/fifo", mode=0o640, uid=3), CHR("dev/null", 1, 3, mode=0o666), BLK("dev/loop0", 7, 0, mode=0o660, gid=6),
           CHR("dev/big", 511, 1048575, mode=0o600), CHR("dev/gone", 1, 5), FIFO("dev/tofile")]),
    Layer([W("dev/gone"), F("dev/tofile", "was a fifo\n", mtime=T0 + 1), BLK("dev/new", 8, 16, mode=0o640, mtime=T0 + 1)]),
], expect=[("type", "dev/fifo", "fifo", None), ("type", "dev/null", "chr", (1, 3)), ("type", "dev/loop0", "blk", (7, 0)),
           ("type", "dev/big", "chr", (511, 1048575)), ("absent", "dev/gone"), ("file", "dev/tofile", "was a fifo\n"),
           ("type", "dev/new", "blk", (8, 16))])

case("empty-layers", "empty layers: a tar of just the end blocks, a 0-byte blob, an empty gzip and zstd, no-entry layers between real ones", [
    Layer([], compress="none"),
    Layer([D("e"), F("e/a", "a\n")]),
    Layer([], raw=b"", compress="none"),
    Layer([], compress="gzip"),
    Layer([], compress="zstd"),
    Layer([F("e/b", "b\n")], compress="none"),
    Layer([], compress="gzip", end_blocks=False),
], expect=[("file", "e/a", "a\n"), ("file", "e/b", "b\n")])

case("names-mixed", "./-prefixed and unprefixed names mixed, a leading /, //, /./, a harmless .., a root ./ entry", [
    Layer([D("./", mode=0o750, mtime=T0 + 5), D("./a"), F("a/x", "x\n"), F("./a/y", "y\n"), D("/b"), F("b//c", "c\n"),
           F("/b/./d", "d\n"), F("a/sub/../w", "w\n"), D("a/sub"), F("./a//sub/v", "v\n"), H("a/hl", "./a/x"), H("./a/hl2", "/a//x")]),
    Layer([W("./a/y"), F("/b/c", "c2\n", mtime=T0 + 1), W("b/d"), F("a/./sub/v", "v2\n", mtime=T0 + 1)]),
], expect=[("file", "a/x", "x\n"), ("absent", "a/y"), ("file", "b/c", "c2\n"), ("absent", "b/d"), ("file", "a/w", "w\n"),
           ("file", "a/sub/v", "v2\n"), ("links", ["a/x", "a/hl", "a/hl2"]), ("meta", "", dict(mode=0o750, mtime_ns=ns(T0 + 5)))],
   )

big_gz = blob(10, 2 * 1024 * 1024 + 77)
big_zst = blob(11, 3 * 1024 * 1024 + 5)
case("compression", "layers compressed with gzip (also two members), zstd (also two frames) or not at all, "
     "with media types that match and that do not (wharf decides by magic bytes)", [
    Layer([D("z"), F("z/gzip-as-gzip", "1\n"), F("z/big-gz", big_gz)], compress="gzip"),
    Layer([F("z/zstd-as-zstd", "2\n"), F("z/big-zst", big_zst)], compress="zstd"),
    Layer([F("z/tar-as-tar", "3\n")], compress="none"),
    Layer([F("z/gzip-as-tar", "4\n"), F("z/gzip-as-tar-big", blob(12, 700000))], compress="gzip", media=MT_TAR),
    Layer([F("z/zstd-as-gzip", "5\n"), F("z/big-zst", b"replaced\n", mtime=T0 + 5)], compress="zstd", media=MT_GZ),
    Layer([F("z/tar-as-gzip", "6\n")], compress="none", media=MT_GZ),
    Layer([F("z/tar-as-zstd", "7\n")], compress="none", media=MT_ZST),
    Layer([F("z/zstd-as-tar", "8\n")], compress="zstd", media=MT_TAR),
    Layer([F("z/gzip-as-zstd", "9\n")], compress="gzip", media=MT_ZST),
    Layer([F("z/gzip-two-members", blob(13, 5000)), F("z/after", "10\n")], compress="gzip2"),
    Layer([F("z/zstd-two-frames", blob(14, 5000)), F("z/after2", "11\n")], compress="zstd2"),
    Layer([F("z/docker-gzip", "12\n")], compress="gzip", media=MT_DOCKER_GZ),
], expect=[("file", "z/big-gz", big_gz), ("file", "z/big-zst", "replaced\n"), ("file", "z/gzip-as-tar", "4\n"),
           ("file", "z/zstd-as-gzip", "5\n"), ("file", "z/tar-as-gzip", "6\n"), ("file", "z/after", "10\n"),
           ("file", "z/after2", "11\n"), ("file", "z/docker-gzip", "12\n")])

case("no-end-blocks", "layer tars without end-of-archive blocks (last entry a file with padding, a directory, "
     "a file of exactly 512 bytes), plain, gzip and zstd", [
    Layer([D("n"), F("n/a", "a\n")], compress="none", end_blocks=False),
    Layer([F("n/b", "b\n"), D("n/lastdir")], compress="gzip", end_blocks=False),
    Layer([F("n/c", blob(20, 512))], compress="zstd", end_blocks=False),
    Layer([F("n/d", "d\n")], compress="none", end_blocks=True),
], expect=[("file", "n/a", "a\n"), ("file", "n/b", "b\n"), ("dir", "n/lastdir"), ("file", "n/c", blob(20, 512)), ("file", "n/d", "d\n")])

case("implicit-parents", "entries whose parent directories no layer declares (not invented in the squashed "
     "layer: the extractor creates them, with the same times as for the layers), a whiteout-deleted directory "
     "whose child is re-added without a directory entry, and an implied directory a whiteout leaves empty", [
    Layer([F("ip/a/b/c/file", "f\n"), D("r", mode=0o700, uid=5, mtime=T0 + 1), F("r/old", "old\n"),
           F("ie/x/gone", "g\n")]),
    Layer([W("r"), F("r/new", "new\n", mtime=T0 + 2), D("ip/a", mode=0o711, mtime=T0 + 2), W("ie/x/gone")]),
], expect=[("file", "ip/a/b/c/file", "f\n"), ("file", "r/new", "new\n"), ("absent", "r/old"),
           ("meta", "ip/a", dict(mode=0o711)),
           ("meta", "r", dict(mode=0o755, uid=0, gid=0)), ("meta", "ip/a/b", dict(mode=0o755, uid=0, gid=0)),
           ("dir", "ie/x"), ("absent", "ie/x/gone")],
   implied=["ip", "ip/a/b", "ip/a/b/c", "r", "ie"],
   ignore_time=[(p, "implied directory (its time is the run's in both trees: checked as implied)")
                for p in ("ip", "ip/a/b", "ip/a/b/c", "r", "ie")]
               + [("ip/a", "umoci restores only the immediate parent's mtime after an entry: in the squashed tree, "
                           "creating the implied ip/a/b after ip/a's own entry resets ip/a to the time of the run "
                           "(layered, layer 1 creates it before layer 2 sets it); extractors that set directory "
                           "times last (docker, containerd, GNU tar) keep its time in both")]
               + [("ie/x", "an implied directory a whiteout left empty must be written to exist: wharf gives it "
                           "mtime 0, umoci the time of the run")]
               + [("", "umoci restores only the immediate parent's mtime after an entry, so creating the implied "
                       "ip/ changes the root's mtime in the reference to the time of the run")])

case("aufs-metadata", "other .wh..wh.* names are AUFS metadata and are dropped", [
    Layer([D("q"), F("q/keep", "k\n"), F(".wh..wh.aufs", ""), D(".wh..wh.orph"), F("q/.wh..wh.something", "")]),
], expect=[("absent", ".wh..wh.aufs"), ("absent", ".wh..wh.orph"), ("absent", "q/.wh..wh.something"), ("file", "q/keep", "k\n")])


case("hardlink-forward", "a hardlink to a lower file whose path the same layer rewrites later (the link gets the "
     "content it points at when applied); a member of a link group replaced by a file", [
    Layer([D("f"), F("f/t", "old\n"), F("f/a", "A\n"), H("f/b", "f/a"), H("f/c", "f/a")]),
    Layer([H("f/l", "f/t"), F("f/t", "new\n", mtime=T0 + 1), F("f/b", "b is its own file\n", mtime=T0 + 1)]),
], expect=[("file", "f/l", "old\n"), ("file", "f/t", "new\n"), ("file", "f/b", "b is its own file\n"),
           ("links", ["f/a", "f/c"])])

_odd = ["sp ace", "tab\there", "new\nline", "ünïcödé-名前", "back\\slash", "quo\"te", "key=value", "per%cent",
        "\udcff\udcfe-not-utf8", "#hash", "trailing-space "]
case("odd-names", "names with spaces, tabs, newlines, '=', '%', '#', backslashes, UTF-8 and bytes that are not UTF-8; "
     "a long UTF-8 name; a symlink target with a newline", [
    Layer([D("o")] + [F("o/" + n, n.encode("utf-8", "surrogateescape")) for n in _odd]
          + [F("o/" + "é" * 60, "long utf8\n"), S("o/link", "to\nnewline"), D("o/dir with space"),
             F("o/dir with space/f", "f\n")]),
    Layer([W("o/sp ace"), W("o/new\nline"), F("o/key=value", "v2\n", mtime=T0 + 1)]),
], expect=[("absent", "o/sp ace"), ("absent", "o/new\nline"), ("file", "o/key=value", "v2\n"),
           ("file", "o/\udcff\udcfe-not-utf8", "\udcff\udcfe-not-utf8".encode("utf-8", "surrogateescape")),
           ("symlink", "o/link", "to\nnewline"), ("file", "o/" + "é" * 60, "long utf8\n")])

case("pax-global-header", "a PAX global header (git archive writes one) is dropped; the reference twin leaves it "
     "out because umoci 0.4.7 refuses it", [
    Layer([GLOBAL(comment="0123456789abcdef0123456789abcdef01234567"), D("g"), F("g/a", "a\n")]),
    Layer([GLOBAL(comment="second"), F("g/b", "b\n")], compress="none"),
], expect=[("file", "g/a", "a\n"), ("file", "g/b", "b\n")])

case("parent-symlink", "(beyond the basic cases) an upper layer adds d/file where a lower layer made d a symlink "
     "to a directory: umoci, docker and containerd write through the symlink", [
    Layer([D("real"), F("real/old", "old\n"), F("real/doomed", "doomed\n"), S("d", "real"), S("abs", "/real")]),
    Layer([F("d/file", "via symlink\n", mtime=T0 + 1), F("abs/file2", "via abs symlink\n", mtime=T0 + 1),
           W("d/doomed")]),
], expect=[("symlink", "d", "real"), ("file", "real/file", "via symlink\n"), ("file", "real/old", "old\n"),
           ("absent", "real/doomed"),
           ("symlink", "abs", "/real"), ("file", "real/file2", "via abs symlink\n")])


# ---- error cases: each must give a 4xx JSON error from /c1/squash and no cache entry

case("err-dotdot-name", "a name with .. escaping the root", [
    Layer([D("ok"), F("ok/file", "f\n"), F("ok/../../escape", "bad\n")]),
], error=dict(hint=r"\.\.|escape|outside|root"))

case("err-dotdot-hardlink", "a hardlink target escaping the root", [
    Layer([D("ok"), F("ok/file", "f\n"), H("ok/hl", "../../etc/passwd")]),
], error=dict(hint=r"\.\.|escape|outside|root"))

case("err-hardlink-missing", "a hardlink to a path that does not exist", [
    Layer([D("ok"), F("ok/file", "f\n")]),
    Layer([H("ok/hl", "ok/nothing")]),
], error=dict(hint=r"hardlink|link"))

case("err-not-tar-gzip", "a layer that is not a tar: random bytes, gzipped", [
    Layer([D("ok"), F("ok/file", "f\n")]),
    Layer(raw=blob(30, 5000), compress="gzip"),
], error=dict(hint=r"tar|checksum|invalid|corrupt"))

case("err-not-tar-plain", "a layer that is not a tar: random bytes, uncompressed", [
    Layer(raw=blob(31, 3000), compress="none"),
], error=dict(hint=r"tar|checksum|invalid|corrupt"))

case("err-truncated-gzip", "a gzip layer cut short (a valid blob under its digest, but the stream is truncated)", [
    Layer([D("ok"), F("ok/file", blob(32, 20000))], compress="gzip"),
], error=dict(hint=r"truncat|corrupt|gzip", truncate_layer=0))

case("err-truncated-tar", "an uncompressed layer cut inside a file's data", [
    Layer([D("ok"), F("ok/file", blob(33, 20000))], compress="none"),
], error=dict(hint=r"truncat|tar", truncate_layer=0, truncate_to=512 * 3 + 1000))

# Storage faults. "fault" says when the blob in wharf's store is damaged:
# after_index (once wharf built the layer's index in the background, on push),
# before_manifest (between the blob upload and the manifest push) or after_push.
# no_index: the case goes to a second wharf with squash.index_on_push: false, so
# the squash request itself indexes the (damaged) layer.
for _when, _how, _fault in (
        # With the index already built, wharf plans without reading the blob and only
        # finds the damage while streaming: a body cut short is the allowed outcome there
        # ("a build that fails after bytes were sent aborts every attached
        # connection"), as long as no complete archive is served or cached.
        ("indexed", "after wharf built the layer's index in the background",
         dict(fault="after_index", cut_body_ok=True)),
        ("unindexed", "before the manifest push, on a wharf that does not index on push",
         dict(fault="before_manifest", no_index=True))):
    case("err-digest-bitrot-" + _when, "a layer blob whose stored bytes no longer match its digest: one byte of "
         "file data flipped in wharf's blob store " + _how + " (the tar structure stays valid)", [
        Layer([D("ok"), F("ok/file", blob(34, 100000) + _when.encode())], compress="none"),
    ], error=dict(hint=r"digest|match|corrupt", corrupt_stored_layer=0, corrupt_offset=1024 + 50000, **_fault))
    case("err-digest-bitrot-gzip-" + _when, "the same for a gzip layer: a byte of the gzip header's MTIME field "
         "flipped " + _how + " (the layer inflates to the same tar; only the digest tells)", [
        Layer([D("ok"), F("ok/file", blob(35, 100000) + _when.encode())], compress="gzip"),
    ], error=dict(hint=r"digest|match|corrupt", corrupt_stored_layer=0, corrupt_offset=4, **_fault))

# Layers large enough to be decoded in chunks: run.sh's main wharf records an
# inflate checkpoint every KiB, so each of these gzip layers (many deflate
# blocks) is decoded by several threads from saved states, across gzip
# members, with files replaced, deleted and hardlinked across layers.
case("gzip-chunked", "multi-block gzip layers decoded in chunks on several threads (one with two gzip members)", [
    Layer([D("t"), F("t/a", text(40, 200000)), F("t/b", text(41, 150000)), F("t/c", text(42, 120000), mode=0o600),
           H("t/a-link", "t/a"), F("t/small", "s\n")]),
    Layer([F("t/b", text(43, 180000), mtime=T0 + 1), W("t/c"), F("t/d", blob(44, 30000)), F("t/e", text(45, 90000))],
          compress="gzip2"),
    Layer([W("t/a"), F("t/e", "short now\n", mtime=T0 + 2), F("t/f", text(46, 250000))]),
], expect=[("file", "t/a-link", text(40, 200000)), ("absent", "t/a"), ("file", "t/b", text(43, 180000)), ("absent", "t/c"),
           ("file", "t/d", blob(44, 30000)), ("file", "t/e", "short now\n"), ("file", "t/f", text(46, 250000))])

case("err-digest-bitrot-gzip-chunked", "a byte in the middle of a multi-block gzip layer's compressed data flipped "
     "after wharf built its index (with inflate checkpoints): the chunk that holds it must notice", [
    Layer([D("ok"), F("ok/file", text(47, 400000))], compress="gzip"),
], error=dict(hint=r"digest|match|corrupt|damaged|gzip", corrupt_stored_layer=0, corrupt_offset=40000,
              fault="after_index", cut_body_ok=True))

case("err-missing-blob", "a layer blob missing from the blob store (removed from disk after the push and "
     "the background index)", [
    Layer([D("ok"), F("ok/file", "f\n")]),
    Layer([F("ok/file2", "f2 (only in err-missing-blob)\n")], compress="none"),
], error=dict(hint=r"missing|not found|unknown", delete_stored_layer=1, fault="after_index"))

case("err-limit-zstd-window", "a zstd layer whose frame asks for a 128 MiB window, over the default "
     "squash.limits.zstd_window_log_max (25): a 4xx naming the limit", [
    Layer([D("ok"), F("ok/file", "f (only in err-limit-zstd-window)\n")], compress="zstd-long"),
], error=dict(hint=r"zstd_window_log_max"))

_p5000 = "toolong/" + "/".join(["p" * 200] * 25)  # 5 032 bytes: over max_path_bytes (4096)
case("err-limit-path-pax", "a file whose PAX path is 5 032 bytes, over the default squash.limits.max_path_bytes "
     "(4096): a 4xx naming the limit", [
    Layer([D("ok"), F(_p5000, "deep\n")]),
], error=dict(hint=r"max_path_bytes"))
case("err-limit-path-gnu", "the same path as a GNU long name", [
    Layer([D("ok"), F(_p5000, "deep\n")], fmt="gnu"),
], error=dict(hint=r"max_path_bytes"))
case("err-limit-pax", "a PAX extended header of 1.1 MB (one xattr value), over the default "
     "squash.limits.max_pax_bytes (1 MiB): a 4xx naming the limit", [
    Layer([D("ok"), F("ok/big-xattr", "x\n", xattrs={"user.big": "v" * 1100000})]),
], error=dict(hint=r"max_pax_bytes"))
case("err-limit-uncompressed", "a layer of 52 MiB uncompressed (zeros, a small gzip blob), over "
     "squash.limits.max_uncompressed_bytes, which run.sh's wharfs set to 48 MiB: a 4xx naming the limit", [
    Layer([D("ok"), F("ok/zeros", bytes(52 << 20))]),
], error=dict(hint=r"max_uncompressed_bytes"))

case("err-foreign-layer", "a non-distributable layer whose descriptor has urls and whose blob the registry "
     "does not have: a clear error, and the urls are never fetched", [
    Layer([D("ok"), F("ok/file", "f\n")]),
    Layer([F("ok/foreign", "foreign (only in err-foreign-layer)\n")], compress="gzip", media=MT_FOREIGN_GZ),
], error=dict(hint=r"missing|not found|unknown|foreign|urls", foreign_layer=1))

case("err-missing-blob-unindexed", "the same on a wharf that does not index on push (no index exists)", [
    Layer([D("ok"), F("ok/file", "f\n")]),
    Layer([F("ok/file2", "f2 (only in err-missing-blob-unindexed)\n")], compress="none"),
], error=dict(hint=r"missing|not found|unknown", delete_stored_layer=1, fault="after_push", no_index=True))

case("err-missing-blob-headers-only", "the same for a layer that only holds a directory and a whiteout "
     "(no file data to copy, so only its index is needed to plan and write the output)", [
    Layer([D("ok"), F("ok/file", "f\n"), F("ok/gone", "g\n")]),
    Layer([D("ok/newdir-only-in-err-missing-blob-headers-only"), W("ok/gone")], compress="none"),
], error=dict(hint=r"missing|not found|unknown", delete_stored_layer=1, fault="after_index"))



# ---------------------------------------------------------------- writing

SPARSE_CONTENT = (b"head" * 100).ljust(1 << 20, b"\0") + b"middle".ljust(2 << 20, b"\0") + b"tail"


def sparse_layer_tar():
    """A PAX tar with one sparse file in GNU sparse format 1.0 (what `tar --sparse
    --format=posix --sparse-version=1.0` writes, minus the PID GNU tar puts in the name)."""
    regions = [(0, b"head" * 100), (1 << 20, b"middle"), (3 << 20, b"tail")]
    realsize = (3 << 20) + 4
    smap = ("%d\n" % len(regions) + "".join("%d\n%d\n" % (o, len(d)) for o, d in regions)).encode()
    smap += b"\0" * ((512 - len(smap) % 512) % 512)
    body = smap + b"".join(d for _, d in regions)
    e = F("sp/GNUSparseFile.0/holes", body, pax={"GNU.sparse.major": "1", "GNU.sparse.minor": "0",
                                                 "GNU.sparse.name": "sp/holes", "GNU.sparse.realsize": str(realsize)})
    return D("sp").tobuf("pax") + e.tobuf("pax") + b"\0" * 1024


case("sparse", "(beyond the basic cases) a GNU sparse file (PAX sparse format 1.0) is expanded", [
    Layer([D("sp")]),
    Layer(raw=sparse_layer_tar(), compress="gzip"),
], expect=[("file", "sp/holes", SPARSE_CONTENT)])


def main():
    if len(sys.argv) != 2:
        sys.exit(__doc__)
    outdir = sys.argv[1]
    layout = os.path.join(outdir, "layout")
    shutil.rmtree(layout, ignore_errors=True)
    os.makedirs(os.path.join(layout, "blobs", "sha256"))

    def put(data):
        d = hashlib.sha256(data).hexdigest()
        p = os.path.join(layout, "blobs", "sha256", d)
        if not os.path.exists(p):
            with open(p, "wb") as f:
                f.write(data)
        return "sha256:" + d, len(data)

    index = []
    meta = {}

    def image(tag, layer_descs, diff_ids, desc):
        cfg = {"architecture": "amd64", "os": "linux",
               "config": {"Env": ["PATH=/usr/bin:/bin"], "Cmd": ["/bin/sh"], "Labels": {"case": tag}},
               "rootfs": {"type": "layers", "diff_ids": diff_ids},
               "history": [{"created_by": "%s layer %d" % (tag, i)} for i in range(len(diff_ids))]}
        cd, cs = put(json.dumps(cfg, sort_keys=True, separators=(",", ":")).encode())
        man = {"schemaVersion": 2, "mediaType": MT_MANIFEST,
               "config": {"mediaType": MT_CONFIG, "digest": cd, "size": cs},
               "layers": layer_descs, "annotations": {"org.opencontainers.image.description": desc[:200]}}
        md, ms = put(json.dumps(man, sort_keys=True, separators=(",", ":")).encode())
        index.append({"mediaType": MT_MANIFEST, "digest": md, "size": ms,
                      "annotations": {"org.opencontainers.image.ref.name": tag}})
        return md

    for name, c in CASES.items():
        descs, ref_descs, diff_ids, ref_diff_ids, layers_info = [], [], [], [], []
        umoci_readable = True
        err = c["error"] or {}
        for i, l in enumerate(c["layers"]):
            raw = l.tar_bytes()
            ref_raw = l.tar_bytes(for_umoci=True)
            diff_ids.append("sha256:" + hashlib.sha256(raw).hexdigest())
            ref_diff_ids.append("sha256:" + hashlib.sha256(ref_raw).hexdigest())
            if ref_raw != raw:
                umoci_readable = False
            data = compress(raw, l.compress)
            media = l.media or natural_media(l.compress)
            if err.get("truncate_layer") == i:
                data = data[:err.get("truncate_to", len(data) // 2)]
            if err.get("foreign_layer") == i:
                # not stored in the layout nor pushed: only its descriptor, with urls
                d, s = "sha256:" + hashlib.sha256(data).hexdigest(), len(data)
                descs.append({"mediaType": media, "digest": d, "size": s, "urls": [FOREIGN_URL + d]})
            else:
                d, s = put(data)
                descs.append({"mediaType": media, "digest": d, "size": s})
            if UMOCI_OK.get(media) != actual_compression(l.compress):
                umoci_readable = False
            rd, rs = put(ref_raw)
            ref_descs.append({"mediaType": MT_TAR, "digest": rd, "size": rs})
            layers_info.append(dict(digest=d, size=s, media=media, compression=actual_compression(l.compress),
                                    end_blocks=l.end_blocks, entries=len(l.entries)))
        md = image(name, descs, diff_ids, c["desc"])
        ref_tag = name
        if not umoci_readable and not c["error"]:
            ref_tag = name + ".ref"
            image(ref_tag, ref_descs, ref_diff_ids, c["desc"])
        exp = []
        for x in c["expect"]:
            x = list(x)
            if x[0] == "file" and x[2] is not None:
                x[2] = hashlib.sha256(x[2] if isinstance(x[2], bytes) else x[2].encode()).hexdigest()
            if x[0] == "xattrs":
                x[2] = {k: base64.b64encode(v if isinstance(v, bytes) else v.encode()).decode() for k, v in x[2].items()}
            exp.append(x)
        meta[name] = dict(desc=c["desc"], tag=name, ref_tag=ref_tag, manifest=md, layers=layers_info,
                          expect=exp, ignore_time=[dict(path=p, why=w) for p, w in c["ignore_time"]],
                          implied=c["implied"], error=c["error"])

    with open(os.path.join(layout, "index.json"), "w") as f:
        json.dump({"schemaVersion": 2, "mediaType": "application/vnd.oci.image.index.v1+json", "manifests": index}, f)
    with open(os.path.join(layout, "oci-layout"), "w") as f:
        f.write('{"imageLayoutVersion":"1.0.0"}')
    with open(os.path.join(outdir, "cases.json"), "w") as f:
        json.dump(meta, f, indent=1)
    print("%d cases (%d error cases) in %s" % (len(meta), sum(1 for m in meta.values() if m["error"]), layout))


if __name__ == "__main__":
    main()
