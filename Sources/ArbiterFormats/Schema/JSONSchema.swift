// JSON Schema (draft 2020-12): the subset Arbiter's own schemas use (Schemas/*.schema.json), checked strictly.
// A schema keyword outside the subset is refused when the schema is read, so a schema can never promise a
// check that is not made. Documents are parsed with StrictJSON (duplicate keys are errors, integers exact),
// and each violation names the JSON path (`items[3].kind`) and the problem.
import ArbiterJSON
import Foundation

/// One place where a document breaks its schema.
public struct SchemaViolation: Sendable, Equatable, CustomStringConvertible {
    /// The JSON path, e.g. `items[3].kind` (`(top level)` for the document itself).
    public let path: String
    public let problem: String

    public var description: String { "\(path): \(problem)" }
}

public struct JSONSchema: @unchecked Sendable {
    /// The schema's file name, for messages.
    public let name: String
    let root: SchemaNode
    let definitions: [String: SchemaNode]

    /// Reads a schema shipped as a resource of `owner` (a module); `url` is nil when the resource is missing.
    public init(resource url: URL?, name: String, owner: String) throws {
        guard let url else { throw FormatError(.missing, file: name, "not found among the \(owner) resources") }
        try self.init(url: url)
    }

    /// Reads a schema file.
    public init(url: URL) throws {
        try self.init(data: try JSONFile.data(at: url), name: url.lastPathComponent)
    }

    /// Reads a schema; `name` appears in messages. Throws `FormatError` for a keyword outside the subset,
    /// a malformed keyword value or a `$ref` that does not resolve.
    public init(data: Data, name: String) throws {
        self.name = name
        let value: JSONValue
        do { value = try StrictJSON.parse(data) } catch {
            throw FormatError(.malformed, file: name, "schema is not valid JSON (\(error))")
        }
        guard let top = value.members else {
            throw FormatError(.malformed, file: name, "a schema must be an object")
        }
        var definitions: [String: SchemaNode] = [:]
        if let defs = top["$defs"] {
            guard let entries = defs.members else {
                throw FormatError(.malformed, file: name, "$defs must be an object")
            }
            for (key, entry) in entries {
                definitions[key] = try SchemaNode(entry, at: "$defs/\(key)", schema: name, isRoot: false)
            }
        }
        root = try SchemaNode(value, at: "", schema: name, isRoot: true)
        self.definitions = definitions
        let references = root.references + definitions.values.flatMap(\.references)
        for reference in references where definitions[reference] == nil {
            throw FormatError(.malformed, file: name, "$ref '#/$defs/\(reference)' names no definition")
        }
        // A definition that reaches itself through $ref, oneOf and anyOf alone would recurse without reading the
        // document any deeper.
        for start in definitions.keys.sorted() {
            var seen: Set<String> = [], pending = definitions[start]!.sameLevelReferences
            while let next = pending.popLast() {
                if next == start {
                    throw FormatError(.malformed, file: name, "$defs/\(start) refers to itself through $ref alone")
                }
                if seen.insert(next).inserted { pending += definitions[next]?.sameLevelReferences ?? [] }
            }
        }
    }

    /// The violations of the JSON document `data` (at most `limit`, in document order of discovery).
    /// Throws `FormatError` naming `file` when `data` is not JSON (syntax errors, duplicate keys).
    public func violations(in data: Data, file: String, limit: Int = 100) throws -> [SchemaViolation] {
        let document: JSONValue
        do { document = try StrictJSON.parse(data) } catch {
            throw FormatError(.malformed, file: file, "not valid JSON (\(error))")
        }
        var found = ViolationList(limit: limit)
        check(document, against: root, path: "", into: &found)
        return found.items
    }

    /// Throws `FormatError` naming `file`, the first violations and their paths, when `data` breaks the schema.
    public func validate(_ data: Data, file: String) throws {
        let found = try violations(in: data, file: file, limit: 6)
        guard let first = found.first else { return }
        var problem = "does not match \(name): \(first)"
        if found.count > 1 {
            let more = found.dropFirst().prefix(4).map(\.description).joined(separator: "; ")
            problem += " (also: \(more)\(found.count > 5 ? "; …" : ""))"
        }
        throw FormatError(.malformed, file: file, problem)
    }

    /// Reads `url` and validates it.
    public func validate(fileAt url: URL) throws {
        try validate(try JSONFile.data(at: url), file: url.path)
    }

    // MARK: Validation

    struct ViolationList {
        let limit: Int
        var items: [SchemaViolation] = []
        var isFull: Bool { items.count >= limit }
        mutating func add(_ path: String, _ problem: String) {
            if !isFull { items.append(SchemaViolation(path: path.isEmpty ? "(top level)" : path, problem: problem)) }
        }
    }

