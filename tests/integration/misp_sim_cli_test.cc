// misp-sim as an operator starts it: the binary, a fixture file, a free port, a real request.
#include <gtest/gtest.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstdio>
#include <string>

#include "misp/json.h"
#include "tests/support/files.h"
#include "tests/support/http_client.h"

namespace {

namespace json = boost::json;

TEST(MispSimCliTest, StartsServesTheGivenFixtureAndStopsOnSigterm) {
  std::string fixture =
      (sgsync::testing::DataDir() / "fixtures/misp/events/pymisp/japanese_test.json").string();
  int out[2];
  ASSERT_EQ(::pipe(out), 0);
  pid_t pid = ::fork();
  if (pid == 0) {
    ::dup2(out[1], 1);
    ::close(out[0]);
    ::execl(SGSYNC_MISP_SIM, SGSYNC_MISP_SIM, "--listen", "127.0.0.1:0", "--org", "ORG1", "--admin-key",
            "0123456789abcdef0123456789abcdef01234567", "--load", fixture.c_str(), nullptr);
    ::_exit(127);
  }
  ::close(out[1]);
  FILE* lines = ::fdopen(out[0], "r");
  char buf[256];
  ASSERT_NE(std::fgets(buf, sizeof buf, lines), nullptr);
  std::string first(buf);  // "misp-sim listening on http://127.0.0.1:PORT"
  auto colon = first.rfind(':');
  ASSERT_NE(colon, std::string::npos) << first;
  auto port = static_cast<std::uint16_t>(std::stoi(first.substr(colon + 1)));
  auto r = sgsync::testing::Request(port, "GET",
                                    "/events/view/" + std::string("5c7641bf-a4e8-4d5d-a653-03240a00020f"), "",
                                    {{"Authorization", "0123456789abcdef0123456789abcdef01234567"}});
  EXPECT_EQ(r.status, 404) << "an unknown uuid: MISP's 404";
  json::value fixture_doc = json::parse(sgsync::testing::ReadFile(fixture));
  std::string uuid(fixture_doc.at("Event").at("uuid").as_string());
  auto view = sgsync::testing::Request(port, "GET", "/events/view/" + uuid, "",
                                       {{"Authorization", "0123456789abcdef0123456789abcdef01234567"}});
  ASSERT_EQ(view.status, 200) << view.body;
  EXPECT_EQ(view.headers["content-type"], "application/json; charset=UTF-8");
  EXPECT_EQ(json::parse(view.body).at("Event").at("info"), fixture_doc.at("Event").at("info"));
  ASSERT_EQ(::kill(pid, SIGTERM), 0);
  int status = 0;
  ::waitpid(pid, &status, 0);
  EXPECT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 0) << "a clean stop on SIGTERM";
  std::fclose(lines);
}

}  // namespace
