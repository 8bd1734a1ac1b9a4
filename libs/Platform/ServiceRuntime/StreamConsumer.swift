import Bus
import Foundation
import Logging
import ServiceLifecycle
import Synchronization
import VigilCore

/// The headers of a dead letter (`Streams.dead`).
public enum DeadLetter {
    public static let subject = "Vigil-Dead-Subject"
    public static let stream = "Vigil-Dead-Stream"
    public static let consumer = "Vigil-Dead-Consumer"
    public static let reason = "Vigil-Dead-Reason"
    public static let deliveries = "Vigil-Dead-Deliveries"
}

/// What a stream handler wants done with a message.
public enum ConsumeOutcome: Sendable {
    /// Done; never deliver again.
    case ack
    /// Try again later (transient failure).
    case retry(after: Duration)
    /// Give up for good (permanent failure, already recorded by the handler).
    case drop
}

/// A durable JetStream pull consumer run as a Service: fetches in batches, runs the handler for each
/// message, acks/naks/terms by the outcome, and keeps long handlers alive with in-progress pings.
/// Replicas share the durable consumer, so each message is handled by one replica at a time; a
/// replica that dies without acking leaves the message to be redelivered after `ackWait`.
public struct StreamConsumer: Service {
    public let jetStream: JetStream
    public let stream: String
    public let config: JetStream.ConsumerConfig
    public let batch: Int
    /// Runs on each fetched batch before the handler: settles (acknowledges) what it can at once,
    /// without a task per message, and returns the messages that still need the handler.
    public let triage: (@Sendable ([JetStreamMessage]) async -> [JetStreamMessage])?
    public let logger: Logger
    public let handler: @Sendable (JetStreamMessage) async -> ConsumeOutcome

    public init(
        jetStream: JetStream, stream: String, config: JetStream.ConsumerConfig, batch: Int = 32,
        triage: (@Sendable ([JetStreamMessage]) async -> [JetStreamMessage])? = nil, logger: Logger,
        handler: @escaping @Sendable (JetStreamMessage) async -> ConsumeOutcome
    ) {
        self.jetStream = jetStream
        self.stream = stream
        self.config = config
        self.batch = batch
        self.triage = triage
        self.logger = logger
        self.handler = handler
    }

    /// Creates the durable consumer (idempotent); call before `run`.
    public func prepare() async throws {
        try await jetStream.ensureConsumer(stream: stream, config)
    }

    public func run() async throws {
        let pull = try jetStream.pullConsumer(stream: stream, durable: config.durable, filterSubject: config.filterSubject ?? ">")
        defer { pull.close() }
        // Up to `batch` messages in flight; a finished one frees its slot at once, so one long job
        // (a scan) never holds back the others fetched after it.
        let freed = WakeSignal()
        let working = Working()
        try await cancelWhenGracefulShutdown {
            await withDiscardingTaskGroup { group in
                // One keep-alive loop for all messages in flight (not a timer per message): long
                // handlers get an in-progress ping every third of the ack wait.
                group.addTask {
                    let every = config.ackWait / 3
                    while !Task.isCancelled {
                        try? await Task.sleep(for: every)
                        for m in working.olderThan(every) { try? m.inProgress() }
                    }
                }
                while !Task.isCancelled {
                    let room = batch - working.count
                    if room <= 0 {
                        await freed.wait(timeout: .seconds(1))
                        continue
                    }
                    let messages: [JetStreamMessage]
                    do {
                        messages = try await pull.fetch(batch: room, timeout: .seconds(1))
                    } catch {
                        logger.warning("fetch failed", metadata: ["consumer": "\(config.durable)", "error": "\(error)"])
                        try? await Task.sleep(for: .seconds(1))
                        continue
                    }
                    let work = if let triage, !messages.isEmpty { await triage(messages) } else { messages }
                    for m in work {
                        let key = working.begin(m)
                        group.addTask {
                            await handle(m)
                            working.end(key)
                            freed.poke()
                        }
                    }
                }
            }
        }
    }

