import Foundation

/// Hand-written JSON output for hot paths (bulk outbox payloads, bulk SQL parameters), where
/// JSONEncoder's per-call cost dominates. Produces standard JSON (RFC 8259 string escaping).
public enum FastJSON {
    public static func quote(_ s: String, into out: inout String) {
        out.append("\"")
        for u in s.unicodeScalars {
            switch u {
            case "\"": out.append("\\\"")
            case "\\": out.append("\\\\")
            case "\n": out.append("\\n")
            case "\r": out.append("\\r")
            case "\t": out.append("\\t")
            default:
                if u.value < 0x20 {
                    out.append(String(format: "\\u%04x", u.value))
                } else {
                    out.unicodeScalars.append(u)
                }
            }
        }
        out.append("\"")
    }

    public static func quote(_ s: String) -> String {
        var out = ""
        out.reserveCapacity(s.utf8.count + 2)
        quote(s, into: &out)
        return out
    }

    /// One JSON value written as-is (already JSON) or as a string.
    public enum Value {
        case string(String?), raw(String), number(Double?), int(Int?)
    }

    /// `{"k": v, …}` in the given order; nil strings/numbers become null.
    public static func object(_ pairs: [(String, Value)], into out: inout String) {
        out.append("{")
        var first = true
        for (k, v) in pairs {
            if !first { out.append(",") }
            first = false
            quote(k, into: &out)
            out.append(":")
            switch v {
            case .string(let s): if let s { quote(s, into: &out) } else { out.append("null") }
            case .raw(let r): out.append(r)
            case .number(let d): out.append(d.map { $0.isFinite ? String($0) : "null" } ?? "null")
            case .int(let i): out.append(i.map(String.init) ?? "null")
            }
        }
        out.append("}")
    }

    public static func object(_ pairs: [(String, Value)]) -> String {
        var out = ""
        object(pairs, into: &out)
        return out
    }
}
