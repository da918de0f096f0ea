// Malformed safetensors files: a named corpus where each file must fail with the right FormatError kind and a
// message naming the file and the problem, and random mutations of a valid file that must never crash.
import Foundation
import Testing
import PropertyBased
import ArbiterTensor
@testable import ArbiterFormats

/// Builders of raw safetensors bytes.
enum SafetensorsBytes {
    /// The 8-byte little-endian length prefix.
    static func prefix(_ length: UInt64) -> [UInt8] { (0..<8).map { UInt8(truncatingIfNeeded: length >> (8 * $0)) } }

    /// A file from header bytes (length computed) and data bytes.
    static func file(header: [UInt8], data: [UInt8] = []) -> [UInt8] { prefix(UInt64(header.count)) + header + data }

    static func file(header: String, data: [UInt8] = []) -> [UInt8] { file(header: Array(header.utf8), data: data) }

    /// One tensor entry's JSON.
    static func entry(_ name: String, _ dtype: String = "F32", _ shape: String = "[2]", _ offsets: String = "[0,8]") -> String {
        #""\#(name)":{"dtype":"\#(dtype)","shape":\#(shape),"data_offsets":\#(offsets)}"#
    }

    /// A header object of entries.
    static func header(_ entries: String...) -> String { "{" + entries.joined(separator: ",") + "}" }

    /// The header of `one()` with its defaults, and its 8 data bytes (two F32 values).
    static let oneHeader = #"{"t":{"dtype":"F32","shape":[2],"data_offsets":[0,8]}}"#
    static let floats: [UInt8] = [0, 0, 128, 63, 0, 0, 0, 64]

    /// Length prefix and header padded with spaces as the reference writer does (to a multiple of 8), plus 8
    /// more spaces so that the padding can lose 4 bytes.
    static func padded(_ header: String) -> [UInt8] {
        var bytes = Array(header.utf8)
        bytes += [UInt8](repeating: UInt8(ascii: " "), count: (8 - bytes.count % 8) % 8 + 8)
        return file(header: bytes)
    }

    /// A file prefix (length + header) whose length field is `by` smaller: the last bytes move to the data.
    static func shortened(_ prefixed: [UInt8], by: Int) -> [UInt8] {
        let length = prefixed[0..<8].reversed().reduce(UInt64(0)) { $0 << 8 | UInt64($1) }
        return prefix(length - UInt64(by)) + prefixed[8...]
    }

    /// A file prefix whose header gets `insert` appended and a length 4 larger than the header it had (so 4
    /// bytes of what follows, data or `insert`, are counted as header).
    static func lengthened(_ prefixed: [UInt8], insert: [UInt8]) -> [UInt8] {
        let length = prefixed[0..<8].reversed().reduce(UInt64(0)) { $0 << 8 | UInt64($1) }
        return prefix(length + 4) + prefixed[8...] + insert
    }

    /// A header with one F32 tensor "t" whose entry fields are replaced, over an 8-byte data buffer.
    static func one(_ dtype: String = "\"F32\"", shape: String = "[2]", offsets: String = "[0,8]", data: Int = 8) -> [UInt8] {
        file(header: #"{"t":{"dtype":\#(dtype),"shape":\#(shape),"data_offsets":\#(offsets)}}"#,
             data: [UInt8](repeating: 0, count: data))
    }
}

/// A malformed file: its name (also the file name), bytes, the error kind and a phrase the message must hold.
struct MalformedCase: Sendable, CustomTestStringConvertible {
    let name: String
    let bytes: [UInt8]
    let kind: FormatError.Kind
    let phrase: String
    var testDescription: String { name }

    init(_ name: String, _ bytes: [UInt8], _ kind: FormatError.Kind, _ phrase: String) {
        self.name = name
        self.bytes = bytes
        self.kind = kind
        self.phrase = phrase
    }

    init(_ name: String, header: String, data: Int = 8, _ kind: FormatError.Kind, _ phrase: String) {
        self.init(name, SafetensorsBytes.file(header: header, data: [UInt8](repeating: 0, count: data)), kind, phrase)
    }

    typealias B = SafetensorsBytes