    /// Handles one message (public so tests and benchmarks can drive a consumer step by step).
    public func handle(_ m: JetStreamMessage) async {
        let outcome = await handler(m)
        do {
            switch outcome {
            case .ack: try m.ack()
            case .retry(let after):
                guard config.maxDeliver > 0, m.deliveryCount >= config.maxDeliver else {
                    try m.nak(delay: after)
                    return
                }
                // The last delivery failed: JetStream would not deliver it again.
                await deadLetter(m, reason: "max_deliveries")
                try m.term()
            case .drop:
                await deadLetter(m, reason: "dropped")
                try m.term()
            }
        } catch {
            logger.warning("acknowledgement failed", metadata: ["consumer": "\(config.durable)", "error": "\(error)"])
        }
    }

    /// Keeps a copy of a message given up on in `VIGIL_DEAD` (`vigil.dead.<stream>.<consumer>`), for
    /// `/ops/failures` to list and retry. Published once per message and consumer (its id names both).
    func deadLetter(_ m: JetStreamMessage, reason: String) async {
        var headers = m.headers
        headers[BusHeader.msgId] = nil
        headers[DeadLetter.subject] = m.subject
        headers[DeadLetter.stream] = stream
        headers[DeadLetter.consumer] = config.durable
        headers[DeadLetter.reason] = reason
        headers[DeadLetter.deliveries] = String(m.deliveryCount)
        do {
            try await jetStream.publish(
                "vigil.dead.\(stream).\(config.durable)", data: m.data, msgId: "dead.\(stream).\(config.durable).\(m.streamSequence)",
                headers: headers)
        } catch {
            logger.error("dead letter not kept", metadata: ["consumer": "\(config.durable)", "subject": "\(m.subject)", "error": "\(error)"])
        }
        logger.warning(
            "message given up on (dead-lettered)", metadata: ["consumer": "\(config.durable)", "subject": "\(m.subject)", "reason": "\(reason)"])
    }

    /// Exponential backoff with jitter: 2 s, 4 s, 8 s … capped at `cap`.
    public static func backoff(attempt: Int, cap: Duration = .seconds(3600)) -> Duration {
        let base = min(Double(cap.components.seconds), 2 * pow(2, Double(max(0, attempt - 1))))
        return .milliseconds(Int64(base * 1000 * Double.random(in: 0.8...1.2)))
    }
}

/// The messages fetched and not yet finished, and since when: their number limits fetching, their
/// age drives the keep-alive loop.
final class Working: Sendable {
    private let state = Mutex<(next: Int, items: [Int: (message: JetStreamMessage, since: ContinuousClock.Instant)])>((0, [:]))
    var count: Int { state.withLock { $0.items.count } }
    func begin(_ m: JetStreamMessage) -> Int {
        state.withLock { s in
            s.next += 1
            s.items[s.next] = (m, .now)
            return s.next
        }
    }
    func end(_ key: Int) { state.withLock { _ = $0.items.removeValue(forKey: key) } }
    func olderThan(_ d: Duration) -> [JetStreamMessage] {
        let cutoff = ContinuousClock.now - d
        return state.withLock { $0.items.values.filter { $0.since <= cutoff }.map(\.message) }
    }
}

/// Keeps core NATS subscriptions (broadcasts, internal request subjects) for the service's lifetime and
/// unsubscribes them on graceful shutdown.
public struct SubscriptionService: Service {
    let subscriptions: [BusSubscription]

    public init(_ subscriptions: [BusSubscription]) { self.subscriptions = subscriptions }

    public func run() async throws {
        await cancelWhenGracefulShutdown { try? await Task.sleep(for: .seconds(365 * 24 * 3600)) }
        for s in subscriptions { s.unsubscribe() }
    }
}
