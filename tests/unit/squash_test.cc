// Unit tests of the squash engine: layer decoder, tar reader/writer, merge planner.
#include <gtest/gtest.h>
#include <isa-l/crc.h>
#include <isa-l/igzip_lib.h>
#include <zstd.h>

#include <cstring>

#include "squash/build.h"
#include "squash/layer_decoder.h"
#include "squash/plan.h"
#include "squash/tar.h"

using namespace wharf;
using namespace wharf::squash;

namespace {

class MemReader : public storage::BlobReader {
 public:
  explicit MemReader(std::string s) : s_(std::move(s)) {}
  uint64_t remaining() const override { return s_.size() - pos_; }
  size_t read(char* buf, size_t n) override {
    n = std::min<size_t>(n, std::min<size_t>(s_.size() - pos_, 7777));  // odd chunks on purpose
    std::memcpy(buf, s_.data() + pos_, n);
    pos_ += n;
    return n;
  }

 private:
  std::string s_;
  size_t pos_ = 0;
};

std::string gzip(const std::string& in) {
  isal_zstream z;
  isal_deflate_init(&z);
  z.gzip_flag = IGZIP_GZIP;
  z.end_of_stream = 1;
  z.flush = NO_FLUSH;
  std::string out(in.size() + 1024, '\0');
  z.next_in = reinterpret_cast<uint8_t*>(const_cast<char*>(in.data()));
  z.avail_in = in.size();
  z.next_out = reinterpret_cast<uint8_t*>(out.data());
  z.avail_out = out.size();
  EXPECT_EQ(isal_deflate_stateless(&z), COMP_OK);
  out.resize(z.total_out);
  return out;
}

std::string zstd(const std::string& in) {
  std::string out(ZSTD_compressBound(in.size()), '\0');
  out.resize(ZSTD_compress(out.data(), out.size(), in.data(), in.size(), 3));
  return out;
}

std::string decode(const std::string& blob, Compression* c = nullptr) {
  Limits lim;
  auto src = open_layer(std::make_unique<MemReader>(blob), lim, nullptr, c);
  std::string out;
  char buf[1000];
  while (size_t n = src->read(buf, sizeof buf)) out.append(buf, n);
  return out;
}

TarEntry file(const std::string& path, const std::string& data_size_src = "", EntryType t = EntryType::File) {
  TarEntry e;
  e.path = path;
  e.type = t;
  e.mode = t == EntryType::Dir ? 0755 : 0644;
  e.size = t == EntryType::File ? data_size_src.size() : 0;
  return e;
}

// A tar stream from entries (+ data for files), with or without end blocks.
std::string make_tar(const std::vector<std::pair<TarEntry, std::string>>& items, bool end_blocks = true) {
  std::string out;
  for (auto& [e, data] : items) {
    write_header(e, out);
    if (e.type == EntryType::File) {
      out += data;
      out.append(tar_padding(data.size()), '\0');
    }
  }
  if (end_blocks) out.append(1024, '\0');
  return out;
}

std::vector<TarEntry> read_all(const std::string& tar, std::vector<std::string>* datas = nullptr) {
  Limits lim;
  auto src = open_layer(std::make_unique<MemReader>(tar), lim, nullptr);
  TarReader tr(*src, lim);
  std::vector<TarEntry> out;
  TarEntry e;
  while (tr.next(e)) {
    if (datas) {
      std::string d;
      char buf[100];
      while (size_t n = tr.read_data(buf, sizeof buf)) d.append(buf, n);
      datas->push_back(d);
    }
    out.push_back(e);
  }
  return out;
}

}  // namespace

TEST(LayerDecoder, ChoosesByMagicNotMediaType) {
  std::string payload(300000, 'x');
  for (size_t i = 0; i < payload.size(); i += 7) payload[i] = static_cast<char>(i * 31);
  Compression c;
  EXPECT_EQ(decode(payload, &c), payload);
  EXPECT_EQ(c, Compression::None);
  EXPECT_EQ(decode(gzip(payload), &c), payload);
  EXPECT_EQ(c, Compression::Gzip);
  EXPECT_EQ(decode(zstd(payload), &c), payload);
  EXPECT_EQ(c, Compression::Zstd);
}

