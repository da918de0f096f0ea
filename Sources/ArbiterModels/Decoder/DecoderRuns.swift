// How the decoder runs: logit positions, prefix keys and values of suffix runs, the segments of a batch, and
// the batched forward that stacks many runs' rows for the matrix products (see LlamaDecoder.swift's header).
import ArbiterFormats
import ArbiterTensor
import Foundation

/// Which positions get logits (the LM head over a 150k vocabulary is costly: analyses need only the last).
public enum LogitPositions: Sendable, Equatable {
    case all
    case last
    case positions([Int])
    case none
}

/// Keys (after rotary) and values of the first `count` positions at every layer, `[≥ count, KV·D]` each, as
/// cached from `blocks.{l}.attn.hook_rot_k` and `blocks.{l}.attn.hook_v` of a run over the same prompt.
/// Rows past `count` are ignored, so a full-length cache serves any prefix without copying.
public struct PrefixKeyValues: Sendable {
    public var keys: [Tensor]
    public var values: [Tensor]
    public var count: Int

    /// Every row of `keys`/`values` is prefix.
    public init(keys: [Tensor], values: [Tensor]) {
        self.keys = keys
        self.values = values
        self.count = keys.first?.rows ?? 0
    }

    /// The first `count` rows of full-length per-layer keys and values (shared, not copied).
    public init(prefixOf keys: [Tensor], values: [Tensor], count: Int) {
        self.keys = keys
        self.values = values
        self.count = count
    }
}

/// One run inside a batch of runs whose token rows are stacked for the matrix products (see
/// `LlamaDecoder.forward(batch:startLayer:)`): its rows in the stack, its hooks and its cached prefix. A class:
/// every layer passes the batch's segments around many times, and copying a reference is one retain where
/// copying these fields was seven.
final class DecoderSegment {
    let rows: Range<Int>
    let hooks: HookRun?
    let prefix: PrefixKeyValues?
    /// Keys and values (`[P, KV·D]`) that replace `prefix`'s at one layer (the final layer of a batch,
    /// where only the last position is computed).
    let layerPrefix: (layer: Int, keys: Tensor, values: Tensor)?
    /// The keys and values of the run this segment continues (`DecoderRun.continues`): attended to before
    /// the segment's own at every layer.
    let parent: KeyValueRecord?
    /// Where the segment keeps the keys and values it attends to (its prefix's, then its own rows'), per
    /// layer, when other runs continue it.
    let record: KeyValueRecord?

    init(rows: Range<Int>, hooks: HookRun?, prefix: PrefixKeyValues?,
         layerPrefix: (layer: Int, keys: Tensor, values: Tensor)? = nil, parent: KeyValueRecord? = nil,
         record: KeyValueRecord? = nil) {
        self.rows = rows
        self.hooks = hooks
        self.prefix = prefix
        self.layerPrefix = layerPrefix
        self.parent = parent
        self.record = record
    }
}

/// Per-layer keys and values `[P, KV·D]` of a run (everything its last row attends to), recorded as the run
/// computes them, for the runs that continue it.
final class KeyValueRecord: @unchecked Sendable {
    var layers: [(keys: Tensor, values: Tensor)?]
    init(layers: Int) { self.layers = Array(repeating: nil, count: layers) }
    /// The run's tokens, cached prefix included (0 before any layer ran).
    var tokens: Int { layers.lazy.compactMap { $0?.keys.rows }.first ?? 0 }
}

extension Array where Element == DecoderSegment {
    /// Visits a hook point of stacked `[rows, …]` tensors: one segment visits the tensor itself; several
    /// visit their own rows (a copy, written back when the segment's hooks edit that point).
    @inline(__always)
    func visit(_ name: String, layer: Int, _ tensor: inout Tensor) throws {
        if count == 1 {
            try self[0].hooks.visit(name, layer: layer, &tensor)
            return
        }
        for segment in self where segment.hooks.wants(name) {
            var part = tensor.slicingTokens(segment.rows)
            let shape = part.shape
            try segment.hooks.visit(name, layer: layer, &part)
            guard segment.hooks?.edits(name) == true else { continue }
            guard part.shape == shape else {
                throw ModelError.invalidInput("an edit at \(name) changed its shape from \(shape) to \(part.shape)")
            }
            tensor.replaceTokens(segment.rows, with: part)
        }
    }
}

