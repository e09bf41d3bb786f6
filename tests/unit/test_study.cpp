// Study expansion (cartesian axes, zipped axes, exclusions, dedup, ids), its error messages,
// the JSON index (rebuilt from run files, indexes of earlier versions).
#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <functional>
#include <initializer_list>
#include <string>
#include <vector>

#include "io/run_file.hpp"
#include "study/index.hpp"
#include "study/study.hpp"

using namespace moe;
namespace fs = std::filesystem;

namespace {

// A fresh directory per test, so parallel tests never share files.
std::string test_dir() {
  const auto* info = ::testing::UnitTest::GetInstance()->current_test_info();
  const fs::path d = fs::path(::testing::TempDir()) /
                     (std::string("moe_study_") + info->test_suite_name() + "_" + info->name());
  fs::remove_all(d);
  fs::create_directories(d);
  return d.string();
}

std::string write_study(const std::string& text, const std::string& name = "s.toml") {
  static std::string dir;
  dir = test_dir();
  const std::string path = (fs::path(dir) / name).string();
  std::ofstream(path) << text;
  return path;
}

// Tiny, valid base so that every point passes load_config.
const char* kBase = R"(
[base.model]
d_model = 32
n_heads = 2
top_k = 1
[base.train]
steps = 5
)";

std::vector<std::string> ids(const Study& s) {
  std::vector<std::string> out;
  for (const StudyPoint& p : s.points) out.push_back(p.id);
  return out;
}

// Loads and returns the UserError message after checking it is one line holding every
// fragment; fails if nothing was thrown.
std::string expect_error(const std::string& text, std::initializer_list<std::string> fragments) {
  const std::string path = write_study(text);
  try {
    load_study(path);
  } catch (const UserError& e) {
    const std::string msg = e.what();
    EXPECT_EQ(msg.find('\n'), std::string::npos) << msg;
    for (const std::string& f : fragments) EXPECT_NE(msg.find(f), std::string::npos) << msg;
    return msg;
  }
  ADD_FAILURE() << "no UserError for:\n" << text;
  return "";
}

}  // namespace

TEST(Study, CartesianProductFirstAxisSlowest) {
  const std::string path = write_study(std::string("[study]\nname = \"cart\"\n") + kBase + R"(
[[axis]]
key = "router.type"
values = ["topk", "hash"]
[[axis]]
key = "model.num_experts"
values = [2, 4, 8]
)");
  const Study s = load_study(path);
  EXPECT_EQ(s.name, "cart");
  EXPECT_EQ(s.output_dir, "runs/cart");
  EXPECT_EQ(s.ranks_per_run, 1);
  EXPECT_EQ(s.keys, (std::vector<std::string>{"router.type", "model.num_experts"}));
  EXPECT_EQ(ids(s),
            (std::vector<std::string>{"type-topk_num_experts-2", "type-topk_num_experts-4",
                                      "type-topk_num_experts-8", "type-hash_num_experts-2",
                                      "type-hash_num_experts-4", "type-hash_num_experts-8"}));
  EXPECT_EQ(s.points[4].file, "type-hash_num_experts-4.h5");
  EXPECT_EQ(describe_params(s.points[4].params), "router.type=hash model.num_experts=4");
  const Config c = point_config(s, s.points[4]);
  EXPECT_EQ(c.router.type, "hash");
  EXPECT_EQ(c.model.num_experts, 4);
  EXPECT_EQ(c.model.d_model, 32);
  EXPECT_EQ(c.train.steps, 5);
  EXPECT_EQ(c.output.path, "runs/cart/type-hash_num_experts-4.h5");
}

TEST(Study, IdsFollowFileOrderAndAreStable) {
  // The spec's example: router.type=moec, model.num_experts=8, train.seed=1.
  const std::string text = std::string(kBase) + R"(
[[axis]]
key = "router.type"
values = ["moec"]
[[axis]]
key = "model.num_experts"
values = [8]
[[axis]]
key = "train.seed"
values = [1]
[base.router]
cluster_size = 4
)";
  const Study a = load_study(write_study(text));
  const Study b = load_study(write_study(text));
  ASSERT_EQ(a.points.size(), 1u);
  EXPECT_EQ(a.points[0].id, "type-moec_num_experts-8_seed-1");
  EXPECT_EQ(ids(a), ids(b));
  EXPECT_EQ(a.name, "s");  // the file's stem without [study] name
}

