import Foundation

/// How a committed secret is taken out of a file: the literal becomes the language's environment lookup
/// (`os.environ["NAME"]`, `process.env.NAME`, `ENV["NAME"]`, `os.Getenv("NAME")`, …); in configuration files
/// (`.env`, YAML, properties, INI, TOML, shell, Dockerfiles) the value becomes `${NAME}`; a file that is only a
/// private key is removed (and ignored from then on). Deterministic: the same file and value give the same edit.
public enum SecretRewrite {
    public enum Language: Sendable, Equatable {
        case python, javascript, ruby, go, java, swift, php, csharp, rust, config
    }

    public static func language(of path: String) -> Language {
        let name = (path as NSString).lastPathComponent.lowercased()
        switch (name as NSString).pathExtension {
        case "py": return .python
        case "js", "mjs", "cjs", "jsx", "ts", "tsx": return .javascript
        case "rb": return .ruby
        case "go": return .go
        case "java", "kt", "kts", "scala", "groovy": return .java
        case "swift": return .swift
        case "php": return .php
        case "cs": return .csharp
        case "rs": return .rust
        default: return .config
        }
    }

    /// The expression reading `name` from the environment.
    public static func lookup(_ name: String, _ language: Language) -> String {
        switch language {
        case .python: return "os.environ[\"\(name)\"]"
        case .javascript: return "process.env.\(name)"
        case .ruby: return "ENV[\"\(name)\"]"
        case .go: return "os.Getenv(\"\(name)\")"
        case .java: return "System.getenv(\"\(name)\")"
        case .swift: return "(ProcessInfo.processInfo.environment[\"\(name)\"] ?? \"\")"
        case .php: return "getenv('\(name)')"
        case .csharp: return "Environment.GetEnvironmentVariable(\"\(name)\")"
        case .rust: return "std::env::var(\"\(name)\").unwrap_or_default()"
        case .config: return "${\(name)}"
        }
    }

    /// Names that say nothing about the secret: the variable is named after the detector instead.
    static let vagueNames: Set<String> = [
        "URL", "URI", "DSN", "KEY", "TOKEN", "SECRET", "PASSWORD", "PASS", "PWD", "VALUE", "VAL", "AUTH", "CONN", "EXPORT", "CONST", "LET", "VAR",
    ]

    /// `SOME_NAME` from an assignment key (`aws_secret_access_key`, `stripe.secret-key`, `"apiKey"`).
    public static func variableName(_ raw: String) -> String {
        var out = ""
        var previousLower = false
        for ch in raw {
            if ch.isUppercase && previousLower { out.append("_") }
            if ch.isLetter || ch.isNumber {
                out.append(Character(ch.uppercased()))
            } else if !out.hasSuffix("_") {
                out.append("_")
            }
            previousLower = ch.isLowercase || ch.isNumber
        }
        out = out.trimmingCharacters(in: CharacterSet(charactersIn: "_"))
        if let f = out.first, f.isNumber { out = "_" + out }
        return String(out.prefix(64))
    }

    /// The key a value (starting at `offset` of `line`) is assigned to: `KEY = "v"`, `key: v`, `"key": "v"`,
    /// `export KEY=v`, `--set key=v`; nil when there is none.
    static func assignedKey(_ line: Substring) -> String? {
        var s = line
        while let last = s.last, last == " " || last == "\t" || last == "\"" || last == "'" || last == "`" { s = s.dropLast() }
        var op = false
        for suffix in [":=", "=>", "=", ":"] where s.hasSuffix(suffix) {
            s = s.dropLast(suffix.count)
            op = true
            break
        }
        guard op else { return nil }
        while let last = s.last, last == " " || last == "\t" || last == "\"" || last == "'" { s = s.dropLast() }
        var key = ""
        for ch in s.reversed() {
            guard ch.isLetter || ch.isNumber || ch == "_" || ch == "." || ch == "-" else { break }
            key.insert(ch, at: key.startIndex)
        }
        let name = variableName(key)
        return name.isEmpty ? nil : name
    }

    public struct Edit: Sendable, Equatable {
        public var text: String
        public var variable: String
        /// The file is now empty of anything but the key: remove it.
        public var removeFile: Bool
    }

    /// Rewrites every occurrence of `value` in `text`. `fallbackName` (from the detector) is used when no
    /// assignment names the value, `forcedName` always when given. Nil when the value is not in the text.
    public static func rewrite(
        _ text: String, path: String, value: String, category: String, fallbackName: String, forcedName: String? = nil
    ) -> Edit? {
        guard !value.isEmpty, text.contains(value) else { return nil }
        let language = language(of: path)
        if category == "private_key" { return rewriteKey(text, value: value, fallbackName: forcedName ?? fallbackName) }
        var lines = text.components(separatedBy: "\n")
        var variable = forcedName
        for i in lines.indices where lines[i].contains(value) {
            var line = lines[i]
            var guardCount = 0
            while let r = line.range(of: value), guardCount < 50 {
                guardCount += 1
                let (replacement, range, name) = replacementFor(
                    line, value: r, language: language, category: category, fallback: fallbackName, forced: variable)
                variable = variable ?? name
                line.replaceSubrange(range, with: replacement)
            }
            lines[i] = line
        }
        var out = lines.joined(separator: "\n")
        let name = variable ?? fallbackName
        if language == .python { out = ensurePythonImport(out) }
        if language == .go { out = ensureGoImport(out) }
        return Edit(text: out, variable: name, removeFile: false)
    }

