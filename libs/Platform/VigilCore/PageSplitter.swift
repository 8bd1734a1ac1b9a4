import Foundation

/// The items of a list page and its next cursor, found in the page's bytes without decoding the items: an
/// export of 100,000 findings copies each one through as the findings service wrote it.
public enum PageSplitter {
    public struct Malformed: Error, CustomStringConvertible {
        public var description: String { "a list page is not the JSON object a page is" }
    }

    /// Byte ranges of the top-level `items` array's elements, and `next_cursor` (nil when null or absent).
    public static func split(_ data: Data) throws -> (items: [Range<Int>], nextCursor: String?) {
        try data.withUnsafeBytes { (raw: UnsafeRawBufferPointer) in
            let b = raw.bindMemory(to: UInt8.self)
            var i = 0
            var items: [Range<Int>] = []
            var cursor: String? = nil
            func skipSpace() { while i < b.count && (b[i] == 32 || b[i] == 10 || b[i] == 13 || b[i] == 9) { i += 1 } }
            /// Skips one JSON value starting at `i` (strings with escapes, nested arrays and objects).
            func skipValue() throws {
                skipSpace()
                guard i < b.count else { throw PageSplitter.Malformed() }
                if b[i] == 34 {
                    i += 1
                    while i < b.count && b[i] != 34 { i += b[i] == 92 ? 2 : 1 }
                    i += 1
                    return
                }
                if b[i] == 123 || b[i] == 91 {
                    var depth = 0
                    repeat {
                        let c = b[i]
                        if c == 34 {
                            i += 1
                            while i < b.count && b[i] != 34 { i += b[i] == 92 ? 2 : 1 }
                        } else if c == 123 || c == 91 {
                            depth += 1
                        } else if c == 125 || c == 93 {
                            depth -= 1
                        }
                        i += 1
                    } while depth > 0 && i < b.count
                    return
                }
                while i < b.count && !(b[i] == 44 || b[i] == 125 || b[i] == 93) { i += 1 }
            }
            func string() throws -> String {
                let start = i + 1
                try skipValue()
                let raw = Data(b[start..<(i - 1)])
                guard raw.contains(92) else { return String(decoding: raw, as: UTF8.self) }
                let quoted = Data("[\"".utf8) + raw + Data("\"]".utf8)
                return ((try? JSONSerialization.jsonObject(with: quoted)) as? [String])?.first ?? ""
            }
            skipSpace()
            guard i < b.count, b[i] == 123 else { throw PageSplitter.Malformed() }
            i += 1
            while true {
                skipSpace()
                guard i < b.count, b[i] != 125 else { break }
                if b[i] == 44 {
                    i += 1
                    continue
                }
                let key = try string()
                skipSpace()
                guard i < b.count, b[i] == 58 else { throw PageSplitter.Malformed() }
                i += 1
                skipSpace()
                if key == "items", i < b.count, b[i] == 91 {
                    i += 1
                    while true {
                        skipSpace()
                        guard i < b.count, b[i] != 93 else { break }
                        if b[i] == 44 {
                            i += 1
                            continue
                        }
                        let start = i
                        try skipValue()
                        items.append(start..<i)
                    }
                    i += 1
                } else if key == "next_cursor", i < b.count, b[i] == 34 {
                    cursor = try string()
                } else {
                    try skipValue()
                }
            }
            return (items, cursor)
        }
    }

    /// `next_cursor` read from the page's tail, where the API writes it (after the items), so the next
    /// page can be asked for before this one is split: `.some(nil)` for `null`, nil when it is not there
    /// in that form (then `split` finds it).
    public static func trailingCursor(_ data: Data) -> String?? {
        let key = Array(#""next_cursor":"#.utf8)
        return data.withUnsafeBytes { (raw: UnsafeRawBufferPointer) -> String?? in
            let b = raw.bindMemory(to: UInt8.self)
            var at = b.count - key.count
            let floor = max(0, b.count - 4096)
            while at >= floor, !(b[at] == 34 && b[at..<(at + key.count)].elementsEqual(key)) { at -= 1 }
            guard at >= floor else { return nil }
            var i = at + key.count
            while i < b.count, b[i] == 32 { i += 1 }
            if i + 4 <= b.count, b[i..<(i + 4)].elementsEqual("null".utf8) { return .some(nil) }
            guard i < b.count, b[i] == 34 else { return nil }
            let start = i + 1
            var end = start
            while end < b.count, b[end] != 34 {
                if b[end] == 92 { return nil }  // escapes: leave it to split
                end += 1
            }
            guard end < b.count else { return nil }
            return .some(String(decoding: b[start..<end], as: UTF8.self))
        }
    }
}
