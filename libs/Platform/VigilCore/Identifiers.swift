import Foundation

/// Identifiers are lowercase UUID strings everywhere (database, bus, REST).
public enum ID {
    /// A random (version 4) UUID, lowercase. Written by hand: Foundation's `UUID()` opens and reads
    /// /dev/urandom on every call here, and the gateway makes one per request.
    public static func make() -> String {
        var g = SystemRandomNumberGenerator()
        let hi = (g.next() as UInt64) & 0xFFFF_FFFF_FFFF_0FFF | 0x0000_0000_0000_4000
        let lo = (g.next() as UInt64) & 0x3FFF_FFFF_FFFF_FFFF | 0x8000_0000_0000_0000
        let hex: [UInt8] = Array("0123456789abcdef".utf8)
        return String(unsafeUninitializedCapacity: 36) { buf in
            var i = 0
            for (word, range) in [(hi, 0..<16), (lo, 16..<32)] {
                for nibble in range {
                    if nibble == 8 || nibble == 12 || nibble == 16 || nibble == 20 {
                        buf[i] = 0x2D
                        i += 1
                    }
                    buf[i] = hex[Int((word >> UInt64(60 - (nibble % 16) * 4)) & 0xF)]
                    i += 1
                }
            }
            return i
        }
    }
    /// True when `s` is a well-formed UUID; used to answer 404 instead of a database cast error.
    public static func isValid(_ s: String) -> Bool { UUID(uuidString: s) != nil }
}
