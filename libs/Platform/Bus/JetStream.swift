import CNats
import Foundation
import Synchronization
import VigilCore

/// A message fetched from a JetStream pull consumer. Acknowledgements are published to its reply
/// subject using the JetStream ack protocol, so no C message is held while a job runs.
public struct JetStreamMessage: Sendable {
    public let message: BusMessage
    let bus: BusConnection
    /// When this process fetched it (its own clock): the message was stored, so its publisher had
    /// committed, before this instant.
    public let receivedAt: Date

    init(message: BusMessage, bus: BusConnection, receivedAt: Date = Date()) {
        self.message = message
        self.bus = bus
        self.receivedAt = receivedAt
    }

    public var subject: String { message.subject }
    public var data: Data { message.data }
    public var headers: [String: String] { message.headers }

    /// How many times this message has been delivered (1 on first delivery), from the ack subject.
    public var deliveryCount: Int {
        // $JS.ACK.<stream>.<consumer>.<delivered>.<stream seq>.<consumer seq>.<ts>.<pending>
        guard let reply = message.reply else { return 1 }
        let parts = reply.split(separator: ".")
        guard parts.count >= 9 else { return 1 }
        return Int(parts[parts.count - 5]) ?? 1
    }

    /// Stream sequence number of this message.
    public var streamSequence: UInt64 {
        guard let parts = message.reply?.split(separator: "."), parts.count >= 9 else { return 0 }
        return UInt64(parts[parts.count - 4]) ?? 0
    }

    private func send(_ body: String) throws {
        guard let reply = message.reply else { return }
        try bus.publish(reply, data: Data(body.utf8))
    }

    /// Acknowledges: the message is done and will not be redelivered.
    /// No flush round trip per ack (the connection writes it at once or within its flusher's next
    /// pass): an ack lost with a crashed process only means one redelivery, which every handler
    /// tolerates.
    public func ack() throws { try send("+ACK") }
    /// Negative acknowledgement: redeliver after `delay` (or at once).
    public func nak(delay: Duration? = nil) throws {
        if let delay { try send("-NAK {\"delay\": \(delay.nanoseconds)}") } else { try send("-NAK") }
    }
    /// Still working: resets the ack-wait timer.
    public func inProgress() throws { try send("+WPI") }
    /// Terminates: never redeliver.
    public func term() throws { try send("+TERM") }
}

/// Stream retention.
public enum StreamRetention: Sendable { case limits, workQueue }

/// Idempotent JetStream management and publishing for one connection.
public final class JetStream: Sendable {
    public let bus: BusConnection
    private let jsHandle: CHandle
    var js: OpaquePointer { jsHandle.p }
    /// A second context for pipelined publishing (`publishAll`), with its own error collector.
    private let asyncHandle: CHandle
    var asyncJS: OpaquePointer { asyncHandle.p }
    let asyncErrors: AsyncPublishErrors
    let asyncQueue = DispatchQueue(label: "vigil.jetstream.async-publish")

    /// Replicas of the streams and buckets this object creates (3 on a three-node cluster).
    public let replicas: Int

    public init(bus: BusConnection, replicas: Int = 1) throws {
        self.bus = bus
        self.replicas = max(1, replicas)
        var ctx: OpaquePointer? = nil
        let s = natsConnection_JetStream(&ctx, bus.nc, nil)
        guard s == NATS_OK, let ctx else { throw BusError.jetStream("cannot create JetStream context: \(statusText(s))") }
        jsHandle = CHandle(ctx)
        let errors = AsyncPublishErrors()
        var opts = jsOptions()
        jsOptions_Init(&opts)
        opts.PublishAsync.MaxPending = 4096
        opts.PublishAsync.ErrHandler = asyncPublishErrorHandler
        opts.PublishAsync.ErrHandlerClosure = Unmanaged.passRetained(errors).toOpaque()
        var actx: OpaquePointer? = nil
        let s2 = natsConnection_JetStream(&actx, bus.nc, &opts)
        guard s2 == NATS_OK, let actx else {
            Unmanaged.passUnretained(errors).release()
            jsCtx_Destroy(ctx)
            throw BusError.jetStream("cannot create JetStream context: \(statusText(s2))")
        }
        asyncHandle = CHandle(actx)
        asyncErrors = errors
    }

