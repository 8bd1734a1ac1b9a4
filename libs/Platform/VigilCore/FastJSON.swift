import Foundation

/// Hand-written JSON output for hot paths (bulk outbox payloads, bulk SQL parameters), where
/// JSONEncoder's per-call cost dominates. Produces standard JSON (RFC 8259 string escaping).
public enum FastJSON {
    public static func quote(_ s: String, into out: inout String) {
        out.append("\"")
        appendEscaped(s, into: &out) { b in
            b == 0x22 || b == 0x5C || b < 0x20
        } escape: { b, out in
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
        // Scanned as contiguous bytes where the string has them (native strings do): the common case.
        let clean = utf8.withContiguousStorageIfAvailable { !$0.contains(where: needs) } ?? !utf8.contains(where: needs)
        guard !clean else {
            out.append(s)
            return
        }
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

/// A reply type that writes its own JSON, byte for byte what `JSON.encode` (JSONEncoder with
/// snake_case keys, sorted keys, ISO-8601 dates) would produce, without the encoder's per-key
/// conversion and boxing. `JSON.encode` uses it when a value conforms; hot list replies do.
public protocol JSONWritable {
    func writeJSON(into out: inout String)
}

/// Writes one JSON object's fields. Callers give the keys already in snake_case and in sorted
/// order (as `JSON.encode` sorts them); nil values are left out, as synthesized `Codable` does.
public struct JSONFields {
    @usableFromInline var out: String
    @usableFromInline var first = true

    public init(capacity: Int = 512) {
        out = ""
        out.reserveCapacity(capacity)
        out.append("{")
    }

    /// An object written straight onto the end of `target` (taken until `finish(into:)` hands it back),
    /// instead of into a string of its own that is copied there afterwards.
    public init(appendingTo target: inout String) {
        out = ""
        swap(&out, &target)
        out.append("{")
    }

    @inlinable mutating func key(_ k: StaticString) {
        if !first { out.append(",") }
        first = false
        out.append("\"")
        out.append(k.description)
        out.append("\":")
    }

    /// One field, unless `v` is nil: the key, then what `write` appends for the value.
    @inlinable public mutating func field<V>(_ k: StaticString, _ v: V?, _ write: (V, inout String) -> Void) {
        guard let v else { return }
        key(k)
        write(v, &out)
    }

    @inlinable public mutating func string(_ k: StaticString, _ v: String?) { field(k, v) { FastJSON.quote($0, into: &$1) } }
    @inlinable public mutating func bool(_ k: StaticString, _ v: Bool?) { field(k, v) { $1.append($0 ? "true" : "false") } }
    public mutating func number(_ k: StaticString, _ v: Double?) { field(k, v) { FastJSON.number($0, into: &$1) } }
    public mutating func date(_ k: StaticString, _ v: Date?) {
        field(k, v) { d, out in
            out.append("\"")
            out.append(Timestamp.format(d))
            out.append("\"")
        }
    }
    public mutating func array<T: JSONWritable>(_ k: StaticString, _ v: [T]?) { field(k, v) { FastJSON.array($0, into: &$1) } }
    /// A value that is already JSON (rendered once, written many times).
    @inlinable public mutating func raw(_ k: StaticString, _ json: String?) { field(k, json) { $1.append($0) } }
    @inlinable public mutating func map<V>(_ k: StaticString, _ m: [String: V], value: (V, inout String) -> Void) {
        field(k, m) { FastJSON.map($0, into: &$1, value: value) }
    }

    /// Appends the closed object to `target`.
    public func close(into target: inout String) {
        target.append(out)
        target.append("}")
    }

    /// Closes an object begun with `init(appendingTo:)` and gives `target` back, the object at its end.
    public mutating func finish(into target: inout String) {
        out.append("}")
        swap(&out, &target)
    }
}

extension FastJSON {
    /// A number as JSONEncoder writes it: integral values without a fraction.
    public static func number(_ d: Double, into out: inout String) {
        if !d.isFinite {
            out.append("null")
        } else if d == d.rounded(), abs(d) < 1e15 {
            out.append(String(Int64(d)))
        } else {
            out.append(d.description)
        }
    }

    /// `[e, …]` (or between other brackets), each element written by `element`.
    @inlinable public static func list<S: Sequence>(
        _ v: S, open: String = "[", close: String = "]", into out: inout String,
        element: (S.Element, inout String) -> Void
    ) {
        out.append(open)
        var first = true
        for x in v {
            if !first { out.append(",") }
            first = false
            element(x, &out)
        }
        out.append(close)
    }

    public static func strings(_ v: [String], into out: inout String) { list(v, into: &out) { quote($0, into: &$1) } }
    public static func array<T: JSONWritable>(_ v: [T], into out: inout String) { list(v, into: &out) { $0.writeJSON(into: &$1) } }

    /// A string-keyed map (keys as given, not converted), sorted by key.
    @inlinable public static func map<V>(_ m: [String: V], into out: inout String, value: (V, inout String) -> Void) {
        guard !m.isEmpty else { return out.append("{}") }
        list(m.sorted(by: { $0.key < $1.key }), open: "{", close: "}", into: &out) { kv, out in
            quote(kv.key, into: &out)
            out.append(":")
            value(kv.value, &out)
        }
    }
}

extension JSONValue: JSONWritable {
    public func writeJSON(into out: inout String) {
        switch self {
        case .string(let s): FastJSON.quote(s, into: &out)
        case .number(let n): FastJSON.number(n, into: &out)
        case .bool(let b): out.append(b ? "true" : "false")
        case .null: out.append("null")
        case .array(let a): FastJSON.array(a, into: &out)
        case .object(let o): FastJSON.map(o, into: &out) { v, out in v.writeJSON(into: &out) }
        }
    }
}
