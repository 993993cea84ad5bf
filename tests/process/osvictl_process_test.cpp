// osvictl against live daemons: every command in text and in --json (the JSON parsed and checked) on an osvid
// with a simulated line and the stand-in model server; line test and audio loopback on a modem line (a pty
// modem, an ALSA file-plugin PCM whose capture holds the probe burst at a known delay); logs from a journal
// file written by systemd-journal-remote; the exit codes for bad usage, an unreachable daemon and a bad
// token.
#include <fcntl.h>
#include <gtest/gtest.h>
#include <signal.h>
#include <spawn.h>
#include <sys/wait.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <fstream>
#include <map>
#include <memory>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include "daemon_process.hpp"
#include "model_server_process.hpp"
#include "modem_sim.hpp"
#include "osvi/audio/echo_measure.hpp"
#include "osvi/lines/line_diagnostics.hpp"
#include "osvi/net/json.hpp"
#include "test_support.hpp"

using namespace std::chrono_literals;
using osvi::net::JsonPtr;
using osvi::test::DaemonProcess;
using osvi::test::http_request;

extern char** environ;

namespace {

constexpr const char* kToken = "CtlToken01234567";
constexpr const char* kAgentToken = "CtlAgent01234567";  // limited to agent_a: not admin

struct CtlRun {
  int code = -1;
  std::string out;
  std::string err;
  JsonPtr json;  // stdout parsed, when it is JSON
  const cJSON* data() const { return json ? cJSON_GetObjectItemCaseSensitive(json.get(), "data") : nullptr; }
};

std::string read_all(const std::string& path) {
  std::ifstream f(path, std::ios::binary);
  std::stringstream s;
  s << f.rdbuf();
  return s.str();
}

// Runs osvictl with args; stdout and stderr captured through files; killed after 90 s.
CtlRun osvictl(const osvi::test::TempDir& dir, const std::vector<std::string>& args) {
  static int n = 0;
  const std::string out = dir.file("ctl-" + std::to_string(++n) + ".out");
  const std::string err = dir.file("ctl-" + std::to_string(n) + ".err");
  posix_spawn_file_actions_t fa;
  posix_spawn_file_actions_init(&fa);
  posix_spawn_file_actions_addopen(&fa, 1, out.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0600);
  posix_spawn_file_actions_addopen(&fa, 2, err.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0600);
  std::vector<std::string> all{OSVICTL_PATH};
  all.insert(all.end(), args.begin(), args.end());
  std::vector<char*> argv;
  for (auto& a : all) argv.push_back(a.data());
  argv.push_back(nullptr);
  pid_t pid = -1;
  CtlRun r;
  if (posix_spawn(&pid, OSVICTL_PATH, &fa, nullptr, argv.data(), environ) != 0) {
    posix_spawn_file_actions_destroy(&fa);
    return r;
  }
  posix_spawn_file_actions_destroy(&fa);
  int status = 0;
  const auto end = std::chrono::steady_clock::now() + 90s;
  while (::waitpid(pid, &status, WNOHANG) == 0) {
    if (std::chrono::steady_clock::now() > end) {
      ::kill(pid, SIGKILL);
      ::waitpid(pid, &status, 0);
      break;
    }
    std::this_thread::sleep_for(10ms);
  }
  r.code = WIFEXITED(status) ? WEXITSTATUS(status) : -1;
  r.out = read_all(out);
  r.err = read_all(err);
  std::string why;
  r.json = osvi::net::json_parse(r.out, &why);
  return r;
}

std::string str(const cJSON* o, const char* k) {
  return osvi::test::json_str(o, k);
}
double num(const cJSON* o, const char* k) {
  const cJSON* v = o ? cJSON_GetObjectItemCaseSensitive(o, k) : nullptr;
  return cJSON_IsNumber(v) ? v->valuedouble : -1;
}
bool has(const std::string& s, const std::string& needle) {
  return s.find(needle) != std::string::npos;
}

// --- One osvid with a simulated line and the stand-in model server
// ------------------------------------------

class OsvictlSim : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    dir_ = new osvi::test::TempDir();
    osvi::test::write_file(dir_->file("scenario.json"),
                           R"({"stt":{"transcripts":["Yes speaking","Bye"]},
            "llm":{"rules":[{"match":"speaking","reply":"Hi."},
                            {"match":"bye","reply":"Bye.","tool_calls":[{"name":"end_call","arguments":{}}]}]}})");
    model_ = new osvi::test::ModelServer(dir_->file("scenario.json"), dir_->file("model.log"));
    ASSERT_FALSE(model_->base().empty()) << model_->error();
    const std::string url = model_->base() + "/v1";
    port_ = osvi::test::free_loopback_port();
    write_config(/*broken=*/false);
    daemon_ = new DaemonProcess(dir_->path(), {"--config", dir_->file("osvid.json")});
    ASSERT_TRUE(daemon_->wait_notify("READY=1", 15s)) << daemon_->stderr_text();
    // osvid sends a notification (STATUS=, RELOADING=1, READY=1) on every line change and reload with a
    // blocking send, as systemd's socket expects; the kernel queues only net.unix.max_dgram_qlen (10) of
    // them. Something must read them while the tests run, or the daemon's loop stalls: this thread, the only
    // user of daemon_'s notify side from here on.
    draining_ = true;
    drainer_ = new std::thread([] {
      while (draining_) daemon_->wait_notify("\x01 never sent", 50ms);
    });
    // The token as osvid's state folder holds it when it generates one (here the configuration lists it).
    osvi::test::write_file(dir_->file("state/api-token"), std::string(kToken) + "\n");
    osvi::test::write_file(dir_->file("agent-token"), kAgentToken);
  }
  static void TearDownTestSuite() {
    draining_ = false;
    if (drainer_) drainer_->join();
    delete drainer_;
    drainer_ = nullptr;
    if (daemon_) {
      daemon_->signal(SIGTERM);
      daemon_->wait_exit(10s);
    }
    delete daemon_;
    delete model_;
    delete dir_;
    daemon_ = nullptr;
    model_ = nullptr;
    dir_ = nullptr;
  }

  static void write_config(bool broken) {
    const std::string url = model_->base() + "/v1";
    osvi::test::write_file(
        dir_->file("osvid.json"),
        R"({"state_dir":")" + dir_->file("state") + R"(","api":{"listen":"127.0.0.1:)" +
            std::to_string(port_) + R"(","tokens":[")" + kToken + R"(",{"token":")" + kAgentToken +
            R"(","agents":["agent_a"]}]},"audio":{"rt_priority":0},)" +
            R"("agents":[{"agent_uuid":"agent_a","name":"Front desk","active":true,)" +
            (broken ? R"("colour":"red",)" : "") + R"("stt":{"base_url":")" + url +
            R"("},"llm":{"base_url":")" + url + R"("},"voice":{"base_url":")" + url +
            R"("},"greeting":{"text":"Hello Ravi, this is the bank."},"call":{"voicemail":{"detect":false}}}],)" +
            R"("lines":[{"id":"sim0","type":"sim","agent_uuid":"agent_a","sim":{"outcome":"answer","rings":1,)" +
            R"("ring_interval_ms":200,"steps":[{"say":"Yes speaking","after_agent":true},)" +
            R"({"say":"Bye","after_agent":true},{"silence_ms":20000}]}}]})");
  }

  // Global options that reach this daemon with the state folder's token.
  static std::vector<std::string> with(std::vector<std::string> args, bool json = false) {
    std::vector<std::string> a{"--api", "http://127.0.0.1:" + std::to_string(port_), "--state-dir",
                               dir_->file("state")};
    if (json) a.push_back("--json");
    a.insert(a.end(), args.begin(), args.end());
    return a;
  }
  static CtlRun ctl(std::vector<std::string> args, bool json = false) {
    return osvictl(*dir_, with(std::move(args), json));
  }

  // Places one call through osvictl and waits for it to end (the sim caller answers, talks, says bye).
  static std::string finished_call() {
    static std::string id;
    if (!id.empty()) return id;
    CtlRun r = ctl({"call", "--agent", "agent_a", "--phone", "9876543210", "--country", "IN"}, true);
    EXPECT_EQ(r.code, 0) << r.err;
    id = str(r.data(), "call_id");
    EXPECT_FALSE(id.empty()) << r.out;
    const auto end = std::chrono::steady_clock::now() + 60s;
    while (std::chrono::steady_clock::now() < end) {
      CtlRun s = ctl({"calls", "show", id}, true);
      if (s.code == 0 && str(s.data(), "status") != "in_progress") break;
      std::this_thread::sleep_for(250ms);
    }
    return id;
  }

  static osvi::test::TempDir* dir_;
  static osvi::test::ModelServer* model_;
  static DaemonProcess* daemon_;
  static int port_;
  static std::thread* drainer_;
  static std::atomic<bool> draining_;
};
std::thread* OsvictlSim::drainer_ = nullptr;
std::atomic<bool> OsvictlSim::draining_{false};
osvi::test::TempDir* OsvictlSim::dir_ = nullptr;
osvi::test::ModelServer* OsvictlSim::model_ = nullptr;
DaemonProcess* OsvictlSim::daemon_ = nullptr;
int OsvictlSim::port_ = 0;

