// A small JSON reader for tokenizer.json: keeps object key order and the exact Unicode scalars of every string
// (Swift `String ==` and Foundation dictionaries compare canonically equivalent strings as equal, which would
// merge distinct vocabulary entries such as "é" and "e\u{301}"), and reports errors with a key path.
import Foundation

/// A parsed JSON value. Objects keep their entries in file order.
indirect enum JSONValue: Sendable {
    case null
    case bool(Bool)
    case number(Double)
    case string(String)
    case array([JSONValue])
    case object([(key: String, value: JSONValue)])

    var typeName: String {
        switch self {
        case .null: "null"
        case .bool: "a boolean"
        case .number: "a number"
        case .string: "a string"
        case .array: "an array"
        case .object: "an object"
        }
    }
}

/// Parses JSON text from UTF-8 bytes.
struct JSONParser {
    private let bytes: [UInt8]
    private var index = 0
    private let file: String
    private var depth = 0
    private static let maxDepth = 512

    static func parse(_ data: Data, file: String) throws -> JSONValue {
        var parser = JSONParser(bytes: [UInt8](data), file: file)
        parser.skipWhitespace()
        let value = try parser.parseValue()
        parser.skipWhitespace()
        guard parser.index == parser.bytes.count else {
            throw parser.error("unexpected text after the JSON value")
        }
        return value
    }

    private init(bytes: [UInt8], file: String) {
        self.bytes = bytes
        self.file = file
    }

    private func error(_ problem: String) -> TokenizerError {
        TokenizerError(.malformed, file: file, "invalid JSON at byte \(index): \(problem)")
    }

    private mutating func skipWhitespace() {
        while index < bytes.count {
            switch bytes[index] {
            case 0x20, 0x09, 0x0A, 0x0D: index += 1
            default: return
            }
        }
    }

    private mutating func parseValue() throws -> JSONValue {
        guard index < bytes.count else { throw error("unexpected end of file") }
        switch bytes[index] {
        case UInt8(ascii: "{"): return try parseObject()
        case UInt8(ascii: "["): return try parseArray()
        case UInt8(ascii: "\""): return .string(try parseString())
        case UInt8(ascii: "t"): try expectLiteral("true"); return .bool(true)
        case UInt8(ascii: "f"): try expectLiteral("false"); return .bool(false)
        case UInt8(ascii: "n"): try expectLiteral("null"); return .null
        case UInt8(ascii: "-"), UInt8(ascii: "0")...UInt8(ascii: "9"): return .number(try parseNumber())
        default: throw error("unexpected character '\(Unicode.Scalar(bytes[index]))'")
        }
    }

    private mutating func expectLiteral(_ literal: String) throws {
        let utf8 = Array(literal.utf8)
        guard index + utf8.count <= bytes.count, Array(bytes[index..<index + utf8.count]) == utf8 else {
            throw error("expected \(literal)")
        }
        index += utf8.count
    }

    private mutating func enter() throws {
        depth += 1
        if depth > Self.maxDepth { throw error("nesting deeper than \(Self.maxDepth)") }
    }

    private mutating func parseObject() throws -> JSONValue {
        try enter()
        defer { depth -= 1 }
        index += 1
        var entries: [(key: String, value: JSONValue)] = []
        skipWhitespace()
        if index < bytes.count, bytes[index] == UInt8(ascii: "}") {
            index += 1
            return .object(entries)
        }
        while true {
            skipWhitespace()
            guard index < bytes.count, bytes[index] == UInt8(ascii: "\"") else { throw error("expected a key string") }
            let key = try parseString()
            skipWhitespace()
            guard index < bytes.count, bytes[index] == UInt8(ascii: ":") else { throw error("expected ':'") }
            index += 1
            skipWhitespace()
            let value = try parseValue()
            entries.append((key, value))
            skipWhitespace()
            guard index < bytes.count else { throw error("unexpected end of file in an object") }
            if bytes[index] == UInt8(ascii: ",") {
                index += 1
            } else if bytes[index] == UInt8(ascii: "}") {
                index += 1
                return .object(entries)
            } else {
                throw error("expected ',' or '}'")
            }
        }
    }

