// Token offsets compared with `tokenizers`' Encoding.offsets (Unicode scalar offsets).
import Foundation
import Testing
@testable import ArbiterTokenizers

@Suite("Tokenizer offsets")
struct TokenizerOffsetTests {
    @Test("offsets equal tokenizers' offsets", arguments: Family.allCases)
    func offsets(family: Family) throws {
        let tokenizer = try Fixtures.tokenizer(family)
        let goldens = try Fixtures.goldens(family)
        var failures: [String] = []
        for c in goldens.cases {
            let got = try tokenizer.encodeWithScalarOffsets(c.text, addSpecialTokens: false)
            #expect(got.map(\.id) == c.ids_no_special, "\"\(show(c.text))\"")
            let ranges = got.map { [$0.range.lowerBound, $0.range.upperBound] }
            if ranges != c.offsets_no_special {
                failures.append("\"\(show(c.text))\": \(ranges) != expected \(c.offsets_no_special)")
            }
        }
        #expect(failures.isEmpty, "\(failures.count) mismatches, first: \(failures.prefix(5).joined(separator: "\n"))")
    }
}
