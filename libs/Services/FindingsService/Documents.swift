import Foundation

/// A report as sections of text and tables, rendered to HTML, CSV or PDF.
struct Document: Sendable {
    struct Table: Sendable {
        var header: [String]
        var rows: [[String]]
    }
    /// One bar of a horizontal bar chart.
    struct Bar: Sendable {
        var label: String
        var value: Double
        var text: String
    }
    struct Section: Sendable {
        var heading: String
        var paragraphs: [String] = []
        var table: Table? = nil
        var chart: [Bar]? = nil
    }
    var title: String
    var subtitle: String
    var sections: [Section]

    func html() -> String {
        func e(_ s: String) -> String {
            s.replacingOccurrences(of: "&", with: "&amp;").replacingOccurrences(of: "<", with: "&lt;")
                .replacingOccurrences(of: ">", with: "&gt;").replacingOccurrences(of: "\"", with: "&quot;")
        }
        var out = """
            <!doctype html><html lang="en"><head><meta charset="utf-8"><title>\(e(title))</title>
            <style>body{font-family:system-ui,sans-serif;margin:2em;color:#111}table{border-collapse:collapse;margin:1em 0;font-size:0.9em}
            th,td{border:1px solid #ccc;padding:4px 8px;text-align:left;vertical-align:top}th{background:#f3f3f3}h1{margin-bottom:0}
            .sub{color:#555}</style></head><body><h1>\(e(title))</h1><p class="sub">\(e(subtitle))</p>
            """
        for s in sections {
            out += "<h2>\(e(s.heading))</h2>"
            for p in s.paragraphs { out += "<p>\(e(p))</p>" }
            if let bars = s.chart, let top = bars.map(\.value).max(), top > 0 {
                let h = 22
                out +=
                    "<svg role=\"img\" aria-label=\"\(e(s.heading))\" width=\"640\" height=\"\(bars.count * h + 4)\" "
                    + "xmlns=\"http://www.w3.org/2000/svg\">"
                for (i, b) in bars.enumerated() {
                    let w = Int((b.value / top * 360).rounded())
                    let y = i * h + 2
                    out +=
                        "<text x=\"0\" y=\"\(y + 15)\" font-size=\"13\">\(e(b.label))</text>"
                        + "<rect x=\"160\" y=\"\(y)\" width=\"\(max(1, w))\" height=\"\(h - 6)\" fill=\"#2f6fde\"/>"
                        + "<text x=\"\(170 + w)\" y=\"\(y + 15)\" font-size=\"13\">\(e(b.text))</text>"
                }
                out += "</svg>"
            }
            if let t = s.table {
                out += "<table><thead><tr>" + t.header.map { "<th>\(e($0))</th>" }.joined() + "</tr></thead><tbody>"
                for r in t.rows { out += "<tr>" + r.map { "<td>\(e($0))</td>" }.joined() + "</tr>" }
                out += "</tbody></table>"
            }
        }
        return out + "</body></html>\n"
    }

    /// CSV (RFC 4180): the tables, one after another, each preceded by its section heading.
    func csv() -> String {
        func q(_ s: String) -> String {
            // Cells starting with =, +, -, @ are prefixed so spreadsheets do not run them as formulas.
            let safe = s.first.map { "=+-@".contains($0) } == true ? "'" + s : s
            return safe.contains(where: { ",\"\n\r".contains($0) }) ? "\"" + safe.replacingOccurrences(of: "\"", with: "\"\"") + "\"" : safe
        }
        let tables = sections.compactMap { s in
            s.table.map { (s.heading, $0) } ?? s.chart.map { (s.heading, Table(header: ["item", "value"], rows: $0.map { [$0.label, $0.text] })) }
        }
        if tables.count == 1 {
            let t = tables[0].1
            return ([t.header] + t.rows).map { $0.map(q).joined(separator: ",") }.joined(separator: "\r\n") + "\r\n"
        }
        var lines: [String] = []
        for (heading, t) in tables {
            lines.append(q(heading))
            lines += ([t.header] + t.rows).map { $0.map(q).joined(separator: ",") }
            lines.append("")
        }
        return lines.joined(separator: "\r\n") + "\r\n"
    }

    /// A plain PDF 1.4: Helvetica text, A4 pages, tables as wrapped rows.
    func pdf() -> Data {
        var lines: [PDFWriter.Line] = []
        func add(_ s: String, _ size: Double = 9, bold: Bool = false, width: Int = 100) {
            for l in wrap(s, width: width) { lines.append(.init(text: l, size: size, bold: bold)) }
        }
        add(title, 16, bold: true, width: 60)
        add(subtitle, 9)
        lines.append(.init(text: "", size: 9, bold: false))
        for s in sections {
            add(s.heading, 12, bold: true, width: 75)
            for p in s.paragraphs { add(p) }
            if let bars = s.chart, let top = bars.map(\.value).max(), top > 0 {
                for b in bars { lines.append(.init(text: String(b.label.prefix(30)) + "  " + b.text, size: 9, bold: false, bar: b.value / top)) }
            }
            if let t = s.table {
                add(t.header.joined(separator: " | "), 9, bold: true)
                for r in t.rows { add(r.joined(separator: " | ")) }
            }
            lines.append(.init(text: "", size: 9, bold: false))
        }
        return PDFWriter.render(lines)
    }

