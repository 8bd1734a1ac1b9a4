import Foundation

#if canImport(Glibc)
    import Glibc
#endif

/// The one JSON convention on the bus and over REST: snake_case keys, ISO-8601 dates.
public enum JSON {
    /// A fresh encoder (encoders are not Sendable, so each use makes its own).
    public static func encoder() -> JSONEncoder {
        let e = JSONEncoder()
        e.keyEncodingStrategy = .convertToSnakeCase
        e.dateEncodingStrategy = .custom { date, enc in
            var c = enc.singleValueContainer()
            try c.encode(Timestamp.format(date))
        }
        e.outputFormatting = [.sortedKeys, .withoutEscapingSlashes]
        return e
    }

    public static func decoder() -> JSONDecoder {
        let d = JSONDecoder()
        d.keyDecodingStrategy = .convertFromSnakeCase
        d.dateDecodingStrategy = .custom { dec in
            let c = try dec.singleValueContainer()
            let s = try c.decode(String.self)
            guard let date = Timestamp.parse(s) else {
                throw DecodingError.dataCorruptedError(in: c, debugDescription: "expected an ISO-8601 date-time")
            }
            return date
        }
        return d
    }

    /// Shared instances: JSONEncoder/JSONDecoder are Sendable and their configuration never changes.
    static let sharedEncoder = encoder()
    static let sharedDecoder = decoder()

    public static func encode<T: Encodable>(_ value: T) throws -> Data {
        if let w = value as? any JSONWritable {
            var out = [UInt8]()
            w.writeJSON(into: &out)
            return Data(out)
        }
        return try sharedEncoder.encode(value)
    }
    public static func decode<T: Decodable>(_ type: T.Type, from data: Data) throws -> T { try sharedDecoder.decode(type, from: data) }

    /// Decodes a request, turning decoding failures into a 422/400 `ServiceError`.
    public static func decodeRequest<T: Decodable>(_ type: T.Type, from data: Data) throws -> T {
        // The request of most reads (`GET /auth/me`): nothing to decode (JSONDecoder took 5 % of identity's time).
        if T.self == Empty.self, data.isEmpty || data.elementsEqual("{}".utf8), let empty = Empty() as? T { return empty }
        do {
            return try sharedDecoder.decode(type, from: data.isEmpty ? Data("{}".utf8) : data)
        } catch let e as DecodingError {
            throw ServiceError.from(decoding: e)
        }
    }
}

/// ISO-8601 timestamps with milliseconds, always UTC. Hand-written because Foundation's formatters
/// cost tens of microseconds per call and every row and reply carries timestamps.
public enum Timestamp {
    public static func format(_ d: Date) -> String {
        var out = [UInt8]()
        out.reserveCapacity(24)
        write(d, into: &out)
        return String(decoding: out, as: UTF8.self)
    }

    /// `format(d)` appended to `out` (no string in between: every row carries two or three).
    public static func write(_ d: Date, into out: inout [UInt8]) {
        let totalMs = Int64((d.timeIntervalSince1970 * 1000).rounded(.down))
        var secs = time_t(totalMs >= 0 ? totalMs / 1000 : (totalMs - 999) / 1000)
        let ms = Int(totalMs - Int64(secs) * 1000)
        var t = tm()
        gmtime_r(&secs, &t)
        func put(_ v: Int, _ width: Int, then separator: UInt8) {
            let at = out.count
            out.append(contentsOf: repeatElement(48, count: width))
            var x = v
            for i in stride(from: at + width - 1, through: at, by: -1) {
                out[i] = UInt8(48 + x % 10)
                x /= 10
            }
            out.append(separator)
        }
        put(Int(t.tm_year) + 1900, 4, then: 45)
        put(Int(t.tm_mon) + 1, 2, then: 45)
        put(Int(t.tm_mday), 2, then: 84)
        put(Int(t.tm_hour), 2, then: 58)
        put(Int(t.tm_min), 2, then: 58)
        put(Int(t.tm_sec), 2, then: 46)
        put(ms, 3, then: 90)
    }

