import Foundation

/// Reads a few string members of a JSON object (and of one object nested in it) without decoding
/// the rest: the notifier looks at the envelope of every event (`id`, `type`, `tenant_id`,
/// `data.actor`) and needs the whole `data` only for the few it delivers. Values that are not
/// strings (or null) read as absent; text that is not a JSON object reads as nil.
public enum JSONHead {
    public static func read(_ data: Data, keys: [String], nested: String, nestedKeys: [String]) -> (top: [String?], inner: [String?])? {
        data.withUnsafeBytes { raw -> (top: [String?], inner: [String?])? in
            var r = Reader(bytes: raw.bindMemory(to: UInt8.self))
            var top = [String?](repeating: nil, count: keys.count)
            var inner = [String?](repeating: nil, count: nestedKeys.count)
            guard r.object(keys: keys, into: &top, nested: nested, nestedKeys: nestedKeys, innerInto: &inner) else { return nil }
            r.skipSpace()
            return r.i == r.bytes.count ? (top, inner) : nil
        }
    }

    struct Reader {
        let bytes: UnsafeBufferPointer<UInt8>
        var i = 0

        mutating func skipSpace() {
            while i < bytes.count, bytes[i] == 0x20 || bytes[i] == 0x0A || bytes[i] == 0x0D || bytes[i] == 0x09 { i += 1 }
        }

        mutating func expect(_ b: UInt8) -> Bool {
            skipSpace()
            guard i < bytes.count, bytes[i] == b else { return false }
            i += 1
            return true
        }

        /// An object; members named in `keys` (strings) land in `into`, the member `nested` (if an
        /// object) is read the same way into `innerInto`; everything else is skipped.
        mutating func object(keys: [String], into: inout [String?], nested: String?, nestedKeys: [String], innerInto: inout [String?]) -> Bool {
            guard expect(0x7B) else { return false }  // {
            if expect(0x7D) { return true }  // }
            while true {
                skipSpace()
                guard let key = string(decode: true) ?? nil, expect(0x3A) else { return false }  // :
                skipSpace()
                guard i < bytes.count else { return false }
                if let k = keys.firstIndex(of: key), bytes[i] == 0x22 {
                    guard let v = string(decode: true) else { return false }
                    into[k] = v
                } else if key == nested, bytes[i] == 0x7B {
                    var none: [String?] = []
                    guard object(keys: nestedKeys, into: &innerInto, nested: nil, nestedKeys: [], innerInto: &none) else { return false }
                } else if !skipValue(depth: 0) {
                    return false
                }
                if expect(0x2C) { continue }  // ,
                return expect(0x7D)
            }
        }

        /// A string at `i` (which must be a quote): decoded when asked (`.some(nil)` when only
        /// skipped), nil when malformed.
        mutating func string(decode: Bool) -> String?? {
            guard i < bytes.count, bytes[i] == 0x22 else { return nil }
            i += 1
            let start = i
            var escaped = false
            while i < bytes.count {
                let b = bytes[i]
                if b == 0x22 {
                    defer { i += 1 }
                    guard decode else { return .some(nil) }
                    let run = UnsafeBufferPointer(rebasing: bytes[start..<i])
                    return escaped ? Self.unescape(run).map { .some($0) } : .some(String(decoding: run, as: UTF8.self))
                }
                if b == 0x5C {
                    escaped = true
                    i += 2
                    continue
                }
                if b < 0x20 { return nil }
                i += 1
            }
            return nil
        }

        mutating func skipValue(depth: Int) -> Bool {
            guard depth < 64, i < bytes.count else { return false }
            switch bytes[i] {
            case 0x22:
                return string(decode: false) != nil
            case 0x7B, 0x5B:  // { [
                let close: UInt8 = bytes[i] == 0x7B ? 0x7D : 0x5D
                let isObject = close == 0x7D
                i += 1
                if expect(close) { return true }
                while true {
                    skipSpace()
                    if isObject {
                        guard string(decode: false) != nil, expect(0x3A) else { return false }
                        skipSpace()
                    }
                    guard skipValue(depth: depth + 1) else { return false }
                    if expect(0x2C) { continue }
                    return expect(close)
                }
            default:  // a number or true / false / null
                let start = i
                while i < bytes.count, Self.scalarByte(bytes[i]) { i += 1 }
                guard i > start else { return false }
                let word = UnsafeBufferPointer(rebasing: bytes[start..<i])
                if word[0] == 0x74 || word[0] == 0x66 || word[0] == 0x6E {
                    return word.elementsEqual("true".utf8) || word.elementsEqual("false".utf8) || word.elementsEqual("null".utf8)
                }
                return word.allSatisfy { ($0 >= 0x30 && $0 <= 0x39) || $0 == 0x2D || $0 == 0x2B || $0 == 0x2E || $0 == 0x65 || $0 == 0x45 }
            }
        }

        static func scalarByte(_ b: UInt8) -> Bool {
            (b >= 0x30 && b <= 0x39) || (b >= 0x61 && b <= 0x7A) || b == 0x2D || b == 0x2B || b == 0x2E || b == 0x45
        }

        /// The text of a string with escapes (between the quotes); nil when an escape is invalid.
        static func unescape(_ s: UnsafeBufferPointer<UInt8>) -> String? {
            var out = [UInt8]()
            out.reserveCapacity(s.count)
            var i = 0
            func hex4(_ at: Int) -> UInt32? {
                guard at + 4 <= s.count else { return nil }
                var v: UInt32 = 0
                for b in s[at..<at + 4] {
                    guard let d = Character(Unicode.Scalar(b)).hexDigitValue else { return nil }
                    v = v << 4 | UInt32(d)
                }
                return v
            }
            while i < s.count {
                let b = s[i]
                guard b == 0x5C else {
                    out.append(b)
                    i += 1
                    continue
                }
                guard i + 1 < s.count else { return nil }
                switch s[i + 1] {
                case 0x22: out.append(0x22)
                case 0x5C: out.append(0x5C)
                case 0x2F: out.append(0x2F)
                case 0x62: out.append(0x08)
                case 0x66: out.append(0x0C)
                case 0x6E: out.append(0x0A)
                case 0x72: out.append(0x0D)
                case 0x74: out.append(0x09)
                case 0x75:
                    guard var code = hex4(i + 2) else { return nil }
                    i += 6
                    if (0xD800..<0xDC00).contains(code) {
                        guard i + 1 < s.count, s[i] == 0x5C, s[i + 1] == 0x75, let low = hex4(i + 2), (0xDC00..<0xE000).contains(low) else {
                            return nil
                        }
                        code = 0x10000 + ((code - 0xD800) << 10) + (low - 0xDC00)
                        i += 6
                    }
                    guard let scalar = Unicode.Scalar(code) else { return nil }
                    out.append(contentsOf: Array(String(Character(scalar)).utf8))
                    continue
                default: return nil
                }
                i += 2
            }
            return String(decoding: out, as: UTF8.self)
        }
    }
}
