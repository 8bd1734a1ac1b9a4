import Foundation
import Testing

@testable import ScanService
@testable import VigilCore

@Suite struct ScheduleTests {
    static func utc(_ s: String) -> Date { Timestamp.parse(s)! }

    static func next(_ cron: String, after: String, zone: String = "UTC") throws -> String? {
        try CronExpression(cron).next(after: utc(after), in: TimeZone(identifier: zone)!).map(Timestamp.format)
    }

    @Test func fieldsAcceptListsRangesStepsAndNames() throws {
        let c = try CronExpression("*/15 9-17/4 1,15 jan-mar MON-fri")
        #expect(c.minutes == [0, 15, 30, 45])
        #expect(c.hours == [9, 13, 17])
        #expect(c.days == [1, 15])
        #expect(c.months == [1, 2, 3])
        #expect(c.weekdays == [1, 2, 3, 4, 5])
        #expect(try CronExpression("0 0 * * 7").weekdays == [0])
        #expect(try CronExpression("5 4 * * sun").source == "5 4 * * sun")
    }

    @Test(arguments: [
        "", "* * * *", "* * * * * *", "60 * * * *", "* 24 * * *", "* * 0 * *", "* * 32 * *", "* * * 13 *", "* * * * 8", "5-1 * * * *",
        "*/0 * * * *", "a * * * *", "1,,2 * * * *", "1/2/3 * * * *", "* * * foo *",
    ])
    func malformedExpressionsAreRefusedWithTheField(_ text: String) {
        #expect(throws: CronExpression.ParseError.self) { try CronExpression(text) }
    }

    @Test func nextRunsInUTC() throws {
        #expect(try Self.next("30 2 * * *", after: "2026-03-01T00:00:00Z") == "2026-03-01T02:30:00.000Z")
        #expect(try Self.next("30 2 * * *", after: "2026-03-01T02:30:00Z") == "2026-03-02T02:30:00.000Z")
        #expect(try Self.next("*/10 * * * *", after: "2026-03-01T23:55:00Z") == "2026-03-02T00:00:00.000Z")
        // Day-of-month and day-of-week both restricted: either matches (1 March 2026 is a Sunday).
        #expect(try Self.next("0 12 15 * 1", after: "2026-03-01T13:00:00Z") == "2026-03-02T12:00:00.000Z")
        // One of them starting with `*`: both must match (the first Monday on an odd day: 1, 3, 5 …).
        #expect(try Self.next("0 12 */2 * 1", after: "2026-03-01T13:00:00Z") == "2026-03-09T12:00:00.000Z")
        #expect(try Self.next("0 0 29 2 *", after: "2026-03-01T00:00:00Z") == "2028-02-29T00:00:00.000Z")
        #expect(try Self.next("0 0 30 2 *", after: "2026-03-01T00:00:00Z") == nil)
    }

    @Test func nextRunsFollowTheZoneAcrossDaylightSavingChanges() throws {
        let ny = "America/New_York"
        // 09:00 local is 14:00 UTC in winter (EST) and 13:00 UTC in summer (EDT); DST began 8 March 2026.
        #expect(try Self.next("0 9 * * *", after: "2026-03-07T15:00:00Z", zone: ny) == "2026-03-08T13:00:00.000Z")
        #expect(try Self.next("0 9 * * *", after: "2026-03-06T15:00:00Z", zone: ny) == "2026-03-07T14:00:00.000Z")
        // 02:30 does not exist on 8 March in New York: it runs once, an hour later (03:30 EDT = 07:30 UTC).
        #expect(try Self.next("30 2 * * *", after: "2026-03-08T05:00:00Z", zone: ny) == "2026-03-08T07:30:00.000Z")
        #expect(try Self.next("30 2 * * *", after: "2026-03-08T07:30:00Z", zone: ny) == "2026-03-09T06:30:00.000Z")
        // 01:30 happens twice on 1 November 2026: the run is at the first (EDT, 05:30 UTC) only.
        #expect(try Self.next("30 1 * * *", after: "2026-11-01T04:00:00Z", zone: ny) == "2026-11-01T05:30:00.000Z")
        #expect(try Self.next("30 1 * * *", after: "2026-11-01T05:30:00Z", zone: ny) == "2026-11-02T06:30:00.000Z")
        // Every 30 minutes across the repeated hour: each wall-clock time once.
        var t = Self.utc("2026-11-01T04:50:00Z")
        var runs: [String] = []
        let every30 = try CronExpression("*/30 * * * *")
        for _ in 0..<5 {
            t = every30.next(after: t, in: TimeZone(identifier: ny)!)!
            runs.append(Timestamp.format(t))
        }
        #expect(
            runs == [
                "2026-11-01T05:00:00.000Z", "2026-11-01T05:30:00.000Z", "2026-11-01T07:00:00.000Z", "2026-11-01T07:30:00.000Z",
                "2026-11-01T08:00:00.000Z",
            ])
        // A zone east of UTC, where the local date is ahead: Tokyo 08:00 is 23:00 UTC the day before.
        #expect(try Self.next("0 8 * * *", after: "2026-06-01T00:00:00Z", zone: "Asia/Tokyo") == "2026-06-01T23:00:00.000Z")
        // Berlin springs forward at 02:00 on 29 March 2026.
        #expect(try Self.next("15 2 * * *", after: "2026-03-28T12:00:00Z", zone: "Europe/Berlin") == "2026-03-29T01:15:00.000Z")
    }

    @Test func timingValidatesTheCombinationAndTheZone() throws {
        #expect(throws: ServiceError.self) { try ScheduleTiming(cron: nil, intervalMinutes: nil, timezone: nil) }
        #expect(throws: ServiceError.self) { try ScheduleTiming(cron: "* * * * *", intervalMinutes: 60, timezone: nil) }
        #expect(throws: ServiceError.self) { try ScheduleTiming(cron: nil, intervalMinutes: 4, timezone: nil) }
        #expect(throws: ServiceError.self) { try ScheduleTiming(cron: nil, intervalMinutes: 60, timezone: "Mars/Olympus") }
        do {
            _ = try ScheduleTiming(cron: "0 25 * * *", intervalMinutes: nil, timezone: "UTC")
            Issue.record("expected an error")
        } catch let e as ServiceError {
            #expect(e.status == 422 && e.issues?.first?.path == "body.cron")
        }
        #expect(try ScheduleTiming(cron: nil, intervalMinutes: 60, timezone: nil).timezone == "UTC")
    }

    @Test func intervalsKeepTheirPhaseAfterALateTick() throws {
        let t = try ScheduleTiming(cron: nil, intervalMinutes: 60, timezone: nil)
        let planned = Self.utc("2026-03-01T10:00:00Z")
        // Down for 5.5 hours: the next run is the next slot of the original phase, not now + 1 h.
        #expect(t.next(after: Self.utc("2026-03-01T15:30:00Z"), anchor: planned) == Self.utc("2026-03-01T16:00:00Z"))
        #expect(t.next(after: Self.utc("2026-03-01T10:00:00Z"), anchor: planned) == Self.utc("2026-03-01T11:00:00Z"))
        #expect(t.next(after: Self.utc("2026-03-01T10:00:05Z")) == Self.utc("2026-03-01T11:00:05Z"))
    }
}