TEST(LayerDecoder, MultiMemberGzipAndTrailingZeros) {
  EXPECT_EQ(decode(gzip("hello ") + gzip("world")), "hello world");
  EXPECT_EQ(decode(gzip("abc") + std::string(512, '\0')), "abc");
}

TEST(LayerDecoder, CorruptAndTruncatedInputIsALayerError) {
  std::string g = gzip(std::string(100000, 'a') + "tail");
  EXPECT_THROW(decode(g.substr(0, g.size() / 2)), LayerError);
  std::string bad = g;
  bad[20] ^= 0x55;
  bad[21] ^= 0x55;
  EXPECT_THROW(decode(bad), LayerError);
  std::string z = zstd(std::string(100000, 'b'));
  EXPECT_THROW(decode(z.substr(0, z.size() - 3)), LayerError);
}

TEST(LayerDecoder, UncompressedBudgetIsALimitError) {
  Limits lim;
  std::atomic<int64_t> budget(1000);
  auto src = open_layer(std::make_unique<MemReader>(gzip(std::string(5000, 'z'))), lim, &budget);
  char buf[8192];
  EXPECT_THROW({ while (src->read(buf, sizeof buf)) {} }, LimitError);
}

TEST(Tar, CleanPath) {
  std::string out;
  EXPECT_TRUE(clean_path("./a//b/./c/", out));
  EXPECT_EQ(out, "a/b/c");
  EXPECT_TRUE(clean_path("/etc/passwd", out));
  EXPECT_EQ(out, "etc/passwd");
  EXPECT_TRUE(clean_path("a/../b", out));
  EXPECT_EQ(out, "b");
  EXPECT_TRUE(clean_path("./", out));
  EXPECT_EQ(out, "");
  EXPECT_FALSE(clean_path("../x", out));
  EXPECT_FALSE(clean_path("a/../../x", out));
}

TEST(Tar, RoundTripKeepsEveryField) {
  TarEntry f = file("dir/file.txt", "hello");
  f.mode = 04755;
  f.uid = 1000;
  f.gid = 3000000000ull;  // beyond ustar: PAX
  f.uname = "alice";
  f.gname = std::string(40, 'g');  // beyond 32: PAX
  f.mtime = 1700000000;
  f.mtime_nsec = 123456789;
  f.xattrs = {{"security.capability", std::string("\x01\x00\x00\x02", 4)}, {"user.x", "y"}};
  TarEntry longname = file(std::string(120, 'd') + "/" + std::string(90, 'f'), "");   // ustar prefix split
  TarEntry verylong = file(std::string(300, 'p'), "z");                              // PAX path
  TarEntry sym = file("s", "", EntryType::Symlink);
  sym.link = std::string(200, 't');                                                    // PAX linkpath
  TarEntry dev = file("dev/null", "", EntryType::Char);
  dev.devmajor = 1;
  dev.devminor = 3;
  TarEntry old = file("old", "");
  old.mtime = -5;
  old.mtime_nsec = 250000000;
  std::vector<std::string> datas;
  auto got = read_all(make_tar({{f, "hello"}, {longname, ""}, {verylong, "z"}, {sym, ""}, {dev, ""}, {old, ""}}), &datas);
  ASSERT_EQ(got.size(), 6u);
  EXPECT_EQ(got[0].path, f.path);
  EXPECT_EQ(got[0].mode, 04755u);
  EXPECT_EQ(got[0].gid, 3000000000ull);
  EXPECT_EQ(got[0].gname, f.gname);
  EXPECT_EQ(got[0].mtime_nsec, 123456789u);
  EXPECT_EQ(got[0].xattrs, f.xattrs);
  EXPECT_EQ(datas[0], "hello");
  EXPECT_EQ(got[1].path, longname.path);
  EXPECT_EQ(got[2].path, verylong.path);
  EXPECT_EQ(datas[2], "z");
  EXPECT_EQ(got[3].link, sym.link);
  EXPECT_EQ(got[4].devminor, 3u);
  EXPECT_EQ(got[5].mtime, -5);
  EXPECT_EQ(got[5].mtime_nsec, 250000000u);
}

