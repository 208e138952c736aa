// sgsyncctl: the operator's command line for sgsync.
#include <CLI/CLI.hpp>
#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <cstring>

#include "cli/admin.h"
#include "cli/evaluate.h"
#include "cli/onboarding.h"
#include "common/core_dumps.h"

#ifndef SGSYNC_VERSION
#define SGSYNC_VERSION "unknown"
#endif

int main(int argc, char** argv) {
  // Before any key is read: a core file must never carry one (common/core_dumps.h).
  if (!sgsync::ForbidCoreDumps())
    std::fprintf(stderr, "sgsyncctl: cannot forbid core dumps: %s\n", std::strerror(errno));
  CLI::App app{"sgsyncctl: operate sgsync, the SecureGRID federation sync service"};
  app.set_version_flag("--version", std::string("sgsyncctl ") + SGSYNC_VERSION);
  app.require_subcommand(1);

  sgsync::cli::EvaluateArgs eval;
  CLI::App* evaluate = app.add_subcommand(
      "evaluate", "Run the sharing policy offline: what would cross the link, what will arrive, and why");
  evaluate->add_option("--direction", eval.direction, "push (member -> peer) or pull (peer -> member)")
      ->required()
      ->check(CLI::IsMember({"push", "pull"}));
  evaluate
      ->add_option("--link", eval.link_path, "the link as JSON (tests/data/conformance/case2link.py format)")
      ->required();
  evaluate
      ->add_option("--event", eval.event_path,
                   "the event as JSON ({\"Event\": ...}, or null for a pull the peer does not serve)")
      ->required();

  // Onboarding (docs/onboarding.md): the member's checks, and the secretariat's probe.
  sgsync::cli::OnboardingArgs onb;
  CLI::App* onboarding = app.add_subcommand("onboarding", "Prove an installation ready to join SecureGRID");
  onboarding->require_subcommand(1);
  auto report_options = [&](CLI::App* c) {
    c->add_option("--lang", onb.lang, "en or ja")->check(CLI::IsMember({"en", "ja"}));
    c->add_flag("--json", onb.json, "the report as JSON (docs/onboarding.schema.json)");
    c->add_flag("--markdown", onb.markdown, "the report as Markdown, for the secretariat");
  };
  CLI::App* check =
      onboarding->add_subcommand("check", "The member's checks, read from both MISPs (nothing written)");
  check->add_flag("--canary", onb.canary,
                  "also send a test event both ways, read it back, and remove it where the keys allow");
  check->add_option("--config", onb.config,
                    "check this configuration file without a daemon (default: ask the running daemon)");
  report_options(check);
  CLI::App* probe =
      onboarding->add_subcommand("probe", "The secretariat's look at a member's MISP from outside");
  probe->add_option("--url", onb.url, "the member MISP's URL")->required();
  probe->add_option("--key-file", onb.key_file, "a file holding the key the member handed over")
      ->required()
      ->check(CLI::ExistingFile);
  probe->add_option("--ca", onb.ca_file, "PEM CA that signs its certificate")->check(CLI::ExistingFile);
  probe->add_option("--latest", onb.latest, "the latest MISP version the Portal supports (default 2.5.1)");
  probe->add_flag("--insecure-http", onb.insecure_http, "allow a plain http:// URL (tests only)");
  report_options(probe);

  // The admin subcommands share the connection options; each is one call of the admin API.
  sgsync::cli::AdminArgs admin;
  const char* env_socket = std::getenv("SGSYNC_ADMIN_SOCKET");
  admin.socket = env_socket != nullptr ? env_socket : "/run/sgsync/admin.sock";
  app.add_option("--socket", admin.socket,
                 "the admin socket (default $SGSYNC_ADMIN_SOCKET or /run/sgsync/admin.sock); with "
                 "--tls-cert, HOST:PORT");
  app.add_option("--tls-ca", admin.tls_ca, "PEM CA of the daemon's TCP listener")->check(CLI::ExistingFile);
  app.add_option("--tls-cert", admin.tls_cert, "PEM client certificate for the TCP listener")
      ->check(CLI::ExistingFile);
  app.add_option("--tls-key", admin.tls_key, "PEM client key")->check(CLI::ExistingFile);
  app.add_flag("--json", admin.json, "print the answer as JSON (for scripts) instead of a table");
  std::vector<CLI::App*> commands;
  auto command = [&](const char* name, const char* help) {
    CLI::App* c = app.add_subcommand(name, help);
    commands.push_back(c);
    return c;
  };
  auto link_option = [&](CLI::App* c) {
    c->add_option("--link", admin.link, "the link (default: the daemon's only link)");
  };
  auto direction_option = [&](CLI::App* c) {
    c->add_option("--direction", admin.direction, "push or pull (default: both)")
        ->check(CLI::IsMember({"push", "pull"}));
  };
  CLI::App* status =
      command("status", "Per link and direction: state, last run, cursor, counts, queue, dead letters");
  status->add_option("--link", admin.link, "only this link");
  CLI::App* sync = command("sync", "Run a link now");
  link_option(sync);
  direction_option(sync);
  sync->add_flag("--full", admin.full, "list from the beginning (full reconciliation)");
  sync->add_flag("--wait", admin.wait, "follow the run to its end (a progress bar on a terminal)");
  CLI::App* pause = command("pause", "Stop scheduling runs of a link (a run in progress finishes)");
  link_option(pause);
  direction_option(pause);
  CLI::App* resume = command("resume", "Schedule a paused link again");
  link_option(resume);
  direction_option(resume);
  CLI::App* events = command("events", "The events sgsync knows, with their decision and state");
  events->add_option("--link", admin.link, "only this link");
  events->add_option("--state", admin.state, "in_sync, skipped, pending, failed or dead");
  events->add_option("--decision", admin.decision,
                     "queued, send, skip, held_conflict, deleted_at_portal or tombstoned");
  events->add_option("--since", admin.since, "updated at or after (Unix seconds)");
  events->add_option("--limit", admin.limit, "events per page (default 100)");
  events->add_option("--page-token", admin.page_token, "the next page, as the previous answer gave it");
  CLI::App* explain = command("explain", "Why an event was or was not shared, and what would change now");
  explain->add_option("uuid", admin.uuid, "the event uuid")->required();
  link_option(explain);
  direction_option(explain);
  CLI::App* preview = command("preview", "What the next run would send and withhold, and why (read-only)");
  link_option(preview);
  preview->add_option("--direction", admin.direction, "push or pull")
      ->required()
      ->check(CLI::IsMember({"push", "pull"}));
  preview->add_option("--limit", admin.limit, "events fetched and decided (default 100)");
  CLI::App* resend = command("resend", "Decide one event afresh and write it again where it may go");
  resend->add_option("uuid", admin.uuid, "the event uuid")->required();
  link_option(resend);
  direction_option(resend);
  CLI::App* conflicts = command("conflicts", "Events changed on both sides");
  conflicts->add_option("--link", admin.link, "only this link");
  conflicts->add_flag("--all", admin.all, "resolved ones too");
  CLI::App* resolve = command("resolve", "Record how a conflict is resolved");
  resolve->add_option("id", admin.id, "the conflict id")->required();
  resolve->add_option("--resolution", admin.resolution, "prefer-local, prefer-portal or prefer-newer")
      ->required()
      ->check(CLI::IsMember({"prefer-local", "prefer-portal", "prefer-newer"}));
  CLI::App* failures = command("failures", "Events whose sync failed (retrying) or was given up (dead)");
  failures->add_option("--link", admin.link, "only this link");
  failures->add_flag("--dead-only", admin.dead_only, "only dead letters");
  CLI::App* retry = command("retry", "Retry a dead letter");
  retry->add_option("id", admin.id, "the failure id")->required();
  CLI::App* drop = command("drop", "Drop a dead letter (the event is not retried)");
  drop->add_option("id", admin.id, "the failure id")->required();
  CLI::App* audit = command("audit", "The audit trail: who changed what, and when (oldest first)");
  audit->add_option("--link", admin.link, "only entries about this link");
  audit->add_option("--since", admin.since, "at or after (Unix seconds)");
  audit->add_option("--limit", admin.limit, "entries per page (default 100, at most 1000)");
  audit->add_option("--after", admin.after_id, "the next page: the id the previous page ended with");
  audit->add_option("--format", admin.format, "jsonl: every entry, one JSON object per line (for a SIEM)")
      ->check(CLI::IsMember({"jsonl"}));
  command("config", "The running configuration, secrets redacted");
  command("reload", "Read the configuration file again");
  command("vacuum", "Compact the state database online (runs wait for it)");
  CLI::App* backup = command("backup", "Write an online backup of the state database");
  backup->add_option("path", admin.path, "where, on the daemon's host (absolute)")->required();

  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    // CLI11 reports usage errors by exception; exit code 2 is the usage convention of sgsyncctl.
    int code = app.exit(e);
    return code == 0 ? 0 : 2;
  }
  if (evaluate->parsed()) return sgsync::cli::RunEvaluate(eval);
  if (check->parsed()) {
    onb.admin = &admin;
    return sgsync::cli::RunOnboardingCheck(onb);
  }
  if (probe->parsed()) return sgsync::cli::RunOnboardingProbe(onb);
  for (CLI::App* c : commands) {
    if (c->parsed()) {
      admin.command = c->get_name();
      return sgsync::cli::RunAdmin(admin);
    }
  }
  return 2;
}
