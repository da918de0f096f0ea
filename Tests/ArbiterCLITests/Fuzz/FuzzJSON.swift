// A JSON value that keeps what the fuzz cases need to control exactly: key order, duplicate keys and the raw
// text of numbers (so `64.0`, `1e400` or `9223372036854775808` reach the file as written).
@testable import ArbiterFormats
import Foundation

indirect enum FuzzJSON: Equatable {
    case object([(String, FuzzJSON)])
    case array([FuzzJSON])
    case string(String)
    /// A number, or any raw text written as is (`raw("1e400")`, `raw("{\"a\":1,\"a\":2}")`).
    case raw(String)
    case bool(Bool)
    case null

    static func == (a: FuzzJSON, b: FuzzJSON) -> Bool { a.text() == b.text() }

    static func number(_ value: Int) -> FuzzJSON { .raw(String(value)) }
    static func number(_ value: Double) -> FuzzJSON { .raw("\(value)") }

    // MARK: Parsing (standard JSON; strings decoded, numbers kept as text)

    struct ParseError: Error, CustomStringConvertible {
        let description: String
    }

    static func parse(_ data: Data) throws -> FuzzJSON {
        var parser = Parser(bytes: Array(data))
        let value = try parser.value()
        parser.skipSpace()
        guard parser.index == parser.bytes.count else {
            throw ParseError(description: "trailing bytes at \(parser.index)")
        }
        return value
    }

    static func read(_ url: URL) throws -> FuzzJSON { try parse(Data(contentsOf: url)) }

    private struct Parser {
        let bytes: [UInt8]
        var index = 0

        mutating func skipSpace() {
            while index < bytes.count, [0x20, 0x0A, 0x0D, 0x09].contains(bytes[index]) { index += 1 }
        }

        mutating func value() throws -> FuzzJSON {
            skipSpace()
            guard index < bytes.count else { throw ParseError(description: "unexpected end") }
            switch bytes[index] {
            case UInt8(ascii: "{"):
                index += 1
                var members: [(String, FuzzJSON)] = []
                skipSpace()
                if bytes[index] == UInt8(ascii: "}") {
                    index += 1
                    return .object(members)
                }
                while true {
                    skipSpace()
                    let key = try string()
                    skipSpace()
                    try expect(":")
                    members.append((key, try value()))
                    skipSpace()
                    if bytes[index] == UInt8(ascii: ",") {
                        index += 1
                        continue
                    }
                    try expect("}")
                    return .object(members)
                }
            case UInt8(ascii: "["):
                index += 1
                var elements: [FuzzJSON] = []
                skipSpace()
                if bytes[index] == UInt8(ascii: "]") {
                    index += 1
                    return .array(elements)
                }
                while true {
                    elements.append(try value())
                    skipSpace()
                    if bytes[index] == UInt8(ascii: ",") {
                        index += 1
                        continue
                    }
                    try expect("]")
                    return .array(elements)
                }
            case UInt8(ascii: "\""): return .string(try string())
            case UInt8(ascii: "t"):
                try literal("true")
                return .bool(true)
            case UInt8(ascii: "f"):
                try literal("false")
                return .bool(false)
            case UInt8(ascii: "n"):
                try literal("null")
                return .null
            default:
                let start = index
                while index < bytes.count, "+-0123456789.eE".utf8.contains(bytes[index]) { index += 1 }
                guard index > start else { throw ParseError(description: "unexpected byte at \(start)") }
                return .raw(String(decoding: bytes[start..<index], as: UTF8.self))
            }
        }

        mutating func expect(_ c: Character) throws {
            guard index < bytes.count, bytes[index] == c.asciiValue! else {
                throw ParseError(description: "want \(c) at \(index)")
            }
            index += 1
        }

        mutating func literal(_ word: String) throws {
            for c in word { try expect(c) }
        }

        mutating func string() throws -> String {
            try expect("\"")
            var out: [UInt8] = []
            while true {
                guard index < bytes.count else { throw ParseError(description: "unterminated string") }
                let b = bytes[index]
                index += 1
                if b == UInt8(ascii: "\"") { break }
                guard b == UInt8(ascii: "\\") else {
                    out.append(b)
                    continue
                }
                let e = bytes[index]
                index += 1
                switch e {
                case UInt8(ascii: "n"): out.append(0x0A)
                case UInt8(ascii: "t"): out.append(0x09)
                case UInt8(ascii: "r"): out.append(0x0D)
                case UInt8(ascii: "b"): out.append(0x08)
                case UInt8(ascii: "f"): out.append(0x0C)
                case UInt8(ascii: "u"):
                    var unit = try hex4()
                    if (0xD800..<0xDC00).contains(unit), bytes[index] == UInt8(ascii: "\\") {
                        index += 2
                        let low = try hex4()
                        unit = 0x10000 + ((unit - 0xD800) << 10) + (low - 0xDC00)
                    }
                    out += Array(String(Character(Unicode.Scalar(unit) ?? "\u{FFFD}")).utf8)
                default: out.append(e)
                }
            }
            return String(decoding: out, as: UTF8.self)
        }

        mutating func hex4() throws -> UInt32 {
            guard index + 4 <= bytes.count,
                let v = UInt32(String(decoding: bytes[index..<index + 4], as: UTF8.self), radix: 16)
            else { throw ParseError(description: "bad \\u escape at \(index)") }
            index += 4
            return v
        }
    }

    // MARK: Writing

    func text(pretty: Bool = true) -> String {
        var out = ""
        write(into: &out, indent: pretty ? "" : nil)
        return out
    }

    var data: Data { Data(text().utf8) }

    private func write(into out: inout String, indent: String?) {
        let inner = indent.map { $0 + "  " }
        let newline = indent == nil ? "" : "\n"
        switch self {
        case .object(let members):
            if members.isEmpty {
                out += "{}"
                return
            }
            out += "{" + newline
            for (i, (key, value)) in members.enumerated() {
                out += (inner ?? "") + Self.quoted(key) + (indent == nil ? ":" : ": ")
                value.write(into: &out, indent: inner)
                out += (i + 1 < members.count ? "," : "") + newline
            }
            out += (indent ?? "") + "}"
        case .array(let elements):
            out += "["
            for (i, e) in elements.enumerated() {
                e.write(into: &out, indent: nil)
                if i + 1 < elements.count { out += indent == nil ? "," : ", " }
            }
            out += "]"
        case .string(let s): out += Self.quoted(s)
        case .raw(let text): out += text
        case .bool(let b): out += b ? "true" : "false"
        case .null: out += "null"
        }
    }

    /// A JSON string literal (escaped as the safetensors writer escapes header keys).
    static func quoted(_ s: String) -> String { SafetensorsWriter.jsonString(s) }

    // MARK: Paths ("text_config.hidden_size", "items.3.image")

    subscript(path: String) -> FuzzJSON? {
        var value: FuzzJSON? = self
        for key in path.split(separator: ".").map(String.init) { value = value?.child(key) }
        return value
    }

    func child(_ key: String) -> FuzzJSON? {
        switch self {
        case .object(let members): return members.last { $0.0 == key }?.1
        case .array(let elements): return Int(key).flatMap { elements.indices.contains($0) ? elements[$0] : nil }
        default: return nil
        }
    }

    /// A copy with the value at `path` replaced (nil removes it); a missing object key is appended.
    func setting(_ path: String, _ newValue: FuzzJSON?) -> FuzzJSON {
        setting(path.split(separator: ".").map(String.init)[...], newValue)
    }

    /// The same with the keys given one by one (for keys holding dots, such as tensor names).
    func setting(keys: [String], _ newValue: FuzzJSON?) -> FuzzJSON { setting(keys[...], newValue) }

    private func setting(_ keys: ArraySlice<String>, _ newValue: FuzzJSON?) -> FuzzJSON {
        guard let key = keys.first else { return newValue ?? .null }
        let rest = keys.dropFirst()
        switch self {
        case .object(var members):
            if let i = members.lastIndex(where: { $0.0 == key }) {
                if rest.isEmpty && newValue == nil {
                    members.remove(at: i)
                } else {
                    members[i].1 = members[i].1.setting(rest, newValue)
                }
            } else if let newValue {
                members.append((key, FuzzJSON.object([]).setting(rest, newValue)))
            }
            return .object(members)
        case .array(var elements):
            guard let i = Int(key), elements.indices.contains(i) else { return self }
            if rest.isEmpty && newValue == nil {
                elements.remove(at: i)
            } else {
                elements[i] = elements[i].setting(rest, newValue)
            }
            return .array(elements)
        default:
            return self
        }
    }

    var members: [(String, FuzzJSON)] {
        if case .object(let m) = self { return m }
        return []
    }

    var elements: [FuzzJSON] {
        if case .array(let e) = self { return e }
        return []
    }

    var integer: Int? {
        if case .raw(let text) = self { return Int(text) }
        return nil
    }

    var stringValue: String? {
        if case .string(let s) = self { return s }
        return nil
    }

    /// Every leaf below this value with its dotted path (arrays of numbers count as one leaf).
    func leaves(prefix: String = "") -> [(String, FuzzJSON)] {
        switch self {
        case .object(let members):
            return members.flatMap { key, value in value.leaves(prefix: prefix.isEmpty ? key : prefix + "." + key) }
        default:
            return [(prefix, self)]
        }
    }
}