    deinit {
        jsCtx_Destroy(js)
        jsCtx_Destroy(asyncJS)
        Unmanaged.passUnretained(asyncErrors).release()
    }

    /// One message for `publishAll`.
    public struct Outgoing: Sendable {
        public var subject: String
        public var data: Data
        public var msgId: String?
        public var headers: [String: String]
        public init(subject: String, data: Data, msgId: String? = nil, headers: [String: String] = [:]) {
            self.subject = subject
            self.data = data
            self.msgId = msgId
            self.headers = headers
        }
    }

    /// Publishes many messages pipelined (up to 4,096 unacknowledged, in order on this connection)
    /// and returns once the stream has acknowledged every one of them. Throws if any was refused or
    /// unacknowledged within `timeout`; some may then be stored already, which `msgId` makes safe to
    /// repeat. One call at a time per JetStream object (calls queue).
    public func publishAll(_ messages: [Outgoing], timeout: Duration = .seconds(30)) async throws {
        guard !messages.isEmpty else { return }
        let ctx = CHandle(asyncJS)
        let errors = asyncErrors
        try await Blocking.run(on: asyncQueue) {
            errors.reset()
            for m in messages {
                var h = m.headers
                if let id = m.msgId { h[BusHeader.msgId] = id }
                var msg: OpaquePointer? = try makeCMessage(subject: m.subject, reply: nil, headers: h, data: m.data)
                let ps = js_PublishMsgAsync(ctx.p, &msg, nil)
                natsMsg_Destroy(msg)  // no-op when the library took it
                guard ps == NATS_OK else { throw BusError.jetStream("publish to \(m.subject) failed: \(statusText(ps))") }
            }
            var opts = jsPubOptions()
            jsPubOptions_Init(&opts)
            opts.MaxWait = timeout.milliseconds
            let done = js_PublishAsyncComplete(ctx.p, &opts)
            if done != NATS_OK {
                var pending = natsMsgList()
                if js_PublishAsyncGetPendingList(&pending, ctx.p) == NATS_OK { natsMsgList_Destroy(&pending) }
                throw BusError.jetStream("publish acknowledgements missing after \(timeout): \(statusText(done))")
            }
            if let failure = errors.first() { throw BusError.jetStream("publish refused: \(failure)") }
        }
    }

    /// Creates the stream, or updates it to this configuration if it exists.
    public func ensureStream(
        name: String, subjects: [String], retention: StreamRetention = .limits,
        maxAge: Duration? = nil, duplicateWindow: Duration = .seconds(600)
    ) async throws {
        let js = CHandle(self.js)
        try await Blocking.run {
            var cfg = jsStreamConfig()
            jsStreamConfig_Init(&cfg)
            let cName = strdup(name)
            let cSubjects = subjects.map { UnsafePointer<CChar>(strdup($0)) }
            defer {
                free(cName)
                cSubjects.forEach { free(UnsafeMutablePointer(mutating: $0)) }
            }
            var subjectArray: [UnsafePointer<CChar>?] = cSubjects
            return try subjectArray.withUnsafeMutableBufferPointer { buf in
                cfg.Name = UnsafePointer(cName)
                cfg.Subjects = buf.baseAddress
                cfg.SubjectsLen = Int32(subjects.count)
                cfg.Retention = retention == .workQueue ? js_WorkQueuePolicy : js_LimitsPolicy
                cfg.Storage = js_FileStorage
                cfg.Duplicates = duplicateWindow.nanoseconds
                cfg.Replicas = Int64(self.replicas)
                if let maxAge { cfg.MaxAge = maxAge.nanoseconds }
                var info: UnsafeMutablePointer<jsStreamInfo>? = nil
                var jerr = jsErrCode(0)
                var s = js_AddStream(&info, js.p, &cfg, nil, &jerr)
                if s != NATS_OK {
                    jerr = jsErrCode(0)
                    s = js_UpdateStream(&info, js.p, &cfg, nil, &jerr)
                }
                if let info { jsStreamInfo_Destroy(info) }
                guard s == NATS_OK else {
                    throw BusError.jetStream("ensure stream \(name) failed: \(statusText(s)) (\(jerr.rawValue))")
                }
            }
        }
    }