    func check(_ value: JSONValue, against node: SchemaNode, path: String, into found: inout ViolationList) {
        guard !found.isFull else { return }
        if let reference = node.reference, let target = definitions[reference] {
            check(value, against: target, path: path, into: &found)
        }
        if let types = node.types, !types.contains(where: { $0.admits(value) }) {
            let wanted = types.map(\.phrase).sorted().joined(separator: " or ")
            found.add(path, "expected \(wanted), found \(Self.show(value))")
            return
        }
        if let constant = node.constant, !constant.sameJSON(as: value) {
            found.add(path, "is \(Self.show(value)), expected \(Self.show(constant))")
        }
        if let allowed = node.allowed, !allowed.contains(where: { $0.sameJSON(as: value) }) {
            found.add(path, "\(Self.show(value)) is not one of \(allowed.map(Self.show).joined(separator: ", "))")
        }
        checkAlternatives(value, node: node, path: path, into: &found)
        switch value {
        case .string(let s): checkString(s, node: node, path: path, into: &found)
        case .integer(let n): checkNumber(Double(n), node: node, path: path, into: &found)
        case .number(let x): checkNumber(x, node: node, path: path, into: &found)
        case .array(let elements):
            if let least = node.minItems, elements.count < least {
                found.add(path, "has \(elements.count) element(s), at least \(least) needed")
            }
            if let most = node.maxItems, elements.count > most {
                found.add(path, "has \(elements.count) elements, at most \(most) allowed")
            }
            if let items = node.items {
                for (i, element) in elements.enumerated() {
                    check(element, against: items, path: "\(path)[\(i)]", into: &found)
                }
            }
        case .object(let members): checkObject(JSONValue.members(members), node: node, path: path, into: &found)
        case .bool, .null: break
        }
    }

    func checkString(_ s: String, node: SchemaNode, path: String, into found: inout ViolationList) {
        let length = s.unicodeScalars.count
        if let least = node.minLength, length < least {
            found.add(path, least == 1 ? "is empty" : "\(Self.show(.string(s))) is shorter than \(least) characters")
        }
        if let most = node.maxLength, length > most {
            found.add(path, "is \(length) characters long, at most \(most) allowed")
        }
        if let pattern = node.pattern,
           pattern.regex.firstMatch(in: s, range: NSRange(s.startIndex..., in: s)) == nil {
            found.add(path, "\(Self.show(.string(s))) does not match the pattern \(pattern.source)"
                      + (node.title.map { " (\($0))" } ?? ""))
        }
    }

    func checkNumber(_ x: Double, node: SchemaNode, path: String, into found: inout ViolationList) {
        if let least = node.minimum, x < least {
            found.add(path, "\(Self.number(x)) is below the minimum \(Self.number(least))")
        }
        if let most = node.maximum, x > most {
            found.add(path, "\(Self.number(x)) is above the maximum \(Self.number(most))")
        }
    }

    func checkObject(_ members: [String: JSONValue], node: SchemaNode, path: String, into found: inout ViolationList) {
        for key in node.required where members[key] == nil {
            found.add(Self.path(path, key: key), "required key is missing")
        }
        for key in members.keys.sorted() {
            let child = Self.path(path, key: key)
            if let schema = node.properties[key] {
                check(members[key]!, against: schema, path: child, into: &found)
                continue
            }
            switch node.additional {
            case .allowed: break
            case .schema(let schema): check(members[key]!, against: schema, path: child, into: &found)
            case .refused:
                let known = node.properties.keys.sorted().joined(separator: ", ")
                found.add(child, "unknown key (allowed here: \(known))")
            }
        }
    }

    func checkAlternatives(_ value: JSONValue, node: SchemaNode, path: String, into found: inout ViolationList) {
        for (alternatives, exactlyOne) in [(node.oneOf, true), (node.anyOf, false)] {
            guard let alternatives else { continue }
            let results = alternatives.map { alternative -> [SchemaViolation] in
                var scratch = ViolationList(limit: 20)
                check(value, against: alternative, path: path, into: &scratch)
                return scratch.items
            }
            let matching = results.filter(\.isEmpty).count
            let names = alternatives.enumerated().map { i, alternative in
                alternative.title ?? alternative.reference.flatMap { definitions[$0]?.title } ?? "alternative \(i + 1)"
            }
            if matching == 0 {
                // The nearest alternative: one whose type admits the value, then the fewest violations.
                func rank(_ i: Int) -> (Int, Int) { (admitsType(value, alternatives[i]) ? 0 : 1, results[i].count) }
                let nearest = results.indices.min { rank($0) < rank($1) }!
                found.add(path, "matches none of: \(names.joined(separator: ", ")); as \(names[nearest]): "
                          + results[nearest][0].description)
            } else if exactlyOne && matching > 1 {
                let both = results.indices.filter { results[$0].isEmpty }.map { names[$0] }
                found.add(path, "matches more than one of: \(both.joined(separator: ", ")) (exactly one allowed)")
            }
        }
    }

