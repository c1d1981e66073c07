#!/usr/bin/env python3
"""Helpers for tests/squash/run.sh (Python 3 stdlib only).

  squashcheck.py push-all REGISTRY_URL GEN_DIR DATA_DIR [REGISTRY2_URL DATA_DIR2]
      Pushes every case of GEN_DIR/cases.json (layout GEN_DIR/layout) to the
      registry through the /v2 API, byte for byte (skopeo would recompress
      uncompressed layers and "fix" mismatched media types, which are exactly
      what some cases test), as repository squash/<case>, tag v1, and checks
      that the registry holds the manifest under the layout's digest. Applies
      the storage faults of the error cases (DATA_DIR is wharf's --data-dir).
      Cases marked no_index go to REGISTRY2 (a wharf with index_on_push: false).
  squashcheck.py listen PORT_FILE LOG_FILE
      A listener standing in for a foreign layer's urls (must see nothing).
  squashcheck.py cases GEN_DIR
      One line per case: NAME REF_TAG merge|error main|noindex
  squashcheck.py compare GEN_DIR CASE SQ_TAR REF_DIR SQ_DIR
      Everything run.sh compares for one merge case; prints the differences,
      exits 1 on any.
  squashcheck.py error GEN_DIR CASE STATUS1 BODY1 STATUS2 BODY2
      Checks an error case's two responses.
"""
import base64
import hashlib
import http.client
import io
import json
import os
import re
import stat
import subprocess
import sys
import tarfile
import time
import urllib.parse

REPO = "squash/%s"
TAG = "v1"
FOREIGN_PLACEHOLDER = b"http://FOREIGN-LISTENER/"  # gen_images.FOREIGN_URL


# ---------------------------------------------------------------- pushing

class Registry:
    def __init__(self, url):
        u = urllib.parse.urlparse(url)
        self.host, self.port = u.hostname, u.port
        self.conn = None

    def req(self, method, path, body=None, headers=None):
        for attempt in range(2):
            if self.conn is None:
                self.conn = http.client.HTTPConnection(self.host, self.port, timeout=60)
            try:
                self.conn.request(method, path, body=body, headers=headers or {})
                r = self.conn.getresponse()
                data = r.read()
                return r.status, r.headers, data
            except (http.client.HTTPException, ConnectionError):
                self.conn.close()
                self.conn = None
                if attempt:
                    raise

    def push_blob(self, repo, digest, data):
        st, _, _ = self.req("HEAD", "/v2/%s/blobs/%s" % (repo, digest))
        if st == 200:
            return
        st, h, body = self.req("POST", "/v2/%s/blobs/uploads/" % repo, b"", {"Content-Length": "0"})
        if st != 202:
            raise SystemExit("POST upload for %s: %d %s" % (repo, st, body[:300]))
        loc = h["Location"]
        if loc.startswith("http"):
            loc = urllib.parse.urlparse(loc)._replace(scheme="", netloc="").geturl()
        loc += ("&" if "?" in loc else "?") + "digest=" + urllib.parse.quote(digest)
        st, _, body = self.req("PUT", loc, data, {"Content-Type": "application/octet-stream",
                                                  "Content-Length": str(len(data))})
        if st != 201:
            raise SystemExit("PUT blob %s to %s: %d %s" % (digest, repo, st, body[:300]))

    def push_manifest(self, repo, tag, data, media):
        st, h, body = self.req("PUT", "/v2/%s/manifests/%s" % (repo, tag), data,
                               {"Content-Type": media, "Content-Length": str(len(data))})
        if st != 201:
            raise SystemExit("PUT manifest %s:%s: %d %s" % (repo, tag, st, body[:300]))
        return h.get("Docker-Content-Digest")

    def metric(self, name):
        st, _, body = self.req("GET", "/metrics")
        v = 0
        for line in body.decode().splitlines():
            parts = line.split()
            if len(parts) == 2 and parts[0] == name:
                v = float(parts[1])
        return v


def blob_path(layout, digest):
    return os.path.join(layout, "blobs", "sha256", digest.split(":", 1)[1])


def stored_blob_path(data_dir, digest):
    h = digest.split(":", 1)[1]
    return os.path.join(data_dir, "blobs", "sha256", h[:2], h)


def flip_byte(path, offset):
    with open(path, "r+b") as f:
        size = os.fstat(f.fileno()).st_size
        off = offset if offset >= 0 else size + offset
        f.seek(off)
        b = f.read(1)
        f.seek(off)
        f.write(bytes([b[0] ^ 0x01]))