    /// Consumer settings for a durable pull consumer with explicit acks.
    public struct ConsumerConfig: Sendable {
        public var durable: String
        public var filterSubject: String?
        public var ackWait: Duration = .seconds(30)
        public var maxDeliver: Int = 5
        public var backoff: [Duration] = []
        public var maxAckPending: Int = 1000
        public init(durable: String, filterSubject: String? = nil) {
            self.durable = durable
            self.filterSubject = filterSubject
        }
    }

    /// Creates the durable consumer, or updates it in place.
    public func ensureConsumer(stream: String, _ config: ConsumerConfig) async throws {
        let js = CHandle(self.js)
        try await Blocking.run {
            var cc = jsConsumerConfig()
            jsConsumerConfig_Init(&cc)
            let cDurable = strdup(config.durable)
            let cFilter = config.filterSubject.map { strdup($0) }
            defer {
                free(cDurable)
                if let cFilter { free(cFilter) }
            }
            var backoff = config.backoff.map(\.nanoseconds)
            return try backoff.withUnsafeMutableBufferPointer { bo in
                cc.Durable = UnsafePointer(cDurable)
                cc.AckPolicy = js_AckExplicit
                cc.AckWait = config.ackWait.nanoseconds
                cc.MaxDeliver = Int64(config.maxDeliver)
                cc.MaxAckPending = Int64(config.maxAckPending)
                if let cFilter { cc.FilterSubject = UnsafePointer(cFilter) }
                if !config.backoff.isEmpty {
                    cc.BackOff = bo.baseAddress
                    cc.BackOffLen = Int32(bo.count)
                }
                var info: UnsafeMutablePointer<jsConsumerInfo>? = nil
                var jerr = jsErrCode(0)
                var s = js_AddConsumer(&info, js.p, stream, &cc, nil, &jerr)
                if s != NATS_OK {
                    jerr = jsErrCode(0)
                    s = js_UpdateConsumer(&info, js.p, stream, &cc, nil, &jerr)
                }
                if let info { jsConsumerInfo_Destroy(info) }
                guard s == NATS_OK else {
                    throw BusError.jetStream("ensure consumer \(config.durable) on \(stream) failed: \(statusText(s)) (\(jerr.rawValue))")
                }
            }
        }
    }

    /// Deletes a durable consumer; one that does not exist is not an error.
    public func deleteConsumer(stream: String, durable: String) async throws {
        let js = CHandle(self.js)
        try await Blocking.run {
            var jerr = jsErrCode(0)
            let s = js_DeleteConsumer(js.p, stream, durable, nil, &jerr)
            guard s == NATS_OK || s == NATS_NOT_FOUND || jerr == JSConsumerNotFoundErr else {
                throw BusError.jetStream("delete consumer \(durable) on \(stream) failed: \(statusText(s)) (\(jerr.rawValue))")
            }
        }
    }

    /// Publishes to a stream and waits for the ack. With `msgId`, repeats inside the duplicate window
    /// are stored once; the return value tells whether this publish was such a duplicate.
    @discardableResult
    public func publish(
        _ subject: String, data: Data, msgId: String? = nil,
        headers: [String: String] = [:]
    ) async throws -> (sequence: UInt64, duplicate: Bool) {
        var h = headers
        if let msgId { h[BusHeader.msgId] = msgId }
        let js = CHandle(self.js)
        let hh = h
        return try await Blocking.run {
            try withCMessage(subject: subject, reply: nil, headers: hh, data: data) { msg in
                var ack: UnsafeMutablePointer<jsPubAck>? = nil
                var jerr = jsErrCode(0)
                let s = js_PublishMsg(&ack, js.p, msg, nil, &jerr)
                defer { if let ack { jsPubAck_Destroy(ack) } }
                guard s == NATS_OK, let ack else {
                    return Result<(sequence: UInt64, duplicate: Bool), BusError>.failure(
                        .jetStream("publish to \(subject) failed: \(statusText(s)) (\(jerr.rawValue))"))
                }
                return .success((ack.pointee.Sequence, ack.pointee.Duplicate))
            }.get()
        }
    }

