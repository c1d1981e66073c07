// The shared MetadataStore suite: every backend (and the caching wrapper)
// must pass it. Backends are registered once in store_backends.cc; the suite
// runs against each registered name. Today SQLite; PostgreSQL joins with the
// same suite.
#include <gtest/gtest.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <set>
#include <thread>

#include "meta/metadata_store.h"
#include "meta/sqlite_store.h"
#include "store_backends.h"

// Records are built with designated initializers; the fields they leave out
// are meant to keep their defaults (GCC 12 warns even so).
#pragma GCC diagnostic ignored "-Wmissing-field-initializers"

using namespace wharf;
namespace tb = wharf::testing_backends;

namespace {

std::string dg(char c) { return "sha256:" + std::string(64, c); }

const std::string kA = dg('a');
const std::string kB = dg('b');
const std::string kC = dg('c');
const std::string kD = dg('d');
const std::string kE = dg('e');

const std::string kOci = "application/vnd.oci.image.manifest.v1+json";

int64_t unix_now() {
  return std::chrono::duration_cast<std::chrono::seconds>(std::chrono::system_clock::now().time_since_epoch())
      .count();
}

std::vector<std::string> sorted(std::vector<std::string> v) {
  std::sort(v.begin(), v.end());
  return v;
}

class MetaSuite : public ::testing::TestWithParam<std::string> {
 protected:
  void SetUp() override { store_ = open(); }
  void TearDown() override { store_.reset(); }
  // Opens the backend on this test's data again (a restart, or a second
  // process sharing the store).
  std::unique_ptr<meta::MetadataStore> open() { return tb::meta_backend(GetParam()).open(dir_.path()); }

