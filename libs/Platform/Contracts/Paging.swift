import Foundation
import VigilCore

/// Pagination input shared by every list (keyset `cursor`, or `offset` for compatibility).
package struct PageRequest: Codable, Sendable {
    package var limit: Int?
    package var cursor: String?
    package var offset: Int?
    package init(limit: Int? = nil, cursor: String? = nil, offset: Int? = nil) {
        self.limit = limit
        self.cursor = cursor
        self.offset = offset
    }
}

/// A page of results: `{items, next_cursor, total}`; `total_capped: true` when `total` is only the
/// cap of a bounded count (there are more).
package struct Page<T: Codable & Sendable>: Codable, Sendable {
    package var items: [T]
    package var nextCursor: String?
    package var total: Int?
    package var totalCapped: Bool?
    package init(items: [T], nextCursor: String?, total: Int?, totalCapped: Bool? = nil) {
        self.items = items
        self.nextCursor = nextCursor
        self.total = total
        self.totalCapped = totalCapped
    }

    enum CodingKeys: String, CodingKey { case items, nextCursor, total, totalCapped }

    package func encode(to encoder: any Encoder) throws {
        var c = encoder.container(keyedBy: CodingKeys.self)
        try c.encode(items, forKey: .items)
        try c.encode(nextCursor, forKey: .nextCursor)
        try c.encodeIfPresent(total, forKey: .total)
        try c.encodeIfPresent(totalCapped, forKey: .totalCapped)
    }
}

extension Page: JSONWritable where T: JSONWritable {
    package func writeJSON(into out: inout [UInt8]) {
        out.reserveCapacity(out.count + items.count * 1024)
        out.append(contentsOf: #"{"items":"#.utf8)
        FastJSON.array(items, into: &out)
        out.append(contentsOf: #","next_cursor":"#.utf8)
        if let nextCursor { FastJSON.quote(nextCursor, into: &out) } else { out.append(contentsOf: "null".utf8) }
        if let total { out.append(contentsOf: ",\"total\":\(total)".utf8) }
        if let totalCapped { out.append(contentsOf: (totalCapped ? #","total_capped":true"# : #","total_capped":false"#).utf8) }
        out.append(0x7D)
    }
}
