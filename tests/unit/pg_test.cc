// What only the PostgreSQL backend has to show beyond the shared suites:
// its schema migrations (a newer schema one additive step ahead works, more
// or a breaking one is refused by name), connections that die (replaced, the
// read retried), names taken by concurrent requests (meta::Conflict, as
// SQLite gives), serialized read-then-write methods under concurrency, and a
// server that cannot be reached (a clear error). Runs against the server
// WHARF_TEST_PG_DSN names (scripts/test.sh starts one); without it the tests
// fail, so a run that forgets the server cannot pass unnoticed.
#include <gtest/gtest.h>
#include <libpq-fe.h>

#include <atomic>
#include <chrono>
#include <cstdlib>
#include <mutex>
#include <random>
#include <thread>
#include <vector>

#include "meta/pg_store.h"

using namespace wharf;

namespace {

std::string dsn() {
  const char* d = std::getenv("WHARF_TEST_PG_DSN");
  return d ? d : "";
}

// A schema of its own per test.
meta::pg::Options options() {
  static std::atomic<int> n{0};
  meta::pg::Options o;
  o.dsn = dsn();
  o.schema = "pgtest_" + std::to_string(::getpid()) + "_" + std::to_string(n++) + "_" +
             std::to_string(std::random_device{}() % 100000);
  o.pool_size = 4;
  return o;
}

// Runs `sql` on a connection of its own; returns the first value ("" when
// none).
std::string sql(const meta::pg::Options& o, const std::string& q) {
  PGconn* c = PQconnectdb(o.dsn.c_str());
  EXPECT_EQ(PQstatus(c), CONNECTION_OK) << PQerrorMessage(c);
  PQclear(PQexec(c, ("SET search_path = " + o.schema).c_str()));
  PGresult* r = PQexec(c, q.c_str());
  EXPECT_TRUE(PQresultStatus(r) == PGRES_TUPLES_OK || PQresultStatus(r) == PGRES_COMMAND_OK)
      << PQresultErrorMessage(r) << " in " << q;
  std::string out = PQntuples(r) > 0 ? PQgetvalue(r, 0, 0) : "";
  PQclear(r);
  PQfinish(c);
  return out;
}

class Pg : public ::testing::Test {
 protected:
  void SetUp() override { ASSERT_FALSE(dsn().empty()) << "set WHARF_TEST_PG_DSN (scripts/test.sh starts a server)"; }
};

TEST_F(Pg, SchemaOneAdditiveVersionAheadStillOpens) {
  auto o = options();
  { auto s = meta::make_pg_store(o); }
  sql(o,
      "INSERT INTO schema_version(version, breaking, applied) SELECT "
      "max(version) + 1, false, 0 FROM schema_version");
  EXPECT_NO_THROW(meta::make_pg_store(o)) << "a rolling upgrade: the newer release added a version";
}

TEST_F(Pg, SchemaTwoVersionsAheadIsRefusedByName) {
  auto o = options();
  { auto s = meta::make_pg_store(o); }
  sql(o,
      "INSERT INTO schema_version(version, breaking, applied) SELECT "
      "max(version) + 1, false, 0 FROM schema_version");
  sql(o,
      "INSERT INTO schema_version(version, breaking, applied) SELECT "
      "max(version) + 1, false, 0 FROM schema_version");
  try {
    meta::make_pg_store(o);
    FAIL() << "opened a schema two versions ahead";
  } catch (const std::runtime_error& e) {
    EXPECT_NE(std::string(e.what()).find("schema_version"), std::string::npos) << e.what();
    EXPECT_NE(std::string(e.what()).find("upgrade"), std::string::npos) << e.what();
  }
}

TEST_F(Pg, BreakingVersionAheadIsRefused) {
  auto o = options();
  { auto s = meta::make_pg_accounts(o); }
  sql(o,
      "INSERT INTO account_schema_version(version, breaking, applied) "
      "SELECT max(version) + 1, true, 0 FROM account_schema_version");
  try {
    meta::make_pg_accounts(o);
    FAIL() << "opened a schema with a breaking version ahead";
  } catch (const std::runtime_error& e) {
    EXPECT_NE(std::string(e.what()).find("incompatible"), std::string::npos) << e.what();
  }
}

TEST_F(Pg, ReplicasStartingTogetherMigrateOnce) {
  auto o = options();
  std::vector<std::thread> ts;
  std::atomic<int> failed{0};
  for (int i = 0; i < 6; ++i)
    ts.emplace_back([&] {
      try {
        auto s = meta::make_pg_store(o);
        auto a = meta::make_pg_accounts(o);
      } catch (...) {
        ++failed;
      }
    });
  for (auto& t : ts) t.join();
  EXPECT_EQ(failed, 0);
  // each version applied once: one row per version, none twice
  EXPECT_EQ(sql(o, "SELECT count(*) = count(DISTINCT version) AND count(*) = max(version) FROM schema_version"), "t");
}

TEST_F(Pg, DeadConnectionIsReplacedAndTheReadRetried) {
  auto o = options();
  o.pool_size = 1;
  o.application_name = o.schema;  // this store's connections alone: other tests run beside it (ctest -j2)
  auto s = meta::make_pg_store(o);
  s->ensure_repository("ns/r");
  // Every connection of this store dies (a server restart, a proxy timing
  // out idle connections).
  EXPECT_EQ(sql(o,
                "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity WHERE "
                "application_name = '" + o.schema + "' AND pid <> pg_backend_pid()"),
            "1");
  EXPECT_TRUE(s->repository_exists("ns/r"));
  s->link_blob("ns/r", "sha256:aa", 3);  // a write after it works too
  EXPECT_EQ(s->linked_blob_size("ns/r", "sha256:aa"), 3u);
}

// MetadataStore::try_hold: what keeps two replicas from writing one upload
// session at once.
TEST_F(Pg, HoldIsExclusiveAcrossProcessesAndEndsWithItsConnection) {
  auto o = options();
  o.application_name = o.schema + "_a";
  auto a = meta::make_pg_store(o);
  auto ob = o;
  ob.application_name = o.schema + "_b";  // "another process": a store of its own on the same schema
  auto b = meta::make_pg_store(ob);
  auto held = a->try_hold("upload:x");
  ASSERT_TRUE(held);
  EXPECT_FALSE(held->lost());
  EXPECT_EQ(b->try_hold("upload:x"), nullptr) << "two stores held one name";
  EXPECT_TRUE(b->try_hold("upload:y")) << "another name is free";
  EXPECT_TRUE(meta::make_pg_store(options())->try_hold("upload:x")) << "the name is held in another schema too";
  held.reset();
  auto hb = b->try_hold("upload:x");
  ASSERT_TRUE(hb) << "released, yet still held";
  EXPECT_EQ(a->try_hold("upload:x"), nullptr);
  // b's connections die (its process died, or the server restarted): its hold
  // ends with them, and says so.
  EXPECT_NE(sql(o, "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity WHERE application_name = '" +
                       ob.application_name + "'"),
            "0");
  std::unique_ptr<meta::MetadataStore::Hold> taken;
  for (int i = 0; i < 100 && !taken; ++i) {  // the server ends the terminated backend asynchronously
    taken = a->try_hold("upload:x");
    if (!taken) std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
  EXPECT_TRUE(taken) << "the hold of a dead connection was not released";
  EXPECT_TRUE(hb->lost());
  EXPECT_FALSE(taken->lost());
}

// Periodic work (upload expiry, session purge) runs once per interval among
// the replicas: the claim succeeds for one store at a time, also when many
// ask at once.
TEST_F(Pg, PeriodicWorkIsClaimedOncePerInterval) {
  auto o = options();
  auto a = meta::make_pg_store(o), b = meta::make_pg_store(o);
  EXPECT_TRUE(a->claim_periodic("expire", 1000, "a")) << "never run: the first claim must win";
  EXPECT_FALSE(b->claim_periodic("expire", 1000, "b")) << "run by a just now";
  EXPECT_FALSE(a->claim_periodic("expire", 1000, "a"));
  EXPECT_TRUE(b->claim_periodic("other", 1000, "b")) << "another job is claimed on its own";
  std::this_thread::sleep_for(std::chrono::milliseconds(1100));
  EXPECT_TRUE(b->claim_periodic("expire", 1000, "b")) << "an interval passed";
  EXPECT_EQ(sql(o, "SELECT replica FROM periodic_runs WHERE name = 'expire'"), "b");
  std::atomic<int> won{0};
  std::vector<std::thread> ts;
  for (int i = 0; i < 8; ++i)
    ts.emplace_back([&, i] {
      if ((i % 2 ? a : b)->claim_periodic("race", 60000, i % 2 ? "a" : "b")) ++won;
    });
  for (auto& t : ts) t.join();
  EXPECT_EQ(won.load(), 1) << "concurrent claims of one job";
}

// The squash builder's record: what a replica that cannot take a build's
// lease reads to relay the builder's stream; cleared only by its writer.
TEST_F(Pg, SquashBuilderRecordIsSharedAndClearedByItsWriter) {
  auto o = options();
  auto a = meta::make_pg_store(o), b = meta::make_pg_store(o);
  EXPECT_FALSE(b->squash_builder("v3:sha256:x"));
  a->set_squash_builder("v3:sha256:x", "a", "10.0.0.1:5000");
  EXPECT_EQ(b->squash_builder("v3:sha256:x").value_or(""), "10.0.0.1:5000");
  b->clear_squash_builder("v3:sha256:x", "b");  // not b's record
  EXPECT_EQ(b->squash_builder("v3:sha256:x").value_or(""), "10.0.0.1:5000");
  b->set_squash_builder("v3:sha256:x", "b", "10.0.0.2:5000");  // a newer lease holder replaces a dead one's
  a->clear_squash_builder("v3:sha256:x", "a");
  EXPECT_EQ(a->squash_builder("v3:sha256:x").value_or(""), "10.0.0.2:5000");
  b->clear_squash_builder("v3:sha256:x", "b");
  EXPECT_FALSE(a->squash_builder("v3:sha256:x"));
}

// Another process's tag write reaches a watching process (its cache drops
// the repository's entries) within milliseconds; a watch whose connection
// dies says "anything may have changed" and listens again.
TEST_F(Pg, ChangesByAnotherProcessAreNotifiedAndALostWatchSaysSo) {
  auto o = options();
  auto ow = o;
  ow.application_name = o.schema + "_w";
  auto w = meta::make_pg_store(ow), other = meta::make_pg_store(o);
  std::mutex mu;
  std::vector<std::string> seen;
  w->watch_changes([&](std::string_view repo) {
    std::lock_guard lk(mu);
    seen.emplace_back(repo);
  });
  auto wait_for = [&](const std::string& want) {
    for (int i = 0; i < 250; ++i) {
      {
        std::lock_guard lk(mu);
        for (auto& s : seen)
          if (s == want) return true;
      }
      std::this_thread::sleep_for(std::chrono::milliseconds(20));
    }
    return false;
  };
  std::this_thread::sleep_for(std::chrono::milliseconds(300));  // the watch's LISTEN is in place
  const std::string d(64, 'a');
  other->put_manifest("ns/app", {"sha256:" + d, "application/vnd.oci.image.manifest.v1+json", "{}", "", "", ""}, {},
                      {"v1"});
  EXPECT_TRUE(wait_for("ns/app")) << "a tag pushed by another process was not notified";
  // another schema's changes are not ours
  auto elsewhere = meta::make_pg_store(options());
  elsewhere->put_manifest("ns/else", {"sha256:" + d, "application/vnd.oci.image.manifest.v1+json", "{}", "", "", ""},
                          {}, {"v1"});
  other->delete_tag("ns/app2", "v1");
  EXPECT_TRUE(wait_for("ns/app2"));
  {
    std::lock_guard lk(mu);
    for (auto& s : seen) EXPECT_NE(s, "ns/else") << "a change in another schema was notified";
  }
  // the watch's connection dies: "" (anything may have changed), then it listens again
  sql(o, "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity WHERE application_name = '" +
             ow.application_name + "' AND query ILIKE 'LISTEN%'");
  EXPECT_TRUE(wait_for("")) << "a lost watch did not say so";
  std::this_thread::sleep_for(std::chrono::milliseconds(1500));  // reconnected
  other->delete_manifest("ns/app3", "sha256:" + d);
  EXPECT_TRUE(wait_for("ns/app3")) << "the watch did not listen again after its connection died";
  w->watch_changes({});
}

TEST_F(Pg, NameTakenByConcurrentRequestIsConflict) {
  auto o = options();
  auto a = meta::make_pg_accounts(o);
  std::atomic<int> ok{0}, conflict{0}, other{0};
  std::vector<std::thread> ts;
  for (int i = 0; i < 8; ++i)
    ts.emplace_back([&, i] {
      try {
        meta::Account acc;
        acc.name = "taken";
        acc.email = "x" + std::to_string(i);
        a->create_account(acc);
        ++ok;
      } catch (const meta::Conflict&) {
        ++conflict;
      } catch (...) {
        ++other;
      }
    });
  for (auto& t : ts) t.join();
  EXPECT_EQ(ok, 1);
  EXPECT_EQ(conflict, 7);
  EXPECT_EQ(other, 0);
}

TEST_F(Pg, ConcurrentClaimAndMarkNeverBothWin) {
  // A writer's claim and a remover's mark of the same digest race from two
  // stores (two replicas). The claim dates the write at 1000 and the mark
  // spares blobs written at or after 1000: whichever runs first, exactly
  // one of them may win, never both (the bytes would be removed under a
  // commit) — SQLite's single writer gave this; here SERIALIZABLE does.
  auto o = options();
  auto a = meta::make_pg_store(o), b = meta::make_pg_store(o);
  int claims = 0, marks = 0;
  for (int i = 0; i < 40; ++i) {
    std::string d = "sha256:race" + std::to_string(i);
    bool claimed = false;
    meta::MetadataStore::Mark mark{};
    std::thread t1([&] { claimed = a->try_claim_blob_write(d, 1000, 0); });
    std::thread t2([&] { mark = b->mark_blob_deleting(d, 1000, 1000); });
    t1.join();
    t2.join();
    bool marked = mark == meta::MetadataStore::Mark::Marked;
    EXPECT_FALSE(claimed && marked) << d;
    EXPECT_TRUE(claimed || marked) << d;
    claims += claimed;
    marks += marked;
  }
  std::printf("claims won %d, marks won %d of 40 races\n", claims, marks);
}

TEST_F(Pg, UnreachableServerIsAClearError) {
  meta::pg::Options o;
  o.dsn = "host=127.0.0.1 port=1 dbname=none user=none";
  o.connect_timeout_seconds = 2;
  try {
    meta::make_pg_store(o);
    FAIL() << "connected to nothing";
  } catch (const std::runtime_error& e) {
    EXPECT_NE(std::string(e.what()).find("cannot connect"), std::string::npos) << e.what();
  }
}

}  // namespace
