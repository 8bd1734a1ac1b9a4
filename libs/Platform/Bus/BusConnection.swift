import CNats
import Foundation
import Logging
import Synchronization
import VigilCore

/// A live subscription. Keep it: releasing it unsubscribes (cnats destroys on unsubscribe).
public final class BusSubscription: Sendable {
    private let sub: Mutex<CHandle?>
    public let subject: String

    init(_ sub: OpaquePointer, subject: String) {
        self.sub = Mutex(CHandle(sub))
        self.subject = subject
    }

    /// Stops delivery. Safe to call more than once.
    public func unsubscribe() {
        let s = sub.withLock { s -> CHandle? in
            let old = s
            s = nil
            return old
        }
        if let s {
            natsSubscription_Unsubscribe(s.p)
            natsSubscription_Destroy(s.p)
        }
    }

    deinit { unsubscribe() }
}

/// One connection to NATS: publish, subscribe (optionally in a queue group), request/reply with
/// timeouts and headers. Requests share one wildcard inbox subscription; no thread blocks on a reply.
public final class BusConnection: Sendable {
    /// Connection settings.
    public struct Options: Sendable {
        public var url: String
        public var name: String
        public var reconnectWait: Duration = .milliseconds(250)
        public var connectTimeout: Duration = .seconds(5)
        public var defaultRequestTimeout: Duration = .seconds(10)
        /// Write every message at once (low request/reply latency, a syscall per message). Off, cnats
        /// coalesces writes in its flusher thread: better for many small messages such as acks.
        public var sendAsap = true
        public init(url: String, name: String, sendAsap: Bool = true) {
            self.url = url
            self.name = name
            self.sendAsap = sendAsap
        }
    }

    private let handle: CHandle
    /// The cnats connection (thread-safe).
    var nc: OpaquePointer { handle.p }
    public let options: Options
    let logger: Logger
    private let inboxPrefix: String
    private let pending = Mutex<[String: CheckedContinuation<BusMessage, any Error>]>([:])
    private let counter = Atomic<UInt64>(0)
    private let inboxSub = Mutex<BusSubscription?>(nil)
    private let closed = Atomic<Bool>(false)

    /// Connects, retrying the first connection for up to `connectTimeout`, and reconnecting forever after.
    public init(_ options: Options, logger: Logger) async throws {
        Self.openLibrary
        self.options = options
        self.logger = logger
        var opts: OpaquePointer? = nil
        guard natsOptions_Create(&opts) == NATS_OK, let opts else { throw BusError.connect("cannot create options") }
        defer { natsOptions_Destroy(opts) }
        // A cluster: `nats://a:4222,nats://b:4222,…` (cnats takes the list as servers, not as one URL).
        let urls = options.url.split(separator: ",").map { $0.trimmingCharacters(in: .whitespaces) }.filter { !$0.isEmpty }
        if urls.count > 1 {
            var cStrings = urls.map { UnsafePointer<CChar>(strdup($0)) }
            defer { cStrings.forEach { free(UnsafeMutablePointer(mutating: $0)) } }
            cStrings.withUnsafeMutableBufferPointer { buf in
                buf.baseAddress!.withMemoryRebound(to: UnsafePointer<CChar>?.self, capacity: buf.count) {
                    _ = natsOptions_SetServers(opts, $0, Int32(buf.count))
                }
            }
        } else {
            natsOptions_SetURL(opts, options.url)
        }
        natsOptions_SetName(opts, options.name)
        natsOptions_SetMaxReconnect(opts, -1)
        natsOptions_SetReconnectWait(opts, Int64(options.reconnectWait.milliseconds))
        natsOptions_SetReconnectJitter(opts, 100, 1000)
        natsOptions_SetSendAsap(opts, options.sendAsap)
        natsOptions_UseGlobalMessageDelivery(opts, true)
        natsOptions_SetTimeout(opts, 2000)

        let deadline = ContinuousClock.now + options.connectTimeout
        var conn: OpaquePointer? = nil
        var lastStatus = NATS_OK
        while true {
            lastStatus = natsConnection_Connect(&conn, opts)
            if lastStatus == NATS_OK, conn != nil { break }
            if ContinuousClock.now >= deadline {
                throw BusError.connect("cannot connect to \(options.url): \(statusText(lastStatus))")
            }
            try await Task.sleep(for: .milliseconds(100))
        }
        handle = CHandle(conn!)
        inboxPrefix = "_INBOX.\(ID.make().replacingOccurrences(of: "-", with: ""))"
        let sub = try subscribe("\(inboxPrefix).*") { [weak self] msg in self?.deliverReply(msg) }
        inboxSub.withLock { $0 = sub }
    }