def push_case(reg, gen, name, c, before_manifest=None):
    layout = os.path.join(gen, "layout")
    repo = REPO % name
    with open(blob_path(layout, c["manifest"]), "rb") as f:
        man_bytes = f.read()
    want = c["manifest"]
    if FOREIGN_PLACEHOLDER in man_bytes:  # point the urls at run.sh's listener
        man_bytes = man_bytes.replace(FOREIGN_PLACEHOLDER, os.environ["SQUASH_FOREIGN_URL"].encode())
        want = "sha256:" + hashlib.sha256(man_bytes).hexdigest()
    man = json.loads(man_bytes)
    for d in [man["config"]] + man["layers"]:
        if d.get("urls"):
            continue  # a foreign layer: the registry never gets its blob
        with open(blob_path(layout, d["digest"]), "rb") as f:
            reg.push_blob(repo, d["digest"], f.read())
    if before_manifest:
        before_manifest()
    got = reg.push_manifest(repo, TAG, man_bytes, man["mediaType"])
    if got != want:
        raise SystemExit("%s: registry answered digest %s for the manifest, we pushed %s" % (name, got, want))


def push_all(url, gen, data_dir, url2=None, data_dir2=None):
    """Cases marked no_index go to the second wharf (index_on_push: false)."""
    cases = load_cases(gen)
    main, noidx = Registry(url), Registry(url2) if url2 else None

    def target(c):
        if (c["error"] or {}).get("no_index"):
            if not noidx:
                raise SystemExit("case needs the second wharf (index_on_push: false)")
            return noidx, data_dir2
        return main, data_dir

    def fault(c):
        return (c["error"] or {}).get("fault")

    # 1. Cases whose fault must hit the store after the background index of
    #    their layers was built: push them alone, wait for those indexes, then
    #    damage the store.
    after = {n: c for n, c in cases.items() if fault(c) == "after_index"}
    base = main.metric("wharf_squash_background_indexes_total")
    for n, c in after.items():
        push_case(main, gen, n, c)
    deadline = time.time() + 30
    while main.metric("wharf_squash_background_indexes_total") < base + len(after):
        if time.time() > deadline:
            raise SystemExit("the background indexes of %s were not built within 30 s" % ", ".join(after))
        time.sleep(0.05)
    for n, c in after.items():
        apply_fault(c, data_dir)
    # 2. Everything else.
    for n, c in cases.items():
        if n in after:
            continue
        reg, dd = target(c)
        hook = (lambda c=c, dd=dd: apply_fault(c, dd)) if fault(c) == "before_manifest" else None
        push_case(reg, gen, n, c, hook)
        if fault(c) == "after_push":
            apply_fault(c, dd)
    if noidx and noidx.metric("wharf_squash_background_indexes_total"):
        raise SystemExit("the second wharf built layer indexes on push: its no_index cases would test nothing")
    print("pushed %d cases" % len(cases))


def apply_fault(c, data_dir):
    e = c["error"]
    if "corrupt_stored_layer" in e:
        flip_byte(stored_blob_path(data_dir, c["layers"][e["corrupt_stored_layer"]]["digest"]), e["corrupt_offset"])
    if "delete_stored_layer" in e:
        os.unlink(stored_blob_path(data_dir, c["layers"][e["delete_stored_layer"]]["digest"]))


# ---------------------------------------------------------------- comparing

def load_cases(gen):
    with open(os.path.join(gen, "cases.json")) as f:
        return json.load(f)


def norm(name):
    """A tar member name as a cleaned relative path ("" is the root)."""
    parts = [p for p in name.split("/") if p not in ("", ".")]
    return "/".join(parts)


