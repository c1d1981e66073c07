// The shared MetadataStore suite: every backend (and the caching wrapper)
// must pass it. Today SQLite; PostgreSQL joins with the same suite.
#include <gtest/gtest.h>

#include <filesystem>
#include <thread>

#include "meta/sqlite_store.h"
#include "meta/metadata_store.h"

using namespace wharf;

namespace {

const std::string kA = "sha256:" + std::string(64, 'a');
const std::string kB = "sha256:" + std::string(64, 'b');
const std::string kC = "sha256:" + std::string(64, 'c');

class MetaSuite : public ::testing::TestWithParam<std::string> {
 protected:
  void SetUp() override {
    path_ = std::filesystem::temp_directory_path() /
            ("wharf-meta-" + std::to_string(::getpid()) + "-" +
             std::to_string(reinterpret_cast<uintptr_t>(this)) + ".db");
    std::filesystem::remove(path_);
    store_ = open();
  }
  void TearDown() override {
    store_.reset();
    for (auto s : {"", "-wal", "-shm"}) std::filesystem::remove(path_.string() + s);
  }
  std::unique_ptr<meta::MetadataStore> open() {
    auto s = meta::make_sqlite_store(path_.string());
    if (GetParam() == "sqlite+cache") s = meta::make_cached_store(std::move(s), 60000);
    return s;
  }
  std::filesystem::path path_;
  std::unique_ptr<meta::MetadataStore> store_;
};

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
  store_->create_upload({"u1", "r", 100, 100}, meta::MetadataStore::Commit::Durable);
  store_->create_upload({"u2", "r", 100, 100}, meta::MetadataStore::Commit::Relaxed);
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

INSTANTIATE_TEST_SUITE_P(Backends, MetaSuite, ::testing::Values("sqlite", "sqlite+cache"),
                         [](const auto& info) { return info.param == "sqlite" ? std::string("sqlite") : std::string("sqlite_cache"); });

}  // namespace

namespace {
TEST_P(MetaSuite, CompleteUploadLinksAndForgetsTheSession) {
  store_->create_upload({"u9", "r", 1, 1}, meta::MetadataStore::Commit::Durable);
  store_->complete_upload("u9", "r", kB, 77);
  EXPECT_FALSE(store_->get_upload("u9"));
  EXPECT_EQ(store_->linked_blob_size("r", kB).value(), 77u);
}
}  // namespace