/// A run of `LlamaDecoder.forward(batch:startLayer:)`: as the arguments of `forward(residual:…)`.
///
/// `continues` = i makes the run the continuation of the batch's earlier run i (a shared prefix): at every
/// layer it attends to run i's keys and values — run i's cached prefix and rows, as run i computed them with
/// its own hooks — before its own, as a suffix run whose `prefix` held them would. Its `positions` then go
/// on from run i's, and it has no `prefix` of its own. Many runs whose first tokens and interventions are
/// the same compute those tokens once this way.
public struct DecoderRun: Sendable {
    public var residual: Tensor
    public var positions: PositionIDs
    public var hooks: HookRun?
    public var prefix: PrefixKeyValues?
    public var continues: Int?
    /// Rows added after layers (`ResidualAdditions`: positions from the prompt's first token, not the run's).
    public var additions: ResidualAdditions?

    public init(residual: Tensor, positions: PositionIDs, hooks: HookRun? = nil, prefix: PrefixKeyValues? = nil,
                continues: Int? = nil, additions: ResidualAdditions? = nil) {
        self.residual = residual
        self.positions = positions
        self.hooks = hooks
        self.prefix = prefix
        self.continues = continues
        self.additions = additions
    }
}

extension DecoderRun {
    /// The first row a run resumed from a cached pass recomputes: `unchangedBefore` (the interventions change
    /// nothing before it) when it is inside the prompt's `tokens` and the pass kept its keys and values — a suffix
    /// run over them — else 0 (every row again). The one decision the analyses' single and batched runs share.
    public static func firstRecomputed(unchangedBefore p: Int, tokens t: Int, keysValuesKept: Bool) -> Int {
        p > 0 && p < t && keysValuesKept ? p : 0
    }

    /// Rows `rows` of a cached pass (its residual stream `residual` entering the start layer, its positions, its
    /// keys and values `[T, KV·D]` per layer when kept), resumed: a suffix run over the cached keys and values of
    /// the rows before when `rows` starts after 0 and the run continues no other run of its batch (`continues`),
    /// which then provides those rows. Rows from p > 0 need the keys and values or a run to continue.
    public static func resumed(rows: Range<Int>, of residual: Tensor, positions: PositionIDs, keys: [Tensor]?,
                               values: [Tensor]?, hooks: HookRun?, continues: Int? = nil,
                               additions: ResidualAdditions?) -> DecoderRun {
        var run = DecoderRun(residual: residual.rows(rows), positions: positions.slice(rows), hooks: hooks,
                             continues: continues, additions: additions)
        if continues == nil, rows.lowerBound > 0, let keys, let values {
            run.prefix = PrefixKeyValues(prefixOf: keys, values: values, count: rows.lowerBound)
        }
        return run
    }
}

extension LlamaDecoder {
    /// One run alone (`forward(residual:…)` with the run's arguments); a run that continues another needs its
    /// batch (`forward(batch:startLayer:)`).
    public func forward(_ run: DecoderRun, startLayer: Int = 0, logits: LogitPositions = .all) throws
        -> DecoderOutput {
        guard run.continues == nil else {
            throw ModelError.invalidInput("a run that continues run \(run.continues!) of a batch runs in its batch")
        }
        return try forward(residual: run.residual, positions: run.positions, startLayer: startLayer, logits: logits,
                           hooks: run.hooks, prefix: run.prefix, additions: run.additions)
    }
}

/// What a decoder run returns.
public struct DecoderOutput: Sendable {
    /// `[P, vocab]` for the requested positions, or nil for `.none`.
    public var logits: Tensor?
    /// The positions `logits` rows belong to.
    public var logitPositions: [Int]
    /// Final residual stream `[T, d]` (before the final norm).
    public var residual: Tensor
    /// The rows the run added after layers (`ResidualAdditions`), for runs that resume from its activations.
    public var additions: ResidualAdditions? = nil
}