TEST_F(OsvictlSim, StatusAndLines) {
  CtlRun t = ctl({"status"});
  EXPECT_EQ(t.code, 0) << t.err;
  EXPECT_TRUE(has(t.out, "status")) << t.out;
  EXPECT_TRUE(has(t.out, "line sim0")) << t.out;
  EXPECT_TRUE(t.err.empty()) << t.err;
  CtlRun j = ctl({"status"}, true);
  ASSERT_EQ(j.code, 0) << j.err;
  ASSERT_TRUE(j.json) << j.out;
  EXPECT_EQ(str(j.data(), "status"), "ok");
  EXPECT_EQ(str(cJSON_GetArrayItem(cJSON_GetObjectItem(j.data(), "lines"), 0), "id"), "sim0");
  EXPECT_TRUE(cJSON_IsArray(cJSON_GetObjectItem(j.json.get(), "errors")));

  CtlRun l = ctl({"lines"});
  EXPECT_EQ(l.code, 0) << l.err;
  EXPECT_TRUE(has(l.out, "ID")) << l.out;
  EXPECT_TRUE(has(l.out, "sim0")) << l.out;
  CtlRun lj = ctl({"lines"}, true);
  ASSERT_TRUE(lj.json) << lj.out;
  const cJSON* line = cJSON_GetArrayItem(lj.data(), 0);
  EXPECT_EQ(str(line, "id"), "sim0");
  EXPECT_EQ(str(line, "type"), "sim");

  // --config finds the address and the token (the first of api.tokens) by itself.
  CtlRun c = osvictl(*dir_, {"--config", dir_->file("osvid.json"), "--json", "status"});
  EXPECT_EQ(c.code, 0) << c.err;
  EXPECT_EQ(str(c.data(), "version").empty(), false);
}

