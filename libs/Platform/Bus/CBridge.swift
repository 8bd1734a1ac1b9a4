import CNats
import Foundation

/// The closure a subscription delivers to; boxed so it can travel through cnats' `void *closure`.
final class HandlerBox: Sendable {
    let handler: @Sendable (BusMessage) -> Void
    init(_ handler: @escaping @Sendable (BusMessage) -> Void) { self.handler = handler }
}

/// Copies a C message into an owned `BusMessage`. Does not destroy it.
func copyMessage(_ msg: OpaquePointer) -> BusMessage {
    let subject = String(cString: natsMsg_GetSubject(msg))
    let reply = natsMsg_GetReply(msg).map { String(cString: $0) }
    let len = Int(natsMsg_GetDataLength(msg))
    let data: Data = len > 0 ? Data(bytes: natsMsg_GetData(msg), count: len) : Data()
    var headers: [String: String] = [:]
    var keys: UnsafeMutablePointer<UnsafePointer<CChar>?>? = nil
    var count: Int32 = 0
    if natsMsgHeader_Keys(msg, &keys, &count) == NATS_OK, let keys {
        for i in 0..<Int(count) {
            guard let k = keys[i] else { continue }
            var v: UnsafePointer<CChar>? = nil
            if natsMsgHeader_Get(msg, k, &v) == NATS_OK, let v {
                headers[String(cString: k)] = String(cString: v)
            }
        }
        free(keys)
    }
    var m = BusMessage(subject: subject, reply: reply, headers: headers, data: data)
    m.isNoResponders = natsMsg_IsNoResponders(msg)
    return m
}

/// The one cnats message callback: copy, destroy the C message, hand the copy to Swift.
/// A file-scope constant in a library module, so the concurrency checker sees what it touches.
let messageTrampoline: natsMsgHandler = { _, _, msg, closure in
    guard let msg, let closure else { return }
    let box = Unmanaged<HandlerBox>.fromOpaque(closure).takeUnretainedValue()
    let copy = copyMessage(msg)
    natsMsg_Destroy(msg)
    box.handler(copy)
}

/// Releases the handler box once cnats guarantees no more callbacks for the subscription.
let subscriptionCompleted: natsOnCompleteCB = { closure in
    guard let closure else { return }
    Unmanaged<HandlerBox>.fromOpaque(closure).release()
}

func statusText(_ s: natsStatus) -> String { String(cString: natsStatus_GetText(s)) }

/// Builds a C message with headers; the caller owns it (destroy it, or hand it to the library).
func makeCMessage(subject: String, reply: String?, headers: [String: String], data: Data) throws -> OpaquePointer {
    var msg: OpaquePointer? = nil
    let s: natsStatus = data.withUnsafeBytes { raw in
        natsMsg_Create(&msg, subject, reply, raw.baseAddress?.assumingMemoryBound(to: CChar.self), Int32(data.count))
    }
    guard s == NATS_OK, let msg else { throw BusError.publish("cannot build message for \(subject): \(statusText(s))") }
    for (k, v) in headers { natsMsgHeader_Set(msg, k, v) }
    return msg
}

/// Builds a C message with headers, runs `body` with it, then destroys it.
func withCMessage<T>(
    subject: String, reply: String?, headers: [String: String], data: Data,
    _ body: (OpaquePointer) -> T
) throws -> T {
    let msg = try makeCMessage(subject: subject, reply: reply, headers: headers, data: data)
    defer { natsMsg_Destroy(msg) }
    return body(msg)
}

/// An opaque C handle that may cross threads.
///
/// `@unchecked Sendable` is safe because every handle wrapped here belongs to a library object that is
/// thread-safe (cnats connections, subscriptions, JetStream contexts and KV stores), or whose use its
/// owner serializes on one Dispatch queue (libpq connections, `PGConnection`). This is the one place
/// where a C pointer is declared sendable: the types that hold one are checked by the compiler.
package struct CHandle: @unchecked Sendable {
    package let p: OpaquePointer
    package init(_ p: OpaquePointer) { self.p = p }
}