TEST(Tar, WriterIsDeterministicAndUsesUstarWhenItFits) {
  std::string a, b;
  write_header(file("etc/hosts", "x"), a);
  write_header(file("etc/hosts", "x"), b);
  EXPECT_EQ(a, b);
  EXPECT_EQ(a.size(), 512u);  // no PAX header for a plain entry
}

TEST(Tar, GnuLongNamesAndNoEndBlocks) {
  // A GNU 'L' record followed by the entry it names.
  std::string name(150, 'n');
  std::string tar;
  TarEntry l = file("././@LongLink", name + std::string(1, '\0'));
  write_header(l, tar);
  tar[156] = 'L';  // type
  // fix the checksum after changing the type
  std::memset(&tar[148], ' ', 8);
  unsigned sum = 0;
  for (int i = 0; i < 512; ++i) sum += static_cast<unsigned char>(tar[i]);
  std::snprintf(&tar[148], 8, "%06o", sum);
  tar += name + std::string(1, '\0');
  tar.append(tar_padding(name.size() + 1), '\0');
  write_header(file("short", ""), tar);
  auto got = read_all(tar);  // no end-of-archive blocks at all
  ASSERT_EQ(got.size(), 1u);
  EXPECT_EQ(got[0].path, name);
}

TEST(Tar, RejectsGarbageAndEscapes) {
  EXPECT_THROW(read_all(std::string(1024, 'x')), LayerError);
  TarEntry esc = file("../../etc/passwd", "");
  std::string t;
  write_header(esc, t);  // the writer writes names as given; the reader must refuse this one
  EXPECT_THROW(read_all(t), LayerError);
  auto full = make_tar({{file("a", "12345"), "12345"}});
  EXPECT_THROW(read_all(full.substr(0, 512 + 3)), LayerError);  // truncated inside data
}

// ---- planner ----------------------------------------------------------------

namespace {

TarEntry wh(const std::string& path) { return file(path, ""); }
TarEntry hardlink(const std::string& path, const std::string& target) {
  TarEntry e = file(path, "", EntryType::HardLink);
  e.link = target;
  return e;
}
TarEntry sized(const std::string& path, uint64_t size) {
  TarEntry e = file(path, "");
  e.size = size;
  return e;
}

// "path type [-> link]" lines of the plan in output order.
std::vector<std::string> listing(const std::vector<LayerIndex>& layers) {
  Plan p = plan_merge(layers);
  std::vector<std::string> out;
  auto add = [&](const OutEntry& o) {
    TarEntry e = out_entry(layers, p, o);
    std::string s = e.path + " " + static_cast<char>(e.type);
    if (e.type == EntryType::HardLink || e.type == EntryType::Symlink) s += " -> " + e.link;
    if (e.type == EntryType::File) s += " L" + std::to_string(p.layer(o)) + " " + std::to_string(e.size);
    out.push_back(s);
  };
  for (auto& o : p.headers_only) add(o);
  for (auto& per : p.data)
    for (auto& o : per) add(o);
  return out;
}

using L = std::vector<LayerIndex>;
LayerIndex layer(const std::vector<TarEntry>& es) { return LayerIndex(es); }

}  // namespace

TEST(Plan, UpperFileReplacesLower) {
  auto got = listing(L{layer({file("etc", "", EntryType::Dir), sized("etc/a", 3)}), layer({sized("etc/a", 5)})});
  EXPECT_EQ(got, (std::vector<std::string>{"etc 5", "etc/a 0 L1 5"}));
}

TEST(Plan, WhiteoutDeletesFileAndDirectoryTree) {
  auto got = listing(L{layer({sized("a", 1), file("d", "", EntryType::Dir), sized("d/x", 1), sized("d/y/z", 1)}),
                       layer({wh(".wh.a"), wh(".wh.d")})});
  EXPECT_EQ(got, std::vector<std::string>{});
}

