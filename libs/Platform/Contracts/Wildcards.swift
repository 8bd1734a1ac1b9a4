import VigilCore

/// Subjects built from a part known only at run time, and the wildcard filters consumers bind to.
/// Every such subject is spelled here, beside the generated constants, so no service writes one.
extension Events {
    /// Every domain event (`vigil.events.>`).
    package static let all = "vigil.events.>"
    /// Every event of one aggregate, e.g. `remediation` → `vigil.events.remediation.>`.
    package static func all(of aggregate: String) -> String { "vigil.events.\(aggregate).>" }
    /// The subject prefix every event of one aggregate shares, e.g. `vigil.events.remediation.`.
    package static func prefix(of aggregate: String) -> String { "vigil.events.\(aggregate)." }
    /// The event of `aggregate` named `name` (e.g. a remediation status), for kinds chosen at run time.
    package static func kind(_ aggregate: String, _ name: String) -> EventKind { EventKind("\(aggregate).\(name)") }
}

extension Jobs {
    /// The scan work queue of one provider (`vigil.jobs.scan.aws`).
    package static func scan(provider: String) -> String { "vigil.jobs.scan.\(provider)" }
    /// Remediation work: `execute` or `rollback`.
    package static func remediation(_ op: String) -> String { "vigil.jobs.remediation.\(op)" }
    /// Every remediation job (the executor's filter).
    package static let remediationAll = "vigil.jobs.remediation.>"
}

extension Subjects.Scans {
    /// Setup instructions of a provider (`linux_install`, `azure_setup`, …).
    package static func instructions(_ name: String) -> String { "vigil.scans.instructions.\(name)" }
}
