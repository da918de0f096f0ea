// The calibration of `VerifyPlan`: a decoder layer of the model's own shapes with random weights (the weights
// are not needed, so a config.json alone will do) timed on batches like the ones `AnalysisRunner.scores`
// forms at the data's prompt lengths, on every worker at once (as a run keeps them busy), then fitted to
// seconds per row, per attention pair and per run; a big model's per-row rate timed again on full batches.
import ArbiterData
import ArbiterFormats
import ArbiterModels
import ArbiterTensor
import Dispatch
import Foundation

extension PlanCalibration {
    /// Calibrates on layers shaped like `shape`'s decoder at prompts of `tokens` (typically the median length).
    /// `budget`: seconds one timed layer may take (the rows per batch shrink for big models to stay within it;
    /// a calibration times 8 batch shapes, each a few times, for about 8–30 budgets in all).
    public static func measure(shape: PlanModelShape, tokens: Int, workers: Int = Parallel.workers,
                               budget: Double = 0.25) throws -> PlanCalibration {
        let began = DispatchTime.now().uptimeNanoseconds
        let t = max(tokens, 2)
        // Rows per timed batch: as `scores` batches them, fewer when one layer on them would exceed the budget
        // (at a conservative 20 GFLOP/s per worker).
        let affordable = Int(budget * 20e9 / max(shape.linearFLOPsPerRow, 1))
        let rows = max(8, min(AnalysisRunner.rowsPerBatch, affordable))
        let decoder = try calibrationDecoder(shape, maxTokens: 2 * t + max(rows, AnalysisRunner.rowsPerBatch) + 2)
        let d = shape.hidden, kv = shape.keyValueHeads * shape.headDim

        // Four batch shapes of the same rows: whole, half and quarter prompts (more runs, shorter attention) and
        // one-row suffix runs over a prompt-long prefix (most runs, longest attention).
        let long = min(t, rows), half = max(1, long / 2), quarter = max(1, long / 4)
        var pattern = SplitMix64(seed: 7)
        func residual(_ n: Int) -> Tensor {
            Tensor(shape: [n, d], scalars: (0..<(n * d)).map { _ in Float.random(in: -1..<1, using: &pattern) })
        }
        func cached() -> [Tensor] {
            (0..<3).map { _ in
                Tensor(shape: [t, kv], scalars: (0..<(t * kv)).map { _ in Float.random(in: -1..<1, using: &pattern) })
            }
        }
        let prefix = PrefixKeyValues(keys: cached(), values: cached())
        let shapes: [(runs: [DecoderRun], rows: Double, pairs: Double, count: Double)] = [
            batch(count: max(1, rows / long), length: long, residual: residual),
            batch(count: max(1, rows / half), length: half, residual: residual),
            batch(count: max(1, rows / quarter), length: quarter, residual: residual),
            {
                // As many one-row runs as the other shapes' rows: the products see the same row count.
                let n = rows
                let runs = (0..<n).map { _ in
                    DecoderRun(residual: residual(1), positions: .sequential(1, offset: t), prefix: prefix)
                }
                return (runs, Double(n), Double(n * (t + 1)), Double(n))
            }(),
        ]
        // One full layer = half of the 3-layer decoder from layer 0 minus from layer 2 (the final layer alone).
        let times = try shapes.map { s in
            try (timed(workers: workers, budget: budget) { try decoder.forward(batch: s.runs, startLayer: 0) }
                - timed(workers: workers, budget: budget) { try decoder.forward(batch: s.runs, startLayer: 2) }) / 2
        }
        // Attention alone (scores, causal softmax, mix) of prompt-long keys, timed apart: inside a layer its share
        // is too small to fit beside the products' (a fit gave it what the products' row count explained).
        let perPair = try attentionSeconds(shape, keys: t, workers: workers, budget: budget)
        // Rows and runs from the shapes without a prefix; then what the suffix runs cost beyond: copying the
        // cached keys and values into each run's attention, per cached row.
        let plain = shapes.indices.dropLast()
        let fit = nonNegativeFit(plain.map { [shapes[$0].rows, shapes[$0].count] },
                                 plain.map { times[$0] - perPair * shapes[$0].pairs })
        let suffix = shapes[shapes.count - 1], cachedRows = suffix.count * Double(t)
        let perCached = max(0, (times[times.count - 1] - perPair * suffix.pairs - fit[0] * suffix.rows
                                - fit[1] * suffix.count) / cachedRows)
        // The per-row and per-run rates at the rows a pass multiplies. A big model's batches above are small (the
        // budget), and there sgemm is bound by reading the weights: a 7B's layer at 12 rows ran ~3× slower per row
        // than a 650-token forward (`make bench-7b`, 2026-12-03), and the fit put weight reads in the run term
        // (~5 ms per run·layer). So the products are timed again on one layer over two full batches of
        // `rowsPerBatch` rows — one run, and four runs of a quarter — each twice, the faster counting; with the
        // attention term measured above taken out, the two give seconds per row and per run.
        var perRow = fit[0], perRun = fit[1], productRows = rows
        if rows < AnalysisRunner.rowsPerBatch {
            let n = AnalysisRunner.rowsPerBatch
            let one = batch(count: 1, length: n, residual: residual), four = batch(count: 4, length: n / 4,
                                                                                residual: residual)
            func products(_ b: (runs: [DecoderRun], rows: Double, pairs: Double, count: Double)) throws -> Double {
                try (0..<2).map { _ in
                    try timed(workers: workers, budget: 0) { try decoder.forward(batch: b.runs, startLayer: 2) }
                }.min()! - perPair * b.pairs
            }
            let a = try products(one), b = try products(four)
            let run = max(0, (b - a) / 3)
            if a - run > 0 { perRow = (a - run) / Double(n); perRun = run; productRows = n }
        }
        let seconds = Double(DispatchTime.now().uptimeNanoseconds - began) / 1e9
        return PlanCalibration(workers: workers, secondsPerRow: perRow, secondsPerPair: perPair, secondsPerRun: perRun,
                               secondsPerCachedRow: perCached, seconds: seconds, rows: rows, productRows: productRows)
    }

