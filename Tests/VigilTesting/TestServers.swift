import Bus
import CPosix
import Foundation
import Logging
import Store
import Synchronization
import VigilCore

/// Real servers for integration tests: one nats-server (JetStream) and one PostgreSQL cluster per test
/// process, on random loopback ports, started on first use and stopped when the process exits.
public final class TestServers: Sendable {
    public let natsURL: String
    public let databaseURL: String
    let root: String
    let natsPID: Int32

    /// The servers' start, shared by every test (started once; a failed start fails every test that asks).
    private static let starting = Mutex<Task<TestServers, any Error>?>(nil)
    private static let started = Mutex<TestServers?>(nil)

    /// The process-wide servers (started on first call). Waiting for them suspends: a test that blocked a thread
    /// of Swift's cooperative pool (2 on 2 cores) while PostgreSQL started held back every other test's timers.
    public static func get() async throws -> TestServers {
        let task = starting.withLock { t in
            if let t { return t }
            let task = Task {
                let s = try await TestServers.start()
                started.withLock { $0 = s }
                atexit { TestServers.shutdown() }
                return s
            }
            t = task
            return task
        }
        return try await task.value
    }

    static func shutdown() {
        guard let s = started.withLock({ $0 }) else { return }
        stop(s.natsPID)
        _ = try? TestServers.run(["\(repoRoot)/scripts/pg-temp", "stop", "\(s.root)/pg"])
        try? FileManager.default.removeItem(atPath: s.root)
    }

    /// The repository root (two levels above this file's directory).
    public static let repoRoot: String = URL(fileURLWithPath: #filePath)
        .deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent().path

    public static func freePort() -> Int {
        let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        defer { close(fd) }
        var addr = sockaddr_in()
        addr.sin_family = sa_family_t(AF_INET)
        addr.sin_addr.s_addr = inet_addr("127.0.0.1")
        addr.sin_port = 0
        var len = socklen_t(MemoryLayout<sockaddr_in>.size)
        _ = withUnsafePointer(to: &addr) { $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(fd, $0, len) } }
        _ = withUnsafeMutablePointer(to: &addr) { $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { getsockname(fd, $0, &len) } }
        return Int(UInt16(bigEndian: addr.sin_port))
    }

    /// Starts a program with stdio on /dev/null (posix_spawn; no Foundation run loop involved).
    public static func spawn(_ args: [String]) throws -> pid_t {
        var actions = posix_spawn_file_actions_t()
        posix_spawn_file_actions_init(&actions)
        defer { posix_spawn_file_actions_destroy(&actions) }
        for fd in [0, 1, 2] { posix_spawn_file_actions_addopen(&actions, Int32(fd), "/dev/null", fd == 0 ? O_RDONLY : O_WRONLY, 0) }
        // Nothing else of this process goes along. A server started here lives until the process exits, and
        // it kept whatever descriptor another test had open without close-on-exec at that moment — among
        // them the socket Foundation's `Process` watches to learn that its child exited: `git` in a repository
        // test exited, but `waitUntilExit` waited for the PostgreSQL or nats-server holding that socket,
        // i.e. forever (the suite hung in CI until its 90 minutes ran out).
        posix_spawn_file_actions_addclosefrom_np(&actions, 3)
        // Its own process group, so `stop(pid)` also reaches children (e.g. behind pyenv shims).
        var attr = posix_spawnattr_t()
        posix_spawnattr_init(&attr)
        defer { posix_spawnattr_destroy(&attr) }
        posix_spawnattr_setflags(&attr, Int16(POSIX_SPAWN_SETPGROUP))
        posix_spawnattr_setpgroup(&attr, 0)
        var pid: pid_t = 0
        let cArgs = args.map { strdup($0) } + [nil]
        defer { cArgs.forEach { free($0) } }
        let rc = posix_spawn(&pid, args[0], &actions, &attr, cArgs, environ)
        guard rc == 0 else { throw StoreErrorForTests("cannot start \(args[0]): \(rc)") }
        return pid
    }

    /// Stops a spawned program and its process group, and reaps it.
    public static func stop(_ pid: pid_t) {
        kill(-pid, SIGTERM)
        var status: Int32 = 0
        for _ in 0..<100 {
            if waitpid(pid, &status, WNOHANG) == pid { return }
            usleep(50_000)
        }
        kill(-pid, SIGKILL)
        waitpid(pid, &status, 0)
    }

