import Foundation
import VigilCore

/// One inventoried cloud resource (DESIGN.md §6). `attributes` holds the raw state and the facts the
/// collector derived for rules (public principals, world-open ports, secret-looking values, ages…).
public struct Resource: Codable, Sendable, Equatable {
    public var provider: String
    public var account: String
    public var region: String
    public var service: String
    public var type: String
    /// A stable identifier: the ARN where the resource has one.
    public var id: String
    public var name: String
    public var tags: [String: String]
    public var attributes: [String: JSONValue]

    public init(
        provider: String = "aws", account: String, region: String, service: String, type: String, id: String,
        name: String, tags: [String: String] = [:], attributes: [String: JSONValue]
    ) {
        self.provider = provider
        self.account = account
        self.region = region
        self.service = service
        self.type = type
        self.id = id
        self.name = name
        self.tags = tags
        self.attributes = attributes
    }

    /// The value at a dotted key path (`encryption.enabled`, `tags.env`, `name`); nil when absent.
    public func value(at path: String) -> JSONValue? {
        let parts = path.split(separator: ".", maxSplits: 1).map(String.init)
        guard let head = parts.first else { return nil }
        let root: JSONValue?
        switch head {
        case "name": root = .string(name)
        case "id": root = .string(id)
        case "region": root = .string(region)
        case "tags": root = .object(tags.mapValues { .string($0) })
        default: root = attributes[head]
        }
        guard parts.count == 2 else { return root }
        return root.flatMap { Condition.lookup($0, path: parts[1]) }
    }
}