    /// cnats global state: opened once per process with a small shared delivery pool. Locks do not spin
    /// (cnats's default spins 2,000 times): on two cores the spinning thread holds the CPU the lock's
    /// owner needs; a profile of the gateway under load had 5 % of its time in `natsMutex_Lock`.
    static let openLibrary: Void = {
        nats_Open(0)
        nats_SetMessageDeliveryPoolSize(2)
    }()

    // MARK: publish / subscribe

    /// Publishes a message (buffered by cnats, sent as soon as possible).
    public func publish(_ subject: String, data: Data, headers: [String: String] = [:], reply: String? = nil) throws {
        guard !closed.load(ordering: .relaxed) else { throw BusError.closed }
        let s = try withCMessage(subject: subject, reply: reply, headers: headers, data: data) { msg in
            natsConnection_PublishMsg(nc, msg)
        }
        guard s == NATS_OK else { throw BusError.publish("publish to \(subject) failed: \(statusText(s))") }
    }

    /// Subscribes; `handler` runs on a cnats delivery thread and must return quickly (hand work off).
    public func subscribe(
        _ subject: String, queue: String? = nil,
        handler: @escaping @Sendable (BusMessage) -> Void
    ) throws -> BusSubscription {
        let box = Unmanaged.passRetained(HandlerBox(handler))
        var sub: OpaquePointer? = nil
        let s: natsStatus
        if let queue {
            s = natsConnection_QueueSubscribe(&sub, nc, subject, queue, messageTrampoline, box.toOpaque())
        } else {
            s = natsConnection_Subscribe(&sub, nc, subject, messageTrampoline, box.toOpaque())
        }
        guard s == NATS_OK, let sub else {
            box.release()
            throw BusError.subscribe("subscribe to \(subject) failed: \(statusText(s))")
        }
        natsSubscription_SetOnCompleteCB(sub, subscriptionCompleted, box.toOpaque())
        natsSubscription_SetPendingLimits(sub, 65536, 256 * 1024 * 1024)
        return BusSubscription(sub, subject: subject)
    }

    /// Subscribes and yields messages as an async sequence (ends when the stream is cancelled).
    public func messages(_ subject: String, queue: String? = nil) throws -> (BusSubscription, AsyncStream<BusMessage>) {
        let (stream, cont) = AsyncStream.makeStream(of: BusMessage.self)
        let sub = try subscribe(subject, queue: queue) { cont.yield($0) }
        return (sub, stream)
    }

    // MARK: request / reply

