// config: sgsyncd's TOML configuration. What is accepted, and that every refusal names the file,
// the line and the key.
#include "config/config.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <sys/stat.h>

#include <cstdlib>

#include "tests/support/files.h"

namespace sgsync::config {
namespace {

using sgsync::testing::ReadFile;
using sgsync::testing::TempDir;
using sgsync::testing::WriteFile;
using ::testing::HasSubstr;

const char* kKey = "0123456789abcdefghij0123456789ABCDEFGHIJ";

class ConfigTest : public ::testing::Test {
 protected:
  std::string KeyFile(const std::string& name, mode_t mode = 0600, const std::string& key = kKey) {
    auto path = (dir_.path() / name).string();
    WriteFile(path, key + "\n");
    ::chmod(path.c_str(), mode);
    return path;
  }
  // A minimal valid file; `link_extra` goes into the [[link]] table, `remote_extra` into remote.
  std::string Minimal(const std::string& link_extra = "", const std::string& remote_extra = "",
                      const std::string& top = "") {
    return top + "\n[[link]]\nname = \"portal\"\n" + link_extra +
           "\n[link.local]\nurl = \"https://misp.member.test\"\n" + "api_key_file = \"" +
           KeyFile("local.key") + "\"\n[link.remote]\nurl = \"https://portal.test\"\n" + "api_key_file = \"" +
           KeyFile("portal.key") + "\"\norg_uuid = \"1315aee3-d0b4-4569-a8f2-b99ad776f149\"\n" + remote_extra;
  }
  TempDir dir_;
};

TEST_F(ConfigTest, TheSyncWindowTakesADateOrAUtcTimeAndDaysAndRefusesAnImpossibleDate) {
  auto c =
      ParseConfig(Minimal("initial_sync_since = \"2026-09-01\"\ninitial_sync_days = 90\n"), "sgsync.toml");
  ASSERT_TRUE(c.ok()) << c.error().ToString();
  EXPECT_EQ(c->links[0].engine.initial_sync_since, 1788220800);  // 2026-09-01T00:00:00Z
  EXPECT_EQ(c->links[0].engine.initial_sync_days, 90);
  EXPECT_EQ(DescribeSyncWindow(c->links[0].engine),
            "initial_sync_since = 2026-09-01T00:00:00Z, initial_sync_days = 90");
  c = ParseConfig(Minimal("initial_sync_since = \"2026-09-01T12:30:00Z\"\n"), "sgsync.toml");
  ASSERT_TRUE(c.ok()) << c.error().ToString();
  EXPECT_EQ(c->links[0].engine.initial_sync_since, 1788220800 + 12 * 3600 + 30 * 60);
  for (const char* bad : {"2026-02-30", "2026-9-1", "yesterday", "2026-09-01T12:30:00+09:00"}) {
    auto e = ParseConfig(Minimal(std::string("initial_sync_since = \"") + bad + "\"\n"), "sgsync.toml");
    ASSERT_FALSE(e.ok()) << bad;
    EXPECT_THAT(e.error().message, HasSubstr("initial_sync_since")) << bad;
  }
  EXPECT_FALSE(ParseConfig(Minimal("initial_sync_days = -1\n"), "sgsync.toml").ok());
  auto defaults = ParseConfig(Minimal(), "sgsync.toml");
  ASSERT_TRUE(defaults.ok());
  EXPECT_EQ(defaults->links[0].engine.WindowStart(1'800'000'000), 0) << "no window unless configured";
  EXPECT_EQ(DescribeSyncWindow(defaults->links[0].engine), "");
}

TEST_F(ConfigTest, MinimalFileTakesDocumentedDefaults) {
  auto c = ParseConfig(Minimal(), "sgsync.toml");
  ASSERT_TRUE(c.ok()) << c.error().ToString();
  ASSERT_EQ(c->links.size(), 1u);
  const LinkConfig& l = c->links[0];
  EXPECT_TRUE(l.push);
  EXPECT_TRUE(l.pull);
  EXPECT_EQ(l.interval_seconds, 300);
  EXPECT_EQ(l.engine.overlap_seconds, 600);
  EXPECT_EQ(l.engine.conflict_policy, engine::ConflictPolicy::kPreferNewer);
  EXPECT_FALSE(l.engine.tombstones);
  EXPECT_EQ(l.local.api_key.reveal(), kKey);
  EXPECT_EQ(c->state_db, "/var/lib/sgsync/state.db");
  EXPECT_EQ(c->metrics_listen, "127.0.0.1:9464");
  // sgsync's own TLP policy: tlp:red is blocked on push unless the file says otherwise.
  auto link = MakePolicyLink(l, {"ce867008-0536-4358-9f2e-20df12768cd3", "ORG1"},
                             {"ce867008-0536-4358-9f2e-20df12768cd3", "ORG1"});
  ASSERT_TRUE(link.ok()) << link.error().ToString();
  EXPECT_EQ(link->blocked_tags_push, std::vector<std::string>{"tlp:red"});
  EXPECT_TRUE(link->blocked_tags_pull.empty());
  EXPECT_EQ(link->remote.url, "https://portal.test");
}

TEST_F(ConfigTest, ExampleFileIsValidOnceItsKeyFilesExist) {
  std::string text = ReadFile(std::string(SGSYNC_SOURCE_DIR) + "/deploy/sgsync.example.toml");
  for (const char* name : {"local.key", "portal.key"}) {
    std::string from = std::string("/etc/sgsync/") + name;
    text.replace(text.find(from), from.size(), KeyFile(name));
  }
  auto c = ParseConfig(text, "sgsync.example.toml");
  ASSERT_TRUE(c.ok()) << c.error().ToString();
  EXPECT_EQ(c->links[0].name, "securegrid-portal");
}

TEST_F(ConfigTest, UnknownKeyIsRefusedWithFileLineAndKey) {
  auto c = ParseConfig(Minimal("intervall_seconds = 60"), "/etc/sgsync/sgsync.toml");
  ASSERT_FALSE(c.ok());
  EXPECT_EQ(c.error().message, "/etc/sgsync/sgsync.toml:4: link[0].intervall_seconds: unknown key");
}

TEST_F(ConfigTest, WrongTypeNamesTheKeyAndWhatWasFound) {
  auto c = ParseConfig(Minimal("interval_seconds = \"5m\""), "f.toml");
  ASSERT_FALSE(c.ok());
  EXPECT_EQ(c.error().message, "f.toml:4: link[0].interval_seconds: expected an integer, found a string");
}

// Issue 16 item 4 (found again by issue 23's hostile tests): numbers from the file never throw.
TEST_F(ConfigTest, AMetricsPortThatIsNotANumberOrTooLargeIsRefusedAtCheckTime) {
  for (const char* bad :
       {"127.0.0.1:abc", "127.0.0.1:70000", "127.0.0.1:", ":9464", "127.0.0.1:99999999999999999999"}) {
    auto c = ParseConfig(Minimal("", "", std::string("[metrics]\nlisten = \"") + bad + "\"\n"), "f.toml");
    ASSERT_FALSE(c.ok()) << bad;
    EXPECT_THAT(c.error().message,
                HasSubstr("metrics.listen: expected HOST:PORT with a port from 0 to 65535"))
        << bad;
  }
  auto ok = ParseHostPort("127.0.0.1:9464");
  ASSERT_TRUE(ok.ok());
  EXPECT_EQ(ok->host, "127.0.0.1");
  EXPECT_EQ(ok->port, 9464);
}

TEST_F(ConfigTest, PeerLimitsHaveDefaultsAndRanges) {
  auto c = ParseConfig(Minimal(), "f.toml");
  ASSERT_TRUE(c.ok()) << c.error().ToString();
  EXPECT_EQ(c->links[0].remote.max_retry_after_seconds, 120);
  EXPECT_EQ(c->links[0].remote.max_document_memory_mb, 1024);
  EXPECT_EQ(c->max_documents_memory_mb, 2048);
  auto set = ParseConfig(Minimal("", "max_retry_after_seconds = 5\nmax_document_memory_mb = 64\n",
                                 "max_documents_memory_mb = 512\n"),
                         "f.toml");
  ASSERT_TRUE(set.ok()) << set.error().ToString();
  EXPECT_EQ(set->links[0].remote.max_retry_after_seconds, 5);
  EXPECT_EQ(set->links[0].remote.max_document_memory_mb, 64);
  EXPECT_EQ(set->max_documents_memory_mb, 512);
  auto bad = ParseConfig(Minimal("", "max_retry_after_seconds = 99999\n"), "f.toml");
  ASSERT_FALSE(bad.ok());
  EXPECT_THAT(
      bad.error().message,
      HasSubstr("link \"portal\".remote.max_retry_after_seconds: must be between 0 and 3600, found 99999"));
}

TEST_F(ConfigTest, TomlSyntaxErrorNamesLineAndColumn) {
  auto c = ParseConfig("[state]\ndatabase = \n", "f.toml");
  ASSERT_FALSE(c.ok());
  EXPECT_THAT(c.error().message, HasSubstr("f.toml:2:"));
}

TEST_F(ConfigTest, KeyFileReadableByOthersIsRefusedSayingWhy) {
  std::string text = Minimal();
  std::string loose = KeyFile("loose.key", 0644);
  std::string strict = (dir_.path() / "local.key").string();
  text.replace(text.find(strict), strict.size(), loose);
  auto c = ParseConfig(text, "f.toml");
  ASSERT_FALSE(c.ok());
  EXPECT_EQ(c.error().code, ErrorCode::kPermissionDenied);
  EXPECT_THAT(c.error().message,
              HasSubstr("link \"portal\".local.api_key_file: " + loose + " has mode 0644"));
  EXPECT_THAT(c.error().message, HasSubstr("readable by the service only (chmod 600"));
  EXPECT_THAT(c.error().message, ::testing::Not(HasSubstr(kKey)));
}

TEST_F(ConfigTest, KeyMayComeFromTheEnvironmentInstead) {
  ::setenv("SGSYNC_TEST_PORTAL_KEY", kKey, 1);
  std::string text = Minimal();
  std::string file_line = "api_key_file = \"" + (dir_.path() / "portal.key").string() + "\"";
  text.replace(text.find(file_line), file_line.size(), "api_key_env = \"SGSYNC_TEST_PORTAL_KEY\"");
  auto c = ParseConfig(text, "f.toml");
  ASSERT_TRUE(c.ok()) << c.error().ToString();
  EXPECT_EQ(c->links[0].remote.api_key.source, "environment SGSYNC_TEST_PORTAL_KEY");
  ::unsetenv("SGSYNC_TEST_PORTAL_KEY");
  c = ParseConfig(text, "f.toml");
  ASSERT_FALSE(c.ok());
  EXPECT_THAT(c.error().message, HasSubstr("the environment variable SGSYNC_TEST_PORTAL_KEY is not set"));
}

TEST_F(ConfigTest, SomethingThatIsNotAnApiKeyIsRefusedWithoutPrintingIt) {
  std::string text = Minimal();
  std::string good = (dir_.path() / "local.key").string();
  std::string bad = KeyFile("cert.key", 0600, "-----BEGIN PRIVATE KEY-----");
  text.replace(text.find(good), good.size(), bad);
  auto c = ParseConfig(text, "f.toml");
  ASSERT_FALSE(c.ok());
  EXPECT_THAT(c.error().message, HasSubstr("is not a MISP API key"));
  EXPECT_THAT(c.error().message, ::testing::Not(HasSubstr("BEGIN")));
}

TEST_F(ConfigTest, PlainHttpIsRefusedUnlessAskedFor) {
  std::string text = Minimal();
  text.replace(text.find("https://portal.test"), 19, "http://portal.test");
  auto c = ParseConfig(text, "f.toml");
  ASSERT_FALSE(c.ok());
  EXPECT_THAT(c.error().message,
              HasSubstr("link \"portal\".remote.url: plain http:// sends the API key unencrypted"));
  auto ok = ParseConfig(text + "insecure_http = true\n", "f.toml");
  EXPECT_TRUE(ok.ok()) << ok.error().ToString();
}

TEST_F(ConfigTest, BadPushRulesAreCaughtByThePolicyReaderAtCheckTime) {
  auto c = ParseConfig(Minimal("push_rules = '''{\"tags\": {\"OR\": \"tlp:green\"}}'''"), "f.toml");
  ASSERT_FALSE(c.ok());
  EXPECT_THAT(c.error().message, HasSubstr("link \"portal\".push_rules.tags.OR"));
  auto j = ParseConfig(Minimal("pull_rules = '''{\"tags\": '''"), "f.toml");
  ASSERT_FALSE(j.ok());
  EXPECT_THAT(j.error().message, HasSubstr("f.toml:4: link[0].pull_rules: not valid JSON"));
}

TEST_F(ConfigTest, RemoteOrganisationIsRequired) {
  std::string text = Minimal();
  std::string line = "org_uuid = \"1315aee3-d0b4-4569-a8f2-b99ad776f149\"\n";
  text.erase(text.find(line), line.size());
  auto c = ParseConfig(text, "f.toml");
  ASSERT_FALSE(c.ok());
  EXPECT_THAT(c.error().message, HasSubstr("link \"portal\".remote.org_uuid: missing (required)"));
}

TEST_F(ConfigTest, TcpAdminListenerWithoutClientCertificatesIsRefused) {
  auto c = ParseConfig(Minimal("", "", "[admin]\ntcp_listen = \"0.0.0.0:7443\"\n"), "f.toml");
  ASSERT_FALSE(c.ok());
  EXPECT_THAT(c.error().message,
              HasSubstr("admin.tcp_listen: a TCP admin listener needs tls_cert, tls_key and tls_client_ca"));
}

TEST_F(ConfigTest, LinkNamesAreUniqueAndDirectionsAreChecked) {
  std::string one = Minimal();
  std::string link = one.substr(one.find("[[link]]"));
  auto twice = ParseConfig(one + link, "f.toml");
  ASSERT_FALSE(twice.ok());
  EXPECT_THAT(twice.error().message, HasSubstr("link \"portal\": name used twice"));
  auto dir = ParseConfig(Minimal("directions = [\"push\", \"sideways\"]"), "f.toml");
  ASSERT_FALSE(dir.ok());
  EXPECT_THAT(dir.error().message,
              HasSubstr("directions: expected \"push\" and/or \"pull\", found \"sideways\""));
}

TEST_F(ConfigTest, SharingIdentityChangesWithRulesNotWithInterval) {
  auto a = ParseConfig(Minimal(), "f.toml");
  auto b = ParseConfig(Minimal("interval_seconds = 60"), "f.toml");
  auto c = ParseConfig(Minimal("blocked_tags_push = [\"tlp:red\", \"tlp:amber\"]"), "f.toml");
  ASSERT_TRUE(a.ok() && b.ok() && c.ok());
  EXPECT_EQ(SharingIdentity(a->links[0]), SharingIdentity(b->links[0]));
  EXPECT_NE(SharingIdentity(a->links[0]), SharingIdentity(c->links[0]));
}

TEST_F(ConfigTest, OtherDataSwitchesDefaultOnAndPullBlocklistsReachThePolicyLink) {
  auto d = ParseConfig(Minimal(), "f.toml");
  ASSERT_TRUE(d.ok()) << d.error().ToString();
  EXPECT_TRUE(d->links[0].engine.proposals && d->links[0].engine.galaxy_clusters &&
              d->links[0].engine.analyst_data);
  auto c = ParseConfig(Minimal("proposals = false\ngalaxy_clusters = false\nanalyst_data = false\n"
                               "pull_blocked_events = [\"00000000-0000-4000-8000-000000000049\"]\n"
                               "pull_blocked_orgs = [\"1315AEE3-D0B4-4569-A8F2-B99AD776F149\"]"),
                       "f.toml");
  ASSERT_TRUE(c.ok()) << c.error().ToString();
  EXPECT_FALSE(c->links[0].engine.proposals || c->links[0].engine.galaxy_clusters ||
               c->links[0].engine.analyst_data);
  auto link = MakePolicyLink(c->links[0], {"1315aee3-d0b4-4569-a8f2-b99ad776f149", "ORG2"},
                             {"ce867008-0536-4358-9f2e-20df12768cd3", "ORG1"});
  ASSERT_TRUE(link.ok()) << link.error().ToString();
  EXPECT_TRUE(policy::PullBlocklisted(*link, "00000000-0000-4000-8000-000000000049", ""));
  EXPECT_TRUE(policy::PullBlocklisted(*link, "", "1315aee3-d0b4-4569-a8f2-b99ad776f149"));
  auto bad = ParseConfig(Minimal("pull_blocked_orgs = [\"ORG3\"]"), "f.toml");
  ASSERT_FALSE(bad.ok());
  EXPECT_THAT(bad.error().ToString(), HasSubstr("pull_blocked_orgs"));
  EXPECT_THAT(bad.error().ToString(), HasSubstr("expected uuids, found \"ORG3\""));
  EXPECT_THAT(bad.error().ToString(), HasSubstr("f.toml:4: link \"portal\".pull_blocked_orgs"));
}

TEST_F(ConfigTest, RedactedFormCarriesNoSecret) {
  auto c = ParseConfig(Minimal(), "f.toml");
  ASSERT_TRUE(c.ok());
  std::string text = boost::json::serialize(Redacted(*c));
  EXPECT_THAT(text, ::testing::Not(HasSubstr(kKey)));
  EXPECT_THAT(text, HasSubstr("<redacted: file " + (dir_.path() / "portal.key").string() + ">"));
}

TEST_F(ConfigTest, MissingFileIsAnIoErrorNamingIt) {
  auto c = LoadConfig((dir_.path() / "absent.toml").string());
  ASSERT_FALSE(c.ok());
  EXPECT_EQ(c.error().code, ErrorCode::kIo);
  EXPECT_THAT(c.error().message, HasSubstr("absent.toml"));
}

TEST_F(ConfigTest, EachEngineSettingIsReadIntoTheEngineOptionsAndShownUnderItsKey) {
  auto c =
      ParseConfig(Minimal("overlap_seconds = 60\nconflict_policy = \"manual\"\non_partial_write = \"retry\"\n"
                          "tombstones = true\nsightings = false\nsightings_policy = 3\n"
                          "sightings_anonymise = true\n"
                          "sightings_anonymise_as = \"9f3c7e20-3b1a-4d6e-8a51-2f6c0d9e7a33\"\n"
                          "batch_memory_mb = 64\n"),
                  "t.toml");
  ASSERT_TRUE(c.ok()) << c.error().ToString();
  const engine::EngineOptions& o = c->links[0].engine;
  EXPECT_EQ(o.overlap_seconds, 60);
  EXPECT_EQ(o.conflict_policy, engine::ConflictPolicy::kManual);
  EXPECT_EQ(o.on_partial_write, engine::PartialWrite::kRetry);
  EXPECT_TRUE(o.tombstones);
  EXPECT_FALSE(o.sightings);
  EXPECT_EQ(o.sightings_policy.policy, 3);
  EXPECT_TRUE(o.sightings_policy.anonymise);
  EXPECT_EQ(o.sightings_policy.anonymise_as.uuid, "9f3c7e20-3b1a-4d6e-8a51-2f6c0d9e7a33");
  EXPECT_EQ(o.batch_memory_mb, 64);
  boost::json::object shown = Redacted(*c).at("links").as_array()[0].as_object();
  EXPECT_EQ(shown.at("conflict_policy"), "manual");
  EXPECT_EQ(shown.at("on_partial_write"), "retry");
  EXPECT_EQ(shown.at("overlap_seconds"), 60);
  EXPECT_EQ(shown.at("batch_memory_mb"), 64);
  std::string docs =
      sgsync::testing::ReadFile(std::filesystem::path(SGSYNC_SOURCE_DIR) / "docs/configuration.md");
  for (std::string_view key : EngineSettingKeys()) {
    EXPECT_TRUE(shown.contains(key)) << key << " is not shown by GetConfig";
    EXPECT_NE(docs.find("`" + std::string(key) + "`"), std::string::npos) << key << " is not documented";
  }
}

TEST_F(ConfigTest, AnEngineSettingOutOfItsRangeNamesTheFileLineAndKey) {
  auto c = ParseConfig(Minimal("on_partial_write = \"drop\"\n"), "t.toml");
  ASSERT_FALSE(c.ok());
  EXPECT_NE(c.error().message.find("t.toml:"), std::string::npos) << c.error().message;
  EXPECT_NE(c.error().message.find("on_partial_write: expected accept, retry or dead_letter, found \"drop\""),
            std::string::npos)
      << c.error().message;
}

}  // namespace
}  // namespace sgsync::config