    /// The replacement of one occurrence: the whole string literal around it when there is one (in code), else the value.
    static func replacementFor(
        _ line: String, value r: Range<String.Index>, language: Language, category: String, fallback: String, forced: String?
    ) -> (String, Range<String.Index>, String) {
        let before = line[line.startIndex..<r.lowerBound]
        if language != .config, let (open, close) = enclosingLiteral(line, around: r) {
            let quote = line[open]
            let literalKey = assignedKey(line[line.startIndex..<open])
            let inner = line[line.index(after: open)..<close]
            let whole = inner == line[r]
            // The literal's key names the secret only when the literal is the secret.
            var name = forced ?? (whole ? literalKey.flatMap { vagueNames.contains($0) ? nil : $0 } : nil) ?? fallback
            if category == "connection_url" && forced == nil && (literalKey == nil || vagueNames.contains(literalKey!)) { name = "DATABASE_URL" }
            if whole || category == "connection_url" {
                // The literal is the secret (or a URL carrying it): the literal becomes the lookup.
                return (lookup(name, language), open..<line.index(after: close), name)
            }
            if quote == "`" && language == .javascript {
                return ("${\(lookup(name, language))}", r, name)
            }
            // A secret inside a longer literal: close it, concatenate the lookup, reopen it.
            let op = language == .php ? " . " : " + "
            let pre = String(line[line.index(after: open)..<r.lowerBound])
            let post = String(line[r.upperBound..<close])
            var parts: [String] = []
            if !pre.isEmpty { parts.append("\(quote)\(pre)\(quote)") }
            parts.append(lookup(name, language))
            if !post.isEmpty { parts.append("\(quote)\(post)\(quote)") }
            return (parts.joined(separator: op), open..<line.index(after: close), name)
        }
        let key = assignedKey(before).flatMap { vagueNames.contains($0) ? nil : $0 }
        let name = forced ?? key ?? fallback
        return (lookup(name, .config), r, name)
    }

    /// The quotes of the string literal on `line` that contains `r`, if any.
    static func enclosingLiteral(_ line: String, around r: Range<String.Index>) -> (String.Index, String.Index)? {
        var i = r.lowerBound
        while i > line.startIndex {
            i = line.index(before: i)
            let c = line[i]
            guard c == "\"" || c == "'" || c == "`" else { continue }
            if let close = line[r.upperBound...].firstIndex(of: c) { return (i, close) }
        }
        return nil
    }

    /// A PEM block: the file goes when nothing else is in it, else the block becomes `${NAME}`.
    static func rewriteKey(_ text: String, value: String, fallbackName: String) -> Edit? {
        guard let at = text.range(of: value) else { return nil }
        let begin = text[..<at.lowerBound].range(of: "-----BEGIN", options: .backwards)?.lowerBound ?? at.lowerBound
        var end = at.upperBound
        if let e = text[at.upperBound...].range(of: "-----END") {
            end = text[e.upperBound...].range(of: "-----")?.upperBound ?? e.upperBound
        }
        let rest = (text[..<begin] + text[end...]).trimmingCharacters(in: .whitespacesAndNewlines)
        if rest.isEmpty { return Edit(text: "", variable: fallbackName, removeFile: true) }
        var out = text
        out.replaceSubrange(begin..<end, with: "${\(fallbackName)}")
        return Edit(text: out, variable: fallbackName, removeFile: false)
    }

    static func ensurePythonImport(_ text: String) -> String {
        let lines = text.components(separatedBy: "\n")
        if lines.contains(where: { $0.hasPrefix("import os") || $0.range(of: #"^import .*\bos\b"#, options: .regularExpression) != nil }) {
            return text
        }
        var at = 0
        while at < lines.count, lines[at].hasPrefix("#!") || lines[at].hasPrefix("# -*-") || lines[at].hasPrefix("from __future__") { at += 1 }
        var out = lines
        out.insert("import os", at: at)
        return out.joined(separator: "\n")
    }

    static func ensureGoImport(_ text: String) -> String {
        guard !text.contains("\"os\"") else { return text }
        var lines = text.components(separatedBy: "\n")
        guard let pkg = lines.firstIndex(where: { $0.hasPrefix("package ") }) else { return text }
        lines.insert(contentsOf: ["", "import \"os\""], at: pkg + 1)
        return lines.joined(separator: "\n")
    }

    /// `NAME=` lines added to an example environment file for names it does not list yet.
    public static func exampleEnv(_ existing: String?, adding names: [String]) -> String? {
        var text = existing ?? ""
        let listed = Set(
            text.components(separatedBy: "\n").compactMap { line -> String? in
                let t = line.trimmingCharacters(in: .whitespaces)
                guard !t.hasPrefix("#"), let eq = t.firstIndex(of: "=") else { return nil }
                return String(t[..<eq]).replacingOccurrences(of: "export ", with: "").trimmingCharacters(in: .whitespaces)
            })
        let missing = names.filter { !listed.contains($0) }
        guard !missing.isEmpty else { return nil }
        if !text.isEmpty && !text.hasSuffix("\n") { text += "\n" }
        var seen: Set<String> = []
        for n in missing where seen.insert(n).inserted { text += "\(n)=\n" }
        return text
    }
}
