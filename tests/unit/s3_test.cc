// What only the S3 driver has to show beyond the shared blob suite, against
// the store WHARF_TEST_S3_ENDPOINT names (scripts/test.sh starts a Ceph RADOS
// Gateway; without it these tests fail): uploads spanning several multipart
// parts, continued by other store instances from their state alone with
// chunks smaller than a part; nothing left in the bucket after a commit or a
// cancel (ListObjectsV2 and ListMultipartUploads); a presigned GET URL that
// works for GET only and for its lifetime; clear errors for a missing bucket
// and refused credentials.
#include <gtest/gtest.h>

#include <cstdlib>
#include <pugixml.hpp>
#include <random>

#include "core/digest.h"
#include "storage/s3_blob_store.h"
#include "storage/s3_client.h"

using namespace wharf;

namespace {

std::string endpoint() {
  const char* e = std::getenv("WHARF_TEST_S3_ENDPOINT");
  return e ? e : "";
}

storage::S3StoreOptions options(const std::string& prefix) {
  storage::S3StoreOptions o;
  o.client.endpoint = endpoint();
  o.client.bucket = "wharf-test";
  o.client.access_key = std::getenv("WHARF_TEST_S3_ACCESS_KEY") ? std::getenv("WHARF_TEST_S3_ACCESS_KEY") : "testak";
  o.client.secret_key = std::getenv("WHARF_TEST_S3_SECRET_KEY") ? std::getenv("WHARF_TEST_S3_SECRET_KEY") : "testsk";
  o.prefix = prefix + std::to_string(std::random_device{}()) + "/";
  o.part_size = 5 << 20;
  o.read_chunk = 3 << 20;  // reads span several ranged GETs
  return o;
}

// Keys under `prefix` and multipart uploads under it.
std::pair<std::vector<std::string>, int> leftovers(const storage::s3::Client& c, const std::string& prefix) {
  std::vector<std::string> keys;
  storage::s3::Request r;
  r.query = {{"list-type", "2"}, {"prefix", prefix}};
  auto resp = c.send(r);
  pugi::xml_document doc;
  doc.load_buffer(resp.body.data(), resp.body.size());
  for (auto k : doc.child("ListBucketResult").children("Contents")) keys.push_back(k.child_value("Key"));
  storage::s3::Request m;
  m.query = {{"uploads", ""}, {"prefix", prefix}};
  auto mr = c.send(m);
  pugi::xml_document mdoc;
  mdoc.load_buffer(mr.body.data(), mr.body.size());
  int uploads = 0;
  for ([[maybe_unused]] auto u : mdoc.child("ListMultipartUploadsResult").children("Upload")) ++uploads;
  return {keys, uploads};
}

std::string random_bytes(size_t n) {
  std::string s(n, '\0');
  std::mt19937_64 rng(n);
  for (auto& c : s) c = static_cast<char>(rng());
  return s;
}

std::string read_all(storage::BlobReader& r) {
  std::string out;
  std::string buf(1 << 20, '\0');
  while (size_t n = r.read(buf.data(), buf.size())) out.append(buf.data(), n);
  return out;
}

class S3 : public ::testing::Test {
 protected:
  void SetUp() override {
    ASSERT_FALSE(endpoint().empty()) << "set WHARF_TEST_S3_ENDPOINT (scripts/test.sh starts a Ceph RADOS Gateway)";
    storage::s3::Client c(options("").client);
    storage::s3::Request r;
    r.method = "PUT";
    r.ok_statuses = {409};
    c.send(r);  // the bucket
  }
};

TEST_F(S3, ChunkedUploadAcrossPartsAndProcessesCommitsWholeAndLeavesNothing) {
  auto o = options("multipart");
  storage::s3::Client c(o.client);
  const std::string blob = random_bytes((12 << 20) + 12345);  // two full parts and a tail
  std::string st = storage::make_s3_blob_store(o)->create_upload("mp1");
  // Chunks of 1 MiB + a bit, each appended by a fresh store (another replica).
  for (size_t off = 0; off < blob.size();) {
    size_t n = std::min<size_t>(blob.size() - off, (1 << 20) + 777);
    auto store = storage::make_s3_blob_store(o);
    auto w = store->append_upload("mp1", st);
    w->write(blob.data() + off, n);
    w->close();
    st = w->state();
    off += n;
    EXPECT_EQ(store->upload_size("mp1", st).value(), off) << "the state does not count every appended byte";
  }
  auto [keys, uploads] = leftovers(c, o.prefix + "uploads/");
  EXPECT_EQ(uploads, 1) << "the upload is not one multipart upload";
  EXPECT_LE(keys.size(), 4u) << "tail objects pile up";
  auto store = storage::make_s3_blob_store(o);
  auto d = core::sha256_of(blob);
  store->commit_upload("mp1", st, d);
  EXPECT_EQ(store->stat(d).value(), blob.size());
  EXPECT_EQ(read_all(*store->open(d)), blob);
  EXPECT_EQ(read_all(*store->open(d, (5 << 20) + 3)), blob.substr((5 << 20) + 3));
  auto [after, pending] = leftovers(c, o.prefix + "uploads/");
  EXPECT_TRUE(after.empty()) << after.size() << " objects left under uploads/, first " << after[0];
  EXPECT_EQ(pending, 0) << "a multipart upload was left behind";
}

// A replica with a smaller part_size continues an upload whose tail is not
// below its part size: the tail goes out as a part, nothing is lost.
TEST_F(S3, AnUploadContinuedWithASmallerPartSizeCommitsWhole) {
  auto big = options("partsize");
  big.part_size = 8 << 20;
  auto small = big;
  small.part_size = 5 << 20;
  const std::string blob = random_bytes((13 << 20) + 99);
  auto first = storage::make_s3_blob_store(big);  // (a writer uses its store: the store outlives it)
  std::string st = first->create_upload("ps1");
  {
    auto w = first->append_upload("ps1", st);
    w->write(blob.data(), 7 << 20);  // a 7 MiB tail: below 8 MiB, not below 5
    w->close();
    st = w->state();
  }
  auto store = storage::make_s3_blob_store(small);
  auto w = store->append_upload("ps1", st);
  w->write(blob.data() + (7 << 20), blob.size() - (7 << 20));
  w->close();
  st = w->state();
  EXPECT_EQ(store->upload_size("ps1", st).value(), blob.size());
  auto d = core::sha256_of(blob);
  store->commit_upload("ps1", st, d);
  EXPECT_EQ(read_all(*store->open(d)), blob);
}

TEST_F(S3, CancelledUploadAbortsItsMultipartUploadAndLeavesNothing) {
  auto o = options("cancel");
  storage::s3::Client c(o.client);
  auto store = storage::make_s3_blob_store(o);
  std::string st = store->create_upload("c1");
  const std::string bytes = random_bytes((6 << 20) + 5);
  auto w = store->append_upload("c1", st);
  w->write(bytes.data(), bytes.size());
  w->close();
  // A request that failed half-way: its part went out, its state was lost.
  auto lost = store->append_upload("c1", w->state());
  std::string more = random_bytes(6 << 20);
  lost->write(more.data(), more.size());
  store->delete_upload("c1", w->state());
  auto [keys, uploads] = leftovers(c, o.prefix + "uploads/");
  EXPECT_TRUE(keys.empty()) << keys.size() << " objects left";
  EXPECT_EQ(uploads, 0);
  EXPECT_FALSE(store->upload_size("c1", w->state()));
}

TEST_F(S3, PresignedUrlServesGetOnly) {
  auto o = options("presign");
  o.redirect = "presigned";
  o.presign_ttl_seconds = 60;
  auto store = storage::make_s3_blob_store(o);
  auto d = core::sha256_of("presigned bytes");
  store->put(d, "presigned bytes");
  auto url = store->redirect_url(d);
  ASSERT_TRUE(url);
  // Fetched without credentials by a plain client.
  std::string cmd = "curl -sf '" + *url + "'";
  FILE* p = ::popen(cmd.c_str(), "r");
  char buf[256];
  std::string got;
  while (size_t n = fread(buf, 1, sizeof buf, p)) got.append(buf, n);
  EXPECT_EQ(::pclose(p), 0);
  EXPECT_EQ(got, "presigned bytes");
  std::string del = "curl -sf -o /dev/null -X DELETE '" + *url + "'";
  EXPECT_NE(std::system(del.c_str()), 0) << "a presigned GET URL deleted the blob";
  EXPECT_TRUE(store->stat(d));
  o.redirect = "proxy";
  EXPECT_FALSE(storage::make_s3_blob_store(o)->redirect_url(d));
}

// The copy a commit over 5 GiB makes (UploadPartCopy of ranges: headers
// x-amz-copy-source and x-amz-copy-source-range, which curl 7.88 signs in the
// wrong order, so the client signs them itself), on a small object.
TEST_F(S3, UploadPartCopyOfRangesAssemblesTheObject) {
  storage::s3::Client c(options("").client);
  std::string bytes = random_bytes(6 << 20);
  std::string src = "partcopy/src", dst = "partcopy/dst";
  storage::s3::Request put;
  put.method = "PUT";
  put.key = src;
  put.body = bytes;
  c.send(put);
  storage::s3::Request start;
  start.method = "POST";
  start.key = dst;
  start.query = {{"uploads", ""}};
  auto resp = c.send(start);
  auto at = resp.body.find("<UploadId>"), end = resp.body.find("</UploadId>");
  ASSERT_NE(at, std::string::npos) << resp.body;
  std::string id = resp.body.substr(at + 10, end - at - 10);
  std::string parts;
  uint64_t cut = 5 << 20;  // parts but the last are at least 5 MiB
  std::vector<std::pair<uint64_t, uint64_t>> ranges = {{0, cut - 1}, {cut, bytes.size() - 1}};
  for (size_t i = 0; i < ranges.size(); ++i) {
    storage::s3::Request r;
    r.method = "PUT";
    r.key = dst;
    r.query = {{"partNumber", std::to_string(i + 1)}, {"uploadId", id}};
    r.headers = {{"x-amz-copy-source", "/" + c.options().bucket + "/" + src},
                 {"x-amz-copy-source-range",
                  "bytes=" + std::to_string(ranges[i].first) + "-" + std::to_string(ranges[i].second)}};
    auto pr = c.send(r);  // refused (403 SignatureDoesNotMatch) when signed as curl 7.88 does
    auto e1 = pr.body.find("<ETag>"), e2 = pr.body.find("</ETag>");
    ASSERT_NE(e1, std::string::npos) << pr.body;
    parts += "<Part><PartNumber>" + std::to_string(i + 1) + "</PartNumber>" + pr.body.substr(e1, e2 + 7 - e1) + "</Part>";
  }
  storage::s3::Request done;
  done.method = "POST";
  done.key = dst;
  done.query = {{"uploadId", id}};
  std::string xml = "<CompleteMultipartUpload>" + parts + "</CompleteMultipartUpload>";
  done.body = xml;  // a view: the string outlives the request
  c.send(done);
  storage::s3::Request get;
  get.key = dst;
  EXPECT_TRUE(c.send(get).body == bytes);
}

TEST_F(S3, MissingBucketAndRefusedCredentialsAreClearErrors) {
  auto o = options("errors");
  o.client.bucket = "no-such-bucket-here";
  try {
    storage::make_s3_blob_store(o);
    FAIL() << "opened a missing bucket";
  } catch (const std::runtime_error& e) {
    EXPECT_NE(std::string(e.what()).find("does not exist"), std::string::npos) << e.what();
  }
  o = options("errors");
  o.client.secret_key = "wrong";
  try {
    storage::make_s3_blob_store(o);
    FAIL() << "opened with a wrong secret key";
  } catch (const std::runtime_error& e) {
    EXPECT_NE(std::string(e.what()).find("refused"), std::string::npos) << e.what();
  }
}

}  // namespace
