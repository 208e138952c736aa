// daemon/operations.h: what an operator can ask of sgsyncd, as plain C++ calls. The admin API's
// gRPC handlers (daemon/admin_server.cc) only turn messages into these calls and their answers back
// into messages; the rules (which state a failure must be in to be retried, what resolving a
// conflict sets going, what explain compares) live here, tested in process
// (tests/integration/operations_test.cc).
//
// Links are named as in the configuration. Every mutating call takes the actor (who asked: the
// Unix socket's peer or the TLS client certificate's subject) and records itself in the audit log.
// Expected failures are values: NotFound for an unknown link, conflict or work item;
// FailedPrecondition for an action the item's state does not allow; Unavailable naming the store's
// error when the state database cannot be read (never zeros instead).
#pragma once

#include <cstdint>
#include <functional>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "common/direction.h"
#include "common/result.h"
#include "daemon/service.h"
#include "state/store.h"
#include "sync/policy/decision.h"

namespace sgsync::daemon {

namespace json = boost::json;

class Operations {
 public:
  explicit Operations(Service& service) : service_(service) {}

  // ---- status
  struct DirectionView {
    Direction direction = Direction::kPush;
    DirectionStatus status;
    std::int64_t sent = 0;    // events written by this direction since sgsyncd started
    std::int64_t failed = 0;  // failed attempts since sgsyncd started
    std::int64_t cursor_timestamp = 0;
    std::string cursor_generation;
    std::int64_t queue_depth = 0;  // pending, leased and failed work items
    std::int64_t dead_letters = 0;
  };
  struct LinkView {
    Service::LinkSnapshot link;
    std::int64_t open_conflicts = 0;
    std::vector<DirectionView> directions;  // the enabled ones
  };
  // Every link, or the one named (NotFound when there is none).
  Result<std::vector<LinkView>> LinkStatus(const std::string& link);

  // ---- the ledger
  struct EventRow {
    std::string link;
    state::StateStore::LedgerRow row;
    // in_sync | skipped | pending | leased | failed | dead | "" (the queue's states, done split by
    // the decision)
    std::string state;
  };
  struct EventsPage {
    std::vector<EventRow> events;
    std::string next_page_token;  // "" on the last page
  };
  // The ledger of one link or all, by link name then uuid, `limit` rows from `page_token`.
  // `decision` is a ledger decision name or ""; `state` one of the states above or "".
  Result<EventsPage> ListEvents(const std::string& link, const std::string& decision,
                                const std::string& state, std::int64_t updated_since,
                                const std::string& page_token, int limit);

  // ---- explain
  struct Explanation {
    std::optional<json::value> stored;  // the decision recorded in the ledger (policy::Decision::ToJson)
    std::int64_t stored_at = 0;
    std::optional<json::value> fresh;  // the decision now, the event fetched from its source
    std::int64_t fresh_at = 0;
    // What differs between them, or why they cannot be compared, in words.
    std::vector<std::string> differences;
  };
  // `direction` absent: the one the ledger knows the event from (InvalidArgument when it knows none).
  Result<Explanation> Explain(const std::string& link, const std::string& uuid,
                              std::optional<Direction> direction);

  // ---- preview: what the next run in `direction` would do (LinkEngine::Preview); read-only.
  Result<engine::RunPreview> Preview(const std::string& link, std::optional<Direction> direction, int limit);

  // ---- resend
  struct ResendResult {
    std::string outcome;  // sent | already | skipped | held | failed
    std::string detail;   // skipped: the rule; failed: the error
  };
  // `direction` absent: the one the ledger knows the event from (InvalidArgument when it knows none).
  Result<ResendResult> Resend(const std::string& link, const std::string& uuid,
                              std::optional<Direction> direction, const std::string& actor);

  // ---- conflicts
  struct ConflictRow {
    std::string link;
    state::Conflict conflict;
  };
  Result<std::vector<ConflictRow>> ListConflicts(const std::string& link, bool include_resolved);
  // Records the resolution (prefer-local, prefer-portal or prefer-newer) and sets the event going
  // again in both directions: the next runs write it under the resolution.
  Result<ConflictRow> ResolveConflict(std::int64_t id, const std::string& resolution,
                                      const std::string& actor);

  // ---- failures
  struct FailureRow {
    std::string link;
    state::WorkItem item;
    bool dropped = false;
  };
  Result<std::vector<FailureRow>> ListFailures(const std::string& link, bool dead_only);
  // A dead letter tried again at once, or dropped (the event is not retried until it changes).
  // FailedPrecondition for an item that is not dead: it is retried on its own.
  Result<FailureRow> RetryFailure(std::int64_t id, const std::string& actor);
  Result<FailureRow> DropFailure(std::int64_t id, const std::string& actor);

  // ---- the audit trail
  struct AuditPage {
    std::vector<state::AuditRecord> entries;
    std::int64_t next_after_id = 0;  // 0 on the last page
  };
  // Oldest first from `after_id`; `link` keeps the entries about that link (NotFound: no such link).
  Result<AuditPage> ListAudit(std::int64_t since, const std::string& link, std::int64_t after_id, int limit);

  // ---- control
  Status SetPaused(const std::string& link, std::optional<Direction> d, bool paused,
                   const std::string& actor);
  // The directions a trigger runs: `d`, or every enabled direction of the link (NotFound: no link).
  Result<std::vector<Direction>> TriggerDirections(const std::string& link, std::optional<Direction> d);
  Result<engine::RunStats> Trigger(const std::string& link, Direction d, bool full, const std::string& actor,
                                   const std::function<void(const engine::RunStats&)>& progress);
  Status Backup(const std::string& path, const std::string& actor);
  // The running configuration as TOML, secrets redacted, with what numeric rule ids stand for.
  std::string ConfigText();
  // Reads the configuration file again (Service::ReloadFromFile); what changed, in words; audited.
  Result<std::vector<std::string>> Reload(const std::string& actor);
  // The state database's size, and compacting it (VACUUM): sizes before and after.
  Result<std::int64_t> StateSize();
  Result<std::pair<std::int64_t, std::int64_t>> Vacuum(const std::string& actor);
  // Records `action` on `target` by `actor` with its result ("ok" or the error) and logs it.
  void Audit(const std::string& actor, const std::string& action, const std::string& target,
             const std::string& result);

 private:
  Result<FailureRow> FailureAction(std::int64_t id, const std::string& actor, bool retry);
  std::optional<ConflictRow> FindConflict(std::int64_t id);
  std::string LinkNameOf(std::int64_t link_id);

  Service& service_;
};

}  // namespace sgsync::daemon