  tb::TempDir dir_{"wharf-meta"};
  std::unique_ptr<meta::MetadataStore> store_;
};

// ---- the original suite --------------------------------------------------

TEST_P(MetaSuite, BlobLinksAreIsolatedPerRepository) {
  store_->link_blob("a/b", kA, 5);
  EXPECT_EQ(store_->linked_blob_size("a/b", kA).value(), 5u);
  EXPECT_FALSE(store_->linked_blob_size("other", kA));
  EXPECT_TRUE(store_->repository_exists("a/b"));
  EXPECT_EQ(store_->repositories_with_blob(kA, 10), std::vector<std::string>{"a/b"});
  EXPECT_TRUE(store_->unlink_blob("a/b", kA));
  EXPECT_FALSE(store_->unlink_blob("a/b", kA));
  EXPECT_FALSE(store_->linked_blob_size("a/b", kA));
}

TEST_P(MetaSuite, ManifestsTagsAndDeletion) {
  meta::ManifestRecord m{kA, "application/vnd.oci.image.manifest.v1+json", "{ \"x\" : 1 }", "t", "", ""};
  store_->put_manifest("r", m, {kB}, {"v1"});
  EXPECT_EQ(store_->resolve_tag("r", "v1").value(), kA);
  auto got = store_->get_manifest("r", kA);
  ASSERT_TRUE(got);
  EXPECT_EQ(got->body, m.body);
  EXPECT_EQ(got->media_type, m.media_type);
  EXPECT_FALSE(store_->get_manifest("other", kA));

  meta::ManifestRecord m2{kC, m.media_type, "{}", "t", "", ""};
  store_->put_manifest("r", m2, {}, {"v1"});  // tag moves
  EXPECT_EQ(store_->resolve_tag("r", "v1").value(), kC);
  store_->put_manifest("r", m, {}, {"v2"});
  EXPECT_EQ(store_->list_tags("r", "", 10), (std::vector<std::string>{"v1", "v2"}));
  EXPECT_EQ(store_->list_tags("r", "v1", 10), (std::vector<std::string>{"v2"}));

  EXPECT_TRUE(store_->delete_manifest("r", kA));  // takes v2 with it
  EXPECT_FALSE(store_->resolve_tag("r", "v2"));
  EXPECT_FALSE(store_->get_manifest("r", kA));
  EXPECT_TRUE(store_->delete_tag("r", "v1"));
  EXPECT_FALSE(store_->resolve_tag("r", "v1"));
  EXPECT_TRUE(store_->get_manifest("r", kC));  // deleting a tag keeps the manifest
}

TEST_P(MetaSuite, TagSummariesOfARangeInOneCall) {
  meta::ManifestRecord m{kA, "application/vnd.oci.image.manifest.v1+json", "{}", "t", "", ""};
  store_->put_manifest("ns/a", m, {}, {"v1", "v2"});
  store_->put_manifest("ns/b", m, {}, {});  // no tags: not listed
  store_->put_manifest("ns/c", m, {}, {"v1"});
  store_->put_manifest("ns0/d", m, {}, {"v1"});  // past the range
  auto all = store_->tag_summaries("ns/", "ns/c");
  ASSERT_EQ(all.size(), 2u);
  EXPECT_EQ(all.at("ns/a").count, 2u);
  EXPECT_GT(all.at("ns/a").last_updated, 0);
  EXPECT_EQ(all.at("ns/c").count, 1u);
  auto one = store_->tag_summaries("ns/b", "ns/b");
  EXPECT_TRUE(one.empty());
  EXPECT_EQ(store_->tag_summaries("ns/a", "ns/b").size(), 1u);  // inclusive bounds
}

TEST_P(MetaSuite, TagSummaryRepositoryDeletionAndBlobUse) {
  meta::ManifestRecord m{kA, "application/vnd.oci.image.manifest.v1+json", "{}", "t", "", ""};
  EXPECT_EQ(store_->tag_summary("r").count, 0u);
  store_->put_manifest("r", m, {kB}, {"v1"});
  store_->put_manifest("r", m, {kB}, {"v2"});
  auto sum = store_->tag_summary("r");
  EXPECT_EQ(sum.count, 2u);
  EXPECT_GT(sum.last_updated, 0);
  auto recs = store_->tag_records("r");
  ASSERT_EQ(recs.size(), 2u);
  EXPECT_EQ(recs[0].name, "v1");
  EXPECT_EQ(recs[1].digest, kA);
  // kB is named by the manifest though linked nowhere; kC is used by nothing.
  EXPECT_TRUE(store_->blob_in_use(kB));
  EXPECT_FALSE(store_->blob_in_use(kC));
  store_->link_blob("r", kC, 3);
  EXPECT_TRUE(store_->blob_in_use(kC));
  EXPECT_TRUE(store_->delete_repository("r"));
  EXPECT_FALSE(store_->delete_repository("r"));
  EXPECT_FALSE(store_->repository_exists("r"));
  EXPECT_EQ(store_->tag_summary("r").count, 0u);
  EXPECT_FALSE(store_->blob_in_use(kB));
  EXPECT_FALSE(store_->blob_in_use(kC));
  // A layer index and its saved inflate states keep their blobs from gc.
  store_->put_layer_index({kA, 2, kB, 10, kC});
  EXPECT_TRUE(store_->blob_in_use(kB));
  EXPECT_TRUE(store_->blob_in_use(kC));
  EXPECT_EQ(store_->get_layer_index(kA)->states_digest, kC);
  EXPECT_EQ(store_->indexed_layers(), std::vector<std::string>{kA});
  store_->delete_layer_index(kA);
  EXPECT_FALSE(store_->get_layer_index(kA));
  EXPECT_FALSE(store_->blob_in_use(kC));
  EXPECT_TRUE(store_->indexed_layers().empty());
}

TEST_P(MetaSuite, TagsInByteOrder) {
  meta::ManifestRecord m{kA, "t", "{}", "", "", ""};
  for (auto t : {"b", "B", "a", "_", "10", "9"}) store_->put_manifest("r", m, {}, {std::string(t)});
  EXPECT_EQ(store_->list_tags("r", "", 100), (std::vector<std::string>{"10", "9", "B", "_", "a", "b"}));
  EXPECT_EQ(store_->list_tags("r", "", 2), (std::vector<std::string>{"10", "9"}));
}

TEST_P(MetaSuite, Referrers) {
  meta::ManifestRecord sig{kB, "application/vnd.oci.image.manifest.v1+json", "{}", "application/x-sig", kA, ""};
  meta::ManifestRecord sbom{kC, "application/vnd.oci.image.manifest.v1+json", "{}", "application/x-sbom", kA,
                            R"({"k":"v"})"};
  store_->put_manifest("r", sbom, {}, {});
  store_->put_manifest("r", sig, {}, {});
  auto refs = store_->referrers("r", kA);
  ASSERT_EQ(refs.size(), 2u);
  EXPECT_EQ(refs[0].digest, kB);
  EXPECT_EQ(refs[1].annotations, R"({"k":"v"})");
  EXPECT_TRUE(store_->referrers("other", kA).empty());
}

TEST_P(MetaSuite, UploadsSurviveReopen) {
  store_->create_upload({.id = "u1", .repo = "r", .created = 100, .updated = 100}, meta::MetadataStore::Commit::Durable);
  store_->create_upload({.id = "u2", .repo = "r", .created = 100, .updated = 100}, meta::MetadataStore::Commit::Relaxed);
  store_->touch_upload("u2", 500);
  store_ = open();  // a restart
  auto u = store_->get_upload("u1");
  ASSERT_TRUE(u);
  EXPECT_EQ(u->repo, "r");
  auto idle = store_->uploads_idle_since(300);
  ASSERT_EQ(idle.size(), 1u);
  EXPECT_EQ(idle[0].id, "u1");
  store_->delete_upload("u1");
  EXPECT_FALSE(store_->get_upload("u1"));
}

TEST_P(MetaSuite, CatalogPaging) {
  for (auto r : {"c", "a/b", "a", "b"}) store_->ensure_repository(r);
  EXPECT_EQ(store_->list_repositories("", 10), (std::vector<std::string>{"a", "a/b", "b", "c"}));
  EXPECT_EQ(store_->list_repositories("a/b", 1), (std::vector<std::string>{"b"}));
}

TEST_P(MetaSuite, ConcurrentWritersAllLand) {
  std::vector<std::thread> ts;
  for (int t = 0; t < 4; ++t)
    ts.emplace_back([&, t] {
      for (int i = 0; i < 25; ++i) store_->link_blob("r" + std::to_string(t), kA, i);
    });
  for (auto& t : ts) t.join();
  EXPECT_EQ(store_->repositories_with_blob(kA, 10).size(), 4u);
}

TEST_P(MetaSuite, CompleteUploadLinksAndForgetsTheSession) {
  store_->create_upload({.id = "u9", .repo = "r", .created = 1, .updated = 1}, meta::MetadataStore::Commit::Durable);
  store_->complete_upload("u9", "r", kB, 77);
  EXPECT_FALSE(store_->get_upload("u9"));
  EXPECT_EQ(store_->linked_blob_size("r", kB).value(), 77u);
}

// ---- repositories and the catalog ----------------------------------------

TEST_P(MetaSuite, EnsureRepositoryCreatesItOnce) {
  EXPECT_FALSE(store_->repository_exists("ns/app"));
  store_->ensure_repository("ns/app");
  store_->ensure_repository("ns/app");
  EXPECT_TRUE(store_->repository_exists("ns/app"));
  EXPECT_FALSE(store_->repository_exists("ns"));  // a prefix is not a repository
  EXPECT_EQ(store_->list_repositories("", 10), std::vector<std::string>{"ns/app"});
}

TEST_P(MetaSuite, CatalogPagesFollowEachOtherInByteOrder) {
  for (auto r : {"b/c", "a0", "a/b", "a-b", "a", "B"}) store_->ensure_repository(r);
  const std::vector<std::string> all{"B", "a", "a-b", "a/b", "a0", "b/c"};  // bytes: 'B' < 'a', '-' < '/' < '0'
  std::vector<std::string> walked;
  std::string last;
  for (int page = 0; page < 10; ++page) {
    auto p = store_->list_repositories(last, 2);
    EXPECT_LE(p.size(), 2u);
    if (p.empty()) break;
    walked.insert(walked.end(), p.begin(), p.end());
    last = p.back();
  }
  EXPECT_EQ(walked, all);
  EXPECT_EQ(store_->list_repositories("a-", 3), (std::vector<std::string>{"a-b", "a/b", "a0"}));  // `after` need not exist
  EXPECT_TRUE(store_->list_repositories("b/c", 10).empty());
  EXPECT_TRUE(store_->list_repositories("", 0).empty());
}

TEST_P(MetaSuite, DeletedRepositoryLeavesTheCatalogAndCanBeCreatedAgainEmpty) {
  meta::ManifestRecord m{kA, kOci, "{}", "", "", ""};
  store_->put_manifest("gone", m, {kB}, {"v1"});
  store_->link_blob("gone", kB, 9);
  store_->put_manifest("kept", m, {kB}, {"v1"});
  ASSERT_EQ(store_->resolve_tag("gone", "v1").value(), kA);  // (read so a cache holds it)
  ASSERT_TRUE(store_->get_manifest("gone", kA));
  EXPECT_TRUE(store_->delete_repository("gone"));
  EXPECT_EQ(store_->list_repositories("", 10), std::vector<std::string>{"kept"});
  EXPECT_FALSE(store_->resolve_tag("gone", "v1"));
  EXPECT_FALSE(store_->get_manifest("gone", kA));
  EXPECT_FALSE(store_->linked_blob_size("gone", kB));
  EXPECT_TRUE(store_->list_tags("gone", "", 10).empty());
  EXPECT_TRUE(store_->tag_records("gone").empty());
  EXPECT_TRUE(store_->repositories_with_blob(kB, 10).empty());
  // The other repository is untouched, and its manifest still names kB.
  EXPECT_EQ(store_->resolve_tag("kept", "v1").value(), kA);
  EXPECT_TRUE(store_->blob_in_use(kB));
  store_->ensure_repository("gone");
  EXPECT_TRUE(store_->repository_exists("gone"));
  EXPECT_FALSE(store_->get_manifest("gone", kA));
  EXPECT_EQ(store_->tag_summary("gone").count, 0u);
}

TEST_P(MetaSuite, DeletingARepositoryRemovesItsReferrers) {
  store_->put_manifest("r", {kB, kOci, "{}", "application/x-sig", kA, ""}, {}, {});
  ASSERT_EQ(store_->referrers("r", kA).size(), 1u);
  EXPECT_TRUE(store_->delete_repository("r"));
  EXPECT_TRUE(store_->referrers("r", kA).empty());
}

// ---- blob links ----------------------------------------------------------

TEST_P(MetaSuite, LinkingCreatesTheRepositoryAndIsIdempotent) {
  EXPECT_FALSE(store_->repository_exists("ns/r"));
  store_->link_blob("ns/r", kA, 42);
  store_->link_blob("ns/r", kA, 42);
  EXPECT_TRUE(store_->repository_exists("ns/r"));
  EXPECT_EQ(store_->linked_blob_size("ns/r", kA).value(), 42u);
  EXPECT_EQ(store_->repositories_with_blob(kA, 10), std::vector<std::string>{"ns/r"});
  EXPECT_TRUE(store_->unlink_blob("ns/r", kA));
  EXPECT_FALSE(store_->linked_blob_size("ns/r", kA));  // one unlink undoes both links
}

TEST_P(MetaSuite, LargeBlobSizesKeepEveryBit) {
  const uint64_t big = (uint64_t{1} << 40) + 12345;  // beyond 32 bits
  store_->link_blob("r", kA, big);
  EXPECT_EQ(store_->linked_blob_size("r", kA).value(), big);
}

TEST_P(MetaSuite, UnlinkOnlyAffectsTheNamedRepository) {
  store_->link_blob("r1", kA, 1);
  store_->link_blob("r2", kA, 1);
  EXPECT_FALSE(store_->unlink_blob("nowhere", kA));
  EXPECT_FALSE(store_->unlink_blob("r1", kB));
  EXPECT_TRUE(store_->unlink_blob("r1", kA));
  EXPECT_FALSE(store_->linked_blob_size("r1", kA));
  EXPECT_EQ(store_->linked_blob_size("r2", kA).value(), 1u);
  EXPECT_TRUE(store_->blob_in_use(kA));  // still linked in r2
  EXPECT_TRUE(store_->unlink_blob("r2", kA));
  EXPECT_FALSE(store_->blob_in_use(kA));
}

TEST_P(MetaSuite, RepositoriesWithBlobHonoursTheLimit) {
  for (auto r : {"r3", "r1", "r2"}) store_->link_blob(r, kA, 1);
  store_->link_blob("r2", kB, 1);
  EXPECT_EQ(sorted(store_->repositories_with_blob(kA, 10)), (std::vector<std::string>{"r1", "r2", "r3"}));
  auto two = store_->repositories_with_blob(kA, 2);
  ASSERT_EQ(two.size(), 2u);
  for (const auto& r : two) EXPECT_TRUE(r == "r1" || r == "r2" || r == "r3") << r;
  EXPECT_NE(two[0], two[1]);
  EXPECT_EQ(store_->repositories_with_blob(kB, 10), std::vector<std::string>{"r2"});
  EXPECT_TRUE(store_->repositories_with_blob(kC, 10).empty());
}

// ---- manifests and tags --------------------------------------------------

TEST_P(MetaSuite, ManifestRecordRoundTripsEveryFieldAndByte) {
  std::string body("{\"a\":\"\xff\xfe\"}\0tail", 15);  // the bytes as pushed, even a NUL and non-UTF-8
  meta::ManifestRecord m{kA, kOci, body, "application/vnd.example+type", kD, R"({"org.example":"x"})"};
  store_->put_manifest("r", m, {}, {});
  auto got = store_->get_manifest("r", kA);
  ASSERT_TRUE(got);
  EXPECT_EQ(got->digest, kA);
  EXPECT_EQ(got->media_type, kOci);
  EXPECT_EQ(got->body, body);
  EXPECT_EQ(got->body.size(), 15u);
  EXPECT_EQ(got->artifact_type, "application/vnd.example+type");
  EXPECT_EQ(got->subject, kD);
  EXPECT_EQ(got->annotations, R"({"org.example":"x"})");
  EXPECT_FALSE(store_->get_manifest("r", kB));
}

TEST_P(MetaSuite, PutManifestCreatesTheRepository) {
  store_->put_manifest("ns/new", {kA, kOci, "{}", "", "", ""}, {}, {});
  EXPECT_TRUE(store_->repository_exists("ns/new"));
  EXPECT_EQ(store_->list_repositories("", 10), std::vector<std::string>{"ns/new"});
}

TEST_P(MetaSuite, UntaggedManifestResolvesByDigestOnly) {
  store_->put_manifest("r", {kA, kOci, "{}", "", "", ""}, {}, {});
  EXPECT_TRUE(store_->get_manifest("r", kA));
  EXPECT_TRUE(store_->list_tags("r", "", 10).empty());
  EXPECT_EQ(store_->tag_summary("r").count, 0u);
  EXPECT_EQ(store_->tag_summary("r").last_updated, 0);
}

TEST_P(MetaSuite, OnePutPointsEveryGivenTag) {
  store_->put_manifest("r", {kA, kOci, "{}", "", "", ""}, {}, {"old"});
  ASSERT_EQ(store_->resolve_tag("r", "old").value(), kA);
  store_->put_manifest("r", {kB, kOci, "{}", "", "", ""}, {}, {"latest", "1.0", "old"});
  for (auto t : {"latest", "1.0", "old"}) EXPECT_EQ(store_->resolve_tag("r", t).value(), kB) << t;
  EXPECT_EQ(store_->list_tags("r", "", 10), (std::vector<std::string>{"1.0", "latest", "old"}));
  EXPECT_TRUE(store_->get_manifest("r", kA));  // moving a tag away keeps the manifest
}

TEST_P(MetaSuite, TagsAreIsolatedPerRepository) {
  store_->put_manifest("r1", {kA, kOci, "{}", "", "", ""}, {}, {"v1"});
  store_->put_manifest("r2", {kB, kOci, "{}", "", "", ""}, {}, {"v1", "v2"});
  EXPECT_EQ(store_->resolve_tag("r1", "v1").value(), kA);
  EXPECT_EQ(store_->resolve_tag("r2", "v1").value(), kB);
  EXPECT_FALSE(store_->resolve_tag("r1", "v2"));
  EXPECT_FALSE(store_->resolve_tag("r3", "v1"));
  EXPECT_EQ(store_->list_tags("r1", "", 10), std::vector<std::string>{"v1"});
  EXPECT_EQ(store_->tag_summary("r2").count, 2u);
  EXPECT_FALSE(store_->delete_tag("r1", "v2"));
  EXPECT_FALSE(store_->delete_tag("r3", "v1"));
  EXPECT_TRUE(store_->delete_tag("r2", "v1"));
  EXPECT_EQ(store_->resolve_tag("r1", "v1").value(), kA);
}

TEST_P(MetaSuite, TagListPagesWithLastAndN) {
  meta::ManifestRecord m{kA, kOci, "{}", "", "", ""};
  for (auto t : {"v5", "v1", "v4", "v2", "v3"}) store_->put_manifest("r", m, {}, {std::string(t)});
  store_->put_manifest("other", m, {}, {"v0", "v9"});
  EXPECT_EQ(store_->list_tags("r", "", 2), (std::vector<std::string>{"v1", "v2"}));
  EXPECT_EQ(store_->list_tags("r", "v2", 2), (std::vector<std::string>{"v3", "v4"}));
  EXPECT_EQ(store_->list_tags("r", "v4", 2), (std::vector<std::string>{"v5"}));
  EXPECT_TRUE(store_->list_tags("r", "v5", 2).empty());
  EXPECT_EQ(store_->list_tags("r", "v25", 10), (std::vector<std::string>{"v3", "v4", "v5"}));  // `last` need not exist
  EXPECT_TRUE(store_->list_tags("r", "", 0).empty());
  EXPECT_TRUE(store_->list_tags("nowhere", "", 10).empty());
}

TEST_P(MetaSuite, TagRecordsCarryTheTimeOfTheLastMove) {
  int64_t t0 = unix_now();
  store_->put_manifest("r", {kA, kOci, "{}", "", "", ""}, {}, {"a", "b"});
  int64_t t1 = unix_now();
  auto recs = store_->tag_records("r");
  ASSERT_EQ(recs.size(), 2u);
  for (const auto& r : recs) {
    EXPECT_EQ(r.digest, kA);
    EXPECT_GE(r.updated, t0);
    EXPECT_LE(r.updated, t1);
  }
  std::this_thread::sleep_for(std::chrono::milliseconds(1100));  // into the next second
  store_->put_manifest("r", {kB, kOci, "{}", "", "", ""}, {}, {"b"});
  int64_t t2 = unix_now();
  recs = store_->tag_records("r");
  ASSERT_EQ(recs.size(), 2u);
  EXPECT_EQ(recs[0].name, "a");
  EXPECT_EQ(recs[0].digest, kA);
  EXPECT_LE(recs[0].updated, t1);  // not moved
  EXPECT_EQ(recs[1].name, "b");
  EXPECT_EQ(recs[1].digest, kB);
  EXPECT_GT(recs[1].updated, t1);  // moved
  EXPECT_LE(recs[1].updated, t2);
  auto sum = store_->tag_summary("r");
  EXPECT_EQ(sum.count, 2u);
  EXPECT_EQ(sum.last_updated, recs[1].updated);
  EXPECT_TRUE(store_->tag_records("nowhere").empty());
}

TEST_P(MetaSuite, TagRecordsAreByName) {
  meta::ManifestRecord m{kA, kOci, "{}", "", "", ""};
  for (auto t : {"zeta", "Alpha", "beta", "1"}) store_->put_manifest("r", m, {}, {std::string(t)});
  std::vector<std::string> names;
  for (const auto& r : store_->tag_records("r")) names.push_back(r.name);
  EXPECT_EQ(names, (std::vector<std::string>{"1", "Alpha", "beta", "zeta"}));
}

TEST_P(MetaSuite, DeletingAManifestTakesEveryTagPointingAtIt) {
  store_->put_manifest("r", {kA, kOci, "{}", "", "", ""}, {kD}, {"x", "y"});
  store_->put_manifest("r", {kB, kOci, "{}", "", "", ""}, {}, {"z"});
  ASSERT_EQ(store_->resolve_tag("r", "x").value(), kA);  // (read so a cache holds them)
  ASSERT_EQ(store_->resolve_tag("r", "y").value(), kA);
  ASSERT_TRUE(store_->get_manifest("r", kA));
  EXPECT_TRUE(store_->delete_manifest("r", kA));
  EXPECT_FALSE(store_->get_manifest("r", kA));
  EXPECT_FALSE(store_->resolve_tag("r", "x"));
  EXPECT_FALSE(store_->resolve_tag("r", "y"));
  EXPECT_EQ(store_->resolve_tag("r", "z").value(), kB);
  EXPECT_EQ(store_->list_tags("r", "", 10), std::vector<std::string>{"z"});
  EXPECT_EQ(store_->tag_summary("r").count, 1u);
  EXPECT_FALSE(store_->blob_in_use(kD));  // no stored manifest names it any more
  EXPECT_FALSE(store_->delete_manifest("r", kA));
  EXPECT_FALSE(store_->delete_manifest("nowhere", kA));
}

TEST_P(MetaSuite, DeletingAManifestInOneRepositoryKeepsItInAnother) {
  meta::ManifestRecord m{kA, kOci, "{}", "", "", ""};
  store_->put_manifest("r1", m, {kB}, {"v1"});
  store_->put_manifest("r2", m, {kB}, {"v1"});
  EXPECT_TRUE(store_->delete_manifest("r1", kA));
  EXPECT_FALSE(store_->get_manifest("r1", kA));
  EXPECT_TRUE(store_->get_manifest("r2", kA));
  EXPECT_EQ(store_->resolve_tag("r2", "v1").value(), kA);
  EXPECT_TRUE(store_->blob_in_use(kB));  // r2's manifest still names it
  EXPECT_TRUE(store_->delete_manifest("r2", kA));
  EXPECT_FALSE(store_->blob_in_use(kB));
}

TEST_P(MetaSuite, DeletingATagThatWasResolvedForgetsIt) {
  store_->put_manifest("r", {kA, kOci, "{}", "", "", ""}, {}, {"v1"});
  ASSERT_EQ(store_->resolve_tag("r", "v1").value(), kA);
  EXPECT_TRUE(store_->delete_tag("r", "v1"));
  EXPECT_FALSE(store_->resolve_tag("r", "v1"));
  EXPECT_FALSE(store_->delete_tag("r", "v1"));
  EXPECT_TRUE(store_->list_tags("r", "", 10).empty());
  EXPECT_EQ(store_->tag_summary("r").count, 0u);
}

TEST_P(MetaSuite, ReferrersAreOrderedByDigestAndOnlyOfTheirSubject) {
  store_->put_manifest("r", {kE, kOci, "{}", "application/x-e", kA, ""}, {}, {});
  store_->put_manifest("r", {kC, kOci, "{\"c\":1}", "application/x-c", kA, R"({"n":"c"})"}, {}, {});
  store_->put_manifest("r", {kD, kOci, "{}", "application/x-d", kA, ""}, {}, {});
  store_->put_manifest("r", {kB, kOci, "{}", "application/x-b", kC, ""}, {}, {});  // a referrer of kC
  store_->put_manifest("r", {kA, kOci, "{}", "", "", ""}, {}, {});                 // the subject itself
  auto refs = store_->referrers("r", kA);
  ASSERT_EQ(refs.size(), 3u);
  EXPECT_EQ(refs[0].digest, kC);
  EXPECT_EQ(refs[1].digest, kD);
  EXPECT_EQ(refs[2].digest, kE);
  EXPECT_EQ(refs[0].artifact_type, "application/x-c");
  EXPECT_EQ(refs[0].media_type, kOci);
  EXPECT_EQ(refs[0].subject, kA);
  EXPECT_EQ(refs[0].annotations, R"({"n":"c"})");
  auto of_c = store_->referrers("r", kC);
  ASSERT_EQ(of_c.size(), 1u);
  EXPECT_EQ(of_c[0].digest, kB);
  EXPECT_TRUE(store_->referrers("r", kB).empty());
  EXPECT_TRUE(store_->delete_manifest("r", kD));
  refs = store_->referrers("r", kA);
  ASSERT_EQ(refs.size(), 2u);
  EXPECT_EQ(refs[0].digest, kC);
  EXPECT_EQ(refs[1].digest, kE);
}

TEST_P(MetaSuite, ReferrersOfASubjectThatIsNotStoredAreListed) {
  // A referrer may be pushed before (or without) its subject.
  store_->put_manifest("r", {kB, kOci, "{}", "application/x-sig", kA, ""}, {}, {});
  EXPECT_FALSE(store_->get_manifest("r", kA));
  auto refs = store_->referrers("r", kA);
  ASSERT_EQ(refs.size(), 1u);
  EXPECT_EQ(refs[0].digest, kB);
}

// ---- upload sessions -----------------------------------------------------

TEST_P(MetaSuite, UploadSessionKeepsItsFieldsAndTouchMovesOnlyUpdated) {
  store_->create_upload({.id = "up-1", .repo = "ns/r", .created = 1000, .updated = 1000}, meta::MetadataStore::Commit::Relaxed);
  auto u = store_->get_upload("up-1");
  ASSERT_TRUE(u);
  EXPECT_EQ(u->id, "up-1");
  EXPECT_EQ(u->repo, "ns/r");
  EXPECT_EQ(u->created, 1000);
  EXPECT_EQ(u->updated, 1000);
  store_->touch_upload("up-1", 2500);
  u = store_->get_upload("up-1");
  ASSERT_TRUE(u);
  EXPECT_EQ(u->created, 1000);
  EXPECT_EQ(u->updated, 2500);
  EXPECT_FALSE(store_->get_upload("up-2"));
}

TEST_P(MetaSuite, RelaxedAndDurableSessionsBothSurviveReopen) {
  store_->create_upload({.id = "relaxed", .repo = "r", .created = 10, .updated = 20}, meta::MetadataStore::Commit::Relaxed);
  store_->create_upload({.id = "durable", .repo = "r", .created = 10, .updated = 20}, meta::MetadataStore::Commit::Durable);
  store_ = open();
  for (auto id : {"relaxed", "durable"}) {
    auto u = store_->get_upload(id);
    ASSERT_TRUE(u) << id;
    EXPECT_EQ(u->repo, "r");
    EXPECT_EQ(u->created, 10);
    EXPECT_EQ(u->updated, 20);
  }
}

TEST_P(MetaSuite, IdleSessionsAreThoseNotTouchedSince) {
  store_->create_upload({.id = "old", .repo = "r1", .created = 100, .updated = 100}, meta::MetadataStore::Commit::Durable);
  store_->create_upload({.id = "fresh", .repo = "r2", .created = 100, .updated = 900}, meta::MetadataStore::Commit::Durable);
  store_->create_upload({.id = "revived", .repo = "r3", .created = 100, .updated = 100}, meta::MetadataStore::Commit::Relaxed);
  store_->touch_upload("revived", 800);
  auto idle = store_->uploads_idle_since(500);
  ASSERT_EQ(idle.size(), 1u);
  EXPECT_EQ(idle[0].id, "old");
  EXPECT_EQ(idle[0].repo, "r1");
  EXPECT_EQ(idle[0].created, 100);
  EXPECT_EQ(idle[0].updated, 100);
  std::vector<std::string> ids;
  for (const auto& u : store_->uploads_idle_since(1000)) ids.push_back(u.id);
  EXPECT_EQ(sorted(ids), (std::vector<std::string>{"fresh", "old", "revived"}));
  EXPECT_TRUE(store_->uploads_idle_since(50).empty());
}

TEST_P(MetaSuite, DeletedSessionIsGoneAndDeletingTwiceIsFine) {
  store_->create_upload({.id = "u", .repo = "r", .created = 1, .updated = 1}, meta::MetadataStore::Commit::Durable);
  store_->create_upload({.id = "keep", .repo = "r", .created = 1, .updated = 1}, meta::MetadataStore::Commit::Durable);
  store_->delete_upload("u");
  EXPECT_FALSE(store_->get_upload("u"));
  EXPECT_NO_THROW(store_->delete_upload("u"));
  EXPECT_TRUE(store_->get_upload("keep"));
  EXPECT_EQ(store_->uploads_idle_since(10).size(), 1u);
}

TEST_P(MetaSuite, CompleteUploadCreatesTheRepositoryAndKeepsOtherSessions) {
  store_->create_upload({.id = "u1", .repo = "ns/new", .created = 1, .updated = 1}, meta::MetadataStore::Commit::Relaxed);
  store_->create_upload({.id = "u2", .repo = "ns/new", .created = 1, .updated = 1}, meta::MetadataStore::Commit::Relaxed);
  store_->complete_upload("u1", "ns/new", kC, 12);
  EXPECT_TRUE(store_->repository_exists("ns/new"));
  EXPECT_EQ(store_->repositories_with_blob(kC, 10), std::vector<std::string>{"ns/new"});
  EXPECT_TRUE(store_->blob_in_use(kC));
  EXPECT_FALSE(store_->get_upload("u1"));
  EXPECT_TRUE(store_->get_upload("u2"));
}

TEST_P(MetaSuite, UploadSessionCarriesItsSizeAndStates) {
  std::string driver("part\0file", 9), hasher("\x01\x02\x00\xff", 4);  // opaque bytes, NULs included
  store_->create_upload({.id = "s", .repo = "ns/r", .created = 5, .updated = 6, .size = 1234, .driver_state = driver,
                         .digest_state = hasher},
                        meta::MetadataStore::Commit::Durable);
  auto u = store_->get_upload("s");
  ASSERT_TRUE(u);
  EXPECT_EQ(u->size, 1234u);
  EXPECT_EQ(u->driver_state, driver);
  EXPECT_EQ(u->digest_state, hasher);
  auto idle = store_->uploads_idle_since(100);
  ASSERT_EQ(idle.size(), 1u);
  EXPECT_EQ(idle[0].size, 1234u);
  EXPECT_EQ(idle[0].driver_state, driver);
  EXPECT_EQ(idle[0].digest_state, hasher);
}

TEST_P(MetaSuite, SavedUploadProgressReplacesStatesAndKeepsRepoAndCreated) {
  store_->create_upload({.id = "s", .repo = "ns/r", .created = 10, .updated = 10, .size = 0, .driver_state = "d0"},
                        meta::MetadataStore::Commit::Relaxed);
  store_->create_upload({.id = "other", .repo = "ns/r", .created = 10, .updated = 10},
                        meta::MetadataStore::Commit::Relaxed);
  std::string big((uint64_t{1} << 16) + 3, 'z');
  store_->save_upload_progress({.id = "s", .repo = "elsewhere", .created = 999, .updated = 700,
                                .size = (uint64_t{1} << 36) + 1, .driver_state = big, .digest_state = "h1"});
  auto u = store_->get_upload("s");
  ASSERT_TRUE(u);
  EXPECT_EQ(u->repo, "ns/r");  // stays
  EXPECT_EQ(u->created, 10);   // stays
  EXPECT_EQ(u->updated, 700);  // its last use
  EXPECT_EQ(u->size, (uint64_t{1} << 36) + 1);
  EXPECT_EQ(u->driver_state, big);
  EXPECT_EQ(u->digest_state, "h1");
  std::vector<std::string> idle;
  for (const auto& r : store_->uploads_idle_since(500)) idle.push_back(r.id);
  EXPECT_EQ(idle, std::vector<std::string>{"other"});  // "s" was just used
  auto o = store_->get_upload("other");
  ASSERT_TRUE(o);
  EXPECT_EQ(o->size, 0u);
  EXPECT_EQ(o->updated, 10);
  store_->save_upload_progress({.id = "s", .updated = 800, .size = 5, .driver_state = "d2", .digest_state = ""});
  u = store_->get_upload("s");
  ASSERT_TRUE(u);
  EXPECT_EQ(u->size, 5u);
  EXPECT_EQ(u->driver_state, "d2");
  EXPECT_EQ(u->digest_state, "");  // none saved
  store_ = open();  // durable across a restart
  u = store_->get_upload("s");
  ASSERT_TRUE(u);
  EXPECT_EQ(u->updated, 800);
  EXPECT_EQ(u->driver_state, "d2");
  EXPECT_EQ(u->repo, "ns/r");
}

// ---- squash cache records ------------------------------------------------

meta::SquashRecord squash(std::string key, std::string layer, int64_t last_used) {
  return {std::move(key), kA, std::move(layer), 4096, "0123abcd", R"({"rootfs":{}})", 1000, last_used, "", 0, 0};
}

TEST_P(MetaSuite, SquashRecordIsFoundByItsKeyAndGoneAfterDeletion) {
  EXPECT_FALSE(store_->get_squash("v1:" + kA));
  meta::SquashRecord r{"v1:" + kA, kA, kB, (uint64_t{1} << 33) + 7, "layerdir", R"({"config":true})", 1111, 2222,
                       "", 0, 0};
  store_->put_squash(r);
  auto got = store_->get_squash(r.key);
  ASSERT_TRUE(got);
  EXPECT_EQ(got->key, r.key);
  EXPECT_EQ(got->manifest_digest, kA);
  EXPECT_EQ(got->layer_digest, kB);
  EXPECT_EQ(got->layer_size, r.layer_size);
  EXPECT_EQ(got->layer_dir, "layerdir");
  EXPECT_EQ(got->config, R"({"config":true})");
  EXPECT_EQ(got->created, 1111);
  EXPECT_EQ(got->last_used, 2222);
  EXPECT_EQ(got->gz_digest, "");
  EXPECT_FALSE(store_->get_squash("v2:" + kA));  // another format is another key
  EXPECT_TRUE(store_->delete_squash(r.key));
  EXPECT_FALSE(store_->get_squash(r.key));
  EXPECT_FALSE(store_->delete_squash(r.key));
}

TEST_P(MetaSuite, PuttingASquashKeyAgainReplacesTheRecord) {
  store_->put_squash(squash("v1:x", kB, 10));
  auto again = squash("v1:x", kC, 20);
  again.config = "{}";
  store_->put_squash(again);
  auto got = store_->get_squash("v1:x");
  ASSERT_TRUE(got);
  EXPECT_EQ(got->layer_digest, kC);
  EXPECT_EQ(got->config, "{}");
  EXPECT_EQ(store_->squash_records().size(), 1u);
}

TEST_P(MetaSuite, SquashGzipPieceIsRecordedOnTheEntry) {
  store_->put_squash(squash("v1:x", kB, 10));
  store_->set_squash_gzip("v1:x", kC, (uint64_t{1} << 35) + 3, 0xDEADBEEFu);
  auto got = store_->get_squash("v1:x");
  ASSERT_TRUE(got);
  EXPECT_EQ(got->gz_digest, kC);
  EXPECT_EQ(got->gz_size, (uint64_t{1} << 35) + 3);
  EXPECT_EQ(got->layer_crc, 0xDEADBEEFu);  // all 32 bits
  EXPECT_EQ(got->layer_digest, kB);      // the rest is kept
  EXPECT_EQ(got->config, R"({"rootfs":{}})");
  auto all = store_->squash_records();
  ASSERT_EQ(all.size(), 1u);
  EXPECT_EQ(all[0].gz_digest, kC);
  EXPECT_EQ(all[0].layer_crc, 0xDEADBEEFu);
}

TEST_P(MetaSuite, SquashRecordsAreLeastRecentlyUsedFirstWithoutConfig) {
  store_->put_squash(squash("v1:a", kA, 300));
  store_->put_squash(squash("v1:b", kB, 100));
  store_->put_squash(squash("v1:c", kC, 200));
  auto keys = [&] {
    std::vector<std::string> out;
    for (const auto& r : store_->squash_records()) out.push_back(r.key);
    return out;
  };
  EXPECT_EQ(keys(), (std::vector<std::string>{"v1:b", "v1:c", "v1:a"}));
  store_->touch_squash("v1:b", 400);  // just used
  EXPECT_EQ(keys(), (std::vector<std::string>{"v1:c", "v1:a", "v1:b"}));
  EXPECT_EQ(store_->get_squash("v1:b")->last_used, 400);
  auto recs = store_->squash_records();
  ASSERT_EQ(recs.size(), 3u);
  for (const auto& r : recs) {
    EXPECT_TRUE(r.config.empty()) << r.key;
    EXPECT_EQ(r.layer_size, 4096u);
    EXPECT_EQ(r.layer_dir, "0123abcd");
    EXPECT_EQ(r.manifest_digest, kA);
    EXPECT_EQ(r.created, 1000);
  }
  EXPECT_EQ(recs[0].layer_digest, kC);
  EXPECT_EQ(recs[2].last_used, 400);
  EXPECT_TRUE(store_->delete_squash("v1:a"));
  EXPECT_EQ(keys(), (std::vector<std::string>{"v1:c", "v1:b"}));
}

TEST_P(MetaSuite, SquashLayerAndGzipPieceAreBlobsInUseUntilTheEntryGoes) {
  store_->put_squash(squash("v1:x", kB, 1));
  EXPECT_TRUE(store_->blob_in_use(kB));
  EXPECT_FALSE(store_->blob_in_use(kC));
  store_->set_squash_gzip("v1:x", kC, 10, 1);
  EXPECT_TRUE(store_->blob_in_use(kC));
  EXPECT_TRUE(store_->delete_squash("v1:x"));
  EXPECT_FALSE(store_->blob_in_use(kB));
  EXPECT_FALSE(store_->blob_in_use(kC));
}

TEST_P(MetaSuite, SquashRecordsOfAManifestAreDeletedTogether) {
  auto other = squash("v1:other", kC, 5);
  other.manifest_digest = kB;
  store_->put_squash(squash("v1:" + kA, kB, 1));
  store_->put_squash(squash("v2:" + kA, kB, 2));  // another format of the same image
  store_->put_squash(other);
  EXPECT_EQ(store_->delete_squash_of_manifest(kA), 2u);
  EXPECT_FALSE(store_->get_squash("v1:" + kA));
  EXPECT_FALSE(store_->get_squash("v2:" + kA));
  EXPECT_TRUE(store_->get_squash("v1:other")) << "another image's record went too";
  EXPECT_EQ(store_->delete_squash_of_manifest(kA), 0u);
}

TEST_P(MetaSuite, SquashCacheBytesCountEachSharedLayerAndGzipPieceOnce) {
  EXPECT_EQ(store_->squash_cache_bytes(), 0u);
  store_->put_squash(squash("v1:a", kB, 1));  // layer kB, 4096 bytes
  store_->put_squash(squash("v1:b", kB, 2));  // the same squashed bytes: counted once
  EXPECT_EQ(store_->squash_cache_bytes(), 4096u);
  auto big = squash("v1:c", kC, 3);
  big.layer_size = (uint64_t{1} << 34) + 5;
  store_->put_squash(big);
  store_->set_squash_gzip("v1:a", kA, 100, 1);
  store_->set_squash_gzip("v1:b", kA, 100, 1);  // the shared layer's one gzip piece
  EXPECT_EQ(store_->squash_cache_bytes(), 4096u + (uint64_t{1} << 34) + 5 + 100);
  store_->delete_squash("v1:c");
  EXPECT_EQ(store_->squash_cache_bytes(), 4096u + 100);
}

// ---- persisted layer indexes ---------------------------------------------

TEST_P(MetaSuite, LayerIndexRoundTripsAndIsReplacedByANewerOne) {
  EXPECT_FALSE(store_->get_layer_index(kA));
  store_->put_layer_index({kA, 3, kB, (uint64_t{1} << 34) + 1, ""});
  auto got = store_->get_layer_index(kA);
  ASSERT_TRUE(got);
  EXPECT_EQ(got->layer_digest, kA);
  EXPECT_EQ(got->format, 3u);
  EXPECT_EQ(got->index_digest, kB);
  EXPECT_EQ(got->entries, (uint64_t{1} << 34) + 1);
  EXPECT_EQ(got->states_digest, "");
  store_->put_layer_index({kA, 4, kC, 5, kD});
  got = store_->get_layer_index(kA);
  ASSERT_TRUE(got);
  EXPECT_EQ(got->format, 4u);
  EXPECT_EQ(got->index_digest, kC);
  EXPECT_EQ(got->entries, 5u);
  EXPECT_EQ(got->states_digest, kD);
  EXPECT_EQ(store_->indexed_layers(), std::vector<std::string>{kA});  // still one layer
  EXPECT_TRUE(store_->blob_in_use(kC));
  EXPECT_FALSE(store_->blob_in_use(kB));  // the replaced index's blob is collectable
}

TEST_P(MetaSuite, IndexedLayersListsEveryLayerAndForgetsDeletedOnes) {
  for (const auto& l : {kE, kA, kC}) store_->put_layer_index({l, 1, kB, 1, ""});
  EXPECT_EQ(sorted(store_->indexed_layers()), (std::vector<std::string>{kA, kC, kE}));
  store_->delete_layer_index(kC);
  EXPECT_NO_THROW(store_->delete_layer_index(kC));  // absent is fine
  EXPECT_NO_THROW(store_->delete_layer_index(kD));
  EXPECT_EQ(sorted(store_->indexed_layers()), (std::vector<std::string>{kA, kE}));
  EXPECT_TRUE(store_->get_layer_index(kA));
  EXPECT_FALSE(store_->get_layer_index(kC));
}

// ---- blob_in_use ---------------------------------------------------------

TEST_P(MetaSuite, BlobInUseCountsChildManifestsOfAnIndex) {
  // An index references child manifests by digest; they are in use too.
  store_->put_manifest("r", {kA, "application/vnd.oci.image.index.v1+json", "{}", "", "", ""}, {kB, kC}, {"multi"});
  EXPECT_TRUE(store_->blob_in_use(kB));
  EXPECT_TRUE(store_->blob_in_use(kC));
  EXPECT_FALSE(store_->blob_in_use(kD));
  EXPECT_TRUE(store_->delete_manifest("r", kA));
  EXPECT_FALSE(store_->blob_in_use(kB));
  EXPECT_FALSE(store_->blob_in_use(kC));
}

// ---- blob states: a commit and a removal of the same digest --------------

using Mark = meta::MetadataStore::Mark;

TEST_P(MetaSuite, AMarkIsRefusedWhileTheBlobIsInUse) {
  store_->link_blob("r", kA, 1);
  store_->put_squash(squash("v1:x", kB, 1));
  store_->put_layer_index({kE, 1, kC, 1, ""});
  store_->put_manifest("r", {kD, kOci, "{}", "", "", ""}, {dg('f')}, {});
  for (const auto& d : {kA, kB, kC, dg('f')}) EXPECT_EQ(store_->mark_blob_deleting(d, 1000, 1000), Mark::InUse) << d;
  EXPECT_TRUE(store_->unlink_blob("r", kA));
  EXPECT_EQ(store_->mark_blob_deleting(kA, 1000, 1000), Mark::Marked);  // nothing uses it now
}

// The remover's three steps in one call: the bytes are removed only when the
// mark is granted, and afterwards the blob has no state left.
TEST_P(MetaSuite, RemoveBlobIfUnusedRemovesOnlyWhatItMarked) {
  int removed = 0;
  auto remove = [&] { ++removed; };
  store_->link_blob("r", kA, 1);
  EXPECT_EQ(store_->remove_blob_if_unused(kA, unix_now() + 10, remove), Mark::InUse);
  EXPECT_TRUE(store_->try_claim_blob_write(kB, unix_now(), unix_now() - 60));
  EXPECT_EQ(store_->remove_blob_if_unused(kB, unix_now() - 100, remove), Mark::WrittenSince);
  EXPECT_EQ(removed, 0) << "bytes removed without a mark";
  EXPECT_EQ(store_->remove_blob_if_unused(kB, unix_now() + 10, remove), Mark::Marked);
  EXPECT_EQ(removed, 1);
  EXPECT_TRUE(store_->try_claim_blob_write(kB, unix_now(), unix_now() - 60)) << "the mark outlived the removal";
  // A failed removal leaves the mark: a writer waits for it, not for ever (it goes stale).
  EXPECT_ANY_THROW(store_->remove_blob_if_unused(kC, unix_now() + 10, [] { throw std::runtime_error("disk"); }));
  EXPECT_FALSE(store_->try_claim_blob_write(kC, unix_now(), unix_now() - 60));
}

TEST_P(MetaSuite, AnUnclaimedUnusedBlobIsMarkedOnceAndFreedByFinish) {
  EXPECT_EQ(store_->mark_blob_deleting(kA, 1000, 1000), Mark::Marked);
  EXPECT_EQ(store_->mark_blob_deleting(kA, 1000, 1001), Mark::Busy);  // another remover holds a mark
  EXPECT_EQ(store_->mark_blob_deleting(kB, 1000, 1001), Mark::Marked);  // per digest
  store_->finish_blob_delete(kA);
  EXPECT_EQ(store_->mark_blob_deleting(kA, 1000, 1002), Mark::Marked);  // its state went with it
}

TEST_P(MetaSuite, AClaimDatesTheLastWriteSoAnOlderCutoffCannotMark) {
  EXPECT_TRUE(store_->try_claim_blob_write(kA, 1000, 940));
  EXPECT_EQ(store_->mark_blob_deleting(kA, 1000, 1005), Mark::WrittenSince);  // written at the cutoff
  EXPECT_EQ(store_->mark_blob_deleting(kA, 900, 1005), Mark::WrittenSince);
  EXPECT_EQ(store_->mark_blob_deleting(kA, 1001, 1005), Mark::Marked);  // written before the cutoff
}

TEST_P(MetaSuite, AClaimFailsWhileARemoverHoldsAFreshMark) {
  ASSERT_EQ(store_->mark_blob_deleting(kA, 1000, 1000), Mark::Marked);
  EXPECT_FALSE(store_->try_claim_blob_write(kA, 1010, 1000));  // mark made at stale_before
  EXPECT_FALSE(store_->try_claim_blob_write(kA, 1010, 950));   // and after it
  EXPECT_TRUE(store_->try_claim_blob_write(kB, 1010, 950));    // another digest is free
  store_->finish_blob_delete(kA);
  EXPECT_TRUE(store_->try_claim_blob_write(kA, 1020, 960));  // the remover finished
  EXPECT_EQ(store_->mark_blob_deleting(kA, 1020, 1030), Mark::WrittenSince);
}

TEST_P(MetaSuite, AStaleMarkIsTakenOverByAClaim) {
  ASSERT_EQ(store_->mark_blob_deleting(kA, 100, 100), Mark::Marked);
  EXPECT_TRUE(store_->try_claim_blob_write(kA, 1000, 101));  // the mark is older than stale_before
  EXPECT_EQ(store_->mark_blob_deleting(kA, 1000, 1001), Mark::WrittenSince);  // the claim dated the write
}

TEST_P(MetaSuite, ClaimBlobWriteWaitsForTheRemoverToFinish) {
  ASSERT_EQ(store_->mark_blob_deleting(kA, unix_now(), unix_now()), Mark::Marked);
  std::atomic<bool> claimed{false};
  std::thread writer([&] {
    store_->claim_blob_write(kA);
    claimed = true;
  });
  std::this_thread::sleep_for(std::chrono::milliseconds(300));
  EXPECT_FALSE(claimed.load());  // still waiting on the mark
  store_->finish_blob_delete(kA);
  writer.join();
  EXPECT_TRUE(claimed.load());
  EXPECT_EQ(store_->mark_blob_deleting(kA, unix_now() - 1, unix_now()), Mark::WrittenSince);
}

TEST_P(MetaSuite, ClaimBlobWriteTakesOverTheMarkOfADeadRemover) {
  int64_t long_ago = unix_now() - meta::MetadataStore::kStaleDeleteMark - 30;
  ASSERT_EQ(store_->mark_blob_deleting(kA, long_ago, long_ago), Mark::Marked);
  store_->claim_blob_write(kA);  // returns: the mark is stale
  EXPECT_EQ(store_->mark_blob_deleting(kA, unix_now() - 1, unix_now()), Mark::WrittenSince);
}

TEST_P(MetaSuite, BlobStatesAreSharedWithASecondStore) {
  auto other = open();  // another process: its claim must stop our mark
  ASSERT_TRUE(other->try_claim_blob_write(kA, 1000, 940));
  EXPECT_EQ(store_->mark_blob_deleting(kA, 1000, 1001), Mark::WrittenSince);
  ASSERT_EQ(store_->mark_blob_deleting(kB, 1000, 1000), Mark::Marked);
  EXPECT_FALSE(other->try_claim_blob_write(kB, 1001, 950));
  EXPECT_EQ(other->mark_blob_deleting(kB, 1000, 1001), Mark::Busy);
}

// ---- durability, sharing, concurrency ------------------------------------

TEST_P(MetaSuite, EverythingSurvivesReopen) {
  store_->put_manifest("r", {kA, kOci, "{\"v\":1}", "", "", ""}, {kB}, {"v1"});
  store_->link_blob("r", kB, 33);
  store_->put_squash(squash("v1:" + kA, kC, 5));
  store_->set_squash_gzip("v1:" + kA, kD, 8, 9);
  store_->put_layer_index({kE, 2, kD, 3, ""});
  store_ = open();  // a restart
  EXPECT_TRUE(store_->repository_exists("r"));
  EXPECT_EQ(store_->resolve_tag("r", "v1").value(), kA);
  EXPECT_EQ(store_->get_manifest("r", kA)->body, "{\"v\":1}");
  EXPECT_EQ(store_->linked_blob_size("r", kB).value(), 33u);
  EXPECT_EQ(store_->get_squash("v1:" + kA)->gz_digest, kD);
  EXPECT_EQ(store_->get_layer_index(kE)->index_digest, kD);
}

TEST_P(MetaSuite, ChangesAreVisibleToASecondStoreOnTheSameData) {
  auto other = open();  // another process sharing the store
  other->put_manifest("r", {kA, kOci, "{}", "", "", ""}, {}, {"v1"});
  other->link_blob("r", kB, 4);
  other->create_upload({.id = "u", .repo = "r", .created = 1, .updated = 1}, meta::MetadataStore::Commit::Relaxed);
  other->put_squash(squash("v1:k", kC, 1));
  EXPECT_EQ(store_->resolve_tag("r", "v1").value(), kA);
  EXPECT_TRUE(store_->get_manifest("r", kA));
  EXPECT_EQ(store_->linked_blob_size("r", kB).value(), 4u);
  EXPECT_TRUE(store_->get_upload("u"));
  EXPECT_TRUE(store_->get_squash("v1:k"));
  store_->put_layer_index({kD, 1, kE, 1, ""});
  EXPECT_TRUE(other->get_layer_index(kD));
}

TEST_P(MetaSuite, ConcurrentTagPushesAllLand) {
  auto other = open();  // half the writers go through a second store, like a second process
  std::vector<std::thread> ts;
  for (int t = 0; t < 4; ++t)
    ts.emplace_back([&, t] {
      meta::MetadataStore& s = t % 2 ? *other : *store_;
      for (int i = 0; i < 10; ++i) {
        std::string tag = "t" + std::to_string(t) + "-" + std::to_string(i);
        s.put_manifest("r", {dg(static_cast<char>('0' + t)), kOci, "{}", "", "", ""}, {}, {tag});
      }
    });
  for (auto& t : ts) t.join();
  EXPECT_EQ(store_->tag_summary("r").count, 40u);
  EXPECT_EQ(store_->list_tags("r", "", 100).size(), 40u);
  EXPECT_EQ(store_->resolve_tag("r", "t3-9").value(), dg('3'));
}

TEST_P(MetaSuite, ProbeSucceedsOnAWorkingStore) {
  EXPECT_NO_THROW(store_->probe());
  store_->ensure_repository("r");
  EXPECT_NO_THROW(store_->probe());
}

INSTANTIATE_TEST_SUITE_P(Backends, MetaSuite, ::testing::ValuesIn(tb::meta_backend_names()),
                         [](const auto& info) { return tb::test_name(info.param); });

// ---- the caching wrapper's own promise -----------------------------------

// Changes made by another process (a tag moved, a manifest deleted) are seen
// within ttl_ms.
TEST(MetaCachedStore, SeesOtherWritersWithinTheTtl) {
  tb::TempDir dir("wharf-meta-cache");
  auto writer = meta::make_sqlite_store(dir.path() + "/meta.db");
  auto cached = meta::make_cached_store(meta::make_sqlite_store(dir.path() + "/meta.db"), 100);
  writer->put_manifest("r", {kA, kOci, "{}", "", "", ""}, {}, {"v1"});
  writer->put_manifest("r", {kB, kOci, "{}", "", "", ""}, {}, {});
  ASSERT_EQ(cached->resolve_tag("r", "v1").value(), kA);
  ASSERT_TRUE(cached->get_manifest("r", kB));
  writer->put_manifest("r", {kC, kOci, "{}", "", "", ""}, {}, {"v1"});  // moved elsewhere
  EXPECT_TRUE(writer->delete_manifest("r", kB));                        // deleted elsewhere
  std::this_thread::sleep_for(std::chrono::milliseconds(350));
  EXPECT_EQ(cached->resolve_tag("r", "v1").value(), kC);
  EXPECT_FALSE(cached->get_manifest("r", kB));
}

}  // namespace
