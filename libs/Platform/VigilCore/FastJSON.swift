import Foundation

/// Hand-written JSON output for hot paths (list pages, bulk outbox payloads, bulk SQL parameters), where
/// JSONEncoder's per-call cost dominates. Produces standard JSON (RFC 8259 string escaping). It writes
/// UTF-8 bytes: appending to a byte array costs a third of appending to a `String` (no count, flags or
/// uniqueness bookkeeping per append), and a page is hundreds of thousands of appends.
public enum FastJSON {
    public static func quote(_ s: String, into out: inout [UInt8]) {
        out.append(0x22)
        var s = s
        s.withUTF8 { b in
            guard b.contains(where: { $0 == 0x22 || $0 == 0x5C || $0 < 0x20 }) else { return out.append(contentsOf: b) }
            var run = 0
            for (i, c) in b.enumerated() where c == 0x22 || c == 0x5C || c < 0x20 {
                out.append(contentsOf: UnsafeBufferPointer(rebasing: b[run..<i]))
                run = i + 1
                switch c {
                case 0x22: out.append(contentsOf: #"\""#.utf8)
                case 0x5C: out.append(contentsOf: #"\\"#.utf8)
                case 0x0A: out.append(contentsOf: #"\n"#.utf8)
                case 0x0D: out.append(contentsOf: #"\r"#.utf8)
                case 0x09: out.append(contentsOf: #"\t"#.utf8)
                default:
                    let hex = Array("0123456789abcdef".utf8)
                    out.append(contentsOf: #"\u00"#.utf8)
                    out.append(hex[Int(c >> 4)])
                    out.append(hex[Int(c & 0xF)])
                }
            }
            out.append(contentsOf: UnsafeBufferPointer(rebasing: b[run...]))
        }
        out.append(0x22)
    }

    public static func quote(_ s: String) -> String {
        var out = [UInt8]()
        out.reserveCapacity(s.utf8.count + 2)
        quote(s, into: &out)
        return String(decoding: out, as: UTF8.self)
    }

    /// One JSON value written as-is (already JSON) or as a string.
    public enum Value {
        case string(String?), raw(String), number(Double?), int(Int?)
    }

    /// `{"k": v, …}` in the given order; nil strings/numbers become null.
    public static func object(_ pairs: [(String, Value)], into out: inout [UInt8]) {
        out.append(0x7B)
        var first = true
        for (k, v) in pairs {
            if !first { out.append(0x2C) }
            first = false
            quote(k, into: &out)
            out.append(0x3A)
            switch v {
            case .string(let s): if let s { quote(s, into: &out) } else { out.append(contentsOf: "null".utf8) }
            case .raw(let r): out.append(contentsOf: r.utf8)
            case .number(let d): out.append(contentsOf: (d.map { $0.isFinite ? String($0) : "null" } ?? "null").utf8)
            case .int(let i): out.append(contentsOf: (i.map(String.init) ?? "null").utf8)
            }
        }
        out.append(0x7D)
    }

    public static func object(_ pairs: [(String, Value)]) -> String {
        var out = [UInt8]()
        object(pairs, into: &out)
        return String(decoding: out, as: UTF8.self)
    }
}

/// A reply type that writes its own JSON, byte for byte what `JSON.encode` (JSONEncoder with
/// snake_case keys, sorted keys, ISO-8601 dates) would produce, without the encoder's per-key
/// conversion and boxing. `JSON.encode` uses it when a value conforms; hot list replies do.
public protocol JSONWritable {
    func writeJSON(into out: inout [UInt8])
}

/// A value already written as JSON, standing for a `Model`: list pages render each row straight to
/// JSON in parallel and cut the page by the rendered sizes. On the bus and over REST it is exactly the
/// model's JSON; the Codable path (any other encoder, decoding a reply) goes through the model.
public struct RenderedJSON<Model: Codable & Sendable>: Codable, Sendable, JSONWritable {
    public let bytes: [UInt8]
    public init(bytes: [UInt8]) { self.bytes = bytes }

    public init(from decoder: any Decoder) throws {
        bytes = [UInt8](try JSON.encode(try Model(from: decoder)))
    }
    public func encode(to encoder: any Encoder) throws {
        try JSON.decode(Model.self, from: Data(bytes)).encode(to: encoder)
    }
    public func writeJSON(into out: inout [UInt8]) { out.append(contentsOf: bytes) }
}

/// Writes one JSON object's fields onto the end of a byte array. Callers give the keys already in
/// snake_case and in sorted order (as `JSON.encode` sorts them); nil values are left out, as synthesized
/// `Codable` does.
public struct JSONFields {
    @usableFromInline var first = true

    /// Opens the object at the end of `out`; `close(_:)` closes it.
    @inlinable public init(_ out: inout [UInt8]) { out.append(0x7B) }

    @inlinable mutating func key(_ k: StaticString, _ out: inout [UInt8]) {
        if !first { out.append(0x2C) }
        first = false
        out.append(0x22)
        k.withUTF8Buffer { out.append(contentsOf: $0) }
        out.append(0x22)
        out.append(0x3A)
    }

    /// One field, unless `v` is nil: the key, then what `write` appends for the value.
    @inlinable public mutating func field<V>(_ k: StaticString, _ v: V?, _ out: inout [UInt8], _ write: (V, inout [UInt8]) -> Void) {
        guard let v else { return }
        key(k, &out)
        write(v, &out)
    }

    @inlinable public mutating func string(_ k: StaticString, _ v: String?, _ out: inout [UInt8]) {
        field(k, v, &out) { FastJSON.quote($0, into: &$1) }
    }
    @inlinable public mutating func bool(_ k: StaticString, _ v: Bool?, _ out: inout [UInt8]) {
        field(k, v, &out) { $1.append(contentsOf: ($0 ? "true" : "false").utf8) }
    }
    public mutating func number(_ k: StaticString, _ v: Double?, _ out: inout [UInt8]) { field(k, v, &out) { FastJSON.number($0, into: &$1) } }
    public mutating func date(_ k: StaticString, _ v: Date?, _ out: inout [UInt8]) {
        field(k, v, &out) { d, out in
            out.append(0x22)
            Timestamp.write(d, into: &out)
            out.append(0x22)
        }
    }
    public mutating func array<T: JSONWritable>(_ k: StaticString, _ v: [T]?, _ out: inout [UInt8]) {
        field(k, v, &out) { FastJSON.array($0, into: &$1) }
    }
    /// A value that is already JSON (rendered once, written many times).
    @inlinable public mutating func raw(_ k: StaticString, _ json: String?, _ out: inout [UInt8]) {
        field(k, json, &out) { $1.append(contentsOf: $0.utf8) }
    }
    @inlinable public mutating func map<V>(_ k: StaticString, _ m: [String: V], _ out: inout [UInt8], value: (V, inout [UInt8]) -> Void) {
        field(k, m, &out) { FastJSON.map($0, into: &$1, value: value) }
    }

    /// Closes the object.
    @inlinable public func close(_ out: inout [UInt8]) { out.append(0x7D) }
}

extension FastJSON {
    /// A number as JSONEncoder writes it: integral values without a fraction.
    public static func number(_ d: Double, into out: inout [UInt8]) {
        if !d.isFinite {
            out.append(contentsOf: "null".utf8)
        } else if d == d.rounded(), abs(d) < 1e15 {
            out.append(contentsOf: String(Int64(d)).utf8)
        } else {
            out.append(contentsOf: d.description.utf8)
        }
    }

    /// `[e, …]` (or between other brackets), each element written by `element`.
    @inlinable public static func list<S: Sequence>(
        _ v: S, open: UInt8 = 0x5B, close: UInt8 = 0x5D, into out: inout [UInt8], element: (S.Element, inout [UInt8]) -> Void
    ) {
        out.append(open)
        var first = true
        for x in v {
            if !first { out.append(0x2C) }
            first = false
            element(x, &out)
        }
        out.append(close)
    }

    public static func strings(_ v: [String], into out: inout [UInt8]) { list(v, into: &out) { quote($0, into: &$1) } }
    public static func array<T: JSONWritable>(_ v: [T], into out: inout [UInt8]) { list(v, into: &out) { $0.writeJSON(into: &$1) } }

    /// A string-keyed map (keys as given, not converted), sorted by key.
    @inlinable public static func map<V>(_ m: [String: V], into out: inout [UInt8], value: (V, inout [UInt8]) -> Void) {
        guard !m.isEmpty else {
            out.append(0x7B)
            out.append(0x7D)
            return
        }
        list(m.sorted(by: { $0.key < $1.key }), open: 0x7B, close: 0x7D, into: &out) { kv, out in
            quote(kv.key, into: &out)
            out.append(0x3A)
            value(kv.value, &out)
        }
    }
}

extension JSONValue: JSONWritable {
    public func writeJSON(into out: inout [UInt8]) {
        switch self {
        case .string(let s): FastJSON.quote(s, into: &out)
        case .number(let n): FastJSON.number(n, into: &out)
        case .bool(let b): out.append(contentsOf: (b ? "true" : "false").utf8)
        case .null: out.append(contentsOf: "null".utf8)
        case .array(let a): FastJSON.array(a, into: &out)
        case .object(let o): FastJSON.map(o, into: &out) { v, out in v.writeJSON(into: &out) }
        }
    }
}
