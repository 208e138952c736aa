// The checks of one MISP of a link: reachable, TLS, the key's account, the clock (onboarding.h).
#include <sys/statvfs.h>
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <ctime>
#include <filesystem>
#include <fstream>
#include <functional>
#include <map>
#include <set>

#include "common/encoding.h"
#include "config/client.h"
#include "onboarding/check.h"
#include "onboarding/onboarding.h"
#include "sync/policy/policy.h"

namespace sgsync::onboarding::detail {

namespace json = boost::json;

void CheckReachAndTls(const Sink& sink, const CheckOptions& o, const std::string& link, Side& side,
                      const config::MispEndpointConfig& e) {
  const bool member = side.name == "member";
  Check reach(sink, o.lang, side.name + ".reachable", link,
              member ? "the member's MISP answers" : "the Portal answers",
              member ? "会員の MISP が応答する" : "ポータルが応答する");
  auto version = side.client->GetVersion();
  if (!version.ok() &&
      (version.error().code == ErrorCode::kUnavailable || version.error().code == ErrorCode::kTimeout ||
       version.error().code == ErrorCode::kRefused)) {
    reach.FailWith(version.error().ToString(),
                   reach.T("check " + e.url + ", the network path and the certificate (ca_file, pin_sha256)",
                           e.url + "、経路、証明書（ca_file、pin_sha256）を確認してください"));
  } else {
    reach.Pass(e.url);
    if (version.ok()) side.version = *version;
  }
  Check tls(sink, o.lang, side.name + ".tls", link, "TLS certificate valid", "TLS 証明書が有効");
  if (e.insecure_http) {
    tls.Warn(
        tls.T("plain http (insecure_http = true): the API key travels unencrypted",
              "平文の http（insecure_http = true）：API キーが暗号化されずに流れます"),
        tls.T("use https:// and remove insecure_http", "https:// を使い insecure_http を外してください"));
    return;
  }
  auto cert = side.client->transport().InspectCertificate();
  if (!cert.ok()) {
    tls.FailWith(
        cert.error().ToString(),
        tls.T("install a certificate for this host name, signed by a CA in ca_file or the system store; "
              "check pin_sha256",
              "このホスト名の、ca_file またはシステムの CA が署名した証明書を使い、pin_sha256 "
              "を確認してください"));
    return;
  }
  auto left =
      std::chrono::duration_cast<std::chrono::hours>(cert->not_after - std::chrono::system_clock::now());
  std::int64_t days = left.count() / 24;
  std::string found = cert->subject + tls.T(", expires in " + std::to_string(days) + " days",
                                            "、有効期限まで " + std::to_string(days) + " 日");
  if (days < o.certificate_warn_days) {
    tls.Warn(found, tls.T("renew the certificate", "証明書を更新してください"));
  } else {
    tls.Pass(found);
  }
}

void CheckKey(const Sink& sink, const CheckOptions& o, const std::string& link, Side& side) {
  const bool member = side.name == "member";
  Check key(sink, o.lang, side.name + ".key", link,
            member ? "the member MISP's key is accepted" : "the Portal key is accepted",
            member ? "会員の MISP のキーが受け付けられる" : "ポータルのキーが受け付けられる");
  auto me = side.client->WhoAmI();
  if (!me.ok()) {
    key.FailWith(me.error().ToString(),
                 key.T(member ? "create a key for a site admin of your host organisation"
                              : "use the sync user's key the secretariat issued",
                       member ? "ホスト組織のサイト管理者のキーを作成してください"
                              : "事務局が発行した同期ユーザーのキーを使ってください"));
    return;
  }
  side.me = *me;
  key.Pass(me->email + " (" + me->org_name + ", " + me->role_name + ")");
}

void CheckClock(const Sink& sink, const CheckOptions& o, const std::string& link, Side& side) {
  Check clock(sink, o.lang, side.name + ".clock", link, "clock skew under a minute", "時刻のずれが 1 分未満");
  auto r = side.client->transport().Send(connector::HttpRequest{"GET", "/servers/getVersion", {}, "", true});
  if (!r.ok() || !r->headers.count("date")) {
    clock.Skip(clock.T("no Date header to compare", "比較できる Date ヘッダーがありません"));
    return;
  }
  auto at = connector::ParseHttpDate(r->headers.at("date"));
  if (!at) {
    clock.Skip(clock.T("an unreadable Date header: ", "読めない Date ヘッダー：") + r->headers.at("date"));
    return;
  }
  std::int64_t skew = *at - static_cast<std::int64_t>(std::time(nullptr));
  std::string found = clock.T("the MISP's clock is " + std::to_string(skew) + " s from this host's",
                              "MISP の時刻はこのホストと " + std::to_string(skew) + " 秒ずれています");
  if (std::llabs(skew) > o.max_clock_skew_seconds) {
    clock.FailWith(
        found,
        clock.T("synchronise both clocks with NTP (chrony or systemd-timesyncd): "
                "sync cursors are timestamps",
                "両方の時刻を NTP（chrony または systemd-timesyncd）で同期してください。カーソルは時刻です"));
  } else {
    clock.Pass(found);
  }
}

}  // namespace sgsync::onboarding::detail
