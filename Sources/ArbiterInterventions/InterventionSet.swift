// Installing interventions into a run: validation against the model and prompt first (nothing is computed
// when anything is wrong), then editing hooks at the points each intervention acts on.
import ArbiterModels
import ArbiterTensor

/// Interventions applied together in one run, in order.
public struct InterventionSet: Sendable, CustomStringConvertible {
    public var interventions: [Intervention]

    public init(_ interventions: [Intervention] = []) { self.interventions = interventions }

    public var isEmpty: Bool { interventions.isEmpty }
    public var description: String {
        interventions.isEmpty ? "none" : interventions.map(\.description).joined(separator: "; ")
    }

    /// A HookRun carrying these interventions (and caching `cache`), validated for `decoder` and a prompt
    /// of `tokenCount` tokens with `spans`.
    public func hooks(for decoder: LlamaDecoder, hookNames: [String], tokenCount: Int, spans: TokenSpans? = nil,
                      cache: HookFilter = .none) throws -> HookRun {
        let run = HookRun(cache: cache)
        try install(into: run, decoder: decoder, hookNames: hookNames, tokenCount: tokenCount, spans: spans)
        try run.validate(against: hookNames, model: "model")
        return run
    }

    /// `hooks(for:hookNames:…)` with the model's hook names as a set, built once for many runs.
    public func hooks(for decoder: LlamaDecoder, hookNames: Set<String>, tokenCount: Int, spans: TokenSpans? = nil,
                      cache: HookFilter = .none) throws -> HookRun {
        let run = HookRun(cache: cache)
        try install(into: run, decoder: decoder, isHookName: hookNames.contains, tokenCount: tokenCount, spans: spans)
        try run.validate(against: hookNames, model: "model")
        return run
    }

    /// The first position whose activations these interventions can change, nil when they can change none:
    /// every position before it computes exactly as without them, so a run may resume there from the cached
    /// keys and values of the prefix (a suffix run). Causal attention: a knockout changes only its queries at
    /// or after its first key (a query before every key cannot see them anyway), a head blocked at some queries
    /// only those from its first query on; any other intervention may change every position.
    public func firstChangedPosition(tokenCount: Int, spans: TokenSpans?) throws -> Int? {
        var first: Int? = nil
        for intervention in interventions {
            var position = 0
            if case .knockout(let keySelector, let querySelector, _, _) = intervention {
                let firstKey = try keySelector.resolve(spans, tokenCount: tokenCount).min()
                let queries = try querySelector.resolve(spans, tokenCount: tokenCount)
                guard let firstKey, let q = queries.filter({ $0 >= firstKey }).min() else { continue }
                position = q
            }
            if case .blockHeadsAt(let heads, let querySelector) = intervention {
                guard !heads.isEmpty, let q = try querySelector.resolve(spans, tokenCount: tokenCount).min() else {
                    continue
                }
                position = q
            }
            if case .amplifyHeadsAt(let heads, _, let querySelector) = intervention {
                guard !heads.isEmpty, let q = try querySelector.resolve(spans, tokenCount: tokenCount).min() else {
                    continue
                }
                position = q
            }
            first = min(first ?? position, position)
        }
        return first
    }

    /// What these interventions do when they do the same at every position of any prompt — head blocking,
    /// mean-ablation and amplification, MLP scaling — and nil when one depends on positions or spans
    /// (knockouts, patches). Sets with equal keys install the same edits (factors and means compared bit for
    /// bit), so two runs under them compute the same rows at positions < p from the same inputs there: the
    /// runs may share those rows (`DecoderRun.continues`).
    public var positionIndependentKey: PositionIndependentKey? {
        var parts: [PositionIndependentKey.Part] = []
        for intervention in interventions {
            switch intervention {
            case .blockHeads(let heads, let means):
                let bits = means.map { m in heads.map { (m[$0] ?? []).map(\.bitPattern) } }
                parts.append(.blockHeads(heads, means: bits))
            case .amplifyHeads(let heads, let factor): parts.append(.amplifyHeads(heads, factor: factor.bitPattern))
            case .scaleMLP(let layers, let factor): parts.append(.scaleMLP(layers, factor: factor.bitPattern))
            case .knockout, .blockHeadsAt, .amplifyHeadsAt, .patch: return nil
            }
        }
        return PositionIndependentKey(parts: parts)
    }