TEST(Plan, OpaqueDirectoryHidesOnlyLowerChildren) {
  auto got = listing(L{layer({file("d", "", EntryType::Dir), sized("d/old", 1), sized("other", 1)}),
                       layer({file("d", "", EntryType::Dir), sized("d/new", 1), wh("d/.wh..wh..opq")})});
  // data entries follow the layers bottom-up
  EXPECT_EQ(got, (std::vector<std::string>{"d 5", "other 0 L0 1", "d/new 0 L1 1"}));
}

TEST(Plan, WhiteoutAppliesOnlyBelowItsLayerWhereverItStands) {
  // In one layer: the file, then its own whiteout. The file stays.
  auto got = listing(L{layer({sized("f", 1)}), layer({sized("f", 2), wh(".wh.f")})});
  EXPECT_EQ(got, (std::vector<std::string>{"f 0 L1 2"}));
}

TEST(Plan, TypeChangesBothWays) {
  TarEntry sym = file("d", "", EntryType::Symlink);
  sym.link = "/target";
  auto got = listing(L{layer({file("d", "", EntryType::Dir), sized("d/child", 1), sized("f", 1)}),
                       layer({sym, file("f", "", EntryType::Dir), sized("f/inner", 1)})});
  EXPECT_EQ(got, (std::vector<std::string>{"f 5", "d 2 -> /target", "f/inner 0 L1 1"}));
}

TEST(Plan, SamePathTwiceInOneLayerLastWins) {
  auto got = listing(L{layer({sized("x", 1), sized("x", 9)})});
  EXPECT_EQ(got, (std::vector<std::string>{"x 0 L0 9"}));
}

TEST(Plan, DirectoryOverDirectoryKeepsChildrenTakesMetadata) {
  TarEntry upper = file("d", "", EntryType::Dir);
  upper.mode = 0700;
  upper.uid = 42;
  L layers{layer({file("d", "", EntryType::Dir), sized("d/keep", 1)}), layer({upper})};
  Plan p = plan_merge(layers);
  ASSERT_EQ(p.headers_only.size(), 1u);
  EXPECT_EQ(out_entry(layers, p, p.headers_only[0]).mode, 0700u);
  EXPECT_EQ(out_entry(layers, p, p.headers_only[0]).uid, 42u);
  EXPECT_EQ(p.data[0].size(), 1u);
}

TEST(Plan, HardlinkKeepsContentWhenTargetDeletedOrReplaced) {
  auto got = listing(L{layer({sized("t", 4), hardlink("l1", "t"), hardlink("l2", "t")}), layer({wh(".wh.t")})});
  EXPECT_EQ(got, (std::vector<std::string>{"l1 0 L0 4", "l2 1 -> l1"}));
  got = listing(L{layer({sized("t", 4), hardlink("l", "t")}), layer({sized("t", 7)})});
  EXPECT_EQ(got, (std::vector<std::string>{"l 0 L0 4", "t 0 L1 7"}));
}

// Parents no layer declares are not invented (the extractor creates them,
// as it did for the layers); one a whiteout leaves empty is written so it
// still exists.
TEST(Plan, MissingParentsAreNotInventedAndRootIsKept) {
  auto got = listing(L{layer({file("", "", EntryType::Dir), sized("a/b/c", 1)})});
  EXPECT_EQ(got, (std::vector<std::string>{" 5", "a/b/c 0 L0 1"}));
  got = listing(L{layer({sized("e/x/gone", 1), sized("k/f", 1)}), layer({wh("e/x/.wh.gone")})});
  EXPECT_EQ(got, (std::vector<std::string>{"e/x 5", "k/f 0 L0 1"}));
}