def check_archive(sq_tar):
    """The docker-save archive and its one layer.tar: returns a list of problems."""
    problems = []
    with tarfile.open(sq_tar) as outer:
        names = outer.getnames()
        man = json.load(outer.extractfile("manifest.json"))
        if len(man) != 1 or len(man[0].get("Layers", [])) != 1:
            return ["manifest.json does not list exactly one image with one layer: %r" % man]
        layer_name = man[0]["Layers"][0]
        cfg = json.load(outer.extractfile(man[0]["Config"]))
        layer = outer.extractfile(layer_name).read()
    diff_id = "sha256:" + hashlib.sha256(layer).hexdigest()
    if cfg["rootfs"]["diff_ids"] != [diff_id]:
        problems.append("config diff_ids %r, layer.tar is %s" % (cfg["rootfs"]["diff_ids"], diff_id))
    if len([n for n in names if n.endswith("/layer.tar")]) != 1:
        problems.append("archive has %d layer.tar members" % len([n for n in names if n.endswith("/layer.tar")]))
    seen = {}
    try:
        tf = tarfile.open(fileobj=io.BytesIO(layer), mode="r:")
        members = tf.getmembers()
    except tarfile.TarError as e:
        return problems + ["layer.tar does not read as a tar: %s" % e]
    present = {norm(m.name) for m in members}
    for m in members:
        p = norm(m.name)
        if p in seen:
            problems.append("path %r appears twice in layer.tar" % p)
        if any(c.startswith(".wh.") for c in p.split("/")):
            problems.append("whiteout name %r in layer.tar" % p)
        if p:
            parts = p.split("/")
            for i in range(1, len(parts)):
                anc = "/".join(parts[:i])
                if anc not in seen and anc in present:
                    problems.append("%r comes before its directory %r" % (p, anc))
                    break
                if anc not in seen:
                    continue  # implied: no layer declares it, the extractor creates it
                if seen[anc] != tarfile.DIRTYPE:
                    problems.append("%r is under %r, which is not a directory" % (p, anc))
                    break
        if m.type == tarfile.LNKTYPE:
            t = norm(m.linkname)
            if t not in seen:
                problems.append("hardlink %r points at %r, which does not come before it" % (p, t))
            elif seen[t] == tarfile.DIRTYPE:
                problems.append("hardlink %r points at directory %r" % (p, t))
        if m.type in (tarfile.GNUTYPE_LONGNAME, tarfile.GNUTYPE_LONGLINK, tarfile.GNUTYPE_SPARSE) or m.issparse():
            problems.append("%r: unexpected entry type %r" % (p, m.type))
        seen[p] = m.type
    end = tf.offset  # where tarfile found the end-of-archive block
    if len(layer) != end + 1024:
        problems.append("layer.tar is %d bytes; its entries end at %d, so it should be %d (entries + two end blocks)"
                        % (len(layer), end, end + 1024))
    elif layer[end:] != b"\0" * 1024:
        problems.append("the last 1024 bytes of layer.tar are not zero (tarfile stopped early?)")
    return problems


MTREE_KEYS = "!all,type,mode,uid,gid,size,link,nlink,sha256,time,device"


def mtree(root, ignore_time):
    out = subprocess.run(["bsdtar", "-cf", "-", "--format=mtree", "--options=" + MTREE_KEYS, "-C", root, "."],
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE, check=True).stdout.decode("utf-8", "replace")
    lines = []
    skip = {("./" + p) if p else "." for p in ignore_time}
    for line in out.splitlines():
        if not line or line.startswith("#"):
            continue
        path, _, rest = line.partition(" ")
        if path in skip:
            rest = " ".join(w for w in rest.split() if not w.startswith("time="))
            rest += " time=(ignored)"
        lines.append(path + " " + " ".join(sorted(rest.split())))
    return sorted(lines)