    /// Whether `node`'s type (through its `$ref`) admits `value`; true when it names no type.
    func admitsType(_ value: JSONValue, _ node: SchemaNode) -> Bool {
        if let types = node.types, !types.contains(where: { $0.admits(value) }) { return false }
        guard let reference = node.reference, let target = definitions[reference] else { return true }
        return admitsType(value, target)
    }

    // MARK: Messages

    /// `items[3].kind`, `pieces[0]["odd key"]`.
    static func path(_ parent: String, key: String) -> String {
        let plain = !key.isEmpty && key.unicodeScalars.allSatisfy { $0.isASCII && ($0 == "_" || $0 == "$"
            || CharacterSet.alphanumerics.contains($0)) }
        if plain { return parent.isEmpty ? key : "\(parent).\(key)" }
        return "\(parent)[\(show(.string(key)))]"
    }

    static func number(_ x: Double) -> String {
        x == x.rounded() && abs(x) < 1e15 ? String(Int(x)) : String(x)
    }

    /// A short rendering of a value for messages.
    static func show(_ value: JSONValue) -> String {
        switch value {
        case .string(let s):
            let escaped = s.unicodeScalars.map { c in
                c == "\"" ? "\\\"" : c == "\n" ? "\\n" : c == "\\" ? "\\\\" : String(c)
            }
            let text = escaped.count > 60 ? escaped.prefix(57).joined() + "…" : escaped.joined()
            return "\"\(text)\""
        case .integer(let n): return "the number \(n)"
        case .number(let x): return "the number \(number(x))"
        case .bool(let b): return "\(b)"
        case .null: return "null"
        case .array: return "an array"
        case .object: return "an object"
        }
    }
}

// MARK: - Schema nodes

enum SchemaType: String, CaseIterable {
    case object, array, string, integer, number, boolean, null

    func admits(_ value: JSONValue) -> Bool {
        switch (self, value) {
        case (.object, .object), (.array, .array), (.string, .string), (.boolean, .bool), (.null, .null): return true
        case (.number, .integer), (.number, .number), (.integer, .integer): return true
        case (.integer, .number(let x)): return x == x.rounded() && x.isFinite   // 2.0 is an integer in JSON Schema
        default: return false
        }
    }

    var phrase: String {
        switch self {
        case .object: return "an object"
        case .array: return "an array"
        case .string: return "a string"
        case .integer: return "an integer"
        case .number: return "a number"
        case .boolean: return "a boolean"
        case .null: return "null"
        }
    }
}

final class SchemaNode {
    enum Additional {
        case allowed, refused
        case schema(SchemaNode)
    }

    struct Pattern {
        let source: String
        let regex: NSRegularExpression
    }

    /// Keywords the validator checks, and annotations it reads past.
    static let checked: Set<String> = [
        "$ref", "type", "properties", "required", "additionalProperties", "items", "minItems", "maxItems", "enum",
        "const", "minimum", "maximum", "minLength", "maxLength", "pattern", "oneOf", "anyOf",
    ]
    static let annotations: Set<String> = ["$schema", "$id", "$comment", "title", "description", "default", "examples"]

    var types: [SchemaType]?
    var properties: [String: SchemaNode] = [:]
    var required: [String] = []
    var additional = Additional.allowed
    var items: SchemaNode?
    var minItems: Int?, maxItems: Int?
    var allowed: [JSONValue]?
    var constant: JSONValue?
    var minimum: Double?, maximum: Double?
    var minLength: Int?, maxLength: Int?
    var pattern: Pattern?
    var reference: String?
    var oneOf: [SchemaNode]?, anyOf: [SchemaNode]?
    var title: String?