TEST(Study, ValuesAreSanitisedAndFloatsShort) {
  const Study s = load_study(write_study(std::string(kBase) + R"(
[[axis]]
key = "train.lr"
values = [0.001, 3e-4, 1.0]
[[axis]]
key = "data.path"
values = ["a b/c_d.txt"]
[[axis]]
key = "router.normalize_gates"
values = [true]
)"));
  EXPECT_EQ(ids(s), (std::vector<std::string>{"lr-0.001_path-a-b-c-d.txt_normalize_gates-true",
                                              "lr-0.0003_path-a-b-c-d.txt_normalize_gates-true",
                                              "lr-1_path-a-b-c-d.txt_normalize_gates-true"}));
  EXPECT_DOUBLE_EQ(point_config(s, s.points[1]).train.lr, 3e-4);
  EXPECT_EQ(point_config(s, s.points[0]).data.path, "a b/c_d.txt");
  EXPECT_TRUE(point_config(s, s.points[0]).router.normalize_gates);
}

// Issue 16, case 9: 1e-30 and 1e30 once both became "lr-1e-30" ('+' sanitised to '-').
TEST(StudyIds, DistinctFloatsGiveDistinctIds) {
  const Study s = load_study(write_study(std::string(kBase) + R"(
[[axis]]
key = "train.lr"
values = [1e-30, 1e30, 1.5e+300, 100000.0, 0.1]
)"));
  EXPECT_EQ(ids(s),
            (std::vector<std::string>{"lr-1e-30", "lr-1e30", "lr-1.5e300", "lr-1e05", "lr-0.1"}));
  EXPECT_EQ(point_config(s, s.points[1]).train.lr, 1e30);
}

// Ids over 200 bytes keep their first 183 bytes and end in '_' + the FNV-1a 64 hash of the full
// id (expected values computed independently, in Python); distinct long values stay distinct.
TEST(StudyIds, LongIdsAreBoundedWithAStableHash) {
  const std::string a300(300, 'a');
  const Study s =
      load_study(write_study(std::string(kBase) + "[[axis]]\nkey = \"data.cache_dir\"\n" +
                             "values = [\"" + a300 + "1\", \"" + a300 + "2\", \"x\"]\n"));
  const std::string head = "cache_dir-" + std::string(173, 'a');
  EXPECT_EQ(ids(s), (std::vector<std::string>{head + "_f72123b81f16fd07",
                                              head + "_f72124b81f16feba", "cache_dir-x"}));
  EXPECT_EQ(s.points[0].id.size(), 200u);
  EXPECT_EQ(s.points[0].file, s.points[0].id + ".h5");
  EXPECT_EQ(point_config(s, s.points[1]).data.cache_dir, a300 + "2");
}

// Two values that sanitise to the same text are refused when the study loads, naming both.
TEST(StudyIds, CollidingIdsAreRefusedAtLoad) {
  const std::string msg =
      expect_error(std::string(kBase) + R"(
[[axis]]
key = "data.cache_dir"
values = ["a b", "a/b"]
)",
                   {"s.toml", "data.cache_dir=a b", "data.cache_dir=a/b", "cache_dir-a-b"});
  EXPECT_FALSE(msg.empty());
}

TEST(Study, SharedShortKeysUseTheFullKey) {
  const Study s = load_study(write_study(std::string(kBase) + R"(
[[axis]]
key = "train.eval_batches"
values = [2]
[[axis]]
key = "model.num_experts"
values = [4]
[[axis]]
key = "train.steps"
values = [3]
)"));
  EXPECT_EQ(s.points[0].id, "eval_batches-2_num_experts-4_steps-3");
  const Study t = load_study(write_study(std::string(kBase) + R"(
[[zip]]
keys = ["data.val_tokens", "data.train_tokens"]
values = [[4096, 100000]]
[[axis]]
key = "train.seed"
values = [7]
)"));
  // (Two swept keys sharing a last component would both show in full; in the schema only
  // data.path and output.path do, and output.path is not sweepable.)
  EXPECT_EQ(t.points[0].id, "val_tokens-4096_train_tokens-100000_seed-7");
}

TEST(Study, ZipExcludeDropAndDedup) {
  const Study s = load_study(write_study(std::string(kBase) + R"(
[[axis]]
key = "model.num_experts"
values = [1, 4]
[[zip]]
keys = ["router.type", "router.cluster_size"]
values = [["topk", 0], ["hash", 0], ["moec", 2]]
[[axis]]
key = "train.seed"
values = [1, 2]
[[exclude]]
where = { "router.type" = ["topk", "hash"] }
drop = ["router.cluster_size"]
[[exclude]]
where = { model = { num_experts = 1 } }     # nested form of "model.num_experts"
drop = ["router.type", "router.cluster_size"]
)"));
  // num_experts = 1: the three routers collapse into one dense point per seed.
  EXPECT_EQ(ids(s),
            (std::vector<std::string>{
                "num_experts-1_seed-1", "num_experts-1_seed-2", "num_experts-4_type-topk_seed-1",
                "num_experts-4_type-topk_seed-2", "num_experts-4_type-hash_seed-1",
                "num_experts-4_type-hash_seed-2", "num_experts-4_type-moec_cluster_size-2_seed-1",
                "num_experts-4_type-moec_cluster_size-2_seed-2"}));
  const Config dense = point_config(s, s.points[0]);
  EXPECT_EQ(dense.router.type, "topk");  // the base's (default) router
  EXPECT_EQ(dense.model.num_experts, 1);
  const Config moec = point_config(s, s.points[7]);
  EXPECT_EQ(moec.router.cluster_size, 2);
  EXPECT_EQ(moec.train.seed, 2u);
}

TEST(Study, SkipDropsPoints) {
  const Study s = load_study(write_study(std::string(kBase) + R"(
[[axis]]
key = "router.type"
values = ["topk", "hash"]
[[axis]]
key = "model.num_experts"
values = [2, 4]
[[exclude]]
where = { "router.type" = "hash", "model.num_experts" = 2.0 }   # 2.0 matches the integer 2
skip = true
)"));
  EXPECT_EQ(ids(s), (std::vector<std::string>{"type-topk_num_experts-2", "type-topk_num_experts-4",
                                              "type-hash_num_experts-4"}));
}

TEST(Study, NoAxesIsOnePoint) {
  const Study s = load_study(write_study(kBase));
  ASSERT_EQ(s.points.size(), 1u);
  EXPECT_EQ(s.points[0].id, "base");
}

TEST(Study, BaseFileRelativeToTheStudyAndScale) {
  const std::string path = write_study(R"(
[study]
name = "rel"
output_dir = "out/rel"
ranks_per_run = 2
base = "sub/base.toml"   # under [study] too (TOML puts it there when written after [study])
[[axis]]
key = "model.num_experts"
values = [2]
[scale]
output_dir = "out/big"
ranks_per_run = 4
[scale.model]
d_model = 64
)");
  fs::create_directories(fs::path(path).parent_path() / "sub");
  std::ofstream(fs::path(path).parent_path() / "sub" / "base.toml")
      << "[model]\nd_model = 48\nn_heads = 2\n[train]\nsteps = 7\n";
  const Study s = load_study(path);
  EXPECT_EQ(s.output_dir, "out/rel");
  EXPECT_EQ(s.ranks_per_run, 2);
  EXPECT_FALSE(s.scaled);
  EXPECT_EQ(point_config(s, s.points[0]).model.d_model, 48);
  EXPECT_EQ(point_config(s, s.points[0]).train.steps, 7);
  const Study big = load_study(path, true);
  EXPECT_TRUE(big.scaled);
  EXPECT_EQ(big.output_dir, "out/big");
  EXPECT_EQ(big.ranks_per_run, 4);
  EXPECT_EQ(point_config(big, big.points[0]).model.d_model, 64);
  EXPECT_EQ(point_config(big, big.points[0]).train.steps, 7);
  EXPECT_EQ(ids(big), ids(s));
}

TEST(Study, ScaleDefaultOutputDir) {
  const Study s = load_study(write_study(std::string(kBase) + "[scale.train]\nsteps = 50\n"), true);
  EXPECT_EQ(s.output_dir, "runs/s-scale");
  EXPECT_EQ(point_config(s, s.points[0]).train.steps, 50);
}

TEST(StudyErrors, OneLineNamingWhere) {
  expect_error("[study\nname = 1", {"s.toml:1", "TOML parse error"});
  expect_error("[sweep]\nx = 1", {"s.toml:1", "unknown table 'sweep'", "[[axis]]"});
  expect_error("[study]\nname = \"a b\"", {"s.toml:2", "study.name"});
  expect_error("[study]\nranks_per_run = 0", {"ranks_per_run", ">= 1"});
  expect_error("[study]\ncolor = 1", {"unknown key 'color'", "output_dir"});
  expect_error("base = \"missing.toml\"", {"s.toml:1", "missing.toml", "relative to the study"});
  expect_error("[[axis]]\nkey = \"model.num_experts\"", {"s.toml:1", "values"});
  expect_error("[[axis]]\nkey = \"num_experts\"\nvalues = [1]", {"s.toml:2", "section.name"});
  expect_error("[[axis]]\nkey = \"model.num_experts\"\nvalues = []", {"s.toml:3", "empty"});
  expect_error("[[axis]]\nkey = \"model.num_experts\"\nvalues = [[1]]",
               {"s.toml:3", "expected a string, number or boolean"});
  expect_error("[[axis]]\nkey = \"output.path\"\nvalues = [\"a\"]", {"output.path", "cannot"});
  expect_error("[[axis]]\nkey = \"model.d_model\"\nvalues = [1]\nstep = 2", {"unknown key 'step'"});
  expect_error("[[zip]]\nkeys = [\"router.type\", \"model.top_k\"]\nvalues = [[\"hash\"]]",
               {"s.toml:3", "1 values for 2 keys"});
  expect_error(
      "[[axis]]\nkey = \"model.top_k\"\nvalues = [1]\n[[axis]]\nkey = \"model.top_k\"\nvalues = "
      "[2]",
      {"model.top_k", "swept by two axes"});
  expect_error(
      "[[axis]]\nkey = \"model.top_k\"\nvalues = [1]\n[[exclude]]\nwhere = {\"router.type\" = "
      "\"hash\"}\nskip = true",
      {"s.toml:4", "where key 'router.type' is not a swept key"});
  expect_error(
      "[[axis]]\nkey = \"model.top_k\"\nvalues = [1]\n[[exclude]]\nwhere = {\"model.top_k\" = "
      "1}\ndrop = [\"model.d_model\"]",
      {"drop key 'model.d_model' is not a swept key"});
  expect_error(
      "[[axis]]\nkey = \"model.top_k\"\nvalues = [1]\n[[exclude]]\nwhere = "
      "{\"model.top_k\" = 1}",
      {"drop", "skip = true"});
  expect_error(
      "[[axis]]\nkey = \"model.top_k\"\nvalues = [1]\n[[exclude]]\nwhere = "
      "{\"model.top_k\" = 1}\nskip = true",
      {"every point is excluded"});
  // Values reach load_config: errors name the line of the value and the point.
  const std::string bad_value =
      expect_error(std::string(kBase) + "[[axis]]\nkey = \"model.num_experts\"\nvalues = [4, -3]",
                   {"s.toml:10", "[[axis]] model.num_experts", "point num_experts--3"});
  (void)bad_value;
  expect_error(std::string(kBase) + "[[axis]]\nkey = \"model.colour\"\nvalues = [4]",
               {"s.toml:10", "unknown key 'model.colour'"});
  expect_error("[base.model]\nd_modle = 8\n", {"s.toml:2", "base.model.d_modle", "unknown key"});
  expect_error("[base.router]\ntype = \"hash\"\n", {"top_k", "point base"});
  expect_error("[base]\nmodel = 3\n", {"s.toml:2", "base.model", "table"});
  expect_error(std::string(kBase) + "[[axis]]\nkey = \"data.path\"\nvalues = [\"a/b\", \"a_b\"]",
               {"same id", "path-a-b"});
}

TEST(StudyErrors, UnreadableFile) {
  try {
    load_study("/nonexistent/study.toml");
    FAIL() << "no error";
  } catch (const UserError& e) {
    EXPECT_NE(std::string(e.what()).find("/nonexistent/study.toml"), std::string::npos);
  }
}

// An index in the layout the earlier hand-written writer produced (arrays of scalars on one line,
// floats such as 2.0 kept as floats) still loads, and its statuses and extra fields survive.
TEST(StudyIndex, LoadsIndexOfEarlierVersions) {
  const std::string path = write_study(std::string(kBase) + R"(
[[axis]]
key = "model.num_experts"
values = [2, 4]
)");
  Study s = load_study(path);
  s.output_dir = (fs::path(path).parent_path() / "out").string();
  fs::create_directories(s.output_dir);
  std::ofstream(index_path(s.output_dir)) << R"({
  "study": "s",
  "study_file": "s.toml",
  "keys": ["model.num_experts"],
  "ranks_per_run": 1,
  "scaled": false,
  "points": [
    {
      "id": "num_experts-2",
      "params": {"model.num_experts": 2},
      "file": "num_experts-2.h5",
      "status": "stopped",
      "final_loss": null,
      "final_val_loss": null,
      "claimed_by": null,
      "updated": "2026-01-01T00:00:00Z",
      "error": "caf\u00e9",
      "elapsed_s": 2.0
    }
  ]
}
)";
  Json old = read_index(s.output_dir);
  ASSERT_TRUE(old.is_object());
  const Json idx = sync_index(s, old, SyncMode::Keep);
  const Json& first = idx["points"][0];
  EXPECT_EQ(first["id"], "num_experts-2");
  EXPECT_EQ(first["status"], "stopped");
  EXPECT_EQ(first["error"], "caf\xC3\xA9");
  EXPECT_TRUE(first["elapsed_s"].is_number_float());
  EXPECT_EQ(first["elapsed_s"].get<double>(), 2.0);
  EXPECT_EQ(idx["points"][1]["status"], "pending");  // new point, no run file
  EXPECT_EQ(idx["keys"], Json::array({"model.num_experts"}));

  // Written back and read again: the same document, key order included. An error text that is
  // not UTF-8 (a file name) is written with U+FFFD instead of failing the write.
  Json changed = idx;
  changed["points"][1]["error"] = "bad byte \xFF";
  write_index(s.output_dir, changed);
  const Json back = read_index(s.output_dir);
  EXPECT_EQ(back["points"][0], changed["points"][0]);
  EXPECT_EQ(back["points"][1]["error"], "bad byte \xEF\xBF\xBD");
  EXPECT_EQ(back.begin().key(), "study");
}

TEST(StudyIndex, SyncFromRunFilesAndKeep) {
  const std::string path = write_study(std::string(kBase) + R"(
[[axis]]
key = "model.num_experts"
values = [2, 4, 8]
)");
  Study s = load_study(path);
  s.output_dir = (fs::path(path).parent_path() / "out").string();
  fs::create_directories(s.output_dir);
  {
    RunFile done((fs::path(s.output_dir) / s.points[0].file).string());
    done.set_attr("/status", std::string("complete"));
    done.set_attr("/final_loss", 1.5);
    done.set_attr("/final_val_loss", 1.75);
    RunFile failed((fs::path(s.output_dir) / s.points[1].file).string());
    failed.set_attr("/status", std::string("failed"));
  }
  EXPECT_TRUE(read_index(s.output_dir).is_null());
  Json idx = sync_index(s, nullptr, SyncMode::Keep);
  auto status = [&](Json& i, int p) {
    return (*find_entry(i, s.points[p].id))["status"].get<std::string>();
  };
  EXPECT_EQ(status(idx, 0), "complete");
  EXPECT_EQ((*find_entry(idx, s.points[0].id))["final_val_loss"], 1.75);
  EXPECT_EQ(status(idx, 1), "failed");
  EXPECT_EQ(status(idx, 2), "pending");
  EXPECT_EQ(idx["study"], "s");
  EXPECT_EQ((*find_entry(idx, s.points[2].id))["params"]["model.num_experts"], 8);

  // Keep: statuses the index holds win; Restart: only complete run files stay complete.
  set_status(*find_entry(idx, s.points[2].id), "running");
  write_index(s.output_dir, idx);
  {
    IndexLock lock(s.output_dir);
    const Json back = read_index(s.output_dir);
    Json keep = sync_index(s, back, SyncMode::Keep);
    EXPECT_EQ(status(keep, 2), "running");
    EXPECT_EQ(status(keep, 1), "failed");
    Json restart = sync_index(s, back, SyncMode::Restart);
    EXPECT_EQ(status(restart, 0), "complete");
    EXPECT_EQ(status(restart, 1), "pending");
    EXPECT_EQ(status(restart, 2), "pending");
  }
  // A garbled index reads as absent (and is rebuilt by the caller).
  std::ofstream(index_path(s.output_dir)) << "{\"points\": [";
  EXPECT_TRUE(read_index(s.output_dir).is_null());
}