    func wrap(_ s: String, width: Int) -> [String] {
        var out: [String] = []
        for para in s.split(separator: "\n", omittingEmptySubsequences: false) {
            var line = ""
            for word in para.split(separator: " ") {
                var w = String(word)
                while w.count > width {
                    out.append(String(w.prefix(width)))
                    w = String(w.dropFirst(width))
                }
                if line.isEmpty {
                    line = w
                } else if line.count + 1 + w.count <= width {
                    line += " " + w
                } else {
                    out.append(line)
                    line = w
                }
            }
            out.append(line)
        }
        return out
    }
}

enum PDFWriter {
    /// A line of text, and when `bar` is set (0…1) a filled bar drawn after it (a bar chart's row).
    struct Line {
        var text: String
        var size: Double
        var bold: Bool
        var bar: Double? = nil
    }

    /// Lays out lines top to bottom on A4 pages and writes objects with a correct xref table.
    static func render(_ lines: [Line]) -> Data {
        let pageHeight = 842.0
        let margin = 50.0
        var pages: [[(Line, Double)]] = [[]]
        var y = pageHeight - margin
        for line in lines {
            let lead = line.size * (line.bar == nil ? 1.35 : 1.8)
            if y - lead < margin {
                pages.append([])
                y = pageHeight - margin
            }
            y -= lead
            pages[pages.count - 1].append((line, y))
        }
        var objects: [String] = []
        // 1 catalog, 2 pages, 3 Helvetica, 4 Helvetica-Bold, then per page: page, content.
        let firstPage = 5
        let kids = (0..<pages.count).map { "\(firstPage + $0 * 2) 0 R" }.joined(separator: " ")
        objects.append("<< /Type /Catalog /Pages 2 0 R >>")
        objects.append("<< /Type /Pages /Kids [\(kids)] /Count \(pages.count) >>")
        objects.append("<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica /Encoding /WinAnsiEncoding >>")
        objects.append("<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica-Bold /Encoding /WinAnsiEncoding >>")
        for (i, page) in pages.enumerated() {
            var stream = "BT\n"
            for (l, y) in page {
                stream += "/\(l.bold ? "F2" : "F1") \(fmt(l.size)) Tf 1 0 0 1 \(fmt(margin)) \(fmt(y)) Tm (\(escape(l.text))) Tj\n"
            }
            stream += "ET\n"
            // Bars: filled rectangles right of the labels, up to 250 points wide.
            for (l, y) in page {
                guard let bar = l.bar else { continue }
                stream += "0.18 0.44 0.87 rg \(fmt(margin + 240)) \(fmt(y - 1)) \(fmt(max(1, bar * 250))) \(fmt(l.size)) re f 0 g\n"
            }
            let footer = "BT /F1 8 Tf 1 0 0 1 \(fmt(margin)) 25 Tm (Vigil - page \(i + 1) of \(pages.count)) Tj ET\n"
            stream += footer
            objects.append(
                "<< /Type /Page /Parent 2 0 R /MediaBox [0 0 595 842] /Resources << /Font << /F1 3 0 R /F2 4 0 R >> >> "
                    + "/Contents \(firstPage + i * 2 + 1) 0 R >>"
            )
            objects.append("<< /Length \(stream.utf8.count) >>\nstream\n\(stream)endstream")
        }
        var out = "%PDF-1.4\n%\u{00E2}\u{00E3}\u{00CF}\u{00D3}\n"
        var bytes = Array(out.utf8)
        var offsets: [Int] = []
        for (i, o) in objects.enumerated() {
            offsets.append(bytes.count)
            bytes += Array("\(i + 1) 0 obj\n\(o)\nendobj\n".utf8)
        }
        let xref = bytes.count
        out = "xref\n0 \(objects.count + 1)\n0000000000 65535 f \n"
        for o in offsets { out += String(format: "%010d 00000 n \n", o) }
        out += "trailer\n<< /Size \(objects.count + 1) /Root 1 0 R >>\nstartxref\n\(xref)\n%%EOF\n"
        bytes += Array(out.utf8)
        return Data(bytes)
    }

    static func fmt(_ d: Double) -> String { String(format: "%.2f", d) }

    /// PDF string escaping; characters outside printable ASCII become close ASCII or '?'.
    static func escape(_ s: String) -> String {
        var out = ""
        for ch in s {
            switch ch {
            case "(", ")", "\\": out += "\\" + String(ch)
            case "→": out += "->"
            case "—", "–": out += "-"
            case "…": out += "..."
            case "“", "”": out += "\""
            case "‘", "’": out += "'"
            default:
                if let a = ch.asciiValue, a >= 32, a < 127 { out.append(ch) } else { out += "?" }
            }
        }
        return out
    }
}
