import Foundation

/// Reads configuration from environment variables, with `--flag value` command-line overrides.
///
/// Flags map to variables by upper-casing and prefixing: `--nats-url` → `VIGIL_NATS_URL`.
public struct ConfigReader: Sendable {
    public let values: [String: String]

    public init(
        environment: [String: String] = ProcessInfo.processInfo.environment,
        arguments: [String] = Array(CommandLine.arguments.dropFirst())
    ) {
        var v = environment
        var i = 0
        while i < arguments.count {
            let a = arguments[i]
            if a.hasPrefix("--") {
                let body = String(a.dropFirst(2))
                let (name, value): (String, String)
                if let eq = body.firstIndex(of: "=") {
                    name = String(body[..<eq])
                    value = String(body[body.index(after: eq)...])
                } else if i + 1 < arguments.count, !arguments[i + 1].hasPrefix("--") {
                    name = body
                    value = arguments[i + 1]
                    i += 1
                } else {
                    name = body
                    value = "true"
                }
                v["VIGIL_" + name.uppercased().replacingOccurrences(of: "-", with: "_")] = value
            }
            i += 1
        }
        values = v
    }

    public func string(_ key: String, default d: String) -> String { values[key].flatMap { $0.isEmpty ? nil : $0 } ?? d }
    public func optional(_ key: String) -> String? { values[key].flatMap { $0.isEmpty ? nil : $0 } }
    public func int(_ key: String, default d: Int) -> Int { values[key].flatMap { Int($0) } ?? d }
    public func double(_ key: String, default d: Double) -> Double { values[key].flatMap { Double($0) } ?? d }
    public func bool(_ key: String, default d: Bool) -> Bool {
        guard let s = values[key]?.lowercased() else { return d }
        return ["1", "true", "yes", "on"].contains(s)
    }
}
