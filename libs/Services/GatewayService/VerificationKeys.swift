import Bus
import Contracts
import Foundation
import Logging
import Synchronization
import VigilCore
import VigilCrypto
import Yams

/// Identity's public keys, fetched over the bus and cached; refetched (at most every 10 s) when a
/// token does not verify, which picks up key rotation.
final class VerificationKeys: Sendable {
    let bus: BusConnection
    private let state = Mutex<(keys: [[UInt8]], fetchedAt: ContinuousClock.Instant?)>(([], nil))

    init(bus: BusConnection) { self.bus = bus }

    func verify(_ token: String) async -> AccessClaims? {
        let (cached, fetchedAt) = state.withLock { ($0.keys, $0.fetchedAt) }
        for k in cached { if let c = JWT.verify(token, publicKey: k) { return c } }
        if let fetchedAt, ContinuousClock.now - fetchedAt < .seconds(10) { return nil }
        guard let reply = try? await bus.request(IdentityAPI.signingKeys, Empty(), context: CallContext(), timeout: .seconds(5)) else {
            return nil
        }
        let keys = reply.keys.compactMap { Base64URL.decode($0.publicKey) }
        state.withLock { $0 = (keys, ContinuousClock.now) }
        for k in keys { if let c = JWT.verify(token, publicKey: k) { return c } }
        return nil
    }
}