/// A declarative condition over a resource's attributes: all/any/not, and comparisons on key paths.
/// A comparison on a missing value is false (unknown never fires a rule), except `not_exists`.
public indirect enum Condition: Codable, Sendable, Equatable {
    case all([Condition])
    case any([Condition])
    case not(Condition)
    case compare(path: String, op: Operator, value: JSONValue?)
    /// Some element of the array at `path` satisfies `where` (paths inside are relative to the element).
    case anyElement(path: String, where: Condition)

    public enum Operator: String, Codable, Sendable, CaseIterable {
        case eq, ne, `in`, notIn = "not_in", contains, notContains = "not_contains", containsAny = "contains_any"
        case exists, notExists = "not_exists", gt, gte, lt, lte, regex, empty, notEmpty = "not_empty"
    }

    enum Keys: String, CodingKey { case all, any, not, path, op, value, `where` }

    public init(from decoder: any Decoder) throws {
        let c = try decoder.container(keyedBy: Keys.self)
        let present = c.allKeys.map(\.stringValue)
        if c.contains(.all) {
            self = .all(try c.decode([Condition].self, forKey: .all))
        } else if c.contains(.any) {
            self = .any(try c.decode([Condition].self, forKey: .any))
        } else if c.contains(.not) {
            self = .not(try c.decode(Condition.self, forKey: .not))
        } else if c.contains(.path) {
            let path = try c.decode(String.self, forKey: .path)
            guard !path.isEmpty, path.count <= 200 else {
                throw DecodingError.dataCorruptedError(forKey: .path, in: c, debugDescription: "path must be 1 to 200 characters")
            }
            let opName = try c.decode(String.self, forKey: .op)
            if opName == "any" {
                self = .anyElement(path: path, where: try c.decode(Condition.self, forKey: .where))
                return
            }
            guard let op = Operator(rawValue: opName) else {
                throw DecodingError.dataCorruptedError(
                    forKey: .op, in: c,
                    debugDescription:
                        "unknown operator \(opName); use one of \((Operator.allCases.map(\.rawValue) + ["any"]).joined(separator: ", "))")
            }
            let value = try c.decodeIfPresent(JSONValue.self, forKey: .value)
            let needsValue: Set<Operator> = [.eq, .ne, .in, .notIn, .contains, .notContains, .containsAny, .gt, .gte, .lt, .lte, .regex]
            if needsValue.contains(op), value == nil {
                throw DecodingError.dataCorruptedError(forKey: .value, in: c, debugDescription: "operator \(opName) needs a value")
            }
            if [.in, .notIn, .containsAny].contains(op), value?.arrayValue == nil {
                throw DecodingError.dataCorruptedError(forKey: .value, in: c, debugDescription: "operator \(opName) needs a list value")
            }
            if [.gt, .gte, .lt, .lte].contains(op), value?.numberValue == nil {
                throw DecodingError.dataCorruptedError(forKey: .value, in: c, debugDescription: "operator \(opName) needs a number")
            }
            if op == .regex {
                guard let p = value?.stringValue, p.count <= 500, (try? NSRegularExpression(pattern: p)) != nil else {
                    throw DecodingError.dataCorruptedError(forKey: .value, in: c, debugDescription: "regex must be a valid pattern")
                }
            }
            self = .compare(path: path, op: op, value: value)
        } else {
            throw DecodingError.dataCorrupted(
                .init(
                    codingPath: c.codingPath,
                    debugDescription:
                        "a condition needs one of all, any, not or path (found: \(present.joined(separator: ", ")))"))
        }
    }

    public func encode(to encoder: any Encoder) throws {
        var c = encoder.container(keyedBy: Keys.self)
        switch self {
        case .all(let l): try c.encode(l, forKey: .all)
        case .any(let l): try c.encode(l, forKey: .any)
        case .not(let x): try c.encode(x, forKey: .not)
        case .compare(let path, let op, let value):
            try c.encode(path, forKey: .path)
            try c.encode(op.rawValue, forKey: .op)
            try c.encodeIfPresent(value, forKey: .value)
        case .anyElement(let path, let w):
            try c.encode(path, forKey: .path)
            try c.encode("any", forKey: .op)
            try c.encode(w, forKey: .where)
        }
    }

    /// Every key path the condition reads (evidence shows their values).
    public var paths: [String] {
        switch self {
        case .all(let l), .any(let l): l.flatMap(\.paths)
        case .not(let x): x.paths
        case .compare(let p, _, _), .anyElement(let p, _): [p]
        }
    }

    static func lookup(_ v: JSONValue, path: String) -> JSONValue? {
        var cur: JSONValue? = v
        for key in path.split(separator: ".") {
            guard let c = cur else { return nil }
            if case .array(let a) = c, let i = Int(key) { cur = a.indices.contains(i) ? a[i] : nil } else { cur = c[String(key)] }
        }
        if cur == .null { return nil }
        return cur
    }

    /// Evaluates against a value source (a resource, or an array element for `any`).
    public func matches(_ get: (String) -> JSONValue?) -> Bool {
        switch self {
        case .all(let l): return l.allSatisfy { $0.matches(get) }
        case .any(let l): return l.contains { $0.matches(get) }
        case .not(let x): return !x.matches(get)
        case .anyElement(let path, let w):
            guard let items = get(path)?.arrayValue else { return false }
            return items.contains { item in w.matches { Self.lookup(item, path: $0) } }
        case .compare(let path, let op, let value):
            let actual = get(path)
            switch op {
            case .exists: return actual != nil
            case .notExists: return actual == nil
            default: break
            }
            guard let a = actual, let v = value ?? .null as JSONValue? else { return false }
            switch op {
            case .eq: return Self.equal(a, v)
            case .ne: return !Self.equal(a, v)
            case .in: return v.arrayValue?.contains { Self.equal(a, $0) } ?? false
            case .notIn: return !(v.arrayValue?.contains { Self.equal(a, $0) } ?? false)
            case .contains:
                if let arr = a.arrayValue { return arr.contains { Self.equal($0, v) } }
                if let s = a.stringValue, let sub = v.stringValue { return s.contains(sub) }
                return false
            case .notContains:
                if let arr = a.arrayValue { return !arr.contains { Self.equal($0, v) } }
                if let s = a.stringValue, let sub = v.stringValue { return !s.contains(sub) }
                return false
            case .containsAny:
                guard let arr = a.arrayValue, let wanted = v.arrayValue else { return false }
                return arr.contains { x in wanted.contains { Self.equal(x, $0) } }
            case .gt, .gte, .lt, .lte:
                guard let x = a.numberValue, let y = v.numberValue else { return false }
                switch op {
                case .gt: return x > y
                case .gte: return x >= y
                case .lt: return x < y
                default: return x <= y
                }
            case .regex:
                guard let s = a.stringValue, let p = v.stringValue, let re = try? NSRegularExpression(pattern: p) else { return false }
                return re.firstMatch(in: s, range: NSRange(s.startIndex..., in: s)) != nil
            case .empty:
                if let arr = a.arrayValue { return arr.isEmpty }
                if let o = a.objectValue { return o.isEmpty }
                return a.stringValue == ""
            case .notEmpty:
                if let arr = a.arrayValue { return !arr.isEmpty }
                if let o = a.objectValue { return !o.isEmpty }
                if let s = a.stringValue { return !s.isEmpty }
                return false
            case .exists, .notExists: return false
            }
        }
    }

    static func equal(_ a: JSONValue, _ b: JSONValue) -> Bool {
        if let x = a.numberValue, let y = b.numberValue { return x == y }
        if let x = a.stringValue, let y = b.stringValue { return x.caseInsensitiveCompare(y) == .orderedSame }
        return a == b
    }
}