    init(_ value: JSONValue, at location: String, schema: String, isRoot: Bool) throws {
        let here = location.isEmpty ? "the top level" : location
        func fail(_ problem: String) -> FormatError { FormatError(.malformed, file: schema, "\(here): \(problem)") }
        guard let keywords = value.members else { throw fail("a schema must be an object") }
        func child(_ value: JSONValue, _ name: String) throws -> SchemaNode {
            try SchemaNode(value, at: location.isEmpty ? name : "\(location)/\(name)", schema: schema, isRoot: false)
        }
        func count(_ key: String) throws -> Int? {
            guard let v = keywords[key] else { return nil }
            guard case .integer(let n) = v, n >= 0 else { throw fail("\(key) must be a non-negative integer") }
            return n
        }
        func bound(_ key: String) throws -> Double? {
            switch keywords[key] {
            case nil: return nil
            case .integer(let n): return Double(n)
            case .number(let x): return x
            default: throw fail("\(key) must be a number")
            }
        }
        func list(_ key: String) throws -> [SchemaNode]? {
            guard let v = keywords[key] else { return nil }
            guard case .array(let entries) = v, !entries.isEmpty else { throw fail("\(key) must be a non-empty array") }
            return try entries.enumerated().map { try child($1, "\(key)/\($0)") }
        }
        for key in keywords.keys.sorted() where !Self.checked.contains(key) && !Self.annotations.contains(key) {
            guard key == "$defs" && isRoot else {
                throw FormatError(.unsupported, file: schema, "\(here): keyword '\(key)' is not supported by Arbiter's "
                    + "schema validator (it checks: \(Self.checked.sorted().joined(separator: ", ")))")
            }
        }
        if case .string(let t)? = keywords["title"] { title = t }
        switch keywords["type"] {
        case nil: break
        case .string(let name)?:
            guard let t = SchemaType(rawValue: name) else { throw fail("unknown type '\(name)'") }
            types = [t]
        case .array(let names)?:
            types = try names.map {
                guard case .string(let name) = $0, let t = SchemaType(rawValue: name) else {
                    throw fail("type lists type names")
                }
                return t
            }
        default: throw fail("type must be a name or a list of names")
        }
        if let v = keywords["properties"] {
            guard let entries = v.members else { throw fail("properties must be an object") }
            for (key, entry) in entries { properties[key] = try child(entry, "properties/\(key)") }
        }
        if let v = keywords["required"] {
            guard case .array(let names) = v else { throw fail("required must be an array of names") }
            required = try names.map {
                guard case .string(let name) = $0 else { throw fail("required must be an array of names") }
                return name
            }
        }
        switch keywords["additionalProperties"] {
        case nil, .bool(true)?: additional = .allowed
        case .bool(false)?:
            additional = .refused
            for name in required where properties[name] == nil {
                throw fail("'\(name)' is required but not among the properties, and additionalProperties is false")
            }
        case let v?: additional = .schema(try child(v, "additionalProperties"))
        }
        if let v = keywords["items"] { items = try child(v, "items") }
        minItems = try count("minItems")
        maxItems = try count("maxItems")
        minLength = try count("minLength")
        maxLength = try count("maxLength")
        minimum = try bound("minimum")
        maximum = try bound("maximum")
        if let v = keywords["enum"] {
            guard case .array(let values) = v, !values.isEmpty else { throw fail("enum must be a non-empty array") }
            allowed = values
        }
        constant = keywords["const"]
        if let v = keywords["pattern"] {
            guard case .string(let source) = v else { throw fail("pattern must be a string") }
            do { pattern = Pattern(source: source, regex: try NSRegularExpression(pattern: source)) } catch {
                throw fail("pattern \(source) is not a valid regular expression")
            }
        }
        if let v = keywords["$ref"] {
            let prefix = "#/$defs/"
            guard case .string(let target) = v, target.hasPrefix(prefix) else {
                throw fail("$ref must point into $defs (\"#/$defs/name\")")
            }
            reference = String(target.dropFirst(prefix.count))
        }
        oneOf = try list("oneOf")
        anyOf = try list("anyOf")
    }

    /// The `$defs` names this node refers to where the value checked is still this node's value.
    var sameLevelReferences: [String] {
        (reference.map { [$0] } ?? []) + ((oneOf ?? []) + (anyOf ?? [])).flatMap(\.sameLevelReferences)
    }

    /// The `$defs` names this node and its children refer to.
    var references: [String] {
        var out = reference.map { [$0] } ?? []
        for node in Array(properties.values) + [items].compactMap({ $0 }) + (oneOf ?? []) + (anyOf ?? []) {
            out += node.references
        }
        if case .schema(let node) = additional { out += node.references }
        return out
    }
}

extension JSONValue {
    /// Equality as JSON Schema defines it for `enum` and `const` (1 and 1.0 are the same number).
    func sameJSON(as other: JSONValue) -> Bool {
        switch (self, other) {
        case (.integer(let a), .number(let b)), (.number(let b), .integer(let a)): return Double(a) == b
        case (.array(let a), .array(let b)):
            return a.count == b.count && zip(a, b).allSatisfy { $0.sameJSON(as: $1) }
        case (.object(let a), .object(let b)):
            let (a, b) = (JSONValue.members(a), JSONValue.members(b))
            return a.count == b.count && a.allSatisfy { key, value in b[key].map { value.sameJSON(as: $0) } ?? false }
        case (.string(let a), .string(let b)): return a == b
        case (.integer(let a), .integer(let b)): return a == b
        case (.number(let a), .number(let b)): return a == b
        case (.bool(let a), .bool(let b)): return a == b
        case (.null, .null): return true
        default: return false
        }
    }
}
