// Daemons sharing one PostgreSQL database (dispatcher/cluster_backend.hpp),
// as stores in one test process against a real server: a node id is held by
// one daemon at a time, a lapsed lease lets another node claim the runs, the
// old owner's late appends are fenced, queued runs wake the claimers, and a
// node that leaves hands its runs over at once.
#include "tests/dispatcher/journal_support.hpp"

#include <atomic>
#include <thread>

namespace {

using namespace luad::test::journal_support;
using luad::test::postgres_server;
using namespace std::chrono_literals;

cluster_options node(std::uint32_t id, std::chrono::milliseconds lease = 600ms) {
  cluster_options o;
  o.node = id;
  o.lease = lease;
  o.host = "test-" + std::to_string(id);
  o.capacity = 100;
  o.version = "test";
  return o;
}

std::vector<run_record> claim(storage& s, std::vector<std::string> live = {}) {
  answer<luad::runtime::result<std::vector<run_record>>> a;
  s.cluster()->claim(100, std::move(live), a.callback());
  auto got = a.take();
  REQUIRE_MESSAGE(got.ok(), got.error().message);
  return *got;
}

std::vector<std::string> renew(storage& s, std::vector<std::string> live) {
  answer<luad::runtime::result<std::vector<std::string>>> a;
  s.cluster()->renew(0, std::move(live), a.callback());
  auto got = a.take();
  REQUIRE_MESSAGE(got.ok(), got.error().message);
  return *got;
}

}  // namespace

TEST_CASE("cluster: a node id is held by one daemon; a restarted one waits out its lease") {
  std::string db = luad::test::shared_postgres().new_database();
  auto a = on_postgres(db), b = on_postgres(db);
  a->start();
  b->start();
  REQUIRE(a->cluster());
  REQUIRE(a->cluster()->join(node(1)).ok());
  // While a renews, b cannot become node 1.
  std::atomic<bool> renewing{true};
  std::thread keep([&] {
    while (renewing) {
      renew(*a, {});
      std::this_thread::sleep_for(150ms);
    }
  });
  auto t0 = std::chrono::steady_clock::now();
  luad::runtime::status taken = b->cluster()->join(node(1));
  renewing = false;
  keep.join();
  REQUIRE_FALSE(taken.ok());
  CHECK(taken.error().kind == error_kind::invalid);
  CHECK(has(taken.error().message, "node 1 is held by a running daemon on 'test-1'"));
  CHECK(std::chrono::steady_clock::now() - t0 >= 600ms);  // it waited a lease first
  // a stops renewing (as if killed): b gets node 1 once the lease lapses.
  REQUIRE(b->cluster()->join(node(1)).ok());
  auto nodes = b->cluster()->nodes();
  REQUIRE(nodes.ok());
  REQUIRE(nodes->size() == 1);
  CHECK(nodes->at(0).node == 1);
  CHECK(nodes->at(0).lease_left > 0);
  // a's renewals now fail: its node was taken over.
  answer<luad::runtime::result<std::vector<std::string>>> late;
  a->cluster()->renew(0, {}, late.callback());
  auto r = late.take();
  REQUIRE_FALSE(r.ok());
  CHECK(has(r.error().message, "node 1 was taken over by another daemon"));
}