TEST_F(OsvictlSim, CallThenListShowTranscriptRecording) {
  const std::string id = finished_call();
  ASSERT_FALSE(id.empty());
  CtlRun list = ctl({"calls", "list", "--status", "picked", "--type", "outbound", "--per-page", "5"});
  EXPECT_EQ(list.code, 0) << list.err;
  EXPECT_TRUE(has(list.out, id)) << list.out;
  EXPECT_TRUE(has(list.out, "picked")) << list.out;
  EXPECT_TRUE(has(list.out, "page 1 of 1, 1 calls")) << list.out;
  CtlRun lj = ctl({"calls", "list", "--agent", "agent_a"}, true);
  ASSERT_TRUE(lj.json) << lj.out;
  EXPECT_EQ(str(cJSON_GetArrayItem(lj.data(), 0), "call_id"), id);
  EXPECT_EQ(num(cJSON_GetObjectItem(lj.json.get(), "meta"), "total_count"), 1);
  CtlRun none = ctl({"calls", "list", "--status", "busy"}, true);
  EXPECT_EQ(cJSON_GetArraySize(none.data()), 0) << none.out;

  CtlRun show = ctl({"calls", "show", id});
  EXPECT_EQ(show.code, 0) << show.err;
  EXPECT_TRUE(has(show.out, "call_id")) << show.out;
  EXPECT_TRUE(has(show.out, "+919876543210")) << show.out;
  CtlRun sj = ctl({"calls", "show", id}, true);
  ASSERT_TRUE(sj.json) << sj.out;
  EXPECT_EQ(str(sj.data(), "status"), "picked");
  EXPECT_EQ(str(sj.data(), "line"), "sim0");

  CtlRun tr = ctl({"calls", "transcript", id});
  EXPECT_EQ(tr.code, 0) << tr.err;
  EXPECT_TRUE(has(tr.out, "Hello Ravi, this is the bank.")) << tr.out;
  EXPECT_TRUE(has(tr.out, "ROLE")) << tr.out;
  CtlRun tj = ctl({"calls", "transcript", id}, true);
  ASSERT_TRUE(tj.json) << tj.out;
  const cJSON* turns = cJSON_GetObjectItem(tj.data(), "transcript");
  ASSERT_GE(cJSON_GetArraySize(turns), 1);
  EXPECT_EQ(str(cJSON_GetArrayItem(turns, 0), "role"), "agent");

  // The recording through its signed link: an Ogg file; an existing file is never overwritten.
  const std::string file = dir_->file("call.opus");
  CtlRun rec;
  const auto end = std::chrono::steady_clock::now() + 10s;
  do {
    rec = ctl({"calls", "recording", id, "-o", file}, true);
    if (rec.code == 0) break;
    std::this_thread::sleep_for(200ms);
  } while (std::chrono::steady_clock::now() < end);
  ASSERT_EQ(rec.code, 0) << rec.err;
  ASSERT_TRUE(rec.json) << rec.out;
  EXPECT_EQ(str(rec.data(), "file"), file);
  EXPECT_GT(num(rec.data(), "bytes"), 1000);
  EXPECT_TRUE(has(str(rec.data(), "recording_url"), "sig="));
  const std::string bytes = read_all(file);
  EXPECT_EQ(bytes.substr(0, 4), "OggS");
  EXPECT_EQ(static_cast<double>(bytes.size()), num(rec.data(), "bytes"));
  CtlRun again = ctl({"calls", "recording", id, "-o", file});
  EXPECT_EQ(again.code, 1);
  EXPECT_TRUE(has(again.err, "exists")) << again.err;
  const std::string text_file = dir_->file("call2.opus");
  CtlRun rt = ctl({"calls", "recording", id, "-o", text_file});
  EXPECT_EQ(rt.code, 0) << rt.err;
  EXPECT_TRUE(has(rt.out, "bytes")) << rt.out;

  // `call` in text: the new id on stdout (the call runs on while the other tests go on).
  CtlRun placed = ctl({"call", "--agent", "agent_a", "--phone", "9876543212", "--name", "Asha"});
  EXPECT_EQ(placed.code, 0) << placed.err;
  EXPECT_EQ(placed.out.rfind("call placed: ", 0), 0u) << placed.out;
  // Let it end (the scripted caller says bye), so the other tests meet an idle line.
  const std::string second = placed.out.size() > 13 ? placed.out.substr(13, placed.out.size() - 14) : "";
  const auto until = std::chrono::steady_clock::now() + 60s;
  while (std::chrono::steady_clock::now() < until) {
    CtlRun s2 = ctl({"calls", "show", second}, true);
    if (s2.code == 0 && str(s2.data(), "status") != "in_progress") break;
    std::this_thread::sleep_for(250ms);
  }
  CtlRun refused = ctl({"call", "--agent", "agent_zz", "--phone", "9876543212"});
  EXPECT_EQ(refused.code, 1);
  EXPECT_TRUE(has(refused.err, "agent_uuid")) << refused.err;

  CtlRun missing = ctl({"calls", "show", "0190aaaa-0000-7000-8000-000000000000"});
  EXPECT_EQ(missing.code, 1);
  EXPECT_TRUE(has(missing.err, "404")) << missing.err;
  EXPECT_TRUE(missing.out.empty());
}

