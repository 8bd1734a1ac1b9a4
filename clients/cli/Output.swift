import Foundation
import VigilAPIClient

#if canImport(Glibc)
    import Glibc
#endif

enum Output {
    static let severities = ["critical", "high", "medium", "low", "info"]

    /// Severities at or above `s` (`high` → critical, high).
    static func atLeast(_ s: String) throws -> [String] {
        guard let i = severities.firstIndex(of: s.lowercased()) else {
            throw CLIError(message: "severity must be one of \(severities.joined(separator: ", "))")
        }
        return Array(severities[...i])
    }

    static var isTTY: Bool { isatty(STDOUT_FILENO) == 1 }

    static func string(_ v: Any?) -> String {
        switch v {
        case nil, is NSNull: return ""
        case let s as String: return s
        case let n as NSNumber: return n.stringValue
        default:
            if let d = try? JSONSerialization.data(withJSONObject: v as Any, options: [.sortedKeys]) { return String(decoding: d, as: UTF8.self) }
            return "\(v!)"
        }
    }

    /// A plain table: a header row and left-aligned columns (cells cut at `width`).
    static func table(_ rows: [[String: Any]], columns: [String], width: Int = 60) -> String {
        let cells = rows.map { r in columns.map { String(string(r[$0]).prefix(width)) } }
        let widths = columns.indices.map { i in max(columns[i].count, cells.map { $0[i].count }.max() ?? 0) }
        func line(_ values: [String]) -> String {
            values.enumerated().map { $1.padding(toLength: widths[$0], withPad: " ", startingAt: 0) }.joined(separator: "  ")
                .trimmingCharacters(in: .whitespaces)
        }
        return ([line(columns.map { $0.uppercased() })] + cells.map(line)).joined(separator: "\n")
    }

    static func csv(_ rows: [[String: Any]], columns: [String]) -> String {
        func quote(_ s: String) -> String {
            s.contains(where: { $0 == "," || $0 == "\"" || $0.isNewline }) ? "\"" + s.replacingOccurrences(of: "\"", with: "\"\"") + "\"" : s
        }
        return ([columns.joined(separator: ",")] + rows.map { r in columns.map { quote(string(r[$0])) }.joined(separator: ",") })
            .joined(separator: "\n")
    }

    static func json(_ v: Any) -> String {
        String(
            decoding: (try? JSONSerialization.data(withJSONObject: v, options: [.prettyPrinted, .sortedKeys, .withoutEscapingSlashes])) ?? Data(),
            as: UTF8.self)
    }

    /// SARIF 2.1.0: one rule per rule id, one result per finding (level from severity).
    static func sarif(_ findings: [[String: Any]]) -> String {
        func level(_ s: String) -> String { ["critical": "error", "high": "error", "medium": "warning"][s] ?? "note" }
        var rules: [String: [String: Any]] = [:]
        for f in findings {
            let id = string(f["rule_code"])
            rules[id] = [
                "id": id, "shortDescription": ["text": string(f["title"])],
                "properties": [
                    "security-severity": ["critical": "9.5", "high": "8.0", "medium": "5.5", "low": "3.0"][string(f["severity"])] ?? "1.0"
                ],
            ]
        }
        let results: [[String: Any]] = findings.map { f in
            [
                "ruleId": string(f["rule_code"]), "level": level(string(f["severity"])),
                "message": ["text": "\(string(f["title"])): \(string(f["resource_name"]))"],
                "locations": [["physicalLocation": ["artifactLocation": ["uri": string(f["resource_id"])]]]],
                "partialFingerprints": ["vigil/v1": string(f["fingerprint"])],
            ]
        }
        let doc: [String: Any] = [
            "$schema": "https://json.schemastore.org/sarif-2.1.0.json", "version": "2.1.0",
            "runs": [
                [
                    "tool": [
                        "driver": ["name": "Vigil", "informationUri": "https://github.com/vigil", "rules": rules.keys.sorted().map { rules[$0]! }]
                    ],
                    "results": results,
                ]
            ],
        ]
        return json(doc)
    }

    static func elapsed(_ since: Date) -> String {
        let s = Int(Date().timeIntervalSince(since))
        return String(format: "%02d:%02d", s / 60, s % 60)
    }

    /// `[#########...........]  45%  collecting  9/20 parts  00:03`
    static func bar(percent: Int, phase: String, done: Int, total: Int, since: Date) -> String {
        let width = 24
        let filled = max(0, min(width, percent * width / 100))
        return "[" + String(repeating: "#", count: filled) + String(repeating: ".", count: width - filled) + "] "
            + String(format: "%3d%%", percent)
            + "  \(phase.padding(toLength: 10, withPad: " ", startingAt: 0))  \(done)/\(total) parts  \(elapsed(since))"
    }
}
