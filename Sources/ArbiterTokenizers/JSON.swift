// tokenizer.json through ArbiterJSON's StrictJSON (the package's one parser), read the way tokenizer.json always
// has been: object members in file order with the exact Unicode scalars of every key (Swift `String ==` and
// Foundation dictionaries compare canonically equivalent strings as equal, which would merge distinct vocabulary
// entries such as "é" and "e\u{301}"), duplicate keys kept, numbers read leniently as Double, nesting up to 512;
// errors are TokenizerErrors that name the file and, past parsing, the key path.
import ArbiterJSON
import Foundation

/// Parses tokenizer.json from its UTF-8 bytes.
enum JSONParser {
    /// How tokenizer.json is read (see the top of the file).
    static let options = StrictJSON.Options(maximumDepth: 512, duplicateKeys: .keep, numbers: .lenient)

    static func parse(_ data: Data, file: String) throws -> JSONValue {
        do {
            return try StrictJSON.parse(data, options: options)
        } catch let error as JSONSyntaxError {
            throw TokenizerError(.malformed, file: file, "invalid JSON at byte \(error.offset): \(error.message)")
        }
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
        error(.malformed, "expected \(expected), found \(value.kindName)")
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
