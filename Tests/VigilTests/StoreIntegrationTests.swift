import Bus
import Foundation
import Testing
import VigilCore
import VigilTesting

@testable import Store

@Suite(.serialized) struct StoreIntegrationTests {
    static let migrations = [
        Migration(
            1, "things",
            """
            CREATE TABLE {schema}.things (id uuid PRIMARY KEY, tenant_id uuid NOT NULL, name text NOT NULL,
              created_at timestamptz NOT NULL DEFAULT now());
            """ + Migration.tenantIsolation(table: "things"))
    ]

    @Test func migrationsAreIdempotentConcurrentAndChecksummed() async throws {
        let servers = try await TestServers.get()
        let schema = "m_\(Int.random(in: 100000...999999))"
        let a = servers.store(schema: schema)
        let b = servers.store(schema: schema)
        // Two replicas starting at once.
        async let x: Void = a.migrate(Self.migrations)
        async let y: Void = b.migrate(Self.migrations)
        _ = try await (x, y)
        try await a.migrate(Self.migrations)
        let applied = try await a.query(.none, "SELECT count(*) AS n FROM \(schema).schema_migrations")
        #expect(try applied[0].int("n") == 1)
        // An edited migration is refused.
        let edited = [Migration(1, "things", "CREATE TABLE {schema}.other (id int);")]
        await #expect(throws: StoreError.self) { try await a.migrate(edited) }
    }

