import Foundation
import ServiceRuntime
import VigilCore

/// A 5-field cron expression (minute hour day-of-month month day-of-week) evaluated in an IANA time
/// zone.
///
/// Fields take `*`, numbers, ranges `a-b`, steps `*/n` and `a-b/n`, and comma lists; months and days
/// of the week also take their English three-letter names, and day-of-week 7 is Sunday like 0. As in
/// Vixie cron, when neither day field starts with `*` a day matching either one is a run day.
/// Wall-clock times that a daylight-saving change skips run once, shifted by the change (02:30 on a
/// spring-forward night runs at 03:30); times it repeats run once, at their first occurrence.
struct CronExpression: Sendable, Equatable {
    let minutes: [Int]
    let hours: [Int]
    let days: Set<Int>
    let months: Set<Int>
    let weekdays: Set<Int>
    /// Whether the day-of-month / day-of-week field starts with `*`.
    let anyDay: Bool
    let anyWeekday: Bool
    let source: String

    struct ParseError: Error, Equatable, CustomStringConvertible {
        let message: String
        var description: String { message }
    }

    static let monthNames = ["jan", "feb", "mar", "apr", "may", "jun", "jul", "aug", "sep", "oct", "nov", "dec"]
    static let dayNames = ["sun", "mon", "tue", "wed", "thu", "fri", "sat"]

    init(_ text: String) throws {
        let fields = text.split(whereSeparator: { $0 == " " || $0 == "\t" }).map(String.init)
        guard fields.count == 5 else {
            throw ParseError(message: "must have 5 fields (minute hour day-of-month month day-of-week), found \(fields.count)")
        }
        minutes = try Self.field(fields[0], "minute", 0...59, names: []).sorted()
        hours = try Self.field(fields[1], "hour", 0...23, names: []).sorted()
        days = try Self.field(fields[2], "day-of-month", 1...31, names: [])
        months = try Self.field(fields[3], "month", 1...12, names: Self.monthNames, nameBase: 1)
        var wd = try Self.field(fields[4], "day-of-week", 0...7, names: Self.dayNames)
        if wd.remove(7) != nil { wd.insert(0) }
        weekdays = wd
        anyDay = fields[2].hasPrefix("*")
        anyWeekday = fields[4].hasPrefix("*")
        source = fields.joined(separator: " ")
    }

    private static func field(_ text: String, _ name: String, _ range: ClosedRange<Int>, names: [String], nameBase: Int = 0) throws -> Set<Int> {
        func value(_ s: String) throws -> Int {
            if let n = Int(s), range.contains(n) { return n }
            if let i = names.firstIndex(of: s.lowercased()) { return i + nameBase }
            throw ParseError(message: "\(name) field: \"\(s)\" is not a value between \(range.lowerBound) and \(range.upperBound)")
        }
        var out = Set<Int>()
        for part in text.split(separator: ",", omittingEmptySubsequences: false).map(String.init) {
            guard !part.isEmpty else { throw ParseError(message: "\(name) field: empty list item") }
            let pieces = part.split(separator: "/", omittingEmptySubsequences: false).map(String.init)
            guard pieces.count <= 2 else { throw ParseError(message: "\(name) field: \"\(part)\" has more than one step") }
            var step = 1
            if pieces.count == 2 {
                guard let s = Int(pieces[1]), s >= 1, s <= range.upperBound else {
                    throw ParseError(message: "\(name) field: step \"\(pieces[1])\" must be a number from 1 to \(range.upperBound)")
                }
                step = s
            }
            let lo: Int
            let hi: Int
            if pieces[0] == "*" {
                (lo, hi) = (range.lowerBound, range.upperBound)
            } else if let dash = pieces[0].firstIndex(of: "-") {
                lo = try value(String(pieces[0][..<dash]))
                hi = try value(String(pieces[0][pieces[0].index(after: dash)...]))
                guard lo <= hi else { throw ParseError(message: "\(name) field: range \"\(pieces[0])\" runs backwards") }
            } else {
                lo = try value(pieces[0])
                hi = pieces.count == 2 ? range.upperBound : lo
            }
            out.formUnion(stride(from: lo, through: hi, by: step))
        }
        return out
    }

    /// Whether a wall-clock date is a run day.
    func isRunDay(year: Int, month: Int, day: Int, weekday: Int) -> Bool {
        guard months.contains(month) else { return false }
        // Vixie cron: a day field starting with `*` does not widen the other one.
        return anyDay || anyWeekday ? days.contains(day) && weekdays.contains(weekday) : days.contains(day) || weekdays.contains(weekday)
    }

