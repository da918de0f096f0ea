// The JSON Schema subset validator: each keyword accepts what it must and refuses the rest with the JSON path
// and the problem; schemas using a keyword outside the subset are refused when read.
import ArbiterFormats
import Foundation
import Testing

@Suite("JSON Schema validator")
struct JSONSchemaTests {
    static let schema = #"""
    {
      "$schema": "https://json-schema.org/draft/2020-12/schema",
      "title": "test",
      "type": "object",
      "required": ["name", "items"],
      "additionalProperties": false,
      "properties": {
        "name": {"type": "string", "minLength": 1, "maxLength": 5},
        "count": {"type": "integer", "minimum": 0, "maximum": 10},
        "ratio": {"type": "number"},
        "flag": {"type": "boolean"},
        "kind": {"enum": ["a", "b", null]},
        "format": {"const": "x"},
        "word": {"type": "string", "pattern": "^[a-z]+$", "title": "lower-case letters"},
        "maybe": {"type": ["string", "null"]},
        "items": {"type": "array", "minItems": 1, "maxItems": 3, "items": {"$ref": "#/$defs/entry"}},
        "free": {"type": "object"},
        "typed": {"type": "object", "additionalProperties": {"type": "integer"}},
        "either": {"oneOf": [{"$ref": "#/$defs/left"}, {"$ref": "#/$defs/right"}]},
        "any": {"anyOf": [{"title": "null", "type": "null"}, {"type": "integer"}]}
      },
      "$defs": {
        "entry": {"type": "object", "required": ["id"], "properties": {"id": {"type": "integer"}}},
        "left": {"title": "a left", "type": "object", "required": ["l"], "additionalProperties": false,
                 "properties": {"l": {"type": "string"}, "both": {"type": "string"}}},
        "right": {"title": "a right", "type": "object", "required": ["r"], "additionalProperties": false,
                  "properties": {"r": {"type": "string"}, "both": {"type": "string"}}}
      }
    }
    """#

    func violations(_ document: String) throws -> [SchemaViolation] {
        let schema = try JSONSchema(data: Data(Self.schema.utf8), name: "test.schema.json")
        return try schema.violations(in: Data(document.utf8), file: "doc.json")
    }

    @Test("a matching document has no violations")
    func matching() throws {
        let document = #"""
        {"name": "ab", "count": 3, "ratio": 0.5, "flag": true, "kind": null, "format": "x", "word": "abc",
         "maybe": null, "items": [{"id": 1, "extra": "ok"}], "free": {"anything": [1, 2]}, "typed": {"a": 2.0},
         "either": {"l": "x", "both": "y"}, "any": 4}
        """#
        #expect(try violations(document) == [])
        #expect(try violations(#"{"name": "ab", "items": [{"id": 1}, {"id": 2}], "count": 10.0, "any": null}"#) == [])
    }

    @Test("each keyword refuses a wrong value, naming the JSON path", arguments: [
        (#"{"items": [{"id": 1}]}"#, "name", "required key is missing"),
        (#"{"name": 3, "items": [{"id": 1}]}"#, "name", "expected a string, found the number 3"),
        (#"{"name": "", "items": [{"id": 1}]}"#, "name", "is empty"),
        (#"{"name": "abcdef", "items": [{"id": 1}]}"#, "name", "at most 5"),
        (#"{"name": "a", "items": [{"id": 1}], "count": 2.5}"#, "count", "expected an integer"),
        (#"{"name": "a", "items": [{"id": 1}], "count": -1}"#, "count", "-1 is below the minimum 0"),
        (#"{"name": "a", "items": [{"id": 1}], "count": 11}"#, "count", "11 is above the maximum 10"),
        (#"{"name": "a", "items": [{"id": 1}], "ratio": "1"}"#, "ratio", "expected a number, found \"1\""),
        (#"{"name": "a", "items": [{"id": 1}], "flag": 1}"#, "flag", "expected a boolean"),
        (#"{"name": "a", "items": [{"id": 1}], "kind": "c"}"#, "kind", #""c" is not one of "a", "b", null"#),
        (#"{"name": "a", "items": [{"id": 1}], "format": "y"}"#, "format", #"is "y", expected "x""#),
        (#"{"name": "a", "items": [{"id": 1}], "word": "aB"}"#, "word",
         "does not match the pattern ^[a-z]+$ (lower-case letters)"),
        (#"{"name": "a", "items": [{"id": 1}], "maybe": 1}"#, "maybe", "expected a string or null"),
        (#"{"name": "a", "items": []}"#, "items", "at least 1 needed"),
        (#"{"name": "a", "items": [{"id": 1}, {"id": 1}, {"id": 1}, {"id": 1}]}"#, "items", "at most 3 allowed"),
        (#"{"name": "a", "items": [{"id": 1}, {"id": "2"}]}"#, "items[1].id", "expected an integer"),
        (#"{"name": "a", "items": [{"id": 1}, {}]}"#, "items[1].id", "required key is missing"),
        (#"{"name": "a", "items": [{"id": 1}], "nmae": 1}"#, "nmae", "unknown key (allowed here: any, count,"),
        (#"{"name": "a", "items": [{"id": 1}], "odd key": 1}"#, #"["odd key"]"#, "unknown key"),
        (#"{"name": "a", "items": [{"id": 1}], "typed": {"b": "x"}}"#, "typed.b", "expected an integer"),
        (#"{"name": "a", "items": [{"id": 1}], "either": {"l": "x", "r": "y"}}"#, "either",
         "matches none of: a left, a right; as a left: either.r: unknown key"),
        (#"{"name": "a", "items": [{"id": 1}], "either": {"r": "y", "both": 1}}"#, "either",
         "as a right: either.both: expected a string"),
        (#"{"name": "a", "items": [{"id": 1}], "any": "x"}"#, "any", "matches none of: null, alternative 2"),
        (#"[1, 2]"#, "(top level)", "expected an object, found an array"),
    ])
    func refusal(_ document: String, _ path: String, _ fragment: String) throws {
        let found = try violations(document)
        #expect(found.contains { $0.path == path && $0.problem.contains(fragment) }, "\(found)")
    }

    @Test("oneOf refuses a value that matches two alternatives")
    func oneOfTwice() throws {
        let text = #"{"oneOf": [{"type": "integer"}, {"type": "number"}]}"#
        let schema = try JSONSchema(data: Data(text.utf8), name: "s")
        let found = try schema.violations(in: Data("3".utf8), file: "doc.json")
        #expect(found.count == 1 && found[0].problem.contains("more than one"), "\(found)")
        #expect(try schema.violations(in: Data("3.5".utf8), file: "doc.json").isEmpty)
    }

    @Test("violations are listed up to the limit")
    func limit() throws {
        let schema = try JSONSchema(data: Data(#"{"type": "array", "items": {"type": "string"}}"#.utf8), name: "s")
        let document = Data("[\(Array(repeating: "1", count: 500).joined(separator: ","))]".utf8)
        #expect(try schema.violations(in: document, file: "d", limit: 7).count == 7)
        #expect(try schema.violations(in: document, file: "d").count == 100)
    }

    @Test("validate throws a FormatError naming the file, the path and the problem")
    func validateNamesFile() throws {
        let schema = try JSONSchema(data: Data(Self.schema.utf8), name: "test.schema.json")
        let error = #expect(throws: FormatError.self) {
            try schema.validate(Data(#"{"name": "a", "items": [{"id": "x"}], "kind": "z"}"#.utf8),
                                file: "/data/doc.json")
        }
        let text = error?.description ?? ""
        #expect(text.hasPrefix("/data/doc.json: "), "\(text)")
        #expect(text.contains("does not match test.schema.json"), "\(text)")
        #expect(text.contains("items[0].id: expected an integer"), "\(text)")
        #expect(text.contains(#"kind: "z" is not one of"#), "\(text)")
    }

    @Test("documents that are not JSON, or repeat a key, are refused naming the file", arguments: [
        (#"{"name": "a", "name": "b", "items": []}"#, "duplicate key \"name\""),
        (#"{"name": "a", "#, "not valid JSON"),
        ("", "not valid JSON"),
    ])
    func notJSON(_ document: String, _ fragment: String) throws {
        let schema = try JSONSchema(data: Data(Self.schema.utf8), name: "test.schema.json")
        let error = #expect(throws: FormatError.self) {
            try schema.violations(in: Data(document.utf8), file: "doc.json")
        }
        #expect(error?.file == "doc.json")
        #expect(error?.description.contains(fragment) == true, "\(String(describing: error))")
    }

    @Test("schemas with a keyword outside the subset, or a broken reference, are refused", arguments: [
        (#"{"type": "object", "patternProperties": {}}"#, "keyword 'patternProperties' is not supported"),
        (#"{"properties": {"a": {"not": {"type": "null"}}}}"#, "properties/a: keyword 'not' is not supported"),
        (#"{"if": {}, "then": {}}"#, "keyword 'if' is not supported"),
        (##"{"$ref": "#/$defs/missing"}"##, "'#/$defs/missing' names no definition"),
        (#"{"$ref": "other.json"}"#, "$ref must point into $defs"),
        (##"{"$defs": {"a": {"anyOf": [{"$ref": "#/$defs/b"}]}, "b": {"$ref": "#/$defs/a"}}}"##,
         "refers to itself through $ref alone"),
        (#"{"items": {"$defs": {}}}"#, "keyword '$defs' is not supported"),
        (#"{"type": "text"}"#, "unknown type 'text'"),
        (#"{"required": ["a"], "additionalProperties": false}"#, "'a' is required but not among the properties"),
        (#"{"minLength": -1}"#, "minLength must be a non-negative integer"),
        (#"{"pattern": "("}"#, "not a valid regular expression"),
        (#"{"enum": []}"#, "enum must be a non-empty array"),
        ("[]", "a schema must be an object"),
    ])
    func badSchemas(_ schema: String, _ fragment: String) throws {
        let error = #expect(throws: FormatError.self) {
            try JSONSchema(data: Data(schema.utf8), name: "bad.schema.json")
        }
        #expect(error?.file == "bad.schema.json")
        #expect(error?.description.contains(fragment) == true, "\(String(describing: error))")
    }
}