// Depth first: "a-c" sorts before "a/b" as a whole path, but a directory's
// subtree stays together; the first path of an inode in that order holds
// the content, whichever layer entry named it first.
TEST(Plan, DepthFirstOrderAndHardlinkHead) {
  auto got = listing(L{layer({file("a", "", EntryType::Dir), file("a-c", "", EntryType::Dir), sized("a/b", 2),
                              sized("z", 3), hardlink("a-c/l", "z"), file("a/s", "", EntryType::Symlink),
                              file("a-c/e", "")})});
  EXPECT_EQ(got, (std::vector<std::string>{"a 5", "a-c 5", "a/s 2 -> ", "a-c/e 0 L0 0", "a/b 0 L0 2",
                                           "a-c/l 0 L0 3", "z 1 -> a-c/l"}));
}

TEST(Plan, HardlinkToNothingIsAnError) {
  EXPECT_THROW(plan_merge(L{layer({hardlink("l", "missing")})}), LayerError);
}

TEST(Plan, SizeIsExactAndWriterMatchesIt) {
  std::string d1(1000, '1'), d2(70000, '2');
  TarEntry a = file("a", d1), b = file(std::string(200, 'b'), d2);
  b.xattrs = {{"user.k", "v"}};
  std::vector<std::string> blobs{make_tar({{a, d1}, {file("dir", "", EntryType::Dir), ""}}),
                                 make_tar({{b, d2}, {wh(".wh.a"), ""}}, false)};
  LayerOpener open = [&](uint32_t i) { return std::make_unique<MemReader>(gzip(blobs[i])); };
  Limits lim;
  auto idx = index_layers(2, open, lim, 2);
  Plan p = plan_merge(idx);
  struct S : Sink {
    std::string s;
    void write(const char* d, size_t n) override { s.append(d, n); }
  } sink;
  write_layer(idx, p, open, lim, sink);
  EXPECT_EQ(sink.s.size(), p.tar_size);
  std::vector<std::string> datas;
  auto got = read_all(sink.s, &datas);
  ASSERT_EQ(got.size(), 2u);
  EXPECT_EQ(got[0].path, "dir");
  EXPECT_EQ(got[1].path, b.path);
  EXPECT_EQ(datas[1], d2);
  EXPECT_EQ(got[1].xattrs, b.xattrs);
}

// ---- persisted index ----------------------------------------------------------

#include "squash/index_codec.h"

TEST(IndexCodec, RoundTripAndRejectsDamage) {
  TarEntry a = file("dir/a", "12345");
  a.xattrs = {{"user.k", std::string("v\0w", 3)}};
  a.mtime = -7;
  a.mtime_nsec = 5;
  a.data_offset = 512;
  TarEntry l = hardlink("dir/b", "dir/a");
  l.uid = 1ull << 40;
  TarEntry dev = file("dev/sda", "", EntryType::Block);
  dev.devmajor = 8;
  dev.devminor = 1;
  dev.uname = "root";
  dev.gname = "disk";
  LayerIndex idx({a, l, file("d", "", EntryType::Dir), dev});
  std::string bytes = encode_index(idx);
  auto back = decode_index(bytes);
  ASSERT_TRUE(back);
  ASSERT_EQ(back->size(), 4u);
  EXPECT_EQ(back->entry(0).xattrs, a.xattrs);
  EXPECT_EQ(back->entry(0).mtime, -7);
  EXPECT_EQ(back->entry(0).mtime_nsec, 5u);
  EXPECT_EQ(back->entry(0).data_offset, 512u);
  EXPECT_EQ(back->entry(1).link, "dir/a");
  EXPECT_EQ(back->entry(1).uid, 1ull << 40);
  EXPECT_EQ(back->entry(2).type, EntryType::Dir);
  EXPECT_EQ(back->entry(3).devmajor, 8u);
  EXPECT_EQ(back->entry(3).devminor, 1u);
  EXPECT_EQ(back->entry(3).uname, "root");
  EXPECT_EQ(back->entry(3).gname, "disk");
  EXPECT_EQ(back->entry(3).path, "dev/sda");
  EXPECT_EQ(indexed_bytes(idx), 517u);
  EXPECT_FALSE(decode_index(bytes.substr(0, bytes.size() - 1)));
  EXPECT_FALSE(decode_index(bytes + "x"));
  EXPECT_FALSE(decode_index("WIDX"));
  std::string other = bytes;
  other[4] = 9;  // another format version
  EXPECT_FALSE(decode_index(other));
}

