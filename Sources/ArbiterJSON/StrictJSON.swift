// StrictJSON: the package's one JSON parser (RFC 8259). ArbiterFormats reads safetensors headers, shard indexes,
// schemas and (through StrictJSONDecoder) every config file with it; ArbiterTokenizers reads tokenizer.json.
// Unlike JSONSerialization it refuses lone surrogates and nesting deeper than a limit, keeps integers exact and
// apart from numbers written with a fraction or an exponent, keeps object members in file order with their
// exact Unicode scalars (Swift `String ==` and dictionaries take canonically equivalent keys such as "é" and
// "e\u{301}" as one, which would merge distinct vocabulary entries), and can refuse duplicate object keys
// (which would silently drop a tensor or a setting).
//
// Why a target of its own: both readers sit on the same layer and neither may import the other, and
// ArbiterTokenizers depends on no other target (no OpenBLAS, HDF5 or libpng through ArbiterFormats). A tiny
// dependency-free target under both keeps one parser without giving the tokenizers a C library. Its API is
// `package`: shared inside Arbiter, not part of any product's public interface.

/// A parsed JSON value. Numbers without fraction or exponent that fit in `Int` are `.integer` (under
/// `Numbers.strict`). Objects keep their members in file order, duplicates included unless refused.
package indirect enum JSONValue: Sendable {
    case object([(key: String, value: JSONValue)])
    case array([JSONValue])
    case string(String)
    case integer(Int)
    case number(Double)
    case bool(Bool)
    case null

    /// A short name of the value's type for error messages ("an array", "a string", ...).
    package var kindName: String {
        switch self {
        case .object: return "an object"
        case .array: return "an array"
        case .string: return "a string"
        case .integer, .number: return "a number"
        case .bool: return "a boolean"
        case .null: return "null"
        }
    }

    package var isNull: Bool { if case .null = self { true } else { false } }

    /// An object's members by key (String equality: canonically equivalent keys are one key), or nil for any
    /// other value. Lossless for objects parsed with `DuplicateKeys.reject`; otherwise the first member wins.
    package var members: [String: JSONValue]? {
        guard case .object(let entries) = self else { return nil }
        return Self.members(entries)
    }

    /// `entries` by key; the first of canonically equal keys wins.
    package static func members(_ entries: [(key: String, value: JSONValue)]) -> [String: JSONValue] {
        Dictionary(entries.lazy.map { ($0.key, $0.value) }, uniquingKeysWith: { first, _ in first })
    }
}

/// A syntax error: what went wrong and the byte offset where it was noticed.
package struct JSONSyntaxError: Error, CustomStringConvertible {
    package let message: String
    package let offset: Int
    package var description: String { "\(message) at byte \(offset)" }
}

/// A duplicate key inside an object: the key and the path of the object holding it.
package struct JSONDuplicateKeyError: Error, CustomStringConvertible {
    package let key: String
    package let path: String
    package var description: String { "duplicate key \"\(key)\"" + (path.isEmpty ? "" : " in \(path)") }
}