    /// Number of messages currently stored in a stream.
    public func messageCount(stream: String) async throws -> UInt64 {
        let js = CHandle(self.js)
        return try await Blocking.run {
            var info: UnsafeMutablePointer<jsStreamInfo>? = nil
            var jerr = jsErrCode(0)
            let s = js_GetStreamInfo(&info, js.p, stream, nil, &jerr)
            guard s == NATS_OK, let info else { throw BusError.jetStream("stream info \(stream): \(statusText(s))") }
            defer { jsStreamInfo_Destroy(info) }
            return info.pointee.State.Msgs
        }
    }

    /// Binds a pull subscription to an existing durable consumer.
    public func pullConsumer(stream: String, durable: String, filterSubject: String) throws -> PullConsumer {
        var sub: OpaquePointer? = nil
        var so = jsSubOptions()
        jsSubOptions_Init(&so)
        var jerr = jsErrCode(0)
        let s: natsStatus = stream.withCString { cs in
            durable.withCString { cd in
                so.Stream = cs
                so.Consumer = cd
                return js_PullSubscribe(&sub, js, filterSubject, durable, nil, &so, &jerr)
            }
        }
        guard s == NATS_OK, let sub else {
            throw BusError.jetStream("pull subscribe \(durable) on \(stream) failed: \(statusText(s)) (\(jerr.rawValue))")
        }
        return PullConsumer(sub: sub, bus: bus, name: durable)
    }

    /// Opens (creating if needed) a key-value bucket.
    public func keyValue(bucket: String, ttl: Duration? = nil) async throws -> KeyValueBucket {
        let js = CHandle(self.js)
        let kv: KVHandle = try await Blocking.run {
            var store: OpaquePointer? = nil
            var cfg = kvConfig()
            kvConfig_Init(&cfg)
            let cBucket = strdup(bucket)
            defer { free(cBucket) }
            cfg.Bucket = UnsafePointer(cBucket)
            cfg.History = 1
            cfg.Replicas = Int32(self.replicas)
            if let ttl { cfg.TTL = ttl.nanoseconds }
            var s = js_CreateKeyValue(&store, js.p, &cfg)
            if s != NATS_OK { s = js_KeyValue(&store, js.p, bucket) }
            guard s == NATS_OK, let store else { throw BusError.jetStream("key-value bucket \(bucket): \(statusText(s))") }
            return KVHandle(store)
        }
        return KeyValueBucket(handle: kv, bucket: bucket)
    }
}

/// A pull subscription; `fetch` blocks a dedicated Dispatch queue, never the cooperative pool.
public final class PullConsumer: Sendable {
    private let handle: CHandle
    private var sub: OpaquePointer { handle.p }
    private let bus: BusConnection
    private let queue: DispatchQueue
    private let destroyed = Atomic<Bool>(false)

    init(sub: OpaquePointer, bus: BusConnection, name: String) {
        self.handle = CHandle(sub)
        self.bus = bus
        self.queue = DispatchQueue(label: "vigil.pull.\(name)")
    }

    /// Fetches up to `batch` messages, waiting at most `timeout`; returns [] when none arrived.
    public func fetch(batch: Int, timeout: Duration) async throws -> [JetStreamMessage] {
        let sub = CHandle(self.sub)
        let bus = self.bus
        return try await Blocking.run(on: queue) { [self] in
            if self.destroyed.load(ordering: .relaxed) { return [] }
            var list = natsMsgList()
            var jerr = jsErrCode(0)
            let s = natsSubscription_Fetch(&list, sub.p, Int32(batch), timeout.milliseconds, &jerr)
            if s == NATS_TIMEOUT { return [] }
            guard s == NATS_OK else { throw BusError.jetStream("fetch failed: \(statusText(s))") }
            var out: [JetStreamMessage] = []
            let now = Date()
            for i in 0..<Int(list.Count) {
                if let m = list.Msgs[i] { out.append(JetStreamMessage(message: copyMessage(m), bus: bus, receivedAt: now)) }
            }
            natsMsgList_Destroy(&list)
            return out
        }
    }