    /// Runs a program to completion and returns its exit status.
    @discardableResult
    public static func run(_ args: [String]) throws -> Int32 {
        let pid = try spawn(args)
        var status: Int32 = 0
        while waitpid(pid, &status, 0) == -1 && errno == EINTR {}
        return (status >> 8) & 0xff
    }

    /// Waits (suspended, not blocking a thread) until something listens on the loopback port.
    public static func waitForPort(_ port: Int, timeout: Duration = .seconds(10)) async -> Bool {
        let deadline = ContinuousClock.now + timeout
        while ContinuousClock.now < deadline {
            if isListening(port) { return true }
            try? await Task.sleep(for: .milliseconds(50))
        }
        return false
    }

    static func isListening(_ port: Int) -> Bool {
        let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        defer { close(fd) }
        var addr = sockaddr_in()
        addr.sin_family = sa_family_t(AF_INET)
        addr.sin_addr.s_addr = inet_addr("127.0.0.1")
        addr.sin_port = UInt16(port).bigEndian
        return withUnsafePointer(to: &addr) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { connect(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) }
        } == 0
    }

    private init(root: String, natsPID: Int32, natsURL: String, databaseURL: String) {
        (self.root, self.natsPID, self.natsURL, self.databaseURL) = (root, natsPID, natsURL, databaseURL)
    }

    private static func start() async throws -> TestServers {
        let root = NSTemporaryDirectory() + "vigil-test-" + UUID().uuidString.prefix(8)
        try FileManager.default.createDirectory(atPath: root + "/nats", withIntermediateDirectories: true)
        let natsPort = Self.freePort()
        let natsPID = try Self.spawn(["/usr/sbin/nats-server", "-a", "127.0.0.1", "-p", "\(natsPort)", "-js", "-sd", root + "/nats"])
        guard await Self.waitForPort(natsPort) else {
            Self.stop(natsPID)
            throw StoreErrorForTests("nats-server did not start")
        }
        let pgPort = Self.freePort()
        // pg-temp waits for PostgreSQL (seconds): on a Dispatch thread, not the cooperative pool.
        let status = try? await Blocking.run { try Self.run(["\(Self.repoRoot)/scripts/pg-temp", "start", root + "/pg", "\(pgPort)"]) }
        guard status == 0 else {
            Self.stop(natsPID)
            throw StoreErrorForTests("PostgreSQL did not start")
        }
        return TestServers(
            root: root, natsPID: natsPID, natsURL: "nats://127.0.0.1:\(natsPort)", databaseURL: "postgresql://vigil@127.0.0.1:\(pgPort)/vigil")
    }

    /// A fresh bus connection.
    public func bus(name: String = "test") async throws -> BusConnection {
        try await BusConnection(.init(url: natsURL, name: name), logger: Logger(label: name))
    }

    /// A store on a schema of its own (unique per call unless given).
    public func store(schema: String = "t_" + UUID().uuidString.prefix(8).lowercased()) -> Store {
        Store(url: databaseURL, schema: schema, poolSize: 4, logger: Logger(label: "store"))
    }
}

public struct StoreErrorForTests: Error, CustomStringConvertible {
    public let description: String
    public init(_ d: String) { description = d }
}

/// A nats-server of a test's own, for tests that must be the only responder on a real subject: the
/// shared server carries every suite of the process, and their services answer in queue group `q`.
public final class PrivateNATS: Sendable {
    public let url: String
    let pid: pid_t
    let dir: String

    public init() async throws {
        dir = NSTemporaryDirectory() + "vigil-nats-" + UUID().uuidString.prefix(8)
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        let port = TestServers.freePort()
        pid = try TestServers.spawn(["/usr/sbin/nats-server", "-a", "127.0.0.1", "-p", "\(port)", "-js", "-sd", dir])
        guard await TestServers.waitForPort(port) else {
            TestServers.stop(pid)
            throw StoreErrorForTests("nats-server did not start")
        }
        url = "nats://127.0.0.1:\(port)"
    }

    /// A fresh connection to this server.
    public func bus(name: String = "test") async throws -> BusConnection {
        try await BusConnection(.init(url: url, name: name), logger: Logger(label: name))
    }

    /// Stops the server and removes its data.
    public func stop() {
        TestServers.stop(pid)
        try? FileManager.default.removeItem(atPath: dir)
    }
}