    static let all: [MalformedCase] = lengthCases + jsonCases + structureCases + shapeCases + offsetCases
        + sizeCases + overlapCases + coverageCases + paddingCases + dtypeCases

    static let lengthCases: [MalformedCase] = [
        MalformedCase("empty-file", [], .truncated, "shorter than the 8-byte header length"),
        MalformedCase("three-bytes", [1, 0, 0], .truncated, "shorter than the 8-byte header length"),
        MalformedCase("seven-bytes", [2, 0, 0, 0, 0, 0, 0], .truncated, "is 7 bytes"),
        MalformedCase("length-2^63", B.prefix(1 << 63) + Array("{}".utf8), .tooLarge, "over the 100000000-byte limit"),
        MalformedCase("length-max", B.prefix(.max) + Array("{}".utf8), .tooLarge, "over the 100000000-byte limit"),
        MalformedCase("length-just-over-cap", B.prefix(100_000_001) + Array("{}".utf8), .tooLarge, "header length 100000001"),
        MalformedCase("length-past-end", B.prefix(100) + Array("{}".utf8), .truncated, "runs past the end of the file"),
        MalformedCase("length-one-past-end", B.prefix(3) + Array("{}".utf8), .truncated, "header length 3 runs past the end"),
        MalformedCase("only-length", B.prefix(2), .truncated, "runs past the end of the file (8 bytes)"),
    ]