    /// Stops the subscription (the durable consumer stays on the server).
    public func close() {
        guard !destroyed.exchange(true, ordering: .relaxed) else { return }
        let sub = CHandle(self.sub)
        queue.sync { natsSubscription_Destroy(sub.p) }
    }

    deinit { close() }
}

final class KVHandle: Sendable {
    private let handle: CHandle
    var kv: OpaquePointer { handle.p }
    init(_ kv: OpaquePointer) { handle = CHandle(kv) }
    deinit { kvStore_Destroy(kv) }
}

/// A JetStream key-value bucket. Keys must match `[-/_=.a-zA-Z0-9]+`.
public struct KeyValueBucket: Sendable {
    let handle: KVHandle
    public let bucket: String

    /// The value for `key`, or nil when absent (or deleted).
    public func get(_ key: String) async throws -> Data? {
        let h = handle
        return try await Blocking.run {
            var entry: OpaquePointer? = nil
            let s = kvStore_Get(&entry, h.kv, key)
            if s == NATS_NOT_FOUND { return nil }
            guard s == NATS_OK, let entry else { throw BusError.jetStream("kv get \(key): \(statusText(s))") }
            defer { kvEntry_Destroy(entry) }
            let len = Int(kvEntry_ValueLen(entry))
            guard len > 0, let p = kvEntry_Value(entry) else { return Data() }
            return Data(bytes: p, count: len)
        }
    }

    /// Stores `value` under `key` unconditionally.
    public func put(_ key: String, _ value: Data) async throws {
        let h = handle
        try await Blocking.run {
            let s = value.withUnsafeBytes { kvStore_Put(nil, h.kv, key, $0.baseAddress, Int32(value.count)) }
            guard s == NATS_OK else { throw BusError.jetStream("kv put \(key): \(statusText(s))") }
        }
    }

    /// Stores `value` only if `key` does not exist; returns false when it already did.
    public func create(_ key: String, _ value: Data) async throws -> Bool {
        let h = handle
        return try await Blocking.run {
            let s = value.withUnsafeBytes { kvStore_Create(nil, h.kv, key, $0.baseAddress, Int32(value.count)) }
            if s == NATS_OK { return true }
            if s == NATS_ERR { return false }
            throw BusError.jetStream("kv create \(key): \(statusText(s))")
        }
    }

    /// Deletes `key` (no error if absent).
    public func delete(_ key: String) async throws {
        let h = handle
        try await Blocking.run {
            let s = kvStore_Delete(h.kv, key)
            guard s == NATS_OK || s == NATS_NOT_FOUND else { throw BusError.jetStream("kv delete \(key): \(statusText(s))") }
        }
    }
}

/// Failures reported by cnats for pipelined publishes (from its threads).
final class AsyncPublishErrors: Sendable {
    private let state = Mutex<(count: Int, first: String?)>((0, nil))
    func reset() { state.withLock { $0 = (0, nil) } }
    func record(_ text: String) {
        state.withLock { s in
            s.count += 1
            if s.first == nil { s.first = text }
        }
    }
    func first() -> String? { state.withLock { s in s.count == 0 ? nil : "\(s.count) message(s), first: \(s.first ?? "")" } }
}

/// Called by cnats for a pipelined publish that failed; the library destroys the message after.
let asyncPublishErrorHandler: jsPubAckErrHandler = { _, pae, closure in
    guard let closure, let pae else { return }
    let errors = Unmanaged<AsyncPublishErrors>.fromOpaque(closure).takeUnretainedValue()
    let text = pae.pointee.ErrText.map { String(cString: $0) } ?? statusText(pae.pointee.Err)
    errors.record("\(text) (\(pae.pointee.ErrCode.rawValue))")
}