TEST_F(OsvictlSim, DndAddListRemove) {
  CtlRun add = ctl({"dnd", "add", "--agent", "agent_a", "--phone", "98765 43211", "--reason", "asked"});
  EXPECT_EQ(add.code, 0) << add.err;
  EXPECT_TRUE(has(add.out, "+919876543211")) << add.out;
  CtlRun again = ctl({"dnd", "add", "--agent", "agent_a", "--phone", "9876543211"}, true);
  ASSERT_TRUE(again.json) << again.out;
  EXPECT_EQ(str(again.data(), "phone"), "+919876543211");
  EXPECT_TRUE(cJSON_IsString(cJSON_GetObjectItem(again.json.get(), "message")));
  CtlRun list = ctl({"dnd", "list", "--agent", "agent_a"});
  EXPECT_TRUE(has(list.out, "+919876543211")) << list.out;
  EXPECT_TRUE(has(list.out, "asked")) << list.out;
  CtlRun lj = ctl({"dnd", "list", "--agent", "agent_a", "--search", "43211"}, true);
  ASSERT_TRUE(lj.json) << lj.out;
  EXPECT_EQ(str(cJSON_GetArrayItem(lj.data(), 0), "reason"), "asked");
  EXPECT_EQ(num(cJSON_GetObjectItem(lj.json.get(), "meta"), "total_count"), 1);
  CtlRun rm = ctl({"dnd", "remove", "--agent", "agent_a", "--phone", "09876543211"});
  EXPECT_EQ(rm.code, 0) << rm.err;
  CtlRun rm2 = ctl({"dnd", "remove", "--agent", "agent_a", "--phone", "09876543211"}, true);
  EXPECT_EQ(rm2.code, 1);
  EXPECT_TRUE(rm2.out.empty()) << rm2.out;
  EXPECT_TRUE(has(rm2.err, "not on the DND list")) << rm2.err;
  CtlRun bad = ctl({"dnd", "add", "--agent", "agent_a", "--phone", "12"});
  EXPECT_EQ(bad.code, 1);
  EXPECT_TRUE(has(bad.err, "phone")) << bad.err;
}

TEST_F(OsvictlSim, CampaignStatusAndChatSessions) {
  auto r = http_request("POST", "http://127.0.0.1:" + std::to_string(port_) + "/v1/campaigns", kToken,
                        R"({"id":41,"name":"Renewals","status":"inactive","agents":["agent_a"]})");
  ASSERT_EQ(r.status, 201) << r.body;
  CtlRun t = ctl({"campaign", "status", "41"});
  EXPECT_EQ(t.code, 0) << t.err;
  EXPECT_TRUE(has(t.out, "Renewals")) << t.out;
  EXPECT_TRUE(has(t.out, "inactive")) << t.out;
  CtlRun j = ctl({"campaign", "status", "41"}, true);
  ASSERT_TRUE(j.json) << j.out;
  EXPECT_EQ(num(cJSON_GetObjectItem(j.data(), "campaign"), "id"), 41);
  EXPECT_EQ(num(cJSON_GetObjectItem(j.data(), "calls"), "total"), 0);
  EXPECT_EQ(ctl({"campaign", "status", "999"}).code, 1);

  CtlRun c = ctl({"chat", "sessions", "--status", "active"});
  EXPECT_EQ(c.code, 0) << c.err;
  EXPECT_TRUE(has(c.out, "SESSION")) << c.out;
  CtlRun cj = ctl({"chat", "sessions", "--help-requested", "false"}, true);
  ASSERT_TRUE(cj.json) << cj.out;
  EXPECT_TRUE(cJSON_IsArray(cj.data()));
  EXPECT_TRUE(cJSON_IsObject(cJSON_GetObjectItem(cJSON_GetObjectItem(cj.json.get(), "meta"), "stats")));
  CtlRun bad = ctl({"chat", "sessions", "--status", "sleeping"});
  EXPECT_EQ(bad.code, 1);
  EXPECT_TRUE(has(bad.err, "status")) << bad.err;
}