    /// Parses `YYYY-MM-DD[T ]HH:MM:SS[.fraction](Z|±HH[:MM]|±HHMM)`; nil when malformed.
    public static func parse(_ s: String) -> Date? {
        var s = s
        return s.withUTF8 { parse(utf8: $0) }
    }

    static func parse(utf8 b: UnsafeBufferPointer<UInt8>) -> Date? {
        guard b.count >= 20 else { return nil }
        func num(_ from: Int, _ len: Int) -> Int? {
            guard from + len <= b.count else { return nil }
            var v = 0
            for i in from..<(from + len) {
                let c = b[i]
                guard c >= 48 && c <= 57 else { return nil }
                v = v * 10 + Int(c - 48)
            }
            return v
        }
        guard let year = num(0, 4), b[4] == 45, let month = num(5, 2), b[7] == 45, let day = num(8, 2),
            b[10] == 84 || b[10] == 32 || b[10] == 116, let hour = num(11, 2), b[13] == 58, let minute = num(14, 2),
            b[16] == 58, let second = num(17, 2),
            (1...12).contains(month), (1...31).contains(day), hour < 24, minute < 60, second < 61
        else { return nil }
        var i = 19
        var fraction = 0.0
        if i < b.count && b[i] == 46 {
            i += 1
            var scale = 0.1
            let start = i
            while i < b.count, b[i] >= 48 && b[i] <= 57 {
                fraction += Double(b[i] - 48) * scale
                scale /= 10
                i += 1
            }
            guard i > start else { return nil }
        }
        var offset = 0
        guard i < b.count else { return nil }
        if b[i] == 90 || b[i] == 122 {
            i += 1
        } else if b[i] == 43 || b[i] == 45 {
            let sign = b[i] == 45 ? -1 : 1
            guard let oh = num(i + 1, 2) else { return nil }
            i += 3
            var om = 0
            if i < b.count && b[i] == 58 {
                guard let m = num(i + 1, 2) else { return nil }
                om = m
                i += 3
            } else if i + 2 <= b.count, let m = num(i, 2) {
                om = m
                i += 2
            }
            offset = sign * (oh * 3600 + om * 60)
        } else {
            return nil
        }
        guard i == b.count else { return nil }
        var t = tm()
        t.tm_year = Int32(year - 1900)
        t.tm_mon = Int32(month - 1)
        t.tm_mday = Int32(day)
        t.tm_hour = Int32(hour)
        t.tm_min = Int32(minute)
        t.tm_sec = Int32(second)
        let epoch = timegm(&t)
        return Date(timeIntervalSince1970: Double(epoch - offset) + fraction)
    }
}

/// An empty request or reply.
public struct Empty: Codable, Sendable, Equatable {
    public init() {}
}

/// An optional that encodes as JSON `null` when absent, where an API promises the key (unlimited
/// limits, no trial end); plain optionals leave the key out. Decodes from `null` or a missing key.
@propertyWrapper
public struct ExplicitNull<T: Codable & Sendable>: Codable, Sendable {
    public var wrappedValue: T?
    public init(wrappedValue: T?) { self.wrappedValue = wrappedValue }

    public init(from decoder: any Decoder) throws {
        let c = try decoder.singleValueContainer()
        wrappedValue = c.decodeNil() ? nil : try c.decode(T.self)
    }

    public func encode(to encoder: any Encoder) throws {
        var c = encoder.singleValueContainer()
        if let v = wrappedValue { try c.encode(v) } else { try c.encodeNil() }
    }
}

extension ExplicitNull: Equatable where T: Equatable {}

extension KeyedDecodingContainer {
    public func decode<T>(_ type: ExplicitNull<T>.Type, forKey key: Key) throws -> ExplicitNull<T> {
        try decodeIfPresent(type, forKey: key) ?? ExplicitNull(wrappedValue: nil)
    }
}