    /// The first run strictly after `after`, or nil when none falls within five years (e.g. 30 February).
    func next(after: Date, in zone: TimeZone) -> Date? {
        var utc = Calendar(identifier: .gregorian)
        utc.timeZone = TimeZone(identifier: "UTC")!
        var local = utc
        local.timeZone = zone
        let start = local.dateComponents([.year, .month, .day], from: after)
        guard var day = utc.date(from: DateComponents(year: start.year, month: start.month, day: start.day)) else { return nil }
        // Begin a day early: the zone's offset can put an instant after `after` on the previous wall date.
        day = day.addingTimeInterval(-86_400)
        for _ in 0..<(5 * 366 + 2) {
            let c = utc.dateComponents([.year, .month, .day, .weekday], from: day)
            if let y = c.year, let m = c.month, let d = c.day, let w = c.weekday, isRunDay(year: y, month: m, day: d, weekday: w - 1) {
                for h in hours {
                    for mi in minutes {
                        let wall = day.addingTimeInterval(TimeInterval(h * 3600 + mi * 60))
                        if let t = Self.instant(ofWall: wall, in: zone), t > after { return t }
                    }
                }
            }
            day = day.addingTimeInterval(86_400)
        }
        return nil
    }

    /// The instant at which a zone's clocks show `wall` (given as if it were UTC): the first of two
    /// when a change repeats it, and shifted by the change when one skips it.
    static func instant(ofWall wall: Date, in zone: TimeZone) -> Date? {
        let before = zone.secondsFromGMT(for: wall.addingTimeInterval(-2 * 86_400))
        let after = zone.secondsFromGMT(for: wall.addingTimeInterval(2 * 86_400))
        let around = Set([before, after, zone.secondsFromGMT(for: wall)])
        let exact = around.map { wall.addingTimeInterval(TimeInterval(-$0)) }
            .filter { zone.secondsFromGMT(for: $0) == Int(wall.timeIntervalSince($0)) }
        if let first = exact.min() { return first }
        // Skipped: read the wall clock with the offset in force before the change.
        return wall.addingTimeInterval(TimeInterval(-min(before, after)))
    }
}

/// When a schedule runs: a cron expression in a time zone, or every `intervalMinutes`.
struct ScheduleTiming: Sendable, Equatable {
    let cron: CronExpression?
    let intervalMinutes: Int?
    let timezone: String
    let zone: TimeZone

    static let intervalRange = 5...44_640

    /// Checks the combination: exactly one of cron and interval, a known IANA zone. Messages name the field.
    init(cron: String?, intervalMinutes: Int?, timezone: String?) throws {
        let tz = timezone ?? "UTC"
        guard tz.count <= 64, let zone = TimeZone(identifier: tz) else {
            throw ServiceError.validation("body.timezone", "must be an IANA time zone such as Europe/Berlin or America/New_York")
        }
        switch (cron, intervalMinutes) {
        case (nil, nil), (.some, .some):
            throw ServiceError.validation("body.cron", "give either cron (5 fields) or interval_minutes, not both or neither")
        case (let c?, nil):
            do { self.cron = try CronExpression(c) } catch let e as CronExpression.ParseError {
                throw ServiceError.validation("body.cron", e.message)
            }
            guard self.cron?.next(after: Date(), in: zone) != nil else {
                throw ServiceError.validation("body.cron", "never matches a date (e.g. 30 February)")
            }
            self.intervalMinutes = nil
        case (nil, let m?):
            guard Self.intervalRange.contains(m) else {
                throw ServiceError.validation("body.interval_minutes", "must be between 5 and 44640 (31 days)")
            }
            self.cron = nil
            self.intervalMinutes = m
        }
        self.timezone = tz
        self.zone = zone
    }

    /// The first run strictly after `after`. Intervals keep their phase from `anchor` (the previous
    /// planned run) when given, so a late tick does not drift the schedule.
    func next(after: Date, anchor: Date? = nil) -> Date? {
        if let cron { return cron.next(after: after, in: zone) }
        let step = TimeInterval((intervalMinutes ?? 60) * 60)
        guard let anchor else { return after.addingTimeInterval(step) }
        let k = max(1, Int((after.timeIntervalSince(anchor) / step).rounded(.down)) + 1)
        return anchor.addingTimeInterval(step * TimeInterval(k))
    }

    static func == (a: ScheduleTiming, b: ScheduleTiming) -> Bool {
        a.cron == b.cron && a.intervalMinutes == b.intervalMinutes && a.timezone == b.timezone
    }
}
