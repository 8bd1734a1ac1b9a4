import Foundation

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

    public static func encode<T: Encodable>(_ value: T) throws -> Data { try encoder().encode(value) }
    public static func decode<T: Decodable>(_ type: T.Type, from data: Data) throws -> T { try decoder().decode(type, from: data) }

    /// Decodes a request, turning decoding failures into a 422/400 `ServiceError`.
    public static func decodeRequest<T: Decodable>(_ type: T.Type, from data: Data) throws -> T {
        do {
            return try decoder().decode(type, from: data.isEmpty ? Data("{}".utf8) : data)
        } catch let e as DecodingError {
            throw ServiceError.from(decoding: e)
        }
    }
}

/// ISO-8601 timestamps with milliseconds, always UTC.
public enum Timestamp {
    public static func format(_ d: Date) -> String {
        d.formatted(.iso8601.year().month().day().dateSeparator(.dash).time(includingFractionalSeconds: true).timeSeparator(.colon).timeZone(separator: .omitted))
    }

    public static func parse(_ s: String) -> Date? {
        if let d = try? Date.ISO8601FormatStyle(includingFractionalSeconds: true).parse(s) { return d }
        return try? Date.ISO8601FormatStyle().parse(s)
    }
}

/// An empty request or reply.
public struct Empty: Codable, Sendable, Equatable {
    public init() {}
}
