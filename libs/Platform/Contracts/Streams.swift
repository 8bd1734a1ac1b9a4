import VigilCore

/// The JetStream streams (DESIGN.md §3); the subjects on them are generated in `Events` and `Jobs`.
package enum Streams {
    /// Domain events, `vigil.events.<aggregate>.<event>`.
    package static let events = "VIGIL_EVENTS"
    package static let eventSubjects = [Events.all]
    /// Work queues, `vigil.jobs.<kind>.<detail>`.
    package static let jobs = "VIGIL_JOBS"
    package static let jobSubjects = ["vigil.jobs.>"]
    /// Dead letters, `vigil.dead.<stream>.<consumer>`: a copy of every message a consumer gave up on (its
    /// handler dropped it, or its last delivery failed), with the original subject and the reason in
    /// `Vigil-Dead-*` headers. Listed and retried by `/ops/failures`.
    package static let dead = "VIGIL_DEAD"
    package static let deadSubjects = ["vigil.dead.>"]
    /// Where scan result batches went before they became work (`Jobs.findingsResults`): every subscriber
    /// of `vigil.events.>` received each batch. Still ingested, for batches published by a version before
    /// that and not yet consumed.
    package static let legacyScanResults = "vigil.events.scan.results"
}

/// Internal operations subjects (no REST route of their own; `/ops/failures` asks them).
package enum OpsSubjects {
    /// Notifier: webhook deliveries that failed for good, newest first (every workspace).
    package static let webhookFailures = "vigil.notifier.ops.failures"
    /// Notifier: queue a failed delivery again (`{"delivery_id": …}`).
    package static let webhookRetry = "vigil.notifier.ops.retry"
}