extension LlamaDecoder {
    /// Runs several runs from `startLayer` side by side and returns each run's logits at its last position
    /// (`[vocab]`). Their token rows are stacked for the matrix products (one large product instead of
    /// many small ones: the weights are read and packed once per batch), while attention and every hook
    /// stay per run; the final layer computes only what the last positions need (see
    /// `finalLayerAtLastPositions`). The results equal separate `forward(residual:…logits: .last…)` calls up
    /// to the last bits of the products (BLAS's result for a row depends on how many rows a call has). A run whose
    /// hooks want `ln_final`/`hook_logits`, and any batch that meets a non-finite value, is computed run by
    /// run through `forward(residual:…)`, so such runs see their usual hooks and errors name the run's hook,
    /// layer and position. A run may continue an earlier run of the batch (`DecoderRun.continues`: a shared
    /// prefix), whose keys and values it then attends to at every layer, in the batch and run by run alike.
    public func forward(batch runs: [DecoderRun], startLayer: Int) throws -> [[Float]] {
        let c = configuration
        let finalHooks = ["\(hookPrefix)\(HookName.finalNorm)", "\(hookPrefix)\(HookName.logits)"]
        // Runs that others continue record their keys and values for them.
        var continued = Set<Int>()
        for (i, run) in runs.enumerated() {
            guard let parent = run.continues else { continue }
            guard (0..<i).contains(parent) else {
                throw ModelError.invalidInput("batched run \(i): continues run \(parent), which is not an earlier "
                                              + "run of the batch")
            }
            guard run.prefix == nil else {
                throw ModelError.invalidInput("batched run \(i): continues run \(parent) and has a prefix of its own "
                                              + "(a continuation's prefix is the run it continues)")
            }
            continued.insert(parent)
        }
        func separately() throws -> [[Float]] {
            var records: [Int: KeyValueRecord] = [:]
            return try runs.indices.map { i in
                let run = runs[i]
                let record = continued.contains(i) ? KeyValueRecord(layers: blocks.count) : nil
                records[i] = record
                let out = try forward(residual: run.residual, positions: run.positions, startLayer: startLayer,
                                      logits: .last, hooks: run.hooks, prefix: run.prefix,
                                      parent: run.continues.flatMap { records[$0] }, record: record,
                                      additions: run.additions)
                guard let logits = out.logits, logits.rows == 1 else {
                    throw ModelError.invalidInput("a batched run has no tokens")
                }
                return Array(logits.row(0))
            }
        }
        guard runs.count > 1, !runs.contains(where: { run in finalHooks.contains { run.hooks.wants($0) } }) else {
            return try separately()
        }
        guard (0...blocks.count).contains(startLayer) else {
            throw ModelError.invalidInput("start layer \(startLayer) outside 0...\(blocks.count)")
        }
        var segments: [DecoderSegment] = [], tables: [RotaryTables] = []
        var stacked: [Float] = [], tokens: [Int] = [], offsets: [Int] = []
        for (i, run) in runs.enumerated() {
            let parentTokens = run.continues.map { tokens[$0] } ?? 0
            try validateRun(residual: run.residual, positions: run.positions, prefix: run.prefix, batchIndex: i,
                            parentTokens: parentTokens, additions: run.additions)
            offsets.append(parentTokens + (run.prefix?.count ?? 0))
            tokens.append(parentTokens + (run.prefix?.count ?? 0) + run.residual.rows)
            let start = stacked.count / c.hiddenSize
            segments.append(DecoderSegment(rows: start..<(start + run.residual.rows), hooks: run.hooks,
                                           prefix: run.prefix,
                                           parent: run.continues.map { segments[$0].record! },
                                           record: continued.contains(i) ? KeyValueRecord(layers: blocks.count) : nil))
            tables.append(run.positions.rotaryTables(c.rope, mropeSection: c.mropeSection,
                                                      interleaved: c.mropeInterleaved))
            stacked += run.residual.scalars
        }
        var x = Tensor(shape: [stacked.count / c.hiddenSize, c.hiddenSize], scalars: stacked)
        guard x.firstNonFiniteIndex == nil else { return try separately() }
        let rotary = RotaryTables(concatenating: tables)
        let final = blocks.count - 1
        for l in startLayer..<max(startLayer, final) {
            x = try blocks[l](x, context: rotary, layer: l, names: layerNames[l], visits: segments)
            guard x.firstNonFiniteIndex == nil else { return try separately() }
            for (i, run) in runs.enumerated() where l < run.additions?.layers.count ?? 0 {
                let rows = segments[i].rows
                try run.additions!.add(after: l, to: &x, base: rows.lowerBound, count: rows.count, offset: offsets[i],
                                       name: additionNames[l], hooks: run.hooks)
            }
        }
        var last = Tensor(shape: [segments.count, c.hiddenSize],
                          scalars: segments.flatMap { x.row($0.rows.upperBound - 1) })
        if startLayer <= final {
            last = try finalLayerAtLastPositions(x, rotary: rotary, segments: segments)
            guard last.firstNonFiniteIndex == nil else { return try separately() }
            // The final layer ran at the last rows only: so are its additions.
            for (i, run) in runs.enumerated() where final < run.additions?.layers.count ?? 0 {
                try run.additions!.add(after: final, to: &last, base: i, count: 1,
                                       offset: offsets[i] + segments[i].rows.count - 1, name: additionNames[final],
                                       hooks: run.hooks)
            }
        }
        let logits = linear(rmsNorm(last, weight: finalNorm, eps: c.rmsNormEps), weight: lmHead)
        guard logits.firstNonFiniteIndex == nil else { return try separately() }
        return (0..<segments.count).map { Array(logits.row($0)) }
    }

