// LlamaDecoder.forward(ids:…blockColumns:consume:): logits handed over in vocabulary blocks equal the
// columns of the materialised logits, for any block width and logit positions.
import ArbiterInterventions
import ArbiterModels
import ArbiterTensor
import PropertyBased
import Testing

@Suite("Streamed logits")
struct StreamedLogitsTests {
    @Test("blocks cover the vocabulary in order and equal the materialised logits")
    func blocksEqualMaterialised() async {
        await propertyCheck(count: 25, input: layersGen, kvGen, groupsGen, seedGen) { l, kv, g, seed in
            try Self.checkBlocks(layers: l, kvHeads: kv, groups: g, seed: seed)
        }
    }

    /// The case (2 layers, 8 tokens, width 5, all positions) where a logit cancels to near 0: its relative
    /// difference, 5.4e-5, broke a purely relative bound; the bound is now absolute-plus-relative.
    @Test("blocks equal the materialised logits where a logit cancels to near zero")
    func blocksEqualMaterialisedNearZero() throws {
        try Self.checkBlocks(layers: 2, kvHeads: 2, groups: 2, seed: 863_678)
    }

    static func checkBlocks(layers l: Int, kvHeads kv: Int, groups g: Int, seed: Int) throws {
        let spec = RandomDecoderSpec(layers: l, kvHeads: kv, groups: g, headDim: 4, qkvBias: seed % 2 == 0, seed: UInt64(seed))
        let decoder = try spec.make()
        var rng = SeededGenerator(randomModelSeed: UInt64(seed) &+ 1)
        let tokens = Int.random(in: 1...9, using: &rng)
        let ids = spec.ids(count: tokens, seed: UInt64(seed))
        let vocab = decoder.configuration.vocabularySize
        let width = [1, 5, 8, vocab - 1, vocab, vocab + 3].randomElement(using: &rng)!
        let positions: LogitPositions = [.all, .last, .positions([0, tokens - 1])].randomElement(using: &rng)!
        let reference = try decoder.forward(ids: ids, logits: positions)
        var ranges: [Range<Int>] = []
        var columns: [[Float]] = []
        let streamed = try decoder.forward(ids: ids, logits: positions, blockColumns: width) { range, block in
            #expect(block.shape == [reference.logitPositions.count, range.count])
            ranges.append(range)
            columns.append(block.scalars)
        }
        #expect(streamed.logits == nil && streamed.logitPositions == reference.logitPositions)
        #expect(streamed.residual.scalars == reference.residual.scalars)
        #expect(ranges.first?.lowerBound == 0 && ranges.last?.upperBound == vocab)
        #expect(zip(ranges, ranges.dropFirst()).allSatisfy { $0.upperBound == $1.lowerBound })
        #expect(ranges.allSatisfy { $0.count <= width && !$0.isEmpty })
        // Reassemble [P, vocab] from the column blocks.
        let rows = reference.logitPositions.count
        var assembled = [Float](repeating: .nan, count: rows * vocab)
        for (range, block) in zip(ranges, columns) {
            for r in 0..<rows {
                for (j, v) in range.enumerated() { assembled[r * vocab + v] = block[r * range.count + j] }
            }
        }
        // The same products on a column slice of the head: BLAS may round the last bits differently, by a
        // few ulp of the products' magnitude — so the bound is atol + rtol·|ref| with atol scaled by the
        // largest logit (a logit that cancels to near 0 keeps no relative precision).
        let expected = reference.logits!.scalars
        let scale = max(expected.map { abs($0) }.max() ?? 0, 1e-3)
        let atol = 1e-6 * scale, rtol: Float = 1e-5
        let worst = zip(assembled, expected).map { abs($0 - $1) / (atol + rtol * abs($1)) }.max() ?? 0
        #expect(worst <= 1, "\(spec), \(tokens) tokens, width \(width), \(positions): worst |Δ| / (atol + rtol·|ref|) = \(worst) (atol \(atol))")
    }

    @Test("a hook on hook_logits and a non-positive block width are refused; ln_final hooks still run")
    func refusals() throws {
        let spec = RandomDecoderSpec(layers: 2, kvHeads: 1, groups: 2, headDim: 4, qkvBias: false, seed: 3)
        let decoder = try spec.make()
        let ids = spec.ids(count: 6, seed: 1)
        let wantsLogits = HookRun(cache: .patterns(["hook_logits"]))
        #expect {
            try decoder.forward(ids: ids, hooks: wantsLogits) { _, _ in }
        } throws: { "\($0)".contains("hook_logits") }
        #expect {
            try decoder.forward(ids: ids, blockColumns: 0) { _, _ in }
        } throws: { "\($0)".contains("block width 0") }
        let normed = HookRun(cache: .patterns(["ln_final.hook_normalized"]))
        var blocks = 0
        _ = try decoder.forward(ids: ids, logits: .none, hooks: normed) { _, _ in blocks += 1 }
        #expect(blocks == 0 && normed.cache["ln_final.hook_normalized"]?.shape == [6, decoder.configuration.hiddenSize])
        // A consumer's error stops the run and reaches the caller.
        struct Stop: Error {}
        #expect(throws: Stop.self) { try decoder.forward(ids: ids, blockColumns: 4) { _, _ in throw Stop() } }
    }
}