    private mutating func parseArray() throws -> JSONValue {
        try enter()
        defer { depth -= 1 }
        index += 1
        var items: [JSONValue] = []
        skipWhitespace()
        if index < bytes.count, bytes[index] == UInt8(ascii: "]") {
            index += 1
            return .array(items)
        }
        while true {
            skipWhitespace()
            items.append(try parseValue())
            skipWhitespace()
            guard index < bytes.count else { throw error("unexpected end of file in an array") }
            if bytes[index] == UInt8(ascii: ",") {
                index += 1
            } else if bytes[index] == UInt8(ascii: "]") {
                index += 1
                return .array(items)
            } else {
                throw error("expected ',' or ']'")
            }
        }
    }

    private mutating func parseNumber() throws -> Double {
        let start = index
        while index < bytes.count, Self.isNumberByte(bytes[index]) { index += 1 }
        let text = String(decoding: bytes[start..<index], as: UTF8.self)
        guard let value = Double(text) else { throw error("bad number '\(text)'") }
        return value
    }

    private static func isNumberByte(_ b: UInt8) -> Bool {
        (b >= UInt8(ascii: "0") && b <= UInt8(ascii: "9")) || b == UInt8(ascii: "-") || b == UInt8(ascii: "+")
            || b == UInt8(ascii: ".") || b == UInt8(ascii: "e") || b == UInt8(ascii: "E")
    }

    private mutating func parseString() throws -> String {
        index += 1  // opening quote
        let start = index
        // Fast path: no escapes.
        while index < bytes.count {
            let b = bytes[index]
            if b == UInt8(ascii: "\"") {
                let slice = bytes[start..<index]
                index += 1
                return try decodeUTF8(slice)
            }
            if b == UInt8(ascii: "\\") { break }
            if b < 0x20 { throw error("control character in a string") }
            index += 1
        }
        var buffer = [UInt8](bytes[start..<index])
        while index < bytes.count {
            let b = bytes[index]
            if b == UInt8(ascii: "\"") {
                index += 1
                return try decodeUTF8(buffer[...])
            }
            if b < 0x20 { throw error("control character in a string") }
            if b != UInt8(ascii: "\\") {
                buffer.append(b)
                index += 1
                continue
            }
            index += 1
            guard index < bytes.count else { break }
            let escape = bytes[index]
            index += 1
            switch escape {
            case UInt8(ascii: "\""): buffer.append(0x22)
            case UInt8(ascii: "\\"): buffer.append(0x5C)
            case UInt8(ascii: "/"): buffer.append(0x2F)
            case UInt8(ascii: "b"): buffer.append(0x08)
            case UInt8(ascii: "f"): buffer.append(0x0C)
            case UInt8(ascii: "n"): buffer.append(0x0A)
            case UInt8(ascii: "r"): buffer.append(0x0D)
            case UInt8(ascii: "t"): buffer.append(0x09)
            case UInt8(ascii: "u"):
                var code = try parseHex4()
                if (0xD800..<0xDC00).contains(code) {
                    guard index + 1 < bytes.count, bytes[index] == UInt8(ascii: "\\"),
                          bytes[index + 1] == UInt8(ascii: "u")
                    else { throw error("unpaired surrogate \\u\(String(code, radix: 16))") }
                    index += 2
                    let low = try parseHex4()
                    guard (0xDC00..<0xE000).contains(low) else { throw error("unpaired surrogate") }
                    code = 0x10000 + ((code - 0xD800) << 10) + (low - 0xDC00)
                } else if (0xDC00..<0xE000).contains(code) {
                    throw error("unpaired surrogate \\u\(String(code, radix: 16))")
                }
                guard let scalar = Unicode.Scalar(code) else { throw error("invalid code point") }
                buffer.append(contentsOf: Array(String(Character(scalar)).utf8))
            default:
                throw error("unknown escape '\\\(Unicode.Scalar(escape))'")
            }
        }
        throw error("unterminated string")
    }

    private func decodeUTF8(_ bytes: ArraySlice<UInt8>) throws -> String {
        guard let text = String(validating: bytes, as: UTF8.self) else { throw error("invalid UTF-8 in a string") }
        return text
    }