TEST(Tar, NegativeBase256MtimeIsKept) {
  // GNU tar writes pre-1970 times as base-256 two's complement.
  std::string t;
  write_header(file("past", ""), t);
  for (int i = 136; i < 148; ++i) t[i] = '\xff';
  t[147] = static_cast<char>(0x18);  // ...fc18 = -1000
  t[146] = static_cast<char>(0xfc);
  std::memset(&t[148], ' ', 8);
  unsigned sum = 0;
  for (int i = 0; i < 512; ++i) sum += static_cast<unsigned char>(t[i]);
  std::snprintf(&t[148], 8, "%06o", sum);
  auto got = read_all(t);
  ASSERT_EQ(got.size(), 1u);
  EXPECT_EQ(got[0].mtime, -1000);
}

TEST(Plan, EntriesLandThroughLowerSymlinkedParents) {
  TarEntry rel = file("d", "", EntryType::Symlink);
  rel.link = "real";
  TarEntry abs = file("a", "", EntryType::Symlink);
  abs.link = "/../real";  // ".." at the root is the root
  auto got = listing(L{layer({file("real", "", EntryType::Dir), sized("real/doomed", 1), rel, abs}),
                       layer({sized("d/file", 2), sized("a/file2", 3), wh("d/.wh.doomed")})});
  EXPECT_EQ(got, (std::vector<std::string>{"real 5", "a 2 -> /../real", "d 2 -> real", "real/file 0 L1 2",
                                           "real/file2 0 L1 3"}));
}

// ---- inflate checkpoints ------------------------------------------------------

namespace {

// Text-like data that compresses ~3:1, so deflate uses dynamic blocks.
std::string words(size_t n, uint32_t seed) {
  static const char* kWords[] = {"layer ", "image ", "wharf ", "squash ", "tar ", "gzip\n", "0x1f8b ", "opaque "};
  std::string s;
  while (s.size() < n) {
    seed = seed * 1103515245 + 12345;
    s += kWords[(seed >> 16) % 8];
    if ((seed >> 8) % 7 == 0) s += std::to_string(seed % 100000);
  }
  s.resize(n);
  return s;
}

struct ChunkedImage {
  std::vector<std::string> blobs;
  ChunkAccess access;
  LayerOpener open;
  ChunkedImage() {
    open = [this](uint32_t i) { return std::make_unique<MemReader>(blobs[i]); };
    access.open_at = [this](uint32_t i, uint64_t off) { return std::make_unique<MemReader>(blobs[i].substr(off)); };
    access.read_blob = [](const std::string&, uint64_t, uint64_t) -> std::string {
      throw std::logic_error("states are in memory here");
    };
  }
  std::string write(const std::vector<LayerIndex>& idx, unsigned parallel, bool chunked) {
    struct S : Sink {
      std::string s;
      void write(const char* d, size_t n) override { s.append(d, n); }
    } sink;
    write_layer(idx, plan_merge(idx), open, Limits{}, sink, parallel, "/tmp", chunked ? &access : nullptr);
    return sink.s;
  }
};

}  // namespace