    /// The final layer of a batch, computed only where the logits need it: keys and values for every row
    /// (the last positions attend to them), everything else for each run's last row alone — a one-row
    /// suffix run whose prefix is the cached prefix plus the run's other rows. Saves all but the K/V
    /// projections of the final layer for every row but one. (So the final layer's hooks see the last
    /// row only, as in any suffix run.)
    func finalLayerAtLastPositions(_ x: Tensor, rotary: RotaryTables, segments: [DecoderSegment]) throws -> Tensor {
        let l = blocks.count - 1, block = blocks[l], a = block.attention, heads = a.heads
        let h = block.norm1(x)
        var k = a.headNormed(linear(h, weight: a.kProj, bias: a.kBias), a.kNorm)
        let v = linear(h, weight: a.vProj, bias: a.vBias)
        rotary.apply(to: &k, heads: heads.kvHeads, headDim: heads.headDim)
        let width = k.columns
        var lastSegments: [DecoderSegment] = [], lastRows: [Int] = []
        for (i, segment) in segments.enumerated() {
            let own = segment.rows.lowerBound..<(segment.rows.upperBound - 1)
            var cachedKeys: [Float] = [], cachedValues: [Float] = []
            if let parent = segment.parent?.layers[l] {
                cachedKeys = parent.keys.scalars
                cachedValues = parent.values.scalars
            } else if let prefix = segment.prefix {
                cachedKeys = Array(prefix.keys[l].scalars.prefix(prefix.count * width))
                cachedValues = Array(prefix.values[l].scalars.prefix(prefix.count * width))
            }
            let cached = cachedKeys.count / width
            let keys = Tensor(shape: [cached + own.count, width], scalars: cachedKeys + k.rows(own).scalars)
            let values = Tensor(shape: [cached + own.count, width], scalars: cachedValues + v.rows(own).scalars)
            if let record = segment.record {
                let last = own.upperBound..<segment.rows.upperBound
                let rows = keys.rows + 1
                record.layers[l] = (Tensor(shape: [rows, width], scalars: keys.scalars + k.rows(last).scalars),
                                    Tensor(shape: [rows, width], scalars: values.scalars + v.rows(last).scalars))
            }
            lastSegments.append(DecoderSegment(rows: i..<(i + 1), hooks: segment.hooks, prefix: nil,
                                               layerPrefix: (l, keys, values)))
            lastRows.append(segment.rows.upperBound - 1)
        }
        let input = Tensor(shape: [segments.count, x.columns], scalars: lastRows.flatMap { x.row($0) })
        return try block(input, context: rotary.rows(lastRows), layer: l, names: layerNames[l], visits: lastSegments)
    }
}
