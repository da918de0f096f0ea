// How tokenizer.json is read through the shared StrictJSON parser (ArbiterJSON): what it keeps that the
// strict reading of config files refuses or merges.
import Foundation
import Testing
@testable import ArbiterTokenizers

@Suite("tokenizer.json reading")
struct JSONReadingTests {
    static func parse(_ text: String) throws -> JSONNode {
        JSONNode(try JSONParser.parse(Data(text.utf8), file: "t.json"), file: "t.json")
    }

    @Test("canonically equivalent keys stay two members, in file order, with their exact scalars")
    func exactKeys() throws {
        let entries = try Self.parse("{\"\u{e9}\": 1, \"e\u{301}\": 2}").entries()
        #expect(entries.map { Array($0.key.unicodeScalars) } == [["\u{e9}"], ["e", "\u{301}"]])
        #expect(try entries.map { try $0.node.int() } == [1, 2])
    }

    @Test("duplicate keys are kept; a lookup finds the first")
    func duplicateKeys() throws {
        let root = try Self.parse(#"{"a": 1, "a": 2}"#)
        #expect(try root.entries().count == 2)
        #expect(try root.int("a") == 1)
    }

    @Test("numbers are read by Double, leading zeros and a bare trailing point included")
    func lenientNumbers() throws {
        let items = try Self.parse("[01, 1., -.5, 2e3, 7]").array()
        #expect(try items.map { try $0.double() } == [1, 1, -0.5, 2000, 7])
        #expect(throws: TokenizerError.self) { _ = try Self.parse("[--1]") }
    }

    @Test("nesting up to 512 levels")
    func depth() throws {
        _ = try Self.parse(String(repeating: "[", count: 512) + String(repeating: "]", count: 512))
        let error = #expect(throws: TokenizerError.self) {
            _ = try Self.parse(String(repeating: "[", count: 513) + String(repeating: "]", count: 513))
        }
        #expect(error?.description.contains("invalid JSON at byte 512: nesting deeper than 512") == true)
    }
}