    private mutating func parseHex4() throws -> UInt32 {
        guard index + 4 <= bytes.count else { throw error("truncated \\u escape") }
        var value: UInt32 = 0
        for _ in 0..<4 {
            let b = bytes[index]
            let digit: UInt32
            switch b {
            case UInt8(ascii: "0")...UInt8(ascii: "9"): digit = UInt32(b - UInt8(ascii: "0"))
            case UInt8(ascii: "a")...UInt8(ascii: "f"): digit = UInt32(b - UInt8(ascii: "a") + 10)
            case UInt8(ascii: "A")...UInt8(ascii: "F"): digit = UInt32(b - UInt8(ascii: "A") + 10)
            default: throw error("bad hex digit in \\u escape")
            }
            value = value * 16 + digit
            index += 1
        }
        return value
    }
}

/// Where a value sits in the file: built cheaply while reading, spelled out only for error messages.
indirect enum JSONPath: Sendable, CustomStringConvertible {
    case root
    case key(JSONPath, String)
    case index(JSONPath, Int)

    var description: String {
        switch self {
        case .root: ""
        case .key(.root, let key): key
        case .key(let parent, let key): "\(parent).\(key)"
        case .index(let parent, let i): "\(parent)[\(i)]"
        }
    }
}

/// A JSON value together with where it sits (file and key path), so that every accessor can throw an error
/// naming both.
struct JSONNode: Sendable {
    let value: JSONValue
    let file: String
    let location: JSONPath

    init(_ value: JSONValue, file: String, location: JSONPath = .root) {
        self.value = value
        self.file = file
        self.location = location
    }

    var path: String { location.description }

    var isNull: Bool { if case .null = value { true } else { false } }

    func error(_ kind: TokenizerError.Kind, _ problem: String) -> TokenizerError {
        TokenizerError(kind, file: file, path.isEmpty ? problem : "\(path): \(problem)")
    }

    private func wrongType(_ expected: String) -> TokenizerError {
        error(.malformed, "expected \(expected), found \(value.typeName)")
    }

    /// The value at `key`, or nil when the key is absent or null.
    func optional(_ key: String) throws -> JSONNode? {
        guard case .object(let entries) = value else { throw wrongType("an object") }
        for entry in entries where entry.key.utf8.elementsEqual(key.utf8) {
            if case .null = entry.value { return nil }
            return JSONNode(entry.value, file: file, location: .key(location, key))
        }
        return nil
    }

    func require(_ key: String) throws -> JSONNode {
        guard let node = try optional(key) else { throw error(.missing, "missing key '\(key)'") }
        return node
    }

    func string() throws -> String {
        guard case .string(let s) = value else { throw wrongType("a string") }
        return s
    }

    func bool() throws -> Bool {
        guard case .bool(let b) = value else { throw wrongType("a boolean") }
        return b
    }

    func double() throws -> Double {
        guard case .number(let d) = value else { throw wrongType("a number") }
        return d
    }

    func int() throws -> Int {
        guard case .number(let d) = value else { throw wrongType("an integer") }
        guard d.rounded() == d, abs(d) < 9.0e15 else { throw error(.malformed, "expected an integer, found \(d)") }
        return Int(d)
    }

    func array() throws -> [JSONNode] {
        guard case .array(let items) = value else { throw wrongType("an array") }
        return items.enumerated().map { JSONNode($0.element, file: file, location: .index(location, $0.offset)) }
    }

    func entries() throws -> [(key: String, node: JSONNode)] {
        guard case .object(let items) = value else { throw wrongType("an object") }
        return items.map { ($0.key, JSONNode($0.value, file: file, location: .key(location, $0.key))) }
    }

    func string(_ key: String) throws -> String { try require(key).string() }
    func int(_ key: String) throws -> Int { try require(key).int() }
    func optionalString(_ key: String) throws -> String? { try optional(key)?.string() }
    func optionalInt(_ key: String) throws -> Int? { try optional(key)?.int() }
    func bool(_ key: String, default defaultValue: Bool) throws -> Bool { try optional(key)?.bool() ?? defaultValue }

    /// The stage's `type` string.
    func typeName() throws -> String { try string("type") }
}