def xattr_dump(root):
    """getfattr -R -d -m - -h -e hex, run in ROOT, as {path: [name=value...]} with relative paths."""
    r = subprocess.run(["getfattr", "-R", "-d", "-m", "-", "-h", "-e", "hex", "."], cwd=root,
                       stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    if r.returncode not in (0, 1) or r.stderr.strip():
        raise SystemExit("getfattr in %s: %s" % (root, r.stderr.decode()))
    dump, cur = {}, None
    for line in r.stdout.decode("utf-8", "surrogateescape").splitlines():
        if line.startswith("# file: "):
            cur = norm(line[8:])
            dump[cur] = []
        elif line and cur is not None:
            dump[cur].append(line)
    return {k: sorted(v) for k, v in dump.items() if v}


def link_groups(root):
    """Sets of paths sharing an inode (hardlinks), as sorted tuples."""
    by_ino = {}
    for dirpath, dirs, files in os.walk(root):
        for n in files + dirs:
            p = os.path.join(dirpath, n)
            st = os.lstat(p)
            if not stat.S_ISDIR(st.st_mode) and st.st_nlink > 1:
                by_ino.setdefault((st.st_dev, st.st_ino), []).append(os.path.relpath(p, root))
    return sorted(tuple(sorted(v)) for v in by_ino.values())


def diff_lines(a, b, label_a, label_b, limit=40):
    sa, sb = set(a), set(b)
    out = ["- %s: %s" % (label_a, x) for x in a if x not in sb] + ["+ %s: %s" % (label_b, x) for x in b if x not in sa]
    if len(out) > limit:
        out = out[:limit] + ["... %d more" % (len(out) - limit)]
    return out


def check_expect(root, exp):
    """The case's expectations (the spec's answer) on one tree: a list of failures."""
    bad = []
    for x in exp:
        kind, path = x[0], x[1]
        if kind == "links":
            ids = set()
            for p in x[1]:
                try:
                    s = os.lstat(os.path.join(root, p))
                    ids.add((s.st_dev, s.st_ino))
                except (FileNotFoundError, NotADirectoryError):
                    ids.add(("missing", p))
            if len(ids) != 1:
                bad.append("%s should be hardlinks of one inode" % ", ".join(x[1]))
            continue
        full = os.path.join(root, path) if path else root
        try:
            st = os.lstat(full)
        except (FileNotFoundError, NotADirectoryError):
            st = None
        if kind == "absent":
            if st is not None:
                bad.append("%s should not exist" % path)
            continue
        if st is None:
            bad.append("%s is missing" % path)
            continue
        if kind == "file":
            if not stat.S_ISREG(st.st_mode):
                bad.append("%s is not a regular file" % path)
            elif x[2] is not None:
                with open(full, "rb") as f:
                    h = hashlib.sha256(f.read()).hexdigest()
                if h != x[2]:
                    bad.append("%s has the wrong content" % path)
        elif kind == "dir":
            if not stat.S_ISDIR(st.st_mode):
                bad.append("%s is not a directory" % path)
        elif kind == "symlink":
            if not stat.S_ISLNK(st.st_mode) or os.readlink(full) != x[2]:
                bad.append("%s is not a symlink to %r" % (path, x[2]))
        elif kind == "type":
            want = {"fifo": stat.S_ISFIFO, "chr": stat.S_ISCHR, "blk": stat.S_ISBLK}[x[2]]
            if not want(st.st_mode):
                bad.append("%s is not a %s" % (path, x[2]))
            elif x[3] is not None and (os.major(st.st_rdev), os.minor(st.st_rdev)) != tuple(x[3]):
                bad.append("%s is device %d:%d, not %d:%d" % (path, os.major(st.st_rdev), os.minor(st.st_rdev), *x[3]))
        elif kind == "meta":
            got = dict(mode=stat.S_IMODE(st.st_mode), uid=st.st_uid, gid=st.st_gid, mtime_ns=st.st_mtime_ns)
            for k, v in x[2].items():
                if got[k] != v:
                    bad.append("%s: %s is %s, should be %s" % (path or ".", k, oct(got[k]) if k == "mode" else got[k],
                                                              oct(v) if k == "mode" else v))
        elif kind == "xattrs":
            names = [n for n in os.listxattr(full, follow_symlinks=False)]
            got = {n: base64.b64encode(os.getxattr(full, n, follow_symlinks=False)).decode() for n in names}
            if got != x[2]:
                bad.append("%s: xattrs %s, should be %s" % (path, sorted(got), sorted(x[2])))
    return bad


def check_implied(sq_tar, c, ref_dir, sq_dir):
    """Implied directories: absent from layer.tar, and in both unpacked trees
    with a time of this run (an invented entry would give 1970)."""
    bad = []
    with tarfile.open(sq_tar) as outer:
        man = json.load(outer.extractfile("manifest.json"))
        layer = outer.extractfile(man[0]["Layers"][0]).read()
    names = {norm(m.name) for m in tarfile.open(fileobj=io.BytesIO(layer), mode="r:").getmembers()}
    recent = time.time() - 3600
    for p in c.get("implied", []):
        if p in names:
            bad.append("implied directory %r has an entry in layer.tar (no layer declares it)" % p)
        for who, root in (("umoci", ref_dir), ("wharf", sq_dir)):
            st = os.lstat(os.path.join(root, p))
            if st.st_mtime < recent:
                bad.append("implied directory %r has mtime %s in the %s tree, not the time of the run"
                           % (p, time.strftime("%Y-%m-%d %H:%M:%S", time.gmtime(st.st_mtime)), who))
    return bad


def compare(gen, name, sq_tar, ref_dir, sq_dir):
    c = load_cases(gen)[name]
    problems = ["layer.tar: " + p for p in check_archive(sq_tar)]
    problems += check_implied(sq_tar, c, ref_dir, sq_dir)
    ign = [i["path"] for i in c["ignore_time"]]
    problems += ["mtree " + d for d in diff_lines(mtree(ref_dir, ign), mtree(sq_dir, ign), "umoci", "wharf")]
    xr, xs = xattr_dump(ref_dir), xattr_dump(sq_dir)
    problems += ["xattrs " + d for d in diff_lines(
        ["%s %s" % (p, a) for p in sorted(xr) for a in xr[p]], ["%s %s" % (p, a) for p in sorted(xs) for a in xs[p]],
        "umoci", "wharf")]
    problems += ["hardlinks " + d for d in diff_lines(
        [" = ".join(g) for g in link_groups(ref_dir)], [" = ".join(g) for g in link_groups(sq_dir)], "umoci", "wharf")]
    exp_sq = check_expect(sq_dir, c["expect"])
    exp_ref = check_expect(ref_dir, c["expect"])
    problems += ["expectation (wharf): " + b for b in exp_sq]
    for b in exp_ref:
        print("  note: the umoci reference disagrees with the expectation: %s" % b)
    for p in problems:
        print("  " + p)
    return 1 if problems else 0


def check_error(gen, name, st1, body1, st2, body2):
    c = load_cases(gen)[name]
    bad = []
    msgs = []
    (st1, cr1), (st2, cr2) = st1.split(":"), st2.split(":")
    for i, (st, cr, bp) in enumerate(((st1, cr1, body1), (st2, cr2, body2))):
        st = int(st)
        with open(bp, "rb") as f:
            body = f.read()
        if st == 200 and cr != "0" and c["error"].get("cut_body_ok"):
            print("  request %d: 200 with a body cut short (curl exit %s): allowed here, the damage is found "
                  "while streaming" % (i + 1, cr))
            continue
        if not 400 <= st < 500:
            what = "a complete archive" if cr == "0" else "a body cut short (curl exit %s)" % cr
            if st == 200 and body[:1024].find(b"ustar") >= 0:
                what += " of %d bytes" % len(body)
            else:
                what += " %r" % body[:120]
            bad.append("request %d: status %d with %s; want a 4xx JSON error" % (i + 1, st, what))
            continue
        try:
            j = json.loads(body)
            m = " ".join("%s: %s" % (e.get("code"), e.get("message")) for e in j["errors"])
        except (ValueError, KeyError, TypeError):
            bad.append("status %d with a body that is not a registry JSON error: %r" % (st, body[:200]))
            continue
        msgs.append(m)
        if not re.search(c["error"]["hint"], m, re.I):
            bad.append("the message does not say what is wrong (want /%s/): %s" % (c["error"]["hint"], m))
    if int(st1) != int(st2) and not c["error"].get("cut_body_ok"):
        bad.append("first request %s, second %s" % (st1, st2))
    if c["error"].get("foreign_layer") is not None:
        log = os.environ.get("SQUASH_FOREIGN_LOG", "")
        if log and os.path.exists(log) and os.path.getsize(log):
            with open(log) as f:
                bad.append("wharf fetched the foreign layer's urls: %s" % f.read()[:300])
    if msgs:
        print("  %s: %s" % (st1, msgs[0]))
    for b in bad:
        print("  " + b)
    return 1 if bad else 0


def listen(port_file, log_file):
    """A TCP listener on 127.0.0.1 that records every connection (and the first
    bytes it receives) in LOG_FILE; prints nothing. Stands in for the host a
    foreign layer's urls name: wharf must never connect to it."""
    import socket
    s = socket.socket()
    s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    s.bind(("127.0.0.1", 0))
    s.listen(16)
    with open(port_file + ".tmp", "w") as f:
        f.write(str(s.getsockname()[1]))
    os.rename(port_file + ".tmp", port_file)
    while True:
        conn, _ = s.accept()
        conn.settimeout(2)
        try:
            data = conn.recv(200)
        except OSError:
            data = b""
        with open(log_file, "a") as f:
            f.write("connection: %r\n" % data)
        conn.close()


def main():
    cmd = sys.argv[1] if len(sys.argv) > 1 else ""
    if cmd == "push-all" and len(sys.argv) in (5, 7):
        push_all(*sys.argv[2:])
    elif cmd == "compare" and len(sys.argv) == 7:
        sys.exit(compare(*sys.argv[2:]))
    elif cmd == "error" and len(sys.argv) == 8:
        sys.exit(check_error(*sys.argv[2:]))
    elif cmd == "listen" and len(sys.argv) == 4:
        listen(*sys.argv[2:])
    elif cmd == "cases" and len(sys.argv) == 3:
        for n, c in load_cases(sys.argv[2]).items():
            print(n, c["ref_tag"], "error" if c["error"] else "merge",
                  "noindex" if (c["error"] or {}).get("no_index") else "main")
    else:
        sys.exit(__doc__)


if __name__ == "__main__":
    main()