TEST_CASE("cluster: a lapsed lease lets another node claim the run; the old owner is fenced") {
  std::string db = luad::test::shared_postgres().new_database();
  auto a = on_postgres(db), b = on_postgres(db);
  a->start();
  b->start();
  REQUIRE(a->cluster()->join(node(1)).ok());
  REQUIRE(b->cluster()->join(node(2)).ok());
  REQUIRE(create(*a, "r").ok());
  REQUIRE(append(*a, entry("r", 0, value("a0"))).ok());
  CHECK(postgres_server::scalar(db, "SELECT node || '/' || epoch FROM luad_runs") == "1/1");
  // While a's lease holds, b claims nothing and may not take it.
  CHECK(claim(*b).empty());
  auto refused = b->cluster()->take("r");
  REQUIRE_FALSE(refused.ok());
  CHECK(has(refused.error().message, "run r runs on node 1"));
  // a stops renewing (paused); b keeps renewing and claims the run.
  std::vector<run_record> got;
  REQUIRE(eventually([&] {
    renew(*b, {});
    got = claim(*b);
    return !got.empty();
  }));
  REQUIRE(got.size() == 1);
  CHECK(got[0].id == "r");
  CHECK(got[0].node == 2);
  CHECK(got[0].epoch == 2);
  CHECK(got[0].steps == 1);
  // a wakes: its late append is refused, and nothing of it lands.
  status late = append(*a, entry("r", 1, value("a1")));
  REQUIRE_FALSE(late.ok());
  CHECK(late.error().kind == error_kind::canceled);
  CHECK(has(late.error().message, "owned by node 2 now"));
  CHECK(has(late.error().message, std::string(fenced_marker)));
  status state = set_state(*a, "r", run_state::completed, "{}");
  REQUIRE_FALSE(state.ok());
  CHECK(has(state.error().message, std::string(fenced_marker)));
  // Its renewal says the run is lost; b goes on from step 1.
  CHECK(renew(*a, {"r"}) == std::vector<std::string>{"r"});
  REQUIRE(append(*b, entry("r", 1, value("b1"))).ok());
  auto h = b->history("r");
  REQUIRE(h.ok());
  REQUIRE(h->size() == 2);
  CHECK(h->at(1).result == encoded(value("b1")));
  CHECK(renew(*b, {"r"}).empty());
}

TEST_CASE("cluster: a node whose own lease lapsed claims back only the runs it is not running") {
  // Found under load (5 Dec): a node cut off from PostgreSQL past its lease
  // claimed its own running runs again; the new epochs made a renewal already
  // under way report them lost, so it killed them while the database still
  // named it their owner, and they never ran again.
  std::string db = luad::test::shared_postgres().new_database();
  auto a = on_postgres(db);
  a->start();
  REQUIRE(a->cluster()->join(node(1)).ok());
  REQUIRE(create(*a, "r").ok());  // running here
  REQUIRE(create(*a, "q").ok());  // its process gone: nobody runs it
  // a does not renew: once its lease lapses, its claim finds q, never r.
  std::vector<run_record> got;
  REQUIRE(eventually([&] {
    got = claim(*a, {"r"});
    return !got.empty();
  }));
  REQUIRE(got.size() == 1);
  CHECK(got[0].id == "q");
  CHECK(got[0].epoch == 2);
  CHECK(postgres_server::scalar(db, "SELECT node || '/' || epoch FROM luad_runs WHERE id = 'r'") ==
        "1/1");
  // Its renewal keeps both: nothing it runs was taken from under it.
  CHECK(renew(*a, {"r", "q"}).empty());
}

TEST_CASE("cluster: a queued run wakes the other nodes; a leaving node hands its runs over") {
  std::string db = luad::test::shared_postgres().new_database();
  auto a = on_postgres(db), b = on_postgres(db);
  a->start();
  b->start();
  REQUIRE(a->cluster()->join(node(1, 10s)).ok());
  REQUIRE(b->cluster()->join(node(2, 10s)).ok());
  std::atomic<int> woken{0};
  b->cluster()->on_claimable([&] { ++woken; });
  REQUIRE(eventually([&] { return woken.load() >= 1; }));  // (its listener connected)
  int before = woken.load();
  run_record q = run_named("queued");
  q.queued = true;
  answer<status> made;
  a->create_run(q, made.callback());
  REQUIRE(made.take().ok());
  REQUIRE(eventually([&] { return woken.load() > before; }));
  auto got = claim(*b);
  REQUIRE(got.size() == 1);
  CHECK(got[0].id == "queued");
  CHECK(got[0].epoch == 1);
  CHECK(claim(*a).empty());

  REQUIRE(create(*a, "mine").ok());
  CHECK(claim(*b).empty());  // a's lease holds for 10 s
  before = woken.load();
  a->cluster()->leave();
  REQUIRE(eventually([&] { return woken.load() > before; }));
  got = claim(*b);
  REQUIRE(got.size() == 1);
  CHECK(got[0].id == "mine");
  CHECK(got[0].epoch == 2);
  auto nodes = b->cluster()->nodes();
  REQUIRE(nodes.ok());
  REQUIRE(nodes->size() == 2);
  CHECK(nodes->at(0).left);
  CHECK(nodes->at(1).runs == 2);
  // A single daemon's database has no cluster.
  luad::test::temp_dir d("luad_cluster");
  storage lone(d.path().string());
  CHECK(lone.cluster() == nullptr);
}