    /// Sends a request and waits for the first reply. Throws `BusError` on timeout or no responders.
    ///
    /// `resendAt` (offsets from the first send, for idempotent requests only): while no reply has come, the same
    /// request goes out again at each offset, to the same reply subject, and the first reply to any copy wins.
    /// A request or reply that was inside a NATS node when it died is lost without a trace (core NATS has no
    /// acknowledgement); a copy sent later takes a live route, and queue groups hand it to any replica.
    public func request(
        _ subject: String, data: Data, headers: [String: String] = [:],
        timeout: Duration? = nil, resendAt: [Duration] = []
    ) async throws -> BusMessage {
        // While NATS is down (reconnecting) a request would sit in the reconnect buffer until its timeout:
        // fail at once instead, so the caller can answer 503 and the client retry.
        guard isConnected else { throw BusError.disconnected }
        let token = String(counter.add(1, ordering: .relaxed).newValue, radix: 36)
        let replySubject = "\(inboxPrefix).\(token)"
        let wait = timeout ?? options.defaultRequestTimeout
        let resends = resendAt.filter { $0 < wait }.sorted()
        let timer = Task { [weak self] in
            let start = ContinuousClock.now
            for at in resends {
                guard (try? await Task.sleep(until: start + at)) != nil, let self else { return }
                guard self.pending.withLock({ $0[token] != nil }) else { return }
                try? self.publish(subject, data: data, headers: headers, reply: replySubject)
            }
            guard (try? await Task.sleep(until: start + wait)) != nil else { return }
            self?.fail(token, BusError.timeout(subject))
        }
        defer { timer.cancel() }
        let reply: BusMessage = try await withCheckedThrowingContinuation { cont in
            pending.withLock { $0[token] = cont }
            do {
                try publish(subject, data: data, headers: headers, reply: replySubject)
            } catch {
                fail(token, error)
            }
        }
        if reply.isNoResponders { throw BusError.noResponders(subject) }
        return reply
    }

    /// When an idempotent request goes out again while unanswered (`resendAt`): soon — a lost message is the
    /// likely reason a lookup has not come back in 2.5 s — again later, and once more at `after` (offsets past
    /// the request's timeout are not used).
    public static func resends(_ after: Duration) -> [Duration] {
        [.milliseconds(2500), .milliseconds(7500), after]
    }

    private func deliverReply(_ msg: BusMessage) {
        guard let dot = msg.subject.lastIndex(of: ".") else { return }
        let token = String(msg.subject[msg.subject.index(after: dot)...])
        pending.withLock { $0.removeValue(forKey: token) }?.resume(returning: msg)
    }

    private func fail(_ token: String, _ error: any Error) {
        pending.withLock { $0.removeValue(forKey: token) }?.resume(throwing: error)
    }

    /// Waits until the server has processed everything sent so far.
    public func flush(timeout: Duration = .seconds(5)) async throws {
        let nc = CHandle(self.nc)
        let s = await Blocking.run { natsConnection_FlushTimeout(nc.p, Int64(timeout.milliseconds)) }
        guard s == NATS_OK else { throw BusError.publish("flush failed: \(statusText(s))") }
    }

    /// Drains subscriptions and closes the connection (pending replies fail with `closed`).
    public func close(drainTimeout: Duration = .seconds(5)) async {
        guard !closed.exchange(true, ordering: .relaxed) else { return }
        inboxSub.withLock { $0 }?.unsubscribe()
        let nc = CHandle(self.nc)
        await Blocking.run {
            natsConnection_FlushTimeout(nc.p, Int64(drainTimeout.milliseconds))
            natsConnection_Close(nc.p)
        }
        let waiting = pending.withLock { p -> [CheckedContinuation<BusMessage, any Error>] in
            let all = Array(p.values)
            p.removeAll()
            return all
        }
        for c in waiting { c.resume(throwing: BusError.closed) }
    }

    /// True while the connection is up (false while reconnecting or after close).
    public var isConnected: Bool { natsConnection_Status(nc) == NATS_CONN_STATUS_CONNECTED }
    /// The largest message the server takes (its `max_payload`, 1 MB unless configured).
    public var maxPayload: Int {
        let n = Int(natsConnection_GetMaxPayload(nc))
        return n > 0 ? n : 1_048_576
    }

    deinit {
        natsConnection_Destroy(nc)
    }
}

extension Duration {
    /// Whole milliseconds, for C APIs.
    public var milliseconds: Int64 {
        let (s, a) = components
        return s * 1000 + a / 1_000_000_000_000_000
    }
    /// Whole nanoseconds, for JetStream configuration.
    public var nanoseconds: Int64 {
        let (s, a) = components
        return s * 1_000_000_000 + a / 1_000_000_000
    }
}
