import Foundation
import VigilCore

public enum Dates {
    public static func parse(_ s: String?) -> Date? {
        guard let s, !s.isEmpty else { return nil }
        if let d = Timestamp.parse(s) { return d }
        let f = ISO8601DateFormatter()
        f.formatOptions = [.withInternetDateTime, .withFractionalSeconds]
        if let d = f.date(from: s) { return d }
        f.formatOptions = [.withInternetDateTime]
        return f.date(from: s.replacingOccurrences(of: " ", with: "T"))
    }
    public static func days(since d: Date?, now: Date) -> Double? {
        d.map { (now.timeIntervalSince($0) / 86400).rounded(.down) }
    }
}