TEST_F(OsvictlSim, ConfigCheckReloadAndErrors) {
  CtlRun ok = ctl({"config", "check", dir_->file("osvid.json")});
  EXPECT_EQ(ok.code, 0) << ok.err;
  EXPECT_TRUE(has(ok.out, "configuration OK")) << ok.out;
  CtlRun okj = ctl({"config", "check", dir_->file("osvid.json")}, true);
  ASSERT_TRUE(okj.json) << okj.out;
  EXPECT_TRUE(cJSON_IsTrue(cJSON_GetObjectItem(okj.data(), "valid")));
  EXPECT_EQ(num(okj.data(), "agents"), 1);

  // A configuration with an unknown key: the check names it, and osvid refuses to apply it.
  write_config(/*broken=*/true);
  CtlRun bad = ctl({"config", "check", dir_->file("osvid.json")});
  EXPECT_EQ(bad.code, 1);
  EXPECT_TRUE(has(bad.err, "agents[0].colour")) << bad.err;
  CtlRun badj = ctl({"config", "check", dir_->file("osvid.json")}, true);
  EXPECT_EQ(badj.code, 1);
  ASSERT_TRUE(badj.json) << badj.out;
  EXPECT_FALSE(cJSON_IsTrue(cJSON_GetObjectItem(badj.data(), "valid")));
  EXPECT_TRUE(has(osvi::net::json_print(cJSON_GetObjectItem(badj.data(), "errors")), "agents[0].colour"));

  CtlRun rej = ctl({"config", "reload"});
  EXPECT_EQ(rej.code, 1);
  EXPECT_TRUE(has(rej.err, "422")) << rej.err;
  EXPECT_TRUE(has(rej.err, "agents[0].colour")) << rej.err;
  // The rejection was logged as an error: the ring behind GET /v1/system/errors has it, newest first.
  CtlRun errs = ctl({"errors", "-n", "5"}, true);
  ASSERT_TRUE(errs.json) << errs.out;
  const cJSON* newest = cJSON_GetArrayItem(errs.data(), 0);
  EXPECT_EQ(str(newest, "priority"), "err");
  EXPECT_TRUE(has(str(newest, "message"), "agents[0].colour")) << errs.out;
  EXPECT_EQ(str(newest, "message_id"), "6b0a5c1e2f4d4a7e9c3b8d1f0e2a4c65");
  EXPECT_FALSE(str(cJSON_GetObjectItem(newest, "fields"), "CONFIG_HASH").empty());
  CtlRun errt = ctl({"errors"});
  EXPECT_TRUE(has(errt.out, "configuration reload rejected")) << errt.out;
  CtlRun st = ctl({"status"});
  EXPECT_TRUE(has(st.out, "configuration reload rejected")) << st.out;

  write_config(/*broken=*/false);
  CtlRun applied = ctl({"config", "reload"}, true);
  EXPECT_EQ(applied.code, 0) << applied.err;
  ASSERT_TRUE(applied.json) << applied.out;
  EXPECT_TRUE(cJSON_IsTrue(cJSON_GetObjectItem(applied.data(), "applied")));
  CtlRun appliedt = ctl({"config", "reload"});
  EXPECT_TRUE(has(appliedt.out, "configuration applied")) << appliedt.out;

  // An agent-limited token may not reload nor read the system's errors: the daemon's no is exit 1.
  CtlRun limited = osvictl(*dir_, {"--api", "http://127.0.0.1:" + std::to_string(port_), "--token-file",
                                   dir_->file("agent-token"), "config", "reload"});
  EXPECT_EQ(limited.code, 1);
  EXPECT_TRUE(has(limited.err, "403")) << limited.err;
}

TEST_F(OsvictlSim, LineTestShowsTheSimScriptAndLoopbackRefusesSimLines) {
  CtlRun t = ctl({"line", "test", "sim0"});
  EXPECT_EQ(t.code, 0) << t.err;
  EXPECT_TRUE(has(t.out, "script.outcome")) << t.out;
  CtlRun j = ctl({"line", "test", "sim0"}, true);
  ASSERT_TRUE(j.json) << j.out;
  EXPECT_EQ(str(j.data(), "type"), "sim");
  const cJSON* steps = cJSON_GetObjectItem(cJSON_GetObjectItem(j.data(), "script"), "steps");
  ASSERT_EQ(cJSON_GetArraySize(steps), 3);
  EXPECT_EQ(str(cJSON_GetArrayItem(steps, 0), "text"), "Yes speaking");
  CtlRun unknown = ctl({"line", "test", "gsm9"});
  EXPECT_EQ(unknown.code, 1);
  EXPECT_TRUE(has(unknown.err, "404")) << unknown.err;
  CtlRun lb = ctl({"audio", "loopback", "sim0"}, true);
  EXPECT_EQ(lb.code, 1);
  EXPECT_TRUE(lb.out.empty());
  EXPECT_TRUE(has(lb.err, "422")) << lb.err;
}

TEST_F(OsvictlSim, ExitCodes) {
  // Usage: no command, an unknown command or option, a missing value: 2, nothing on stdout.
  for (const auto& args : std::vector<std::vector<std::string>>{{},
                                                                {"frobnicate"},
                                                                {"calls", "list", "--colour", "red"},
                                                                {"calls", "show"},
                                                                {"call", "--agent", "agent_a"},
                                                                {"logs", "-n", "zero"},
                                                                {"--api", "localhost:8080", "status"},
                                                                {"logs", "--since", "yesterday"},
                                                                {"--timeout", "0", "status"}}) {
    CtlRun r = osvictl(*dir_, args);
    EXPECT_EQ(r.code, 2) << ::testing::PrintToString(args) << r.err;
    EXPECT_TRUE(r.out.empty()) << r.out;
    EXPECT_FALSE(r.err.empty());
  }
  // Help is an answer: exit 0, on stdout, for the tool and each command.
  CtlRun h = osvictl(*dir_, {"--help"});
  EXPECT_EQ(h.code, 0);
  EXPECT_TRUE(has(h.out, "Exit status")) << h.out;
  for (const char* cmd : {"status", "calls", "call", "lines", "line", "audio", "dnd", "campaign", "chat",
                          "errors", "config", "logs"}) {
    CtlRun c = osvictl(*dir_, {cmd, "--help"});
    EXPECT_EQ(c.code, 0) << cmd;
    EXPECT_TRUE(has(c.out, std::string("usage: osvictl ") + cmd)) << cmd << ": " << c.out;
  }
  // Nobody listening: 3.
  const int closed = osvi::test::free_loopback_port();
  CtlRun down = osvictl(*dir_, {"--api", "http://127.0.0.1:" + std::to_string(closed), "--state-dir",
                                dir_->file("state"), "status"});
  EXPECT_EQ(down.code, 3);
  EXPECT_TRUE(has(down.err, "cannot reach osvid")) << down.err;
  // A token osvid does not know, or no token file at all: 3.
  osvi::test::write_file(dir_->file("wrong-token"), "Wrong01234567890");
  CtlRun wrong = osvictl(*dir_, {"--api", "http://127.0.0.1:" + std::to_string(port_), "--token-file",
                                 dir_->file("wrong-token"), "--json", "lines"});
  EXPECT_EQ(wrong.code, 3);
  EXPECT_TRUE(wrong.out.empty());
  EXPECT_TRUE(has(wrong.err, "refused the API token")) << wrong.err;
  CtlRun notoken = osvictl(*dir_, {"--api", "http://127.0.0.1:" + std::to_string(port_), "--state-dir",
                                   dir_->file("nowhere"), "status"});
  EXPECT_EQ(notoken.code, 3);
  EXPECT_TRUE(has(notoken.err, "cannot read the API token")) << notoken.err;
}

