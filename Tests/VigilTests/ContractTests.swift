import Foundation
import Testing
import VigilTesting
import Yams

@testable import GatewayService

/// The gateway's route table and contracts/openapi.yaml must say the same thing.
@Suite struct ContractTests {
    static func openAPI() throws -> [String: Any] {
        let text = try String(contentsOfFile: TestServers.repoRoot + "/contracts/openapi.yaml", encoding: .utf8)
        return try #require(try Yams.load(yaml: text) as? [String: Any])
    }

    @Test func everyRouteIsDocumentedWithItsSubjectAccessAndStatus() throws {
        let paths = try #require(try Self.openAPI()["paths"] as? [String: [String: Any]])
        var documented = 0
        for ops in paths.values { documented += ops.keys.filter { ["get", "post", "patch", "put", "delete"].contains($0) }.count }
        #expect(documented == RouteTable.all.count)
        for route in RouteTable.all {
            let op = try #require(
                paths[route.path]?[route.method.rawValue.lowercased()] as? [String: Any],
                "\(route.method) \(route.path) is not in openapi.yaml")
            #expect(op["x-vigil-subject"] as? String == route.subject, "\(route.path)")
            let access: String =
                switch route.access {
                case .public: "public"
                case .optional: "optional"
                case .member: "member"
                case .role(let r): r.rawValue
                }
            #expect(op["x-vigil-access"] as? String == access, "\(route.path)")
            let responses = try #require(op["responses"] as? [AnyHashable: Any])
            #expect(responses.keys.contains { "\($0.base)" == String(route.status.code) }, "\(route.path) status")
        }
    }

    @Test func documentedPathParametersMatchTheRoutes() throws {
        let paths = try #require(try Self.openAPI()["paths"] as? [String: [String: Any]])
        for route in RouteTable.all {
            let op = paths[route.path]?[route.method.rawValue.lowercased()] as? [String: Any]
            let params = (op?["parameters"] as? [[String: Any]] ?? []).filter { $0["in"] as? String == "path" }.compactMap { $0["name"] as? String }
            #expect(params == route.pathParameters, "\(route.path)")
            let query = Set(
                (op?["parameters"] as? [[String: Any]] ?? []).filter { $0["in"] as? String == "query" }.compactMap { $0["name"] as? String })
            #expect(query == Set(route.query.keys), "\(route.path)")
        }
    }
}
