import Bus
import Contracts
import Foundation
import ScanEngine
import ServiceRuntime
import Store
import VigilCore

struct FrameworkView: Codable, Sendable {
    var id: String
    var name: String
    var version: String
    var description: String
    var controls: Int
    var rules: Int
}
struct ScoreView: Codable, Sendable {
    var passed: Int
    var failed: Int
    var notAssessed: Int
    var assessed: Int
    var score: Double
}
struct FrameworkScore: Codable, Sendable {
    var frameworkId: String
    var name: String
    var passed: Int
    var failed: Int
    var notAssessed: Int
    var assessed: Int
    var score: Double
}
struct ConnectionScore: Codable, Sendable {
    var connectionId: String
    var scanId: String
    var overall: ScoreView
    var frameworks: [FrameworkScore]
}
struct ComplianceScore: Codable, Sendable {
    var overall: ScoreView
    var frameworks: [FrameworkScore]
    var connections: [ConnectionScore]
    var scans: [String]
    var generatedAt: Date
}
struct ControlRule: Codable, Sendable {
    var ruleId: String
    var title: String
    var severity: String
    var passed: Int
    var failed: Int
}
struct FailingResource: Codable, Sendable {
    var findingId: String
    var ruleId: String
    var resourceId: String
    var resourceName: String
    var severity: String
    var region: String
}
struct ControlView: Codable, Sendable {
    var controlId: String
    var status: String
    var rules: [ControlRule]
    var failingResources: [FailingResource]
}
struct FrameworkDetail: Codable, Sendable {
    var framework: FrameworkView
    var score: FrameworkScore
    var controls: [ControlView]
    var scans: [String]
    var generatedAt: Date
}
struct FrameworkPath: Codable, Sendable {
    var frameworkId: String
    var connectionId: String?
}
struct ScoreRequest: Codable, Sendable {
    var connectionId: String?
    /// Only this framework's score (the reference's parameter).
    var framework: String?
}
struct ReportRequest: Codable, Sendable {
    var frameworkId: String?
    /// The reference's name for `framework_id`.
    var framework: String?
    var connectionId: String?
}

/// Controls passed / assessed, from PASS/FAIL counts of the mapped rules in each connection's latest
/// complete scan. A control is assessed when one of its rules was evaluated, failed when one failed.
struct ComplianceHandlers: Sendable {
    let store: Store
    let catalog: RuleCatalog

    func register(on r: ServiceResponder) {
        r.add(Endpoint<Empty, ListOf<FrameworkView>>(Subjects.Findings.complianceFrameworks)) { _, p, ctx in
            let rules = try await store.transaction(p.scope) { tx in try await catalog.rules(tx, tenantId: p.tenantId) }.filter { $0.enabled ?? true }
            return ListOf(items: frameworks.map { Self.frameworkView($0, rules: rules) })
        }
        r.add(Endpoint<ScoreRequest, ComplianceScore>(Subjects.Findings.complianceScore)) { q, p, ctx in
            let connection = try Filter.uuid(q.connectionId, path: "query.connection_id")
            if let f = q.framework, !frameworks.contains(where: { $0.id == f }) {
                throw ServiceError.validation("query.framework", "must be one of \(frameworks.map(\.id).joined(separator: ", "))")
            }
            var s = try await store.transaction(p.scope) { tx in try await score(tx, p.tenantId, connection: connection) }
            if let f = q.framework { s.frameworks = s.frameworks.filter { $0.frameworkId == f } }
            return s
        }
        r.add(Endpoint<FrameworkPath, FrameworkDetail>(Subjects.Findings.complianceFramework)) { q, p, ctx in
            guard let fw = frameworks.first(where: { $0.id == q.frameworkId }) else { throw ServiceError.notFound("framework") }
            let connection = try Filter.uuid(q.connectionId, path: "query.connection_id")
            return try await store.transaction(p.scope) { tx in try await detail(tx, p.tenantId, fw, connection: connection) }
        }
        r.add(Endpoint<ReportRequest, ComplianceReport>(Subjects.Findings.complianceReport)) { q, p, ctx in
            let connection = try Filter.uuid(q.connectionId, path: "query.connection_id")
            let chosen =
                try (q.frameworkId ?? q.framework).map { id -> [Framework] in
                    guard let f = frameworks.first(where: { $0.id == id }) else {
                        throw ServiceError.validation("query.framework_id", "unknown framework")
                    }
                    return [f]
                } ?? frameworks
            return try await store.transaction(p.scope) { tx in
                ComplianceReport(
                    score: try await score(tx, p.tenantId, connection: connection),
                    frameworks: try await chosen.asyncMap { try await detail(tx, p.tenantId, $0, connection: connection) })
            }
        }
    }

    static func frameworkView(_ f: Framework, rules: [Rule]) -> FrameworkView {
        let mapped = rules.filter { $0.compliance[f.id] != nil }
        return FrameworkView(
            id: f.id, name: f.name, version: f.version, description: f.description,
            controls: Set(mapped.flatMap { $0.compliance[f.id]! }).count, rules: mapped.count)
    }

