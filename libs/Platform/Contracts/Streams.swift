import VigilCore

/// The JetStream streams (DESIGN.md §3); the subjects on them are generated in `Events` and `Jobs`.
package enum Streams {
    /// Domain events, `vigil.events.<aggregate>.<event>`.
    package static let events = "VIGIL_EVENTS"
    package static let eventSubjects = [Events.all]
    /// Work queues, `vigil.jobs.<kind>.<detail>`.
    package static let jobs = "VIGIL_JOBS"
    package static let jobSubjects = ["vigil.jobs.>"]
    /// Where scan result batches went before they became work (`Jobs.findingsResults`): every subscriber
    /// of `vigil.events.>` received each batch. Still ingested, for batches published by a version before
    /// that and not yet consumed.
    package static let legacyScanResults = "vigil.events.scan.results"
}