    /// Validates every intervention, then adds its edits to `run`.
    public func install(into run: HookRun, decoder: LlamaDecoder, hookNames: [String], tokenCount: Int,
                        spans: TokenSpans?) throws {
        try install(into: run, decoder: decoder, isHookName: hookNames.contains, tokenCount: tokenCount, spans: spans)
    }

    func install(into run: HookRun, decoder: LlamaDecoder, isHookName: (String) -> Bool, tokenCount: Int,
                 spans: TokenSpans?) throws {
        let c = decoder.configuration
        let prefix = decoder.hookPrefix
        func checkLayers(_ layers: [Int], _ what: String) throws {
            for l in layers where l < 0 || l >= c.layers {
                throw ModelError.invalidInput("\(what): layer \(l) outside 0..<\(c.layers)")
            }
        }
        func checkHeads(_ heads: [HeadIndex], _ what: String) throws {
            for h in heads where h.layer < 0 || h.layer >= c.layers || h.head < 0 || h.head >= c.attentionHeads {
                throw ModelError.invalidInput("\(what): head \(h) outside layers 0..<\(c.layers), heads "
                                              + "0..<\(c.attentionHeads)")
            }
        }
        // Validate everything first.
        var installers: [() -> Void] = []
        /// An edit of `heads`' outputs (`attn.hook_z`) at the query positions `selector` resolves to: `edit(z,
        /// the layer's heads, the positions, the first row's position)`.
        func atQueries(_ heads: [HeadIndex], _ selector: PositionSelector, _ what: String,
                       _ edit: @escaping @Sendable (inout Tensor, [Int], Set<Int>, Int) -> Void) throws {
            try checkHeads(heads, what)
            let queries = Set(try selector.resolve(spans, tokenCount: tokenCount))
            for (layer, group) in Dictionary(grouping: heads, by: \.layer) {
                let name = HookName.block(layer, .z, prefix: prefix)
                let local = group.map(\.head)
                installers.append {
                    run.addEdit(at: name) { z, point in
                        guard let offset = point.queryOffset else {
                            throw ModelError.invalidInput("\(what): \(point.name) was visited without its rows' "
                                                          + "positions")
                        }
                        edit(&z, local, queries, offset)
                    }
                }
            }
        }
        for intervention in interventions {
            switch intervention {
            case .knockout(let keySelector, let querySelector, let layers, let heads):
                try checkLayers(layers, "knockout")
                if let heads { for h in heads where h < 0 || h >= c.attentionHeads {
                    throw ModelError.invalidInput("knockout: head \(h) outside 0..<\(c.attentionHeads)")
                } }
                let keys = try keySelector.resolve(spans, tokenCount: tokenCount)
                let queries = try querySelector.resolve(spans, tokenCount: tokenCount)
                let headList = heads ?? Array(0..<c.attentionHeads)
                for l in Set(layers).sorted() {
                    let name = HookName.block(l, .attnScores, prefix: prefix)
                    installers.append {
                        run.addEdit(at: name) { scores, _ in
                            Self.knockOut(&scores, keys: keys, queries: queries, heads: headList)
                        }
                    }
                }
            case .blockHeads(let heads, let means):
                try checkHeads(heads, "block heads")
                if let means {
                    for h in heads {
                        guard let m = means[h], m.count == c.headDim, m.allSatisfy(\.isFinite) else {
                            throw ModelError.invalidInput("block heads: no finite mean of length \(c.headDim) "
                                                          + "for head \(h)")
                        }
                    }
                }
                for (layer, group) in Dictionary(grouping: heads, by: \.layer) {
                    let name = HookName.block(layer, .z, prefix: prefix)
                    let local = group.map(\.head)
                    let layerMeans = means.map { m in
                        Dictionary(uniqueKeysWithValues: group.map { ($0.head, m[$0]!) })
                    }
                    installers.append {
                        run.addEdit(at: name) { z, _ in Self.replaceHeads(&z, heads: local, means: layerMeans) }
                    }
                }
            case .blockHeadsAt(let heads, let querySelector):
                try atQueries(heads, querySelector, "block heads at \(querySelector)") { z, local, queries, offset in
                    Self.zeroHeads(&z, heads: local, at: queries, firstPosition: offset)
                }
            case .amplifyHeads(let heads, let factor):
                guard factor.isFinite else {
                    throw ModelError.invalidInput("amplify heads: factor \(factor) is not finite")
                }
                try checkHeads(heads, "amplify heads")
                for (layer, group) in Dictionary(grouping: heads, by: \.layer) {
                    let name = HookName.block(layer, .z, prefix: prefix)
                    let local = group.map(\.head)
                    installers.append {
                        run.addEdit(at: name) { z, _ in Self.scaleHeads(&z, heads: local, factor: factor) }
                    }
                }
            case .amplifyHeadsAt(let heads, let factor, let querySelector):
                guard factor.isFinite else {
                    throw ModelError.invalidInput("amplify heads at \(querySelector): factor \(factor) is not finite")
                }
                try atQueries(heads, querySelector, "amplify heads at \(querySelector)") { z, local, queries, offset in
                    Self.scaleHeads(&z, heads: local, factor: factor, at: queries, firstPosition: offset)
                }
            case .scaleMLP(let layers, let factor):
                guard factor.isFinite else {
                    throw ModelError.invalidInput("scale MLP: factor \(factor) is not finite")
                }
                try checkLayers(layers, "scale MLP")
                for l in Set(layers).sorted() {
                    let name = HookName.block(l, .mlpOut, prefix: prefix)
                    installers.append {
                        run.addEdit(at: name) { out, _ in
                            out.scalars.withUnsafeMutableBufferPointer { p in for i in p.indices { p[i] *= factor } }
                        }
                    }
                }
            case .patch(let hook, let source, let positions):
                guard isHookName(hook) else {
                    throw ModelError.unknownHook(names: [hook], model: "model", suggestions: [])
                }
                if let positions, let first = source.shape.first {
                    for p in positions where p < 0 || p >= first {
                        throw ModelError.invalidInput("patch \(hook): position \(p) outside 0..<\(first)")
                    }
                }
                installers.append {
                    run.addEdit(at: hook) { tensor, point in
                        guard tensor.shape == source.shape else {
                            throw ModelError.invalidInput("patch \(point.name): source shape \(source.shape) differs "
                                                          + "from the run's \(tensor.shape)")
                        }
                        guard let positions else { tensor = source; return }
                        let rowWidth = tensor.count / max(tensor.shape[0], 1)
                        for p in positions {
                            for j in 0..<rowWidth {
                                tensor.scalars[p * rowWidth + j] = source.scalars[p * rowWidth + j]
                            }
                        }
                    }
                }
            }
        }
        installers.forEach { $0() }
    }

