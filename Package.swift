// swift-tools-version:6.1
import PackageDescription

/// One settings array for every target: Swift 6 language mode, strict concurrency.
let swiftSettings: [SwiftSetting] = [
    .enableUpcomingFeature("ExistentialAny")
]

/// C libraries from Debian's -dev packages, found through pkg-config.
let systemLibraries: [Target] = [
    .systemLibrary(name: "CNats", path: "libs/Platform/CNats", pkgConfig: "libnats", providers: [.apt(["libnats-dev"])]),
    .systemLibrary(name: "CLibPQ", path: "libs/Platform/CLibPQ", pkgConfig: "libpq", providers: [.apt(["libpq-dev"])]),
    .systemLibrary(name: "CSodium", path: "libs/Platform/CSodium", pkgConfig: "libsodium", providers: [.apt(["libsodium-dev"])]),
    .systemLibrary(name: "COpenSSL", path: "libs/Platform/COpenSSL", pkgConfig: "openssl", providers: [.apt(["libssl-dev"])]),
    .systemLibrary(name: "CPosix", path: "libs/Platform/CPosix"),
]

/// A library target under libs/<layer>/<name>: Platform (bus, store, crypto, contracts, runtime),
/// Scanning (the provider-neutral engine), Providers (one per kind of target), Services (one per executable).
func lib(_ layer: String, _ name: String, _ deps: [Target.Dependency]) -> Target {
    .target(name: name, dependencies: deps, path: "libs/\(layer)/\(name)", swiftSettings: swiftSettings)
}

/// A thin service executable under services/<dir>: it only calls into its library target.
func service(_ exe: String, dir: String, library: String) -> Target {
    .executableTarget(
        name: exe, dependencies: [.target(name: library), "ServiceRuntime"],
        path: "services/\(dir)", swiftSettings: swiftSettings)
}

let log: Target.Dependency = .product(name: "Logging", package: "swift-log")
let metrics: Target.Dependency = .product(name: "Metrics", package: "swift-metrics")
let lifecycle: Target.Dependency = .product(name: "ServiceLifecycle", package: "swift-service-lifecycle")

