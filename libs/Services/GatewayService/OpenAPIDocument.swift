import Bus
import Contracts
import Foundation
import Logging
import Synchronization
import VigilCore
import VigilCrypto
import Yams

/// Loads `contracts/openapi.yaml` and converts it to JSON for `/api/v1/openapi.json`.
enum OpenAPIDocument {
    static func candidates(explicit: String?) -> [String] {
        if let explicit { return [explicit] }
        let exe = URL(fileURLWithPath: CommandLine.arguments.first ?? ".").resolvingSymlinksInPath().deletingLastPathComponent()
        var out = [FileManager.default.currentDirectoryPath + "/contracts/openapi.yaml"]
        var dir = exe
        for _ in 0..<5 {
            out.append(dir.appendingPathComponent("contracts/openapi.yaml").path)
            dir = dir.deletingLastPathComponent()
        }
        return out
    }

    static func load(explicitPath: String?, logger: Logger) -> Data? {
        for path in candidates(explicit: explicitPath) {
            guard let text = try? String(contentsOfFile: path, encoding: .utf8) else { continue }
            do {
                guard let yaml = try Yams.load(yaml: text) else { continue }
                return try JSONSerialization.data(withJSONObject: jsonSafe(yaml), options: [.sortedKeys, .withoutEscapingSlashes])
            } catch {
                logger.error("cannot parse OpenAPI document", metadata: ["path": "\(path)", "error": "\(error)"])
                return nil
            }
        }
        logger.warning("OpenAPI document not found; /api/v1/openapi.json will answer 404")
        return nil
    }

    /// YAML maps may have non-string keys (status codes); JSON needs strings.
    static func jsonSafe(_ v: Any) -> Any {
        switch v {
        case let d as [AnyHashable: Any]:
            var out: [String: Any] = [:]
            for (k, val) in d { out["\(k.base)"] = jsonSafe(val) }
            return out
        case let a as [Any]: return a.map(jsonSafe)
        case let d as Date: return Timestamp.format(d)
        default: return v
        }
    }
}