    /// scores `[H, Tq, S]`: -inf at (h, q, k) for chosen heads, queries and keys, except the self edge and
    /// (already masked) future keys. The rows are the queries at absolute positions S−Tq..<S (Tq = S in a
    /// full run; a suffix run after cached prefix keys has Tq < S).
    static func knockOut(_ scores: inout Tensor, keys: [Int], queries: [Int], heads: [Int]) {
        let t = scores.shape[1], s = scores.shape[2], offset = s - t
        scores.scalars.withUnsafeMutableBufferPointer { p in
            for h in heads {
                for q in queries where q >= offset && q < s {
                    let row = p.baseAddress! + (h * t + q - offset) * s
                    for k in keys where k < s && k != q { row[k] = -.infinity }
                }
            }
        }
    }

    /// z `[T, H, D]`: the chosen heads' rows set to zero or to a mean vector.
    static func replaceHeads(_ z: inout Tensor, heads: [Int], means: [Int: [Float]]?) {
        let t = z.shape[0], h = z.shape[1], d = z.shape[2]
        z.scalars.withUnsafeMutableBufferPointer { p in
            for i in 0..<t {
                for head in heads {
                    let base = (i * h + head) * d
                    if let m = means?[head] { for j in 0..<d { p[base + j] = m[j] } }
                    else { for j in 0..<d { p[base + j] = 0 } }
                }
            }
        }
    }