public enum Severity: String, Codable, Sendable, CaseIterable, Comparable {
    case critical, high, medium, low, info
    public var rank: Int { Self.allCases.firstIndex(of: self)! }
    public static func < (a: Severity, b: Severity) -> Bool { a.rank > b.rank }
}

/// A rule (DESIGN.md §6): built-in ones live in contracts/rules/, custom ones come from the findings
/// service; both use this shape and the one evaluator below.
public struct Rule: Codable, Sendable, Equatable {
    public struct Remediation: Codable, Sendable, Equatable {
        public var console: String
        public var cli: String?
        public init(console: String, cli: String?) {
            self.console = console
            self.cli = cli
        }
    }
    /// Monthly saving: a fixed amount, or a unit price times a numeric attribute (e.g. GiB).
    public struct Savings: Codable, Sendable, Equatable {
        public var usdPerMonth: Double?
        public var usdPerUnit: Double?
        public var unitPath: String?
    }
    public struct Examples: Codable, Sendable, Equatable {
        public var fail: [String: JSONValue]
        public var pass: [String: JSONValue]
    }

    public var id: String
    public var title: String
    public var severity: Severity
    public var provider: String
    public var service: String
    public var resourceType: String
    public var category: String
    /// Resources the rule applies to (absent: all of `resource_type`); others are not evaluated.
    public var appliesIf: Condition?
    /// The misconfiguration: true means FAIL.
    public var failIf: Condition
    public var description: String
    public var rationale: String
    public var remediation: Remediation
    public var cwe: String?
    public var references: [String]?
    public var compliance: [String: [String]]
    public var fixAction: String?
    public var savings: Savings?
    public var enabled: Bool?
    public var examples: Examples?
    /// Attribute paths shown in a finding's evidence besides the ones `fail_if` reads (where a value
    /// came from: `file:line`, a default).
    public var evidence: [String]?

    public init(
        id: String, title: String, severity: Severity, provider: String, service: String, resourceType: String, category: String,
        appliesIf: Condition?, failIf: Condition, description: String, rationale: String, remediation: Remediation, cwe: String?,
        references: [String]?, compliance: [String: [String]], fixAction: String?, savings: Savings?, enabled: Bool?, examples: Examples?,
        evidence: [String]? = nil
    ) {
        self.evidence = evidence
        self.id = id
        self.title = title
        self.severity = severity
        self.provider = provider
        self.service = service
        self.resourceType = resourceType
        self.category = category
        self.appliesIf = appliesIf
        self.failIf = failIf
        self.description = description
        self.rationale = rationale
        self.remediation = remediation
        self.cwe = cwe
        self.references = references
        self.compliance = compliance
        self.fixAction = fixAction
        self.savings = savings
        self.enabled = enabled
        self.examples = examples
    }

    /// Monthly saving for one failing resource, rounded to cents.
    public func monthlySavings(for r: Resource) -> Double? {
        guard let s = savings else { return nil }
        var total = s.usdPerMonth ?? 0
        if let unit = s.usdPerUnit, let path = s.unitPath, let n = r.value(at: path)?.numberValue { total += unit * n }
        return (total * 100).rounded() / 100
    }
}

/// PASS or FAIL of one rule on one resource.
public struct RuleResult: Codable, Sendable, Equatable {
    public var ruleId: String
    public var status: String
    public var severity: Severity
    public var evidence: [String: JSONValue]
}

public enum RuleEngine {
    /// nil when the rule does not apply to the resource (wrong type or `applies_if` false).
    public static func evaluate(_ rule: Rule, _ resource: Resource) -> RuleResult? {
        guard rule.resourceType == resource.type else { return nil }
        let get: (String) -> JSONValue? = { resource.value(at: $0) }
        if let a = rule.appliesIf, !a.matches(get) { return nil }
        let failed = rule.failIf.matches(get)
        var evidence: [String: JSONValue] = [:]
        for p in Set(rule.failIf.paths) { evidence[p] = resource.value(at: p) ?? .null }
        for p in rule.evidence ?? [] { evidence[p] = resource.value(at: p) ?? .null }
        return RuleResult(ruleId: rule.id, status: failed ? "FAIL" : "PASS", severity: rule.severity, evidence: evidence)
    }

    /// Rules grouped by resource type, for evaluating many resources quickly.
    public static func index(_ rules: [Rule]) -> [String: [Rule]] {
        Dictionary(grouping: rules.filter { $0.enabled ?? true }, by: \.resourceType)
    }
}