// --- logs from a journal file, without journald
// -------------------------------------------------------------

TEST(OsvictlLogs, FiltersAJournalFileByCallLineAndAgent) {
  osvi::test::TempDir dir;
  // Export format (systemd's journal-export-format): KEY=value lines, a blank line between entries.
  std::string feed;
  auto entry = [&feed](int64_t sec, const std::string& prio, const std::string& msg,
                       const std::vector<std::string>& fields, const std::string& ident = "osvid") {
    feed += "__REALTIME_TIMESTAMP=" + std::to_string(sec * 1'000'000) + "\n";
    feed += "MESSAGE=" + msg + "\nPRIORITY=" + prio + "\nSYSLOG_IDENTIFIER=" + ident + "\n";
    for (const auto& f : fields) feed += f + "\n";
    feed += "\n";
  };
  entry(1'796'292'000, "5", "call started",
        {"CALL_ID=call-1", "LINE=sim0", "AGENT_UUID=agent_a", "MESSAGE_ID=6b0a5c1e2f4d4a7e9c3b8d1f0e2a4c68"});
  entry(1'796'292'001, "4", "another call started", {"CALL_ID=call-2", "LINE=gsm0", "AGENT_UUID=agent_b"});
  entry(1'796'292'002, "3", "upstream failed", {"CALL_ID=call-1", "LINE=sim0", "AGENT_UUID=agent_a"});
  entry(1'796'292'003, "6", "not osvid", {"CALL_ID=call-1"}, "someone-else");
  entry(1'796'292'004, "5", "call ended", {"CALL_ID=call-1", "LINE=sim0", "AGENT_UUID=agent_a"});
  osvi::test::write_file(dir.file("feed.export"), feed);
  const std::string journal = dir.file("x.journal");
  const std::string cmd = "/lib/systemd/systemd-journal-remote --output=" + journal + " - < " +
                          dir.file("feed.export") + " 2>" + dir.file("remote.err");
  ASSERT_EQ(std::system(cmd.c_str()), 0)
      << read_all(dir.file("remote.err")) << " (package systemd-journal-remote, .ci/install-deps)";

  CtlRun t = osvictl(dir, {"logs", "--file", journal, "--call", "call-1"});
  ASSERT_EQ(t.code, 0) << t.err;
  EXPECT_EQ(t.out,
            "2026-12-03T10:00:00.000Z notice: call started CALL_ID=call-1 LINE=sim0 AGENT_UUID=agent_a\n"
            "2026-12-03T10:00:02.000Z err: upstream failed CALL_ID=call-1 LINE=sim0 AGENT_UUID=agent_a\n"
            "2026-12-03T10:00:04.000Z notice: call ended CALL_ID=call-1 LINE=sim0 AGENT_UUID=agent_a\n");

  CtlRun j = osvictl(dir, {"logs", "--file", journal, "--call", "call-1", "--json"});
  ASSERT_EQ(j.code, 0) << j.err;
  ASSERT_TRUE(j.json) << j.out;
  ASSERT_EQ(cJSON_GetArraySize(j.data()), 3);
  const cJSON* first = cJSON_GetArrayItem(j.data(), 0);
  EXPECT_EQ(str(first, "message"), "call started");
  EXPECT_EQ(str(first, "priority"), "notice");
  EXPECT_EQ(str(first, "message_id"), "6b0a5c1e2f4d4a7e9c3b8d1f0e2a4c68");
  EXPECT_EQ(str(cJSON_GetObjectItem(first, "fields"), "LINE"), "sim0");
  for (int i = 0; i < 3; ++i)
    EXPECT_EQ(str(cJSON_GetObjectItem(cJSON_GetArrayItem(j.data(), i), "fields"), "CALL_ID"), "call-1");

  CtlRun line = osvictl(dir, {"logs", "--file", journal, "--line", "gsm0", "--json"});
  ASSERT_EQ(cJSON_GetArraySize(line.data()), 1) << line.out;
  EXPECT_EQ(str(cJSON_GetArrayItem(line.data(), 0), "message"), "another call started");
  CtlRun agent =
      osvictl(dir, {"logs", "--file", journal, "--agent", "agent_a", "--priority", "err", "--json"});
  ASSERT_EQ(cJSON_GetArraySize(agent.data()), 1) << agent.out;
  EXPECT_EQ(str(cJSON_GetArrayItem(agent.data(), 0), "message"), "upstream failed");
  CtlRun since =
      osvictl(dir, {"logs", "--file", journal, "--since", "2026-12-03T10:00:02Z", "-n", "1", "--json"});
  ASSERT_EQ(cJSON_GetArraySize(since.data()), 1) << since.out;
  EXPECT_EQ(str(cJSON_GetArrayItem(since.data(), 0), "message"), "call ended");
  CtlRun all = osvictl(dir, {"logs", "--file", journal, "--all-identifiers", "--json"});
  EXPECT_EQ(cJSON_GetArraySize(all.data()), 5) << all.out;
  CtlRun nothing = osvictl(dir, {"logs", "--file", journal, "--call", "call-9"});
  EXPECT_EQ(nothing.code, 0);
  EXPECT_TRUE(nothing.out.empty()) << nothing.out;
  CtlRun missing = osvictl(dir, {"logs", "--file", dir.file("absent.journal")});
  EXPECT_EQ(missing.code, 1);
}

// --- A modem line: line test and the audio loopback
// ---------------------------------------------------------

class OsvictlModem : public ::testing::Test {
 protected:
  void SetUp() override {
    sim_ = std::make_unique<osvi::test::ModemSim>(dir_.file("modem-at"));
    sim_->on("AT+CSQ", osvi::test::ModemSim::ok({"+CSQ: 20,99"}));
    // The PCM: playback into a file, capture from cap.raw, which each loopback reads from its start.
    osvi::test::write_file(
        dir_.file("alsa.conf"),
        "pcm.ec25_bench {\n  type asym\n"
        "  playback.pcm { type file slave.pcm { type null } file \"" +
            dir_.file("played.raw") +
            "\" format raw }\n"
            "  capture.pcm { type file slave.pcm { type null } file \"/dev/null\" infile \"" +
            dir_.file("cap.raw") + "\" format raw }\n}\n");
    write_capture(0, 0.0);
    port_ = osvi::test::free_loopback_port();
    osvi::test::write_file(
        dir_.file("osvid.json"),
        R"({"state_dir":")" + dir_.file("state") + R"(","api":{"listen":"127.0.0.1:)" +
            std::to_string(port_) + R"(","tokens":[")" + kToken +
            R"("]},"audio":{"rt_priority":0,"echo":{"tail_ms":128}},)" +
            R"("agents":[{"agent_uuid":"agent_a","name":"A","active":true}],)" +
            R"("lines":[{"id":"gsm0","type":"at","vendor":"quectel_ec25","device":")" +
            dir_.file("modem-at") +
            R"(","audio_device":"ec25_bench","audio_clockless":true,"agent_uuid":"agent_a",)" +
            R"("command_timeout_ms":1000,"poll_interval_ms":200}]})");
    daemon_ = std::make_unique<DaemonProcess>(
        dir_.path(), std::vector<std::string>{"--config", dir_.file("osvid.json")},
        std::map<std::string, std::string>{{"ALSA_CONFIG_PATH", dir_.file("alsa.conf")}});
    ASSERT_TRUE(daemon_->wait_notify("READY=1", 15s)) << daemon_->stderr_text();
  }
  void TearDown() override {
    if (daemon_) {
      daemon_->signal(SIGTERM);
      EXPECT_EQ(daemon_->wait_exit(10s), 0) << daemon_->stderr_text();
    }
  }
  CtlRun ctl(std::vector<std::string> args, bool json = false) {
    std::vector<std::string> a{"--api", "http://127.0.0.1:" + std::to_string(port_)};
    osvi::test::write_file(dir_.file("token"), kToken);
    a.insert(a.end(), {"--token-file", dir_.file("token")});
    if (json) a.push_back("--json");
    a.insert(a.end(), args.begin(), args.end());
    return osvictl(dir_, a);
  }
  // The capture file at the EC25's 8 kHz: silence, then (gain_db > -100) the probe burst starting
  // burst_at_ms after the stream opens, 2 s long in all.
  void write_capture(int burst_at_ms, double gain_db) {
    constexpr int kRate = 8000;
    std::vector<int16_t> cap(kRate * 2, 0);
    if (gain_db > -100) {
      const double g = std::pow(10.0, gain_db / 20.0);
      auto burst = osvi::audio::make_probe_burst(kRate);
      for (size_t i = 0; i < burst.size(); ++i)
        cap[static_cast<size_t>(burst_at_ms * kRate / 1000) + i] =
            static_cast<int16_t>(std::lround(g * burst[i]));
    }
    osvi::test::write_file(dir_.file("cap.raw"),
                           std::string(reinterpret_cast<const char*>(cap.data()), cap.size() * 2));
  }

  osvi::test::TempDir dir_;
  std::unique_ptr<osvi::test::ModemSim> sim_;
  std::unique_ptr<DaemonProcess> daemon_;
  int port_ = 0;
};