    /// Seconds per (query, key) pair of one layer's attention, all heads: queries against `keys` prompt-long keys.
    static func attentionSeconds(_ shape: PlanModelShape, keys s: Int, workers: Int, budget: Double) throws -> Double {
        let heads = shape.decoder.attentionHeadLayout, d = heads.headDim
        let queries = max(1, min(s, Int(budget * 5e9 / max(shape.attentionFLOPsPerPair, 1)) / s))
        var rng = SplitMix64(seed: 5)
        func random(_ rows: Int, _ columns: Int) -> Tensor {
            Tensor(shape: [rows, columns],
                   scalars: (0..<(rows * columns)).map { _ in Float.random(in: -1..<1, using: &rng) })
        }
        let q = random(queries, heads.heads * d), k = random(s, heads.kvHeads * d), v = random(s, heads.kvHeads * d)
        let scale = 1 / Float(d).squareRoot()
        let time = try timed(workers: workers, budget: budget) {
            var pattern = attentionScores(q: q, k: k, heads: heads, scale: scale)
            causalAttentionPattern(inPlace: &pattern, queryOffset: s - queries)
            return [attentionMix(pattern: pattern, v: v, heads: heads).scalars]
        }
        return time / Double(queries * s)
    }

    static func batch(count: Int, length: Int, residual: (Int) -> Tensor)
        -> (runs: [DecoderRun], rows: Double, pairs: Double, count: Double) {
        let runs = (0..<count).map { _ in DecoderRun(residual: residual(length), positions: .sequential(length)) }
        return (runs, Double(count * length), Double(count * length * length), Double(count))
    }

