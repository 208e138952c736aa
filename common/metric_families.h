// common/metric_families.h: every metric family sgsyncd exposes, with its type, help and labels.
// The only names a Metrics registry of sgsyncd accepts (common/metrics.h); docs/operations.md,
// "Metrics", describes each for operators. Add a family here, then write it where it happens.
#pragma once

#include "common/metrics.h"

namespace sgsync::metric {

using T = MetricType;

// ---- events (sync/engine)
inline constexpr MetricFamily kEvents{
    "sgsync_events_total", T::kCounter,
    "Events handled, by link, direction and outcome (sent, already, skipped, held, echo, failed).",
    "link direction outcome"};
inline constexpr MetricFamily kEventsSkipped{"sgsync_events_skipped_total", T::kCounter,
                                             "Events the policy refused, by link, direction and rule.",
                                             "link direction reason"};
inline constexpr MetricFamily kRuns{"sgsync_runs_total", T::kCounter,
                                    "Sync runs, by link, direction and outcome (ok, not_modified, aborted).",
                                    "link direction outcome"};
inline constexpr MetricFamily kConflicts{"sgsync_conflicts_total", T::kCounter,
                                         "Events found changed on both sides since the last sync.", "link"};
inline constexpr MetricFamily kReconciliationFound{
    "sgsync_reconciliation_found_total", T::kCounter,
    "Events a full reconciliation found behind the cursor (late arrivals), by link and direction.",
    "link direction"};
inline constexpr MetricFamily kQueueDepth{"sgsync_queue_depth", T::kGauge,
                                          "Work items by link, direction and state (pending, failed, dead).",
                                          "link direction state"};
inline constexpr MetricFamily kLastSuccess{
    "sgsync_last_success_timestamp_seconds", T::kGauge,
    "When a run last ended without error, by link and direction (Unix seconds).", "link direction"};
inline constexpr MetricFamily kInterval{"sgsync_interval_seconds", T::kGauge,
                                        "The configured interval between runs, by link and direction.",
                                        "link direction"};
inline constexpr MetricFamily kCursor{"sgsync_cursor_timestamp_seconds", T::kGauge,
                                      "The event cursor, by link and direction.", "link direction"};
inline constexpr MetricFamily kElementsDropped{
    "sgsync_elements_dropped_total", T::kCounter,
    "Elements a receiver accepted the event without (saved in part), by link, direction and kind.",
    "link direction kind"};
inline constexpr MetricFamily kIndexRowsRejected{
    "sgsync_index_rows_rejected_total", T::kCounter,
    "Index rows left out, by link, direction and reason (unreadable, implausible_timestamp).",
    "link direction reason"};
inline constexpr MetricFamily kProtected{
    "sgsync_protected_total", T::kCounter,
    "Writes and deletions refused to protect the member's own events, by link and what (overwrite, delete).",
    "link what"};

// ---- the side channels (sync/engine)
inline constexpr MetricFamily kSightings{
    "sgsync_sightings_total", T::kCounter,
    "Sightings by link, direction and outcome (sent, withheld by the sighting policy).",
    "link direction outcome"};
inline constexpr MetricFamily kProposals{"sgsync_proposals_total", T::kCounter,
                                         "Proposals written to the other side, by link and direction.",
                                         "link direction"};
inline constexpr MetricFamily kProposalsWithheld{
    "sgsync_proposals_withheld_total", T::kCounter,
    "Proposals kept home because what they change does not leave, by link, direction and rule.",
    "link direction reason"};
inline constexpr MetricFamily kClusters{
    "sgsync_clusters_total", T::kCounter,
    "Custom galaxy clusters written to the other side, by link and direction.", "link direction"};
inline constexpr MetricFamily kAnalystData{
    "sgsync_analyst_data_total", T::kCounter,
    "Analyst data (notes, opinions, relationships) written to the other side, by link and direction.",
    "link direction"};

// ---- requests to the MISPs (the connector's observer, config/client.cc)
inline constexpr MetricFamily kRequests{
    "sgsync_requests_total", T::kCounter,
    "Requests to a MISP, by peer, method, route and status (0: no answer).", "peer method route status"};
inline constexpr MetricFamily kRequestDuration{"sgsync_request_duration_seconds", T::kHistogram,
                                               "Time of one request attempt, by peer and route.",
                                               "peer route"};

inline constexpr MetricFamily kTlsHandshakes{
    "sgsync_tls_handshakes_total", T::kCounter,
    "TLS handshakes with a MISP, by peer and whether an earlier session was resumed (true, false).",
    "peer resumed"};

inline constexpr const MetricFamily* kFamilies[] = {
    &kEvents,          &kEventsSkipped,       &kRuns,
    &kConflicts,       &kReconciliationFound, &kQueueDepth,
    &kInterval,        &kLastSuccess,         &kCursor,
    &kElementsDropped, &kIndexRowsRejected,   &kProtected,
    &kSightings,       &kProposals,           &kProposalsWithheld,
    &kClusters,        &kAnalystData,         &kRequests,
    &kRequestDuration, &kTlsHandshakes,
};

}  // namespace sgsync::metric