TEST(Checkpoints, ChunkedDecodeGivesTheSameLayerAsOneCore) {
  ChunkedImage img;
  // Layer 0: one gzip member; layer 1: two members, split inside a file's
  // data; layer 2: too small for checkpoints (decoded by the writer itself).
  std::vector<std::pair<TarEntry, std::string>> l0, l1;
  for (int i = 0; i < 6; ++i) {
    std::string d = words(300000 + i * 7, i);
    l0.push_back({file("a/f" + std::to_string(i), d), d});
  }
  std::string big = words(900000, 99);
  l1.push_back({file("a/f2", big), big});  // replaces a lower file
  l1.push_back({file("b", "", EntryType::Dir), ""});
  std::string t1 = make_tar(l1);
  img.blobs = {gzip(make_tar(l0)), gzip(t1.substr(0, 400000)) + gzip(t1.substr(400000)),
               gzip(make_tar({{file("c", "xyz"), "xyz"}}))};
  auto idx = index_layers(3, img.open, Limits{}, 2, nullptr, 64 << 10);
  EXPECT_TRUE(idx[0].checkpoints.usable());
  EXPECT_GT(idx[0].checkpoints.chunks.size(), 10u);
  EXPECT_TRUE(idx[1].checkpoints.usable());
  EXPECT_FALSE(idx[2].checkpoints.usable());
  EXPECT_EQ(idx[1].checkpoints.end_out, t1.size());
  std::string one = img.write(idx, 1, false);
  EXPECT_EQ(img.write(idx, 2, true), one);
  EXPECT_EQ(img.write(idx, 3, true), one);

  // Mostly bytes without checkpoints (a large uncompressed layer on top):
  // write_layer uses the spill scheme instead; same bytes either way.
  std::string big_plain = words(5000000, 7);
  img.blobs.push_back(make_tar({{file("t/plain", big_plain), big_plain}}));
  auto idx4 = index_layers(4, img.open, Limits{}, 2, nullptr, 64 << 10);
  EXPECT_FALSE(idx4[3].checkpoints.usable());
  EXPECT_EQ(img.write(idx4, 2, true), img.write(idx4, 1, false));
  img.blobs.pop_back();

  // The checkpoint table survives the index codec (once its states are stored).
  EXPECT_EQ(decode_index(encode_index(idx[0]))->checkpoints.chunks.size(), 0u);
  idx[0].checkpoints.states_digest = "sha256:" + std::string(64, 'a');
  auto back = decode_index(encode_index(idx[0]));
  ASSERT_TRUE(back);
  ASSERT_EQ(back->checkpoints.chunks.size(), idx[0].checkpoints.chunks.size());
  EXPECT_EQ(back->checkpoints.chunks[3].in, idx[0].checkpoints.chunks[3].in);
  EXPECT_EQ(back->checkpoints.chunks[3].member_crc, idx[0].checkpoints.chunks[3].member_crc);
  EXPECT_EQ(back->checkpoints.end_out, idx[0].checkpoints.end_out);
}

