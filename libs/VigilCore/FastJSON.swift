import Foundation

/// Hand-written JSON output for hot paths (bulk outbox payloads, bulk SQL parameters), where
/// JSONEncoder's per-call cost dominates. Produces standard JSON (RFC 8259 string escaping).
public enum FastJSON {
    public static func quote(_ s: String, into out: inout String) {
        out.append("\"")
        appendEscaped(s, into: &out) { b in b == 0x22 || b == 0x5C || b < 0x20 } escape: { b, out in
            switch b {
            case 0x22: out.append("\\\"")
            case 0x5C: out.append("\\\\")
            case 0x0A: out.append("\\n")
            case 0x0D: out.append("\\r")
            case 0x09: out.append("\\t")
            default:
                let hex = Array("0123456789abcdef".utf8)
                out.append("\\u00")
                out.unicodeScalars.append(Unicode.Scalar(hex[Int(b >> 4)]))
                out.unicodeScalars.append(Unicode.Scalar(hex[Int(b & 0xF)]))
            }
        }
        out.append("\"")
    }

    /// Appends `s` to `out`, replacing each ASCII byte for which `needs` is true by what `escape`
    /// writes. Works on UTF-8 bytes: unescaped runs are copied whole, so the common case (nothing
    /// to escape) is one append. Only ASCII bytes are ever escaped, so runs stay valid UTF-8.
    @inline(__always)
    public static func appendEscaped(_ s: String, into out: inout String, needs: (UInt8) -> Bool, escape: (UInt8, inout String) -> Void) {
        let utf8 = s.utf8
        guard utf8.contains(where: needs) else { out.append(s); return }
        var runStart = utf8.startIndex
        var i = utf8.startIndex
        while i != utf8.endIndex {
            let b = utf8[i]
            if needs(b) {
                if runStart != i { out.append(contentsOf: s[runStart..<i]) }
                escape(b, &out)
                runStart = utf8.index(after: i)
            }
            i = utf8.index(after: i)
        }
        if runStart != utf8.endIndex { out.append(contentsOf: s[runStart..<utf8.endIndex]) }
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
