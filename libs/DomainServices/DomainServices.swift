import Bus
import Contracts
import Foundation
import ServiceRuntime
import Store
import VigilCore

/// Billing: starts on the shared runtime, migrates its schema, relays its outbox and answers `$SRV`;
/// its domain comes with the billing issue.
public enum DomainServices {
    public static let billing = ServiceDefinition(
        name: "billing", description: "Plans, subscriptions, usage and quotas", schema: "billing")
}