    /// z `[T, H, D]` of the queries at positions firstPosition..<firstPosition + T: the chosen heads' rows at
    /// `positions` set to zero.
    static func zeroHeads(_ z: inout Tensor, heads: [Int], at positions: Set<Int>, firstPosition: Int) {
        let t = z.shape[0], h = z.shape[1], d = z.shape[2]
        z.scalars.withUnsafeMutableBufferPointer { p in
            for i in 0..<t where positions.contains(firstPosition + i) {
                for head in heads {
                    let base = (i * h + head) * d
                    for j in 0..<d { p[base + j] = 0 }
                }
            }
        }
    }

    /// z `[T, H, D]` of the queries at positions firstPosition..<firstPosition + T: the chosen heads' rows at
    /// `positions` scaled by `factor`.
    static func scaleHeads(_ z: inout Tensor, heads: [Int], factor: Float, at positions: Set<Int>,
                           firstPosition: Int) {
        let t = z.shape[0], h = z.shape[1], d = z.shape[2]
        z.scalars.withUnsafeMutableBufferPointer { p in
            for i in 0..<t where positions.contains(firstPosition + i) {
                for head in heads {
                    let base = (i * h + head) * d
                    for j in 0..<d { p[base + j] *= factor }
                }
            }
        }
    }

    /// z `[T, H, D]`: the chosen heads' rows scaled by `factor`.
    static func scaleHeads(_ z: inout Tensor, heads: [Int], factor: Float) {
        let t = z.shape[0], h = z.shape[1], d = z.shape[2]
        z.scalars.withUnsafeMutableBufferPointer { p in
            for i in 0..<t {
                for head in heads {
                    let base = (i * h + head) * d
                    for j in 0..<d { p[base + j] *= factor }
                }
            }
        }
    }
}

/// The interventions of a set that acts alike at every position (`InterventionSet.positionIndependentKey`).
public struct PositionIndependentKey: Hashable, Sendable {
    enum Part: Hashable, Sendable {
        case blockHeads([HeadIndex], means: [[UInt32]]?)
        case amplifyHeads([HeadIndex], factor: UInt32)
        case scaleMLP([Int], factor: UInt32)
    }
    let parts: [Part]
}

/// Mean of each head's output (`attn.hook_z`) over every position of reference runs: the replacement
/// value for mean-ablation.
public func meanHeadOutputs(_ caches: [[String: Tensor]], heads: [HeadIndex],
                            prefix: String = "") throws -> [HeadIndex: [Float]] {
    var sums: [HeadIndex: [Double]] = [:], counts: [HeadIndex: Int] = [:]
    for cache in caches {
        for head in heads {
            guard let z = cache[HookName.block(head.layer, .z, prefix: prefix)] else {
                throw ModelError.invalidInput("reference cache lacks \(HookName.block(head.layer, .z))")
            }
            let t = z.shape[0], h = z.shape[1], d = z.shape[2]
            var s = sums[head] ?? [Double](repeating: 0, count: d)
            for i in 0..<t { for j in 0..<d { s[j] += Double(z.scalars[(i * h + head.head) * d + j]) } }
            sums[head] = s
            counts[head, default: 0] += t
        }
    }
    guard counts.values.allSatisfy({ $0 > 0 }), !caches.isEmpty else {
        throw ModelError.invalidInput("mean head outputs need at least one reference sample with tokens")
    }
    var means: [HeadIndex: [Float]] = [:]
    for (head, sum) in sums { means[head] = sum.map { Float($0 / Double(counts[head]!)) } }
    return means
}