    static let jsonCases: [MalformedCase] = [
        MalformedCase("invalid-utf8", B.file(header: [UInt8]("{\"a".utf8) + [0xFF] + [UInt8]("\":{}}".utf8)), .malformed, "not valid UTF-8"),
        MalformedCase("truncated-utf8", B.file(header: [UInt8]("{\"\u{e9}".utf8).dropLast() + [UInt8]("\":1}".utf8)), .malformed, "not valid UTF-8"),
        MalformedCase("overlong-utf8", B.file(header: [UInt8]("{\"".utf8) + [0xC0, 0xAF] + [UInt8]("\":1}".utf8)), .malformed, "not valid UTF-8"),
        MalformedCase("surrogate-utf8", B.file(header: [UInt8]("{\"".utf8) + [0xED, 0xA0, 0x80] + [UInt8]("\":1}".utf8)), .malformed, "not valid UTF-8"),
        MalformedCase("empty-header", B.file(header: ""), .malformed, "not valid JSON"),
        MalformedCase("spaces-only-header", B.file(header: "        "), .malformed, "not valid JSON"),
        MalformedCase("open-brace", B.file(header: "{"), .malformed, "not valid JSON"),
        MalformedCase("value-missing", B.file(header: #"{"a":"#), .malformed, "not valid JSON"),
        MalformedCase("trailing-text", B.file(header: "{} x"), .malformed, "unexpected text after the JSON value"),
        MalformedCase("two-objects", B.file(header: "{}{}"), .malformed, "unexpected text after the JSON value"),
        MalformedCase("trailing-comma", B.file(header: #"{"__metadata__":{},}"#), .malformed, "expected a string key"),
        MalformedCase("single-quotes", B.file(header: "{'t':{}}"), .malformed, "expected a string key"),
        MalformedCase("unquoted-key", B.file(header: "{t:{}}"), .malformed, "expected a string key"),
        MalformedCase("nan-literal", B.one(shape: "[NaN]"), .malformed, "not valid JSON"),
        MalformedCase("leading-zero", B.one(shape: "[02]"), .malformed, "leading zero"),
        MalformedCase("plus-sign", B.one(shape: "[+2]"), .malformed, "not valid JSON"),
        MalformedCase("control-char-in-name", B.file(header: "{\"a\u{01}b\":{}}"), .malformed, "control character in a string"),
        MalformedCase("invalid-escape", B.file(header: #"{"a\x":{}}"#), .malformed, "invalid escape"),
        MalformedCase("lone-surrogate", B.file(header: #"{"\ud800":{}}"#), .malformed, "lone leading surrogate"),
        MalformedCase("lone-trailing-surrogate", B.file(header: #"{"\udc00x":{}}"#), .malformed, "lone trailing surrogate"),
        MalformedCase("short-unicode-escape", B.file(header: #"{"\u12":{}}"#), .malformed, "invalid hex digit"),
        MalformedCase("deep-nesting", B.file(header: String(repeating: "[", count: 200) + String(repeating: "]", count: 200)),
                      .malformed, "nesting deeper than 64 levels"),
        MalformedCase("nul-padding", B.file(header: [UInt8]("{}".utf8) + [0, 0, 0, 0, 0, 0]), .malformed, "not valid JSON"),
        MalformedCase("comment", B.file(header: "{/* c */}"), .malformed, "not valid JSON"),
        MalformedCase("unterminated-string", B.file(header: #"{"abc"#), .malformed, "unterminated string"),
        MalformedCase("bad-literal", B.file(header: #"{"__metadata__":tru}"#), .malformed, "invalid literal"),
        MalformedCase("missing-colon", B.file(header: #"{"a" {}}"#), .malformed, "expected ':'"),
    ]

    static let structureCases: [MalformedCase] = [
        MalformedCase("header-array", B.file(header: "[]"), .malformed, "not a JSON object (found an array)"),
        MalformedCase("header-string", B.file(header: #""t""#), .malformed, "not a JSON object (found a string)"),
        MalformedCase("header-number", B.file(header: "42"), .malformed, "not a JSON object (found a number)"),
        MalformedCase("header-null", B.file(header: "null"), .malformed, "not a JSON object (found null)"),
        MalformedCase("metadata-array", B.file(header: #"{"__metadata__":["a"]}"#), .malformed, "__metadata__ is an array"),
        MalformedCase("metadata-number-value", B.file(header: #"{"__metadata__":{"format":1}}"#), .malformed,
                      "__metadata__ value of \"format\" is a number"),
        MalformedCase("metadata-null-value", B.file(header: #"{"__metadata__":{"format":null}}"#), .malformed,
                      "__metadata__ value of \"format\" is null"),
        MalformedCase("duplicate-tensor", header: "{" + B.entry("t") + "," + B.entry("t") + "}", .unexpected,
                      "duplicate tensor name \"t\""),
        MalformedCase("duplicate-by-escape", header: "{" + B.entry("ab") + "," + B.entry(#"a\u0062"#) + "}", .unexpected,
                      "duplicate tensor name \"ab\""),
        MalformedCase("duplicate-metadata", B.file(header: #"{"__metadata__":{},"__metadata__":{}}"#), .unexpected,
                      "duplicate tensor name \"__metadata__\""),
        MalformedCase("duplicate-dtype-key", header: #"{"t":{"dtype":"F32","dtype":"F16","shape":[2],"data_offsets":[0,8]}}"#,
                      .malformed, "duplicate key \"dtype\" in \"t\""),
        MalformedCase("duplicate-metadata-key", B.file(header: #"{"__metadata__":{"a":"1","a":"2"}}"#), .malformed,
                      "duplicate key \"a\" in \"__metadata__\""),
        MalformedCase("entry-number", B.file(header: #"{"t":3}"#), .malformed, "tensor \"t\": entry is a number"),
        MalformedCase("entry-array", B.file(header: #"{"t":[]}"#), .malformed, "tensor \"t\": entry is an array"),
        MalformedCase("entry-string", B.file(header: #"{"t":"F32"}"#), .malformed, "tensor \"t\": entry is a string"),
        MalformedCase("entry-null", B.file(header: #"{"t":null}"#), .malformed, "tensor \"t\": entry is null"),
        MalformedCase("missing-dtype", header: #"{"t":{"shape":[2],"data_offsets":[0,8]}}"#, .malformed, "missing \"dtype\""),
        MalformedCase("missing-shape", header: #"{"t":{"dtype":"F32","data_offsets":[0,8]}}"#, .malformed, "missing \"shape\""),
        MalformedCase("missing-offsets", header: #"{"t":{"dtype":"F32","shape":[2]}}"#, .malformed, "missing \"data_offsets\""),
        MalformedCase("empty-entry", B.file(header: #"{"t":{}}"#), .malformed, "missing \"dtype\""),
        MalformedCase("empty-name", header: "{" + B.entry("") + "}", .malformed, "empty tensor name"),
        MalformedCase("dtype-number", B.one("32"), .malformed, "dtype is a number"),
        MalformedCase("dtype-null", B.one("null"), .malformed, "dtype is null"),
        MalformedCase("dtype-unknown", B.one("\"F31\""), .malformed, "unknown dtype \"F31\""),
        MalformedCase("dtype-lowercase", B.one("\"f32\""), .malformed, "unknown dtype \"f32\""),
        MalformedCase("dtype-empty", B.one("\"\""), .malformed, "unknown dtype \"\""),
    ]

    static let shapeCases: [MalformedCase] = [
        MalformedCase("shape-string", B.one(shape: "\"2\""), .malformed, "shape is a string"),
        MalformedCase("shape-object", B.one(shape: "{}"), .malformed, "shape is an object"),
        MalformedCase("shape-null", B.one(shape: "null"), .malformed, "shape is null"),
        MalformedCase("shape-fraction", B.one(shape: "[2.5]"), .malformed, "shape holds a number that is not an integer"),
        MalformedCase("shape-float-two", B.one(shape: "[2.0]"), .malformed, "shape holds a number that is not an integer"),
        MalformedCase("shape-exponent", B.one(shape: "[2e0]"), .malformed, "shape holds a number that is not an integer"),
        MalformedCase("shape-bool", B.one(shape: "[true]"), .malformed, "shape holds a boolean"),
        MalformedCase("shape-nested", B.one(shape: "[[2]]"), .malformed, "shape holds an array"),
        MalformedCase("shape-huge-integer", B.one(shape: "[100000000000000000000000]"), .malformed, "not an integer"),
        MalformedCase("shape-negative", B.one(shape: "[-2]"), .malformed, "negative dimension in shape [-2]"),
        MalformedCase("shape-negative-pair", B.one(shape: "[-2,-1]", offsets: "[0,8]"), .malformed, "negative dimension"),
        MalformedCase("shape-overflow", B.one(shape: "[4611686018427387904,4]"), .malformed, "overflows"),
        MalformedCase("shape-overflow-many", B.one(shape: "[65536,65536,65536,65536]"), .malformed, "overflows"),
    ]

    static let offsetCases: [MalformedCase] = [
        MalformedCase("offsets-one", B.one(offsets: "[8]"), .malformed, "data_offsets is not two integers (1 given)"),
        MalformedCase("offsets-three", B.one(offsets: "[0,8,8]"), .malformed, "data_offsets is not two integers (3 given)"),
        MalformedCase("offsets-empty", B.one(offsets: "[]"), .malformed, "data_offsets is not two integers (0 given)"),
        MalformedCase("offsets-strings", B.one(offsets: #"["0","8"]"#), .malformed, "data_offsets holds a string"),
        MalformedCase("offsets-object", B.one(offsets: #"{"begin":0}"#), .malformed, "data_offsets is an object"),
        MalformedCase("offsets-fraction", B.one(offsets: "[0,8.5]"), .malformed, "data_offsets holds a number"),
        MalformedCase("offsets-negative", B.one(offsets: "[-8,0]"), .malformed, "negative data_offsets"),
        MalformedCase("offsets-reversed", B.one(offsets: "[8,0]"), .malformed, "data_offsets begin 8 > end 0"),
        MalformedCase("offsets-past-end", B.one(offsets: "[0,8]", data: 4), .truncated, "past the end of the data buffer (4 bytes)"),
        MalformedCase("offsets-one-past-end", B.one(offsets: "[1,9]", data: 8), .truncated, "data_offsets end 9 is past the end"),
        MalformedCase("offsets-far-past-end", B.one(offsets: "[9223372036854775799,9223372036854775807]"), .truncated,
                      "past the end of the data buffer"),
        MalformedCase("data-missing", B.one(data: 0), .truncated, "past the end of the data buffer (0 bytes)"),
    ]

    static let sizeCases: [MalformedCase] = [
        MalformedCase("bytes-too-few", B.one(offsets: "[0,4]"), .inconsistent, "needs 8 bytes but data_offsets span 4 bytes"),
        MalformedCase("bytes-too-many", B.one(offsets: "[0,12]", data: 12), .inconsistent, "needs 8 bytes but data_offsets span 12"),
        MalformedCase("bf16-as-four-bytes", B.one("\"BF16\"", offsets: "[0,8]"), .inconsistent, "of BF16 needs 4 bytes"),
        MalformedCase("f16-as-one-byte", B.one("\"F16\"", shape: "[1]", offsets: "[0,1]"), .inconsistent, "of F16 needs 2 bytes"),
        MalformedCase("empty-shape-with-bytes", B.one(shape: "[0,3]", offsets: "[0,4]"), .inconsistent, "needs 0 bytes"),
        MalformedCase("scalar-with-eight-bytes", B.one(shape: "[]", offsets: "[0,8]"), .inconsistent, "shape [] of F32 needs 4 bytes"),
        MalformedCase("f4-odd-count", B.one("\"F4\"", shape: "[3]", offsets: "[0,1]"), .inconsistent, "12 bits, not whole"),
        MalformedCase("second-tensor-size", header: "{" + B.entry("a", "F32", "[1]", "[0,4]") + "," + B.entry("b", "F32", "[2]", "[4,6]") + "}",
                      .inconsistent, "tensor \"b\": shape [2] of F32 needs 8 bytes"),
    ]

    static let overlapCases: [MalformedCase] = [
        MalformedCase("overlap-identical", header: "{" + B.entry("a") + "," + B.entry("b") + "}", .inconsistent,
                      "tensors \"a\" and \"b\" overlap"),
        MalformedCase("overlap-partial", header: "{" + B.entry("a", "F32", "[2]", "[0,8]") + "," + B.entry("b", "F32", "[2]", "[4,12]") + "}",
                      data: 12, .inconsistent, "byte 4 is in both"),
        MalformedCase("overlap-one-byte", header: "{" + B.entry("a", "F16", "[2]", "[0,4]") + "," + B.entry("b", "F16", "[2]", "[3,7]") + "}",
                      data: 7, .inconsistent, "overlap in the data buffer"),
        MalformedCase("overlap-contained", header: "{" + B.entry("outer", "F32", "[4]", "[0,16]") + "," + B.entry("inner", "F16", "[2]", "[4,8]") + "}",
                      data: 16, .inconsistent, "tensors \"outer\" and \"inner\" overlap"),
        MalformedCase("overlap-unsupported", header: "{" + B.entry("a", "F32", "[2]", "[0,8]") + "," + B.entry("b", "I64", "[1]", "[0,8]") + "}",
                      .inconsistent, "overlap"),
    ]

    /// The data buffer must be covered exactly: from byte 0, without holes, up to the end of the file.
    static let coverageCases: [MalformedCase] = [
        MalformedCase("hole-at-start", B.one(offsets: "[4,12]", data: 12), .inconsistent,
                      "data buffer bytes 0..<4 belong to no tensor (a hole at the start of the data buffer, before "
                      + "tensor \"t\")"),
        MalformedCase("hole-between",
                      header: B.header(B.entry("a", "F32", "[1]", "[0,4]"), B.entry("b", "F32", "[1]", "[8,12]")),
                      data: 12, .inconsistent,
                      "bytes 4..<8 belong to no tensor (a hole after tensor \"a\" ends, before tensor \"b\")"),
        MalformedCase("hole-after-empty-tensor",
                      header: B.header(B.entry("e", "F32", "[0]", "[0,0]"), B.entry("t", "F32", "[1]", "[2,6]")),
                      data: 6, .inconsistent, "bytes 0..<2 belong to no tensor (a hole after tensor \"e\" ends"),
        MalformedCase("slack-at-end", B.one(data: 12), .inconsistent,
                      "data buffer bytes 8..<12 belong to no tensor: the last tensor, \"t\", ends at byte 8 of 12"),
        MalformedCase("one-byte-slack", B.one(data: 9), .inconsistent, "bytes 8..<9 belong to no tensor"),
        MalformedCase("data-without-tensors", B.file(header: "{}", data: [0, 0, 0, 0]), .inconsistent,
                      "data buffer bytes 0..<4 belong to no tensor: the tensors end at byte 0 of 4"),
        MalformedCase("zero-length-inside",
                      header: B.header(B.entry("a", "F32", "[2]", "[0,8]"), B.entry("z", "BF16", "[3,0]", "[4,4]")),
                      .inconsistent, "zero-length tensor \"z\" at byte 4 lies inside tensor \"a\" (bytes 0..<8)"),
        MalformedCase("inserted-4-bytes", B.padded(B.oneHeader) + [1, 2, 3, 4] + B.floats, .inconsistent,
                      "data buffer bytes 8..<12 belong to no tensor: the last tensor, \"t\", ends at byte 8 of 12"),
        MalformedCase("inserted-64-bytes", B.padded(B.oneHeader) + [UInt8](repeating: 0, count: 64) + B.floats,
                      .inconsistent, "bytes 8..<72 belong to no tensor"),
        MalformedCase("header-length-4-short", B.shortened(B.padded(B.oneHeader), by: 4) + B.floats, .inconsistent,
                      "bytes 8..<12 belong to no tensor"),
    ]

    /// The header is the JSON object from its first byte, padded after the closing brace with spaces only.
    static let paddingCases: [MalformedCase] = [
        // Bytes counted in the header length that JSON does not allow after the object: the parser refuses them
        // (or the UTF-8 check: the float 1.0 is 00 00 80 3F).
        MalformedCase("inserted-4-bytes-counted", B.lengthened(B.padded(B.oneHeader), insert: [1, 2, 3, 4]) + B.floats,
                      .malformed, "unexpected text after the JSON value"),
        MalformedCase("header-length-4-long", B.lengthened(B.padded(B.oneHeader), insert: []) + B.floats, .malformed,
                      "header is not valid UTF-8"),
        // Data bytes that happen to be spaces (the float 0x20202020) pass as padding: the data buffer is then short.
        MalformedCase("header-length-4-long-into-spaces", B.lengthened(B.padded(B.oneHeader), insert: [])
                      + [0x20, 0x20, 0x20, 0x20, 0, 0, 0, 64], .truncated, "past the end of the data buffer (4 bytes)"),
        // JSON whitespace other than spaces: the parser accepts it, the format does not.
        MalformedCase("inserted-4-tabs-counted", B.lengthened(B.padded(B.oneHeader), insert: [9, 9, 9, 9]) + B.floats,
                      .malformed, "does not end on the JSON object's closing brace followed by spaces: byte"),
        MalformedCase("tab-padding", B.file(header: B.oneHeader + "\t   ", data: B.floats), .malformed, "0x09"),
        MalformedCase("newline-padding", B.file(header: B.oneHeader + "\n", data: B.floats), .malformed, "0x0A"),
        MalformedCase("carriage-return-padding", B.file(header: B.oneHeader + " \r ", data: B.floats), .malformed,
                      "0x0D"),
        MalformedCase("leading-space", B.file(header: " " + B.oneHeader, data: B.floats), .malformed,
                      "header does not begin with '{' (found byte 0x20)"),
        MalformedCase("leading-newline", B.file(header: "\n{}"), .malformed,
                      "header does not begin with '{' (found byte 0x0A)"),
    ]

    static let dtypeCases: [MalformedCase] = ["F64", "I64", "I32", "U8", "I8", "BOOL", "F8_E4M3", "F8_E5M2", "U16", "C64"]
        .map { dtype in
            let bits = SafetensorsFile.knownDTypeBits[dtype] ?? 8
            let bytes = 4 * bits / 8
            return MalformedCase("unsupported-\(dtype.lowercased())", header: "{" + B.entry("x.weight", dtype, "[4]", "[0,\(bytes)]") + "}",
                                 data: bytes, .unsupported, "tensor \"x.weight\" has dtype \(dtype)")
        }
}

@Suite("Malformed safetensors files")
struct SafetensorsMalformedTests {
    @Test("the corpus holds at least 60 uniquely named cases")
    func corpusSize() {
        #expect(MalformedCase.all.count >= 60)
        #expect(Set(MalformedCase.all.map(\.name)).count == MalformedCase.all.count)
    }

    @Test("each malformed file fails with the right kind and a message naming the file and the problem",
          arguments: MalformedCase.all)
    func malformed(_ testCase: MalformedCase) throws {
        let folder = try SafetensorsTestFolder()
        let fileName = "\(testCase.name).safetensors"
        let url = try folder.write(testCase.bytes, to: fileName)
        let error = #expect(throws: FormatError.self) { try SafetensorsFile(url: url) }
        #expect(error?.kind == testCase.kind, "\(error?.description ?? "no error")")
        #expect(error?.description.contains(fileName) == true)
        #expect(error?.description.contains(testCase.phrase) == true, "\(error?.description ?? "no error") lacks: \(testCase.phrase)")
    }

    /// A valid file with several dtypes and metadata, the base of the mutations.
    static func validFile() throws -> [UInt8] {
        let folder = try SafetensorsTestFolder()
        let url = folder.file("base.safetensors")
        try SafetensorsWriter.write([
            (name: "embed.weight", dtype: .float32, shape: [3, 4], bytes: SafetensorsWriter.encode((0..<12).map(Float.init), as: .float32)),
            (name: "norm.weight", dtype: .float16, shape: [4], bytes: SafetensorsWriter.encode([1, 2, 3, 4], as: .float16)),
            (name: "proj.bias", dtype: .bfloat16, shape: [2, 2], bytes: SafetensorsWriter.encode([-1, 0.5, 8, 1e-3], as: .bfloat16)),
            (name: "empty", dtype: .float32, shape: [0], bytes: []),
        ], metadata: ["format": "pt", "note": "mutation base"], to: url)
        return try [UInt8](Data(contentsOf: url))
    }

    @Test("random mutations and truncations of a valid file load or throw FormatError, never crash")
    func mutationsNeverCrash() async throws {
        let base = try Self.validFile()
        let headerEnd = 8 + base[0..<8].reversed().reduce(0) { $0 << 8 | Int($1) }
        let folder = try SafetensorsTestFolder()
        var counter = 0
        var outcomes = (loaded: 0, refused: 0)
        await propertyCheck(count: 400, input: Gen.int(in: 0...5), Gen.int(in: 0...1_000_000),
                            Gen.uint8().array(of: 1...6)) { kind, position, noise in
            var bytes = base
            // Positions mostly land in the length prefix and the JSON header, where parsing happens.
            let inHeader = position % 10 < 8
            let at = inHeader ? position % headerEnd : position % bytes.count
            switch kind {
            case 0:  // overwrite bytes
                for (i, byte) in noise.enumerated() where at + i < bytes.count { bytes[at + i] = byte }
            case 1:  // truncate
                bytes = Array(bytes.prefix(at))
            case 2:  // insert bytes
                bytes.insert(contentsOf: noise, at: at)
            case 3:  // delete a range
                bytes.removeSubrange(at..<min(bytes.count, at + noise.count))
            case 4:  // a new header length
                let length = noise.reduce(UInt64(0)) { $0 << 8 | UInt64($1) } % UInt64(bytes.count + 16)
                bytes.replaceSubrange(0..<8, with: SafetensorsBytes.prefix(length))
            default:  // replace a byte with a JSON-significant character
                let specials = Array("{}[]\",:0123456789-. eE\\".utf8)
                bytes[at] = specials[Int(noise[0]) % specials.count]
            }
            counter += 1
            let url = try folder.write(bytes, to: "mutant-\(counter).safetensors")
            defer { try? FileManager.default.removeItem(at: url) }
            do {
                let file = try SafetensorsFile(url: url)
                for tensor in file.tensors.values { _ = tensor.toTensor() }  // touch every byte
                outcomes.loaded += 1
            } catch let error as FormatError {
                #expect(error.description.contains("mutant-\(counter).safetensors"))
                outcomes.refused += 1
            }
        }
        #expect(counter == 400)
        #expect(outcomes.refused > 100, "most header mutations must be refused (loaded \(outcomes.loaded), refused \(outcomes.refused))")
    }
}
