import Bus
import Contracts
import Foundation
import HTTPTypes
import Hummingbird
import NIOCore
import VigilCore

/// The end of every route's chain: one bus request to the route's subject with the built payload and the
/// call context (workspace, principal, correlation id, idempotency key, trace, client), and the reply as
/// the response: JSON with the route's status, or the raw file for downloads.
struct ForwardingResponder: Sendable {
    let route: Route
    let bus: BusConnection
    let timeout: Duration

    func respond(_ request: Request, context: GatewayContext) async throws -> Response {
        let busContext = CallContext(
            tenantId: context.principal?.principal.tenantId, principal: context.principal?.header,
            correlationId: context.correlationId, idempotencyKey: request.headers[.idempotencyKey],
            traceparent: request.headers[.traceparent], clientAddress: context.client, userAgent: request.headers[.userAgent])
        if route.export { return try await exportResponse(context.payload, busContext) }
        let reply = try await ask(context.payload, busContext, read: request.method == .get)
        if route.download { return try fileResponse(reply) }
        return jsonResponse(route.status, route.status == .noContent ? Data() : reply, headers: [:])
    }

    func ask(_ payload: Data, _ busContext: CallContext, read: Bool) async throws -> Data {
        guard read else { return try await bus.requestJSON(route.subject, body: payload, context: busContext, timeout: timeout) }
        // A read whose request or reply was lost (a NATS node or the replica died with it) is sent again while no
        // answer came, and the first answer wins: the queue group hands the copy to a live replica. Only reads: a
        // write may have been done before its reply was lost. Downloads (reports, which may take seconds to build)
        // only once the first attempt's time is up.
        let resends = route.download ? [timeout] : BusConnection.resends(timeout)
        return try await bus.requestJSON(route.subject, body: payload, context: busContext, timeout: timeout * 2, resendAt: resends)
    }

    /// A whole list as one JSON array, one item a line (`GET /findings/export`): the gateway walks the list's
    /// keyset pages itself and writes their items onto a chunked response. The next page is asked for as soon
    /// as a page's cursor is read (from its tail), before the page is written, so the service builds a page
    /// while the previous one travels. The first page is fetched before the status is sent: bad filters are
    /// a 4xx like the list's. A failure later cuts the response short (no closing bracket, no final chunk),
    /// which every client sees as an error rather than a shorter list.
    func exportResponse(_ payload: Data, _ busContext: CallContext) async throws -> Response {
        let query = (try? JSON.decode([String: JSONValue].self, from: payload.isEmpty ? Data("{}".utf8) : payload)) ?? [:]
        let cap = try Self.cap(query["limit"])
        let ask = { @Sendable (cursor: String?, size: Int) async throws -> Data in
            var q = query
            q["limit"] = .number(Double(size))
            q["cursor"] = cursor.map(JSONValue.string)
            return try await self.ask(try JSON.encode(q), busContext, read: true)
        }
        let asked = min(Self.pageSize, cap)
        let first = try await ask(nil, asked)
        let body = ResponseBody { [asked] writer in
            var asked = asked
            var page = first
            var written = 0
            var out = ByteBuffer(bytes: [91])
            while true {
                // Asked for early only when this page cannot finish the export.
                let early = written + asked < cap ? PageSplitter.trailingCursor(page) : nil
                var next = early.flatMap { $0 }.map { c in Task { try await ask(c, Self.pageSize) } }
                let (items, cursor) = try PageSplitter.split(page)
                let take = min(items.count, cap - written)
                out.reserveCapacity(out.readableBytes + page.count + 2 * take)
                for r in items.prefix(take) {
                    out.writeBytes(written == 0 ? [10] : [44, 10])
                    out.writeBytes(page[r])
                    written += 1
                }
                try await writer.write(out)
                out = ByteBuffer()
                guard let cursor, written < cap else {
                    next?.cancel()
                    break
                }
                if next == nil || early! != cursor {
                    next?.cancel()
                    let size = min(Self.pageSize, cap - written)
                    next = Task { try await ask(cursor, size) }
                    asked = size
                } else {
                    asked = Self.pageSize
                }
                page = try await next!.value
            }
            try await writer.write(ByteBuffer(bytes: Array("\n]\n".utf8)))
            try await writer.finish(nil)
        }
        return Response(status: .ok, headers: [.contentType: "application/json"], body: body)
    }

    /// The export's `limit`: how many items in all (every one when absent).
    static func cap(_ limit: JSONValue?) throws -> Int {
        guard let limit else { return exportMax }
        guard case .number(let n) = limit, n == n.rounded(), (1...Double(exportMax)).contains(n) else {
            throw ServiceError.validation("query.limit", "must be between 1 and \(exportMax)")
        }
        return Int(n)
    }

    /// Items an export asks the service for at once (the list's largest page) and at most in all.
    static let pageSize = 500
    static let exportMax = 10_000_000

    /// A file produced by a service (reports): raw bytes with their type and a download file name.
    func fileResponse(_ body: Data) throws -> Response {
        guard let file = try? JSON.decode(FileReply.self, from: body), let bytes = Data(base64Encoded: file.contentBase64) else {
            throw ServiceError.internal()
        }
        let safe = file.filename.filter { $0.isLetter || $0.isNumber || "-_.".contains($0) }
        let headers: HTTPFields = [.contentType: file.contentType, .contentDisposition: "attachment; filename=\"\(safe)\""]
        return Response(status: .ok, headers: headers, body: .init(byteBuffer: ByteBuffer(bytes: bytes)))
    }
}
