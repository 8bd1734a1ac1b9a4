import Foundation

/// Identifiers are lowercase UUID strings everywhere (database, bus, REST).
public enum ID {
    public static func make() -> String { UUID().uuidString.lowercased() }
    /// True when `s` is a well-formed UUID; used to answer 404 instead of a database cast error.
    public static func isValid(_ s: String) -> Bool { UUID(uuidString: s) != nil }
}