    /// Seconds of one call of `body` run on `workers` threads at once (each on one BLAS thread, its kernels
    /// serial, as inside `AnalysisRunner.parallelMap`): the least of three tries, each the mean of as many calls
    /// as fill a fifth of `budget` (at least one), so that fast calls are timed over many repeats.
    static func timed(workers: Int, budget: Double,
                      _ body: @escaping @Sendable () throws -> [[Float]]) throws -> Double {
        var best = Double.infinity, repeats = 1
        for attempt in 0..<4 {
            let failure = NSLock()
            nonisolated(unsafe) var error: Error?
            let start = DispatchTime.now().uptimeNanoseconds, n = repeats
            BLAS.withSingleThread {
                DispatchQueue.concurrentPerform(iterations: max(workers, 1)) { _ in
                    do { for _ in 0..<n { _ = try Parallel.serially { try body() } } } catch let e {
                        failure.withLock { error = e }
                    }
                }
            }
            if let error { throw error }
            let seconds = Double(DispatchTime.now().uptimeNanoseconds - start) / 1e9 / Double(n)
            // The first try (also a warm-up) sets the repeats; the best of the three others counts. A call slower
            // than the repeats' share (a big model's) is timed once: its own length drowns the noise.
            if attempt == 0 {
                repeats = max(1, min(1000, Int(budget / 5 / max(seconds, 1e-6))))
                if seconds > budget / 5 { return seconds }
            } else {
                best = min(best, seconds)
            }
        }
        return best
    }

    /// A 3-layer decoder of `shape`'s layer shapes with random weights, every layer sharing one layer's weights
    /// (one layer of memory) and a vocabulary of 8 (logits are timed through the product rate instead). Its
    /// matrices are stored as the run's are multiplied: bf16, widened to f32 in blocks, for a 16-bit checkpoint
    /// (a float16 one's widening is timed as bf16's); marked for bf16 compute under `ARBITER_COMPUTE=bf16`; f32
    /// otherwise. (Timed on f32 matrices, a bf16 7B's forward was predicted 25–30% fast: the widening is part of
    /// each product.)
    static func calibrationDecoder(_ shape: PlanModelShape, maxTokens: Int) throws -> LlamaDecoder {
        let bf16Compute = (try? ComputePrecision.fromEnvironment()) == .bfloat16
        let sixteenBit = bf16Compute
            || (shape.weightBytes > 0 && Double(shape.weightBytes) < 3 * shape.parameterCount)
        var c = shape.decoder
        c.layers = 3
        c.vocabularySize = 8
        c.tieWordEmbeddings = false
        c.mropeSection = nil
        c.maxPositionEmbeddings = max(c.maxPositionEmbeddings, maxTokens)
        let d = c.hiddenSize, q = c.attentionHeads * c.headDim, kv = c.keyValueHeads * c.headDim
        let m = c.intermediateSize
        // One block of random values, repeated: the products' speed does not depend on the values.
        var rng = SplitMix64(seed: 11)
        let block = (0..<4099).map { _ in Float.random(in: -0.02..<0.02, using: &rng) }
        func tensor(_ name: String, _ dims: [Int], fill: Float? = nil) -> StoredTensor {
            let n = dims.reduce(1, *)
            let scalars = fill.map { [Float](repeating: $0, count: n) } ?? (0..<n).map { block[$0 % block.count] }
            let values = Tensor(shape: dims, scalars: scalars)
            // Matrices as the checkpoint stores them (the values are small: bf16 always holds them).
            if fill == nil, dims.count == 2, sixteenBit,
               let stored = StoredTensor.bfloat16(name: name, values, computesInBFloat16: bf16Compute) {
                return stored
            }
            return StoredTensor(name: name, values)
        }
        var layer: [String: StoredTensor] = [
            "input_layernorm.weight": tensor("norm", [d], fill: 1),
            "post_attention_layernorm.weight": tensor("norm", [d], fill: 1),
            "self_attn.q_proj.weight": tensor("q", [q, d]), "self_attn.k_proj.weight": tensor("k", [kv, d]),
            "self_attn.v_proj.weight": tensor("v", [kv, d]), "self_attn.o_proj.weight": tensor("o", [d, q]),
            "mlp.gate_proj.weight": tensor("gate", [m, d]), "mlp.up_proj.weight": tensor("up", [m, d]),
            "mlp.down_proj.weight": tensor("down", [d, m]),
        ]
        if c.qkvBias {
            layer["self_attn.q_proj.bias"] = tensor("qb", [q], fill: 0)
            layer["self_attn.k_proj.bias"] = tensor("kb", [kv], fill: 0)
            layer["self_attn.v_proj.bias"] = tensor("vb", [kv], fill: 0)
        }
        if c.outputBias { layer["self_attn.o_proj.bias"] = tensor("ob", [d], fill: 0) }
        if c.mlpBias {
            layer["mlp.gate_proj.bias"] = tensor("gb", [m], fill: 0)
            layer["mlp.up_proj.bias"] = tensor("ub", [m], fill: 0)
            layer["mlp.down_proj.bias"] = tensor("db", [d], fill: 0)
        }
        var tensors: [String: StoredTensor] = [
            "model.embed_tokens.weight": tensor("embed", [8, d]), "model.norm.weight": tensor("norm", [d], fill: 1),
            "lm_head.weight": tensor("head", [8, d]),
        ]
        for l in 0..<3 { for (name, t) in layer { tensors["model.layers.\(l).\(name)"] = t } }
        var store = WeightStore(tensors, source: "calibration layers of \(shape.modelType)")
        return try LlamaDecoder(configuration: c, weights: &store)
    }

