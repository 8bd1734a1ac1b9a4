/// Many literal strings found in one pass over bytes, ASCII case-insensitively: Aho–Corasick compiled to a
/// full transition table (state × byte), so each input byte costs one table load. The secret detectors use
/// it as their prefilter: a detector's regular expression runs only around the places where one of its
/// anchors occurs, never over every line.
public struct LiteralPrefilter: Sendable {
    /// `table[state * 256 + byte]` is the next state.
    let table: [Int32]
    /// The patterns that end in each state (its own and those reached through failure links).
    let outputs: [[Int32]]
    let accepting: [Bool]
    let lengths: [Int]

    static let lower: [UInt8] = (0..<256).map { b in (65...90).contains(b) ? UInt8(b + 32) : UInt8(b) }

    public init(_ patterns: [String]) {
        var goto: [[UInt8: Int32]] = [[:]]
        var out: [[Int32]] = [[]]
        for (index, p) in patterns.enumerated() {
            var s = 0
            for b in p.utf8 {
                let c = Self.lower[Int(b)]
                if let next = goto[s][c] {
                    s = Int(next)
                } else {
                    goto.append([:])
                    out.append([])
                    goto[s][c] = Int32(goto.count - 1)
                    s = goto.count - 1
                }
            }
            out[s].append(Int32(index))
        }
        var fail = [Int32](repeating: 0, count: goto.count)
        var table = [Int32](repeating: 0, count: goto.count * 256)
        var queue: [Int] = []
        for b in 0..<256 {
            if let next = goto[0][UInt8(b)] {
                table[b] = next
                queue.append(Int(next))
            }
        }
        var head = 0
        while head < queue.count {
            let s = queue[head]
            head += 1
            out[s] += out[Int(fail[s])]
            for b in 0..<256 {
                if let next = goto[s][UInt8(b)] {
                    fail[Int(next)] = table[Int(fail[s]) * 256 + b]
                    table[s * 256 + b] = next
                    queue.append(Int(next))
                } else {
                    table[s * 256 + b] = table[Int(fail[s]) * 256 + b]
                }
            }
        }
        self.table = table
        self.outputs = out
        self.accepting = out.map { !$0.isEmpty }
        self.lengths = patterns.map { $0.utf8.count }
    }

    /// Calls `hit(pattern, start)` for every occurrence, in order of where it ends.
    public func scan(_ bytes: UnsafeBufferPointer<UInt8>, _ hit: (_ pattern: Int, _ start: Int) -> Void) {
        table.withUnsafeBufferPointer { t in
            Self.lower.withUnsafeBufferPointer { low in
                accepting.withUnsafeBufferPointer { acc in
                    var s = 0
                    for i in 0..<bytes.count {
                        s = Int(t[s &* 256 &+ Int(low[Int(bytes[i])])])
                        if acc[s] {
                            for p in outputs[s] { hit(Int(p), i + 1 - lengths[Int(p)]) }
                        }
                    }
                }
            }
        }
    }
}