TEST(Checkpoints, DamageIsALayerErrorNotOtherBytes) {
  ChunkedImage img;
  std::string d = words(2000000, 7);
  img.blobs = {gzip(make_tar({{file("f", d), d}}))};
  auto idx = index_layers(1, img.open, Limits{}, 1, nullptr, 64 << 10);
  ASSERT_TRUE(idx[0].checkpoints.usable());
  std::string good = img.blobs[0];
  // A flipped bit in the middle of the compressed data, in the gzip header
  // (inflates the same; only the recorded CRC tells) and in the trailer.
  for (size_t at : {good.size() / 2, size_t{4}, good.size() - 3}) {
    img.blobs[0] = good;
    img.blobs[0][at] ^= 0x10;
    EXPECT_THROW(img.write(idx, 2, true), ChunkError) << "flip at " << at;
  }
  // The same when the store vouches for the blob (stamp unchanged): the
  // chunks' CRC-32 still catches accidental damage.
  auto vouched = idx;
  vouched[0].checkpoints.blob_stamp = "stamp";
  img.access.unchanged = [](uint32_t, const std::string& s) { return s == "stamp"; };
  for (size_t at : {good.size() / 2, size_t{4}, good.size() - 3}) {
    img.blobs[0] = good;
    img.blobs[0][at] ^= 0x10;
    EXPECT_THROW(img.write(vouched, 2, true), ChunkError) << "flip at " << at << " (stamp unchanged)";
  }
  img.blobs[0] = good;
  EXPECT_EQ(img.write(vouched, 2, true), img.write(idx, 1, false));
  img.access.unchanged = nullptr;
  img.blobs[0] = good;
  // A damaged saved state.
  auto states = std::make_shared<std::string>(*idx[0].checkpoints.states);
  (*states)[idx[0].checkpoints.chunks[2].state_off + 20] ^= 1;
  auto damaged = idx;
  damaged[0].checkpoints.states = states;
  EXPECT_THROW(img.write(damaged, 2, true), ChunkError);

  // A saved state whose CRC matches but whose counters are out of range (a
  // forged or foreign state) is refused before ISA-L reads it: no overrun.
  const auto& c2 = idx[0].checkpoints.chunks[2];
  std::string saved = idx[0].checkpoints.states->substr(c2.state_off, c2.state_len);
  auto u32 = [&](size_t at) {
    uint32_t v = 0;
    for (int i = 0; i < 4; ++i) v |= uint32_t{static_cast<unsigned char>(saved[at + i])} << (8 * i);
    return v;
  };
  uint32_t raw_len = u32(4);
  std::string raw(raw_len, '\0');
  {
    inflate_state z;
    isal_inflate_init(&z);
    z.crc_flag = ISAL_DEFLATE;
    z.next_in = reinterpret_cast<uint8_t*>(saved.data() + 13);
    z.avail_in = static_cast<uint32_t>(saved.size() - 13);
    z.next_out = reinterpret_cast<uint8_t*>(raw.data());
    z.avail_out = raw_len;
    ASSERT_EQ(saved[12], 1);
    ASSERT_EQ(isal_inflate_stateless(&z), ISAL_DECOMP_OK);
  }
  auto forged_with = [&](auto&& edit) {
    std::string r = raw;
    edit(*reinterpret_cast<inflate_state*>(r.data()));
    uint32_t crc = crc32_gzip_refl(0, reinterpret_cast<const unsigned char*>(r.data()), r.size());
    std::string out = saved.substr(0, 8);
    for (int i = 0; i < 4; ++i) out += static_cast<char>((crc >> (8 * i)) & 0xff);
    out += '\0';  // stored
    out += r;
    auto forged = idx;
    auto st = std::make_shared<std::string>(*idx[0].checkpoints.states);
    forged[0].checkpoints.chunks[2].state_off = st->size();
    forged[0].checkpoints.chunks[2].state_len = static_cast<uint32_t>(out.size());
    *st += out;
    forged[0].checkpoints.states = st;
    return forged;
  };
  EXPECT_THROW(img.write(forged_with([](inflate_state& s) { s.tmp_in_size = 32000; }), 2, true), ChunkError);
  EXPECT_THROW(img.write(forged_with([](inflate_state& s) { s.read_in_length = 500; }), 2, true), ChunkError);
  EXPECT_THROW(img.write(forged_with([](inflate_state& s) { s.copy_overflow_length = 9; }), 2, true), ChunkError);
  // ... and the same bytes stored unforged decode as before.
  EXPECT_EQ(img.write(forged_with([](inflate_state&) {}), 2, true), img.write(idx, 1, false));
  EXPECT_EQ(img.write(idx, 2, true), img.write(idx, 1, false));
}

TEST(Checkpoints, ALayerThatCannotBeCutFinelyGetsNone) {
  // Chunk buffers are bounded by kMaxInflateChunk: a layer whose chunks would
  // be longer (here through the spacing; in the wild a crafted stream with no
  // resumable point) gets no checkpoints and decodes in one piece.
  ChunkedImage img;
  std::string d = words(kMaxInflateChunk + (1 << 20), 9);
  img.blobs = {gzip(make_tar({{file("f", d), d}}))};
  auto fine = index_layers(1, img.open, Limits{}, 1, nullptr, 1 << 20);
  EXPECT_TRUE(fine[0].checkpoints.usable());
  for (size_t k = 0; k < fine[0].checkpoints.chunks.size(); ++k)
    EXPECT_LE(fine[0].checkpoints.chunk_len(k), kMaxInflateChunk);
  auto coarse = index_layers(1, img.open, Limits{}, 1, nullptr, kMaxInflateChunk + (1 << 19));
  EXPECT_FALSE(coarse[0].checkpoints.usable());  // one chunk would be longer than the bound
}