let package = Package(
    name: "vigil",
    platforms: [.macOS(.v14)],
    products: [
        .executable(name: "vigil-gateway", targets: ["vigil-gateway"]),
        .executable(name: "vigil-identity", targets: ["vigil-identity"]),
        .executable(name: "vigil-scan-orchestrator", targets: ["vigil-scan-orchestrator"]),
        .executable(name: "vigil-findings", targets: ["vigil-findings"]),
        .executable(name: "vigil-remediation", targets: ["vigil-remediation"]),
        .executable(name: "vigil-billing", targets: ["vigil-billing"]),
        .executable(name: "vigil-notifier", targets: ["vigil-notifier"]),
        .executable(name: "vigil-connector", targets: ["vigil-connector"]),
        .executable(name: "vigil", targets: ["vigil"]),
        .executable(name: "vigil-mcp", targets: ["vigil-mcp"]),
    ],
    dependencies: [
        .package(url: "https://github.com/hummingbird-project/hummingbird.git", from: "2.28.1"),
        .package(url: "https://github.com/apple/swift-log.git", from: "1.16.2"),
        .package(url: "https://github.com/apple/swift-metrics.git", from: "2.13.0"),
        .package(url: "https://github.com/swift-server/swift-service-lifecycle.git", from: "2.13.0"),
        .package(url: "https://github.com/swift-server/swift-prometheus.git", from: "2.4.1"),
        .package(url: "https://github.com/jpsim/Yams.git", from: "5.0.1"),
        .package(url: "https://github.com/swift-server/async-http-client.git", from: "1.37.0"),
        .package(url: "https://github.com/apple/swift-nio.git", from: "2.101.2"),
        .package(url: "https://github.com/apple/swift-argument-parser.git", from: "1.8.2"),
        .package(url: "https://github.com/apple/swift-nio-ssl.git", from: "2.37.6"),
        .package(url: "https://github.com/modelcontextprotocol/swift-sdk.git", from: "0.12.1"),
    ],
    targets: systemLibraries + [
        lib("Platform", "VigilCore", ["CPosix"]),
        lib("Platform", "Contracts", ["VigilCore"]),
        lib("Platform", "VigilCrypto", ["CSodium", "COpenSSL", "VigilCore"]),
        lib("Platform", "Bus", ["CNats", "VigilCore", log]),
        lib(
            "Platform", "Net",
            [
                "COpenSSL", "VigilCore", .product(name: "AsyncHTTPClient", package: "async-http-client"),
                .product(name: "NIOCore", package: "swift-nio"), .product(name: "NIOHTTP1", package: "swift-nio"),
            ]),
        lib("Providers", "AWS", ["VigilCrypto", "Net", "VigilCore", "ScanEngine"]),
        lib("Providers", "Host", ["VigilCore", "ScanEngine"]),
        lib("Providers", "Web", ["VigilCore", "ScanEngine", "Net"]),
        lib("Providers", "Repo", ["VigilCore", "VigilCrypto", "ScanEngine", "Net"]),
        lib("Platform", "Store", ["CLibPQ", "VigilCore", "Bus", log]),
        lib(
            "Platform", "ServiceRuntime",
            [
                "VigilCore", "Bus", "Store", "Contracts", log, metrics, lifecycle,
                .product(name: "Prometheus", package: "swift-prometheus"),
                .product(name: "Hummingbird", package: "hummingbird"),
            ]),
        lib("Services", "IdentityService", ["ServiceRuntime", "VigilCrypto", "Contracts"]),
        lib("Services", "BillingService", ["ServiceRuntime", "Contracts", "Net", "VigilCrypto", lifecycle]),
        lib("Scanning", "ScanEngine", ["VigilCore", "VigilCrypto", "Net"]),
        lib("Services", "FindingsService", ["ServiceRuntime", "Contracts", "ScanEngine", lifecycle]),
        lib("Services", "ScanService", ["ServiceRuntime", "Contracts", "Net", "VigilCrypto", "AWS", "Host", "Web", "Repo", "ScanEngine", lifecycle]),
        lib("Services", "RemediationService", ["ServiceRuntime", "Contracts", "Net", "VigilCrypto", "AWS", "ScanEngine", lifecycle]),
        lib("Services", "NotifierService", ["ServiceRuntime", "Contracts", "Net", "VigilCrypto", lifecycle]),
        lib(
            "Services", "GatewayService",
            [
                "ServiceRuntime", "VigilCrypto", "Contracts",
                .product(name: "Hummingbird", package: "hummingbird"),
                .product(name: "Yams", package: "Yams"),
            ]),
        service("vigil-gateway", dir: "gateway", library: "GatewayService"),
        service("vigil-identity", dir: "identity", library: "IdentityService"),
        service("vigil-scan-orchestrator", dir: "scan-orchestrator", library: "ScanService"),
        service("vigil-findings", dir: "findings", library: "FindingsService"),
        service("vigil-remediation", dir: "remediation", library: "RemediationService"),
        service("vigil-billing", dir: "billing", library: "BillingService"),
        service("vigil-notifier", dir: "notifier", library: "NotifierService"),
        // Clients talk to the REST API, not the bus: the on-prem connector agent.
        .executableTarget(
            name: "vigil-connector",
            dependencies: [
                "Host", "ScanEngine", "VigilCrypto", "VigilCore", .product(name: "AsyncHTTPClient", package: "async-http-client"),
                .product(name: "ArgumentParser", package: "swift-argument-parser"), .product(name: "NIOSSL", package: "swift-nio-ssl"),
                .product(name: "NIOCore", package: "swift-nio"),
            ],
            path: "clients/connector", swiftSettings: swiftSettings),
        // The REST client the `vigil` command line and the MCP server share.
        .target(
            name: "VigilAPIClient",
            dependencies: [
                .product(name: "AsyncHTTPClient", package: "async-http-client"), .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOHTTP1", package: "swift-nio"),
            ],
            path: "clients/api", swiftSettings: swiftSettings),
        // The `vigil` command line: REST only.
        .executableTarget(
            name: "vigil",
            dependencies: [
                "VigilAPIClient", .product(name: "ArgumentParser", package: "swift-argument-parser"),
                .product(name: "NIOHTTP1", package: "swift-nio"),
            ],
            path: "clients/cli", swiftSettings: swiftSettings),
        // An MCP server (stdio and streamable HTTP) for AI assistants: tools over the same REST API as the CLI.
        .executableTarget(
            name: "vigil-mcp",
            dependencies: [
                "VigilAPIClient", .product(name: "MCP", package: "swift-sdk"), .product(name: "NIOHTTP1", package: "swift-nio"),
                .product(name: "Hummingbird", package: "hummingbird"),
            ],
            path: "clients/mcp", swiftSettings: swiftSettings),
        .target(
            name: "VigilTesting", dependencies: ["Bus", "Store", "ServiceRuntime", "VigilCore", "CPosix"], path: "Tests/VigilTesting",
            swiftSettings: swiftSettings),
        .testTarget(
            name: "VigilTests",
            dependencies: [
                "VigilTesting", .product(name: "HummingbirdTesting", package: "hummingbird"), "Net", "AWS", "Bus", "Store", "VigilCrypto",
                "VigilCore", "ServiceRuntime", .product(name: "Yams", package: "Yams"),
                "IdentityService", "GatewayService", "BillingService", "NotifierService", "ScanService", "ScanEngine", "FindingsService",
                "RemediationService", "Contracts", "Host", "Web", "Repo", "VigilAPIClient",
            ],
            path: "Tests/VigilTests", swiftSettings: swiftSettings),
    ]
)