package enum StrictJSON {
    /// Deepest array/object nesting accepted by default (safetensors headers nest three levels).
    package static let maximumDepth = 64

    /// What a parse accepts beyond RFC 8259's grammar.
    package struct Options: Sendable {
        package enum DuplicateKeys: Sendable {
            /// Throw `JSONDuplicateKeyError` for a key already in its object (String equality).
            case reject
            /// Keep every member in file order.
            case keep
        }

        package enum Numbers: Sendable {
            /// RFC 8259 numbers; integers that fit in `Int` are `.integer`, the rest `.number`.
            case strict
            /// Any run of digits, signs, '.', 'e' and 'E' that `Double` reads (so also `01`, `1.` and `-.5`),
            /// always as `.number`: how tokenizer.json has always been read.
            case lenient
        }

        package var maximumDepth: Int
        package var duplicateKeys: DuplicateKeys
        package var numbers: Numbers

        package init(maximumDepth: Int, duplicateKeys: DuplicateKeys, numbers: Numbers) {
            self.maximumDepth = maximumDepth
            self.duplicateKeys = duplicateKeys
            self.numbers = numbers
        }

        /// Safetensors headers, shard indexes, schemas and config files.
        package static let strict = Options(maximumDepth: StrictJSON.maximumDepth, duplicateKeys: .reject,
                                            numbers: .strict)
    }

    /// Parses one JSON value filling all of `bytes` (surrounding whitespace allowed).
    /// Throws `JSONSyntaxError` or `JSONDuplicateKeyError`.
    package static func parse(_ bytes: some Collection<UInt8>, options: Options = .strict) throws -> JSONValue {
        var parser = Parser(bytes: Array(bytes), options: options)
        parser.skipWhitespace()
        let value = try parser.value(depth: 0)
        parser.skipWhitespace()
        guard parser.index == parser.bytes.count else { throw parser.error("unexpected text after the JSON value") }
        return value
    }

    private struct Parser {
        /// One step of the path to the value being read; spelled out only for an error message.
        enum Step {
            case key(String)
            case index(Int)
        }

        let bytes: [UInt8]
        let options: Options
        var index = 0
        var trail: [Step] = []

        init(bytes: [UInt8], options: Options) {
            self.bytes = bytes
            self.options = options
        }

        func error(_ message: String) -> JSONSyntaxError { JSONSyntaxError(message: message, offset: index) }

        /// The path of the value being read: `"a"."b"[2]`, empty at the top.
        var path: String {
            var text = ""
            for step in trail {
                switch step {
                case .key(let key): text += text.isEmpty ? "\"\(key)\"" : ".\"\(key)\""
                case .index(let i): text += "[\(i)]"
                }
            }
            return text
        }

        mutating func skipWhitespace() {
            while index < bytes.count {
                switch bytes[index] {
                case 0x20, 0x09, 0x0A, 0x0D: index += 1
                default: return
                }
            }
        }

        mutating func value(depth: Int) throws -> JSONValue {
            guard index < bytes.count else { throw error("unexpected end of JSON") }
            switch bytes[index] {
            case UInt8(ascii: "{"): return try object(depth: depth + 1)
            case UInt8(ascii: "["): return try array(depth: depth + 1)
            case UInt8(ascii: "\""): return .string(try string())
            case UInt8(ascii: "t"): try literal("true"); return .bool(true)
            case UInt8(ascii: "f"): try literal("false"); return .bool(false)
            case UInt8(ascii: "n"): try literal("null"); return .null
            case UInt8(ascii: "-"), UInt8(ascii: "0")...UInt8(ascii: "9"):
                return options.numbers == .strict ? try number() : try lenientNumber()
            default:
                // Python's json writes NaN and Infinity, which JSON has no words for: say so, and whose value it is.
                let unquoted = String(String.UnicodeScalarView(path.unicodeScalars.filter { $0 != "\"" }))
                let at = trail.isEmpty ? "" : " in the value of \(unquoted)"
                let hint = [UInt8(ascii: "N"), UInt8(ascii: "I")].contains(bytes[index])
                    ? " (NaN and Infinity are not JSON numbers)" : ""
                throw error("unexpected character '\(printable(bytes[index]))'\(at)\(hint)")
            }
        }

        mutating func literal(_ word: String) throws {
            let expected = Array(word.utf8)
            guard bytes.count - index >= expected.count, Array(bytes[index..<index + expected.count]) == expected else {
                throw error("invalid literal (expected \(word))")
            }
            index += expected.count
        }

        func checkDepth(_ depth: Int) throws {
            guard depth <= options.maximumDepth else {
                throw error("nesting deeper than \(options.maximumDepth) levels")
            }
        }

        mutating func object(depth: Int) throws -> JSONValue {
            try checkDepth(depth)
            index += 1  // {
            var result: [(key: String, value: JSONValue)] = []
            var seen = Set<String>()
            skipWhitespace()
            if index < bytes.count, bytes[index] == UInt8(ascii: "}") { index += 1; return .object(result) }
            while true {
                skipWhitespace()
                guard index < bytes.count, bytes[index] == UInt8(ascii: "\"") else {
                    throw error("expected a string key")
                }
                let key = try string()
                skipWhitespace()
                guard index < bytes.count, bytes[index] == UInt8(ascii: ":") else {
                    throw error("expected ':' after key")
                }
                index += 1
                skipWhitespace()
                trail.append(.key(key))
                let child = try value(depth: depth)
                trail.removeLast()
                if options.duplicateKeys == .reject, !seen.insert(key).inserted {
                    throw JSONDuplicateKeyError(key: key, path: path)
                }
                result.append((key, child))
                skipWhitespace()
                guard index < bytes.count else { throw error("unexpected end of JSON inside an object") }
                if bytes[index] == UInt8(ascii: ",") { index += 1; continue }
                if bytes[index] == UInt8(ascii: "}") { index += 1; return .object(result) }
                throw error("expected ',' or '}' in an object")
            }
        }

        mutating func array(depth: Int) throws -> JSONValue {
            try checkDepth(depth)
            index += 1  // [
            var result: [JSONValue] = []
            skipWhitespace()
            if index < bytes.count, bytes[index] == UInt8(ascii: "]") { index += 1; return .array(result) }
            while true {
                skipWhitespace()
                trail.append(.index(result.count))
                result.append(try value(depth: depth))
                trail.removeLast()
                skipWhitespace()
                guard index < bytes.count else { throw error("unexpected end of JSON inside an array") }
                if bytes[index] == UInt8(ascii: ",") { index += 1; continue }
                if bytes[index] == UInt8(ascii: "]") { index += 1; return .array(result) }
                throw error("expected ',' or ']' in an array")
            }
        }

        mutating func number() throws -> JSONValue {
            let start = index
            if bytes[index] == UInt8(ascii: "-") { index += 1 }
            func isDigit(_ i: Int) -> Bool { i < bytes.count && bytes[i] >= 0x30 && bytes[i] <= 0x39 }
            guard isDigit(index) else { throw error("invalid number") }
            if bytes[index] == UInt8(ascii: "0") {
                index += 1
                if isDigit(index) { throw error("invalid number (leading zero)") }
            } else {
                while isDigit(index) { index += 1 }
            }
            var isInteger = true
            if index < bytes.count, bytes[index] == UInt8(ascii: ".") {
                isInteger = false
                index += 1
                guard isDigit(index) else { throw error("invalid number (no digits after '.')") }
                while isDigit(index) { index += 1 }
            }
            if index < bytes.count, bytes[index] == UInt8(ascii: "e") || bytes[index] == UInt8(ascii: "E") {
                isInteger = false
                index += 1
                if index < bytes.count, bytes[index] == UInt8(ascii: "+") || bytes[index] == UInt8(ascii: "-") {
                    index += 1
                }
                guard isDigit(index) else { throw error("invalid number (no digits in exponent)") }
                while isDigit(index) { index += 1 }
            }
            let text = String(decoding: bytes[start..<index], as: UTF8.self)
            if isInteger, let exact = Int(text) { return .integer(exact) }
            guard let double = Double(text) else { throw error("invalid number") }
            return .number(double)
        }

        /// `Numbers.lenient`: the longest run of number characters, read by `Double`.
        mutating func lenientNumber() throws -> JSONValue {
            let start = index
            while index < bytes.count, Self.isNumberByte(bytes[index]) { index += 1 }
            let text = String(decoding: bytes[start..<index], as: UTF8.self)
            guard let value = Double(text) else { throw error("invalid number '\(text)'") }
            return .number(value)
        }

        static func isNumberByte(_ b: UInt8) -> Bool {
            (b >= UInt8(ascii: "0") && b <= UInt8(ascii: "9")) || b == UInt8(ascii: "-") || b == UInt8(ascii: "+")
                || b == UInt8(ascii: ".") || b == UInt8(ascii: "e") || b == UInt8(ascii: "E")
        }

        mutating func string() throws -> String {
            index += 1  // opening quote
            var scalars = String.UnicodeScalarView()
            var runStart = index
            var escaped = false
            func flushRun(_ end: Int) throws {
                guard runStart < end else { return }
                guard let run = String(validating: bytes[runStart..<end], as: UTF8.self) else {
                    throw JSONSyntaxError(message: "invalid UTF-8 in a string", offset: runStart)
                }
                scalars.append(contentsOf: run.unicodeScalars)
            }
            while true {
                guard index < bytes.count else { throw error("unterminated string") }
                let byte = bytes[index]
                if byte == UInt8(ascii: "\"") {
                    if !escaped {
                        // No escape: the string is the bytes themselves (most strings; no scalar-by-scalar copy).
                        guard let text = String(validating: bytes[runStart..<index], as: UTF8.self) else {
                            throw JSONSyntaxError(message: "invalid UTF-8 in a string", offset: runStart)
                        }
                        index += 1
                        return text
                    }
                    try flushRun(index)
                    index += 1
                    return String(scalars)
                }
                if byte < 0x20 { throw error("control character in a string (must be escaped)") }
                if byte != UInt8(ascii: "\\") { index += 1; continue }
                escaped = true
                try flushRun(index)
                index += 1
                guard index < bytes.count else { throw error("unterminated escape") }
                let escape = bytes[index]
                index += 1
                switch escape {
                case UInt8(ascii: "\""): scalars.append("\"")
                case UInt8(ascii: "\\"): scalars.append("\\")
                case UInt8(ascii: "/"): scalars.append("/")
                case UInt8(ascii: "b"): scalars.append("\u{08}")
                case UInt8(ascii: "f"): scalars.append("\u{0C}")
                case UInt8(ascii: "n"): scalars.append("\n")
                case UInt8(ascii: "r"): scalars.append("\r")
                case UInt8(ascii: "t"): scalars.append("\t")
                case UInt8(ascii: "u"):
                    let first = try hex4()
                    var code = UInt32(first)
                    if (0xD800...0xDBFF).contains(first) {
                        guard bytes.count - index >= 2, bytes[index] == UInt8(ascii: "\\"),
                              bytes[index + 1] == UInt8(ascii: "u") else {
                            throw error("lone leading surrogate in \\u escape")
                        }
                        index += 2
                        let second = try hex4()
                        guard (0xDC00...0xDFFF).contains(second) else {
                            throw error("invalid trailing surrogate in \\u escape")
                        }
                        code = 0x10000 + ((UInt32(first) - 0xD800) << 10) + (UInt32(second) - 0xDC00)
                    } else if (0xDC00...0xDFFF).contains(first) {
                        throw error("lone trailing surrogate in \\u escape")
                    }
                    guard let scalar = Unicode.Scalar(code) else { throw error("invalid \\u escape") }
                    scalars.append(scalar)
                default:
                    index -= 1
                    throw error("invalid escape '\\\(printable(escape))'")
                }
                runStart = index
            }
        }

        mutating func hex4() throws -> UInt16 {
            guard bytes.count - index >= 4 else { throw error("truncated \\u escape") }
            var value: UInt16 = 0
            for _ in 0..<4 {
                let c = bytes[index]
                let digit: UInt8
                switch c {
                case UInt8(ascii: "0")...UInt8(ascii: "9"): digit = c - UInt8(ascii: "0")
                case UInt8(ascii: "a")...UInt8(ascii: "f"): digit = c - UInt8(ascii: "a") + 10
                case UInt8(ascii: "A")...UInt8(ascii: "F"): digit = c - UInt8(ascii: "A") + 10
                default: throw error("invalid hex digit in \\u escape")
                }
                value = value << 4 | UInt16(digit)
                index += 1
            }
            return value
        }

        func printable(_ byte: UInt8) -> String {
            (0x20..<0x7F).contains(byte) ? String(UnicodeScalar(byte)) : "\\x" + String(byte, radix: 16)
        }
    }
}