    @Test(arguments: [TenantPredicate.text, .uuid])
    func rowLevelSecurityHidesOtherTenantsEvenWithoutAFilter(predicate: TenantPredicate) async throws {
        let servers = try await TestServers.get()
        let store = servers.store()
        try await store.migrate(Self.migrations, tenantPredicate: predicate)
        let (ta, tb) = (ID.make(), ID.make())
        try await store.query(.tenant(ta), "INSERT INTO \(store.schema).things (id, tenant_id, name) VALUES ($1, $2, 'a')", [ID.make(), ta])
        try await store.query(.tenant(tb), "INSERT INTO \(store.schema).things (id, tenant_id, name) VALUES ($1, $2, 'b')", [ID.make(), tb])
        // A query that forgot its tenant filter still sees only its own tenant's rows.
        let seenByA = try await store.query(.tenant(ta), "SELECT name FROM \(store.schema).things")
        #expect(try seenByA.map { try $0.string("name") } == ["a"])
        #expect(try await store.query(.none, "SELECT * FROM \(store.schema).things").isEmpty)
        #expect(try await store.query(.crossTenant, "SELECT * FROM \(store.schema).things").count == 2)
        // A scope that is not a tenant id sees nothing and writes nothing.
        #expect(try await store.query(.tenant("not-a-uuid"), "SELECT * FROM \(store.schema).things").isEmpty)
        await #expect(throws: StoreError.self) {
            try await store.query(.none, "INSERT INTO \(store.schema).things (id, tenant_id, name) VALUES ($1, $2, 'x')", [ID.make(), ta])
        }
        // Writing a row for another tenant is refused.
        await #expect(throws: StoreError.self) {
            try await store.query(.tenant(ta), "INSERT INTO \(store.schema).things (id, tenant_id, name) VALUES ($1, $2, 'x')", [ID.make(), tb])
        }
        // Updates cannot reach the other tenant's rows.
        let changed = try await store.transaction(.tenant(ta)) { try await $0.execute("UPDATE \(store.schema).things SET name = 'z'") }
        #expect(changed == 1)
    }

    /// Why the findings schema uses `.uuid`: a 500-row keyset page of a workspace holding most rows is planned
    /// as an index walk. Under `.text` the planner assumes 1 % of rows pass the policy and picks a sequential
    /// scan and sort of the whole table.
    @Test(arguments: [TenantPredicate.text, .uuid])
    func largePagesOfABigWorkspaceArePlannedOnTheIndex(predicate: TenantPredicate) async throws {
        let servers = try await TestServers.get()
        let store = servers.store()
        let index = Migration(2, "keyset", "CREATE INDEX things_keyset ON {schema}.things (tenant_id, created_at DESC, id DESC);")
        try await store.migrate(Self.migrations + [index], tenantPredicate: predicate)
        let t = ID.make()
        try await store.query(
            .tenant(t),
            """
            INSERT INTO \(store.schema).things (id, tenant_id, name, created_at)
            SELECT gen_random_uuid(), $1, 'n', now() - i * interval '1 second' FROM generate_series(1, 100000) i
            """, [t])
        try await store.query(.crossTenant, "ANALYZE \(store.schema).things")
        let plan = try await store.query(
            .tenant(t), "EXPLAIN SELECT * FROM \(store.schema).things WHERE tenant_id = $1 ORDER BY created_at DESC, id DESC LIMIT 501", [t]
        ).map { try $0.string("QUERY PLAN") }.joined(separator: "\n")
        #expect(plan.contains("Index Scan") == (predicate == .uuid), "\(plan)")
    }

    /// A server that closed pooled connections (a restart, pg_terminate_backend): an idle one is replaced
    /// before use and keeps its tenant scope; one lost inside a transaction fails the transaction instead of
    /// carrying on, unscoped, on a new session.
    @Test func brokenConnectionsAreReplacedButNeverMidTransaction() async throws {
        let servers = try await TestServers.get()
        let store = servers.store()
        let admin = servers.store(schema: store.schema)
        try await store.migrate(Self.migrations)
        let t = ID.make()
        try await store.query(.tenant(t), "INSERT INTO \(store.schema).things (id, tenant_id, name) VALUES ($1, $2, 'kept')", [ID.make(), t])
        let pid = try await store.query(.tenant(t), "SELECT pg_backend_pid() AS pid")[0].int("pid")
        try await admin.query(.none, "SELECT pg_terminate_backend($1::int)", [pid])
        try await Task.sleep(for: .milliseconds(200))
        for _ in 0..<8 {  // every pooled connection, the killed one among them
            let rows = try await store.query(.tenant(t), "SELECT name FROM \(store.schema).things")
            #expect(try rows.map { try $0.string("name") } == ["kept"])
        }
        await #expect(throws: StoreError.self) {
            try await store.transaction(.tenant(t)) { tx in
                let pid = try await tx.single("SELECT pg_backend_pid() AS pid").int("pid")
                try await admin.query(.none, "SELECT pg_terminate_backend($1::int)", [pid])
                try await Task.sleep(for: .milliseconds(200))
                _ = try await tx.query("SELECT name FROM \(store.schema).things")
                Issue.record("a query ran after its transaction's connection was lost")
            }
        }
        #expect(try await store.query(.tenant(t), "SELECT name FROM \(store.schema).things").count == 1)
    }

    @Test func transactionsRollBackOnError() async throws {
        let servers = try await TestServers.get()
        let store = servers.store()
        try await store.migrate(Self.migrations)
        let t = ID.make()
        struct Boom: Error {}
        await #expect(throws: Boom.self) {
            try await store.transaction(.tenant(t)) { tx in
                try await tx.execute("INSERT INTO \(store.schema).things (id, tenant_id, name) VALUES ($1, $2, 'gone')", [ID.make(), t])
                throw Boom()
            }
        }
        #expect(try await store.query(.tenant(t), "SELECT * FROM \(store.schema).things").isEmpty)
        // Parameters are never interpolated: a hostile string is just data.
        let evil = "'); DROP TABLE \(store.schema).things; --"
        try await store.query(.tenant(t), "INSERT INTO \(store.schema).things (id, tenant_id, name) VALUES ($1, $2, $3)", [ID.make(), t, evil])
        let rows = try await store.query(.tenant(t), "SELECT name FROM \(store.schema).things")
        #expect(try rows[0].string("name") == evil)
        // Unique violations are recognisable.
        let id = ID.make()
        try await store.query(.tenant(t), "INSERT INTO \(store.schema).things (id, tenant_id, name) VALUES ($1, $2, 'u')", [id, t])
        do {
            try await store.query(.tenant(t), "INSERT INTO \(store.schema).things (id, tenant_id, name) VALUES ($1, $2, 'u')", [id, t])
            Issue.record("expected a unique violation")
        } catch let e as StoreError {
            #expect(e.isUniqueViolation)
        }
    }

    @Test func outboxRelayAfterACrashLosesAndDuplicatesNothing() async throws {
        let servers = try await TestServers.get()
        let bus = try await servers.bus()
        let js = try JetStream(bus: bus)
        let stream = "OUTBOX_\(Int.random(in: 100000...999999))"
        let subject = "test.events.\(stream.lowercased()).happened"
        try await js.ensureStream(name: stream, subjects: [subject])
        let store = servers.store()
        try await store.migrate(Self.migrations)
        let t = ID.make()

        // State change and event commit together; the process "crashes" before any relay runs.
        for i in 0..<3 {
            try await store.transaction(.tenant(t)) { tx in
                try await tx.execute("INSERT INTO \(store.schema).things (id, tenant_id, name) VALUES ($1, $2, $3)", [ID.make(), t, "n\(i)"])
                try await tx.emit(subject, type: "thing.created", tenantId: t, data: ["n": i])
            }
        }
        // An event in a rolled-back transaction must never be published.
        struct Abort: Error {}
        _ = try? await store.transaction(.tenant(t)) { tx in
            try await tx.emit(subject, type: "thing.created", tenantId: t, data: ["n": 99])
            throw Abort()
        }
        #expect(try await js.messageCount(stream: stream) == 0)

        // A new relay (after restart) publishes all committed events.
        let relay = OutboxRelay(store: store, jetStream: js)
        #expect(try await relay.publishBatch() == 3)
        #expect(try await js.messageCount(stream: stream) == 3)

        // Crash between publish and marking sent: the rows look unpublished again.
        try await store.query(.none, "UPDATE \(store.schema).outbox SET published_at = NULL")
        #expect(try await relay.publishBatch() == 3)
        // JetStream dropped the repeats by Nats-Msg-Id: still exactly three events.
        #expect(try await js.messageCount(stream: stream) == 3)
        #expect(try await relay.publishBatch() == 0)
        await bus.close()
    }

    @Test func batchedEventsArePublishedOneMessageEachInOrderOnce() async throws {
        let servers = try await TestServers.get()
        let bus = try await servers.bus()
        let js = try JetStream(bus: bus)
        let stream = "OUTBOXBATCH_\(Int.random(in: 100000...999999))"
        let subject = "test.events.\(stream.lowercased())"
        try await js.ensureStream(name: stream, subjects: [subject + ".>"])
        let store = servers.store()
        try await store.migrate(Self.migrations)
        let (sub, received) = try bus.messages(subject + ".>")
        // 2,500 events built in SQL in one transaction (one outbox batch row), one with escapes in a string.
        try await store.transaction(.none, eventHeaders: ["Vigil-Correlation-Id": "corr-1"]) { tx in
            try await tx.execute(
                """
                WITH e AS (SELECT i, gen_random_uuid() AS id, $1 || CASE WHEN i % 2 = 0 THEN '.even' ELSE '.odd' END AS subject
                           FROM generate_series(0, 2499) AS i)
                \(tx.outboxBatchInsert(line: """
                    subject || ' ' || id || ' ' || json_build_object('id', id, 'type', 'thing.counted',
                      'data', json_strip_nulls(json_build_object('n', i, 's', CASE WHEN i = 7 THEN E'a "quoted" line\\nbreak' END)))::text
                    """, from: "e", order: "i", headersParam: 2))
                """, [subject, try tx.outboxHeaders])
            tx.wroteEvents()
        }
        let expectedSubject = { (i: Int) in "\(subject).\(i % 2 == 0 ? "even" : "odd")" }
        try await store.transaction(.none) { tx in try await tx.emit(subject + ".single", type: "x", tenantId: nil, data: ["k": "v"]) }
        #expect(try await store.query(.none, "SELECT count(*)::int AS n FROM \(store.schema).outbox WHERE published_at IS NULL").first?.int("n") == 2)
        let relay = OutboxRelay(store: store, jetStream: js)
        #expect(try await relay.publishBatch() == 2)
        #expect(try await js.messageCount(stream: stream) == 2501)
        var it = received.makeAsyncIterator()
        var ids = Set<String>()
        for i in 0..<2501 {
            guard let m = await it.next() else {
                Issue.record("missing message \(i)")
                break
            }
            let body = try JSONSerialization.jsonObject(with: m.data) as! [String: Any]
            let id = try #require(body["id"] as? String)
            #expect(m.header("Nats-Msg-Id") == id)
            ids.insert(id)
            if i < 2500 {
                #expect(m.subject == expectedSubject(i))
                #expect(m.header("Vigil-Correlation-Id") == "corr-1")
                let data = try #require(body["data"] as? [String: Any])
                #expect(data["n"] as? Int == i)
                if i == 7 { #expect(data["s"] as? String == "a \"quoted\" line\nbreak") }
            } else {
                #expect(m.subject == subject + ".single")
            }
        }
        #expect(ids.count == 2501)
        // A relay that crashed before marking the rows sent publishes them again: JetStream drops
        // every repeat by Nats-Msg-Id.
        try await store.query(.none, "UPDATE \(store.schema).outbox SET published_at = NULL")
        #expect(try await relay.publishBatch() == 2)
        #expect(try await js.messageCount(stream: stream) == 2501)
        sub.unsubscribe()
        await bus.close()
    }

    /// The relay's line scanner: subjects, ids and bodies byte for byte (spaces inside the body
    /// kept), empty lines ignored, lines without three parts counted and skipped.
    @Test func outboxBatchLinesAreSplitExactly() throws {
        let payload = "a.b 1 {\"x\": \"one two\"}\n\nc.d 2 {}\nnospace\nonly one\ne.f 3 \ng.h 4 [1, 2]\n"
        let (messages, malformed) = OutboxRelay.batchMessages(payload, headers: ["H": "v"])
        #expect(messages.map(\.subject) == ["a.b", "c.d", "g.h"])
        #expect(messages.map(\.msgId) == ["1", "2", "4"])
        #expect(messages.map { String(decoding: $0.data, as: UTF8.self) } == ["{\"x\": \"one two\"}", "{}", "[1, 2]"])
        #expect(messages.allSatisfy { $0.headers == ["H": "v"] })
        #expect(malformed == 3)
        #expect(OutboxRelay.batchMessages("", headers: [:]).messages.isEmpty)
        let last = OutboxRelay.batchMessages("s i {\"é\":1}", headers: [:]).messages
        #expect(last.count == 1 && String(decoding: last[0].data, as: UTF8.self) == "{\"é\":1}")
    }

    @Test func outboxRelayRunsOnCommit() async throws {
        let servers = try await TestServers.get()
        let bus = try await servers.bus()
        let js = try JetStream(bus: bus)
        let stream = "OUTBOXRUN_\(Int.random(in: 100000...999999))"
        let subject = "test.events.\(stream.lowercased()).happened"
        try await js.ensureStream(name: stream, subjects: [subject])
        let store = servers.store()
        try await store.migrate(Self.migrations)
        let (sub, events) = try bus.messages(subject)
        let relay = Task { await OutboxRelay(store: store, jetStream: js, pollInterval: .seconds(30)).run() }
        try await store.transaction(.none) { tx in try await tx.emit(subject, type: "x", tenantId: nil, data: ["k": "v"]) }
        var it = events.makeAsyncIterator()
        let msg = await it.next()
        let body = try JSONSerialization.jsonObject(with: msg!.data) as! [String: Any]
        #expect(body["type"] as? String == "x")
        #expect(msg?.header("Nats-Msg-Id") == body["id"] as? String)
        relay.cancel()
        sub.unsubscribe()
        await bus.close()
    }
}