TEST_F(OsvictlModem, LineTestAsksTheModemThroughItsQueue) {
  const size_t csq_before = sim_->count("AT+CSQ");
  CtlRun j = ctl({"line", "test", "gsm0"}, true);
  ASSERT_EQ(j.code, 0) << j.err;
  ASSERT_TRUE(j.json) << j.out;
  EXPECT_EQ(str(j.data(), "line"), "gsm0");
  EXPECT_EQ(str(j.data(), "type"), "at");
  const cJSON* id = cJSON_GetObjectItem(j.data(), "identity");
  EXPECT_EQ(str(id, "manufacturer"), "Quectel");
  EXPECT_EQ(str(id, "model"), "EC25");
  EXPECT_EQ(str(id, "revision"), "EC25EFAR06A06M4G");
  EXPECT_EQ(str(id, "imei"), osvi::test::ModemSim::imei());
  const cJSON* sig = cJSON_GetObjectItem(j.data(), "signal");
  EXPECT_EQ(num(sig, "rssi"), 20);
  EXPECT_EQ(num(sig, "dbm"), -73);
  EXPECT_TRUE(cJSON_IsNull(cJSON_GetObjectItem(sig, "ber")));
  EXPECT_EQ(str(cJSON_GetObjectItem(j.data(), "registration"), "eps"), "home");
  EXPECT_EQ(cJSON_GetArraySize(cJSON_GetObjectItem(j.data(), "failures")), 0);
  EXPECT_EQ(sim_->count("AT+CSQ"), csq_before + 1);

  // A command the module refuses is listed, the rest still answered.
  sim_->on("AT+CEREG?", "\r\nERROR\r\n");
  CtlRun t = ctl({"line", "test", "gsm0"});
  EXPECT_EQ(t.code, 0) << t.err;
  EXPECT_TRUE(has(t.out, "identity.imei")) << t.out;
  EXPECT_TRUE(has(t.out, "AT+CEREG?: ERROR")) << t.out;
  EXPECT_TRUE(has(t.out, "-73")) << t.out;

  // A module that is gone: the line is down, the test refused with 409.
  sim_->disappear();
  const auto end = std::chrono::steady_clock::now() + 10s;
  CtlRun down;
  do {
    down = ctl({"line", "test", "gsm0"});
    if (down.code == 1 && has(down.err, "409")) break;
    std::this_thread::sleep_for(100ms);
  } while (std::chrono::steady_clock::now() < end);
  EXPECT_EQ(down.code, 1);
  EXPECT_TRUE(has(down.err, "409")) << down.err;
  EXPECT_TRUE(has(down.err, "down")) << down.err;
}