    /// Non-negative least squares of `rows · x ≈ times` (few unknowns): the best of every subset of unknowns
    /// solved unconstrained whose solution is non-negative (a term too small to measure gets 0).
    static func nonNegativeFit(_ rows: [[Double]], _ times: [Double]) -> [Double] {
        let unknowns = rows.first?.count ?? 0
        var best: (x: [Double], error: Double) = ([Double](repeating: 0, count: unknowns),
                                                  times.reduce(0) { $0 + $1 * $1 })
        for mask in 1..<(1 << unknowns) {
            let used = (0..<unknowns).filter { mask & (1 << $0) != 0 }
            // Normal equations on the used columns (scaled to unit norm for conditioning).
            let scale = used.map { j in max(rows.reduce(0) { $0 + $1[j] * $1[j] }.squareRoot(), 1e-300) }
            let a = used.indices.map { p in used.indices.map { q in
                rows.reduce(0) { $0 + $1[used[p]] * $1[used[q]] } / (scale[p] * scale[q]) } }
            let b = used.indices.map { p in zip(rows, times).reduce(0) { $0 + $1.0[used[p]] * $1.1 } / scale[p] }
            guard let y = solve(a, b), y.allSatisfy({ $0 >= 0 }) else { continue }
            var x = [Double](repeating: 0, count: unknowns)
            for (p, j) in used.enumerated() { x[j] = y[p] / scale[p] }
            let error = zip(rows, times).reduce(0.0) { acc, rt in
                let r = zip(rt.0, x).reduce(0) { $0 + $1.0 * $1.1 } - rt.1
                return acc + r * r
            }
            if error < best.error - 1e-18 { best = (x, error) }
        }
        return best.x
    }

    /// Gaussian elimination with partial pivoting; nil when singular.
    static func solve(_ a: [[Double]], _ b: [Double]) -> [Double]? {
        var m = zip(a, b).map { $0 + [$1] }
        let n = b.count
        for col in 0..<n {
            guard let pivot = (col..<n).max(by: { abs(m[$0][col]) < abs(m[$1][col]) }),
                  abs(m[pivot][col]) > 1e-12 else {
                return nil
            }
            m.swapAt(col, pivot)
            for r in 0..<n where r != col {
                let f = m[r][col] / m[col][col]
                for k in col...n { m[r][k] -= f * m[col][k] }
            }
        }
        return (0..<n).map { m[$0][n] / m[$0][$0] }
    }
}