    static func controls(_ f: Framework, rules: [Rule], counts: [String: (passed: Int, failed: Int)]) -> [(String, String, [Rule])] {
        var byControl: [String: [Rule]] = [:]
        for r in rules { for c in r.compliance[f.id] ?? [] { byControl[c, default: []].append(r) } }
        return byControl.keys.sorted { $0.compare($1, options: .numeric) == .orderedAscending }.map { c in
            let mapped = byControl[c]!
            let evaluated = mapped.filter { (counts[$0.id]?.passed ?? 0) + (counts[$0.id]?.failed ?? 0) > 0 }
            let status = evaluated.isEmpty ? "not_assessed" : evaluated.contains { (counts[$0.id]?.failed ?? 0) > 0 } ? "failed" : "passed"
            return (c, status, mapped)
        }
    }

    static func frameworkScore(_ f: Framework, rules: [Rule], counts: [String: (passed: Int, failed: Int)]) -> FrameworkScore {
        let cs = controls(f, rules: rules, counts: counts)
        let passed = cs.filter { $0.1 == "passed" }.count
        let failed = cs.filter { $0.1 == "failed" }.count
        return FrameworkScore(
            frameworkId: f.id, name: f.name, passed: passed, failed: failed, notAssessed: cs.count - passed - failed,
            assessed: passed + failed, score: percent(passed, passed + failed))
    }

    static func percent(_ a: Int, _ b: Int) -> Double { b == 0 ? 0 : (Double(a) / Double(b) * 1000).rounded() / 10 }

    static func overall(_ fs: [FrameworkScore]) -> ScoreView {
        let p = fs.reduce(0) { $0 + $1.passed }
        let f = fs.reduce(0) { $0 + $1.failed }
        let n = fs.reduce(0) { $0 + $1.notAssessed }
        return ScoreView(passed: p, failed: f, notAssessed: n, assessed: p + f, score: percent(p, p + f))
    }

    func score(_ tx: Transaction, _ tenant: String, connection: String?) async throws -> ComplianceScore {
        let rules = try await catalog.rules(tx, tenantId: tenant).filter { $0.enabled ?? true }
        let latest = try await ComplianceStore.latestScans(tx, tenantId: tenant, connection: connection)
        let all = try await ComplianceStore.counts(tx, tenantId: tenant, scans: latest.map(\.scan))
        let fs = frameworks.map { Self.frameworkScore($0, rules: rules, counts: all) }
        var perConnection: [ConnectionScore] = []
        for (c, s) in latest {
            let cc = try await ComplianceStore.counts(tx, tenantId: tenant, scans: [s])
            let cfs = frameworks.map { Self.frameworkScore($0, rules: rules, counts: cc) }
            perConnection.append(ConnectionScore(connectionId: c, scanId: s, overall: Self.overall(cfs), frameworks: cfs))
        }
        return ComplianceScore(overall: Self.overall(fs), frameworks: fs, connections: perConnection, scans: latest.map(\.scan), generatedAt: Date())
    }

    func detail(_ tx: Transaction, _ tenant: String, _ f: Framework, connection: String?) async throws -> FrameworkDetail {
        let rules = try await catalog.rules(tx, tenantId: tenant).filter { $0.enabled ?? true }
        let latest = try await ComplianceStore.latestScans(tx, tenantId: tenant, connection: connection)
        let counts = try await ComplianceStore.counts(tx, tenantId: tenant, scans: latest.map(\.scan))
        let mappedIds = rules.filter { $0.compliance[f.id] != nil }.map(\.id)
        var failing: [String: [FailingResource]] = [:]
        for r in try await ComplianceStore.failing(tx, tenantId: tenant, rules: mappedIds, connection: connection) {
            failing[r.ruleId, default: []].append(r)
        }
        let controls = Self.controls(f, rules: rules, counts: counts).map { c, status, mapped in
            ControlView(
                controlId: c, status: status,
                rules: mapped.map {
                    ControlRule(
                        ruleId: $0.id, title: $0.title, severity: $0.severity.rawValue,
                        passed: counts[$0.id]?.passed ?? 0, failed: counts[$0.id]?.failed ?? 0)
                },
                failingResources: Array(mapped.flatMap { failing[$0.id] ?? [] }.prefix(100)))
        }
        return FrameworkDetail(
            framework: Self.frameworkView(f, rules: rules), score: Self.frameworkScore(f, rules: rules, counts: counts),
            controls: controls, scans: latest.map(\.scan), generatedAt: Date())
    }
}

struct ComplianceReport: Codable, Sendable {
    var score: ComplianceScore
    var frameworks: [FrameworkDetail]
}
struct ListOf<T: Codable & Sendable>: Codable, Sendable { var items: [T] }

extension Array {
    func asyncMap<T>(_ f: (Element) async throws -> T) async rethrows -> [T] {
        var out: [T] = []
        for e in self { out.append(try await f(e)) }
        return out
    }
}