TEST_F(OsvictlModem, LoopbackMeasuresTheEchoInTheCapture) {
  // The loopback plays LineDiagnostics::kLeadInMs of silence, then the burst; the capture holds the burst
  // 60 ms after that at -10 dB.
  constexpr int kEchoMs = 60;
  write_capture(osvi::daemon::LineDiagnostics::kLeadInMs + kEchoMs, -10.0);
  CtlRun j = ctl({"audio", "loopback", "gsm0"}, true);
  ASSERT_EQ(j.code, 0) << j.err << daemon_->stderr_text();
  ASSERT_TRUE(j.json) << j.out;
  const cJSON* d = j.data();
  EXPECT_TRUE(cJSON_IsTrue(cJSON_GetObjectItem(d, "echo_found"))) << j.out;
  // The file PCMs have no clock: the engine aligns each capture period with the period it wrote just before
  // reading it (snd_pcm_delay of the null slaves is 0), one period ahead of where the capture file's samples
  // fall, so the burst put kEchoMs into the file is measured one 20 ms period earlier — in samples, exactly.
  EXPECT_EQ(num(d, "delay_ms"), kEchoMs - 20) << j.out;
  EXPECT_NEAR(num(d, "erl_db"), 10.0, 0.5) << j.out;
  EXPECT_GT(num(d, "peak_correlation"), 0.95) << j.out;
  EXPECT_EQ(num(d, "tail_ms"), 128);
  EXPECT_TRUE(cJSON_IsTrue(cJSON_GetObjectItem(d, "fits"))) << j.out;
  EXPECT_EQ(num(d, "sample_rate"), 8000);
  // What was played is the lead-in and the burst, into the playback file.
  EXPECT_GT(read_all(dir_.file("played.raw")).size(), 2u * 8000 * 350 / 1000);

  // An echo later than the tail: measured, and said not to fit.
  write_capture(osvi::daemon::LineDiagnostics::kLeadInMs + 300, -20.0);
  CtlRun late = ctl({"audio", "loopback", "gsm0"});
  ASSERT_EQ(late.code, 0) << late.err;
  EXPECT_TRUE(has(late.out, "LATER than the tail")) << late.out;

  // Nothing comes back: "no echo found".
  write_capture(0, -200.0);
  CtlRun none = ctl({"audio", "loopback", "gsm0"}, true);
  ASSERT_EQ(none.code, 0) << none.err;
  EXPECT_FALSE(cJSON_IsTrue(cJSON_GetObjectItem(none.data(), "echo_found"))) << none.out;
  EXPECT_EQ(str(none.data(), "result"), "no echo found");
  EXPECT_TRUE(cJSON_IsNull(cJSON_GetObjectItem(none.data(), "delay_ms")));
  CtlRun nonet = ctl({"audio", "loopback", "gsm0"});
  EXPECT_TRUE(has(nonet.out, "no echo found")) << nonet.out;

  // The line was released after each test: a call can use it (the API accepts one).
  auto health = http_request("GET", "http://127.0.0.1:" + std::to_string(port_) + "/v1/health", kToken);
  EXPECT_TRUE(has(health.body, "\"state\":\"idle\"")) << health.body;
}

}  // namespace
