// Information flow by attention knockout: for an edge (keys → queries), each layer ℓ and a window of w layers
// around it, block the edge in the window and measure the normalised signed shift
//   I(ℓ) = mean(s_ko − s_base) / mean|s_base|      (per instruction target, bootstrap CI)
// resuming every run from the cached residual stream at the window's first layer.
import ArbiterInterventions

/// An edge kind of the paper: information flowing from `keys` into `queries`.
public struct FlowEdge: Sendable, Codable, Hashable, CustomStringConvertible {
    public let keys: String
    public let queries: String
    public init(_ keys: String, _ queries: String) { self.keys = keys; self.queries = queries }
    public var description: String { "\(keys)->\(queries)" }

    /// vision→text (all text), vision→last, context→last, context→instruction, vision→instruction,
    /// vision→context, instruction→last, and the two cue edges of the paper's figures, which knock both
    /// cues (image and context) out at once: cues→instruction and cues→last. A mechanism that needs both
    /// cues in the anchors (a buffer the deep layers choose from) shows only on the joint edge: knocking
    /// one cue out of it hurts one target and can help the other.
    public static let paperEdges = [
        FlowEdge("image", "text"), FlowEdge("image", "last"), FlowEdge("context", "last"),
        FlowEdge("context", "instruction"), FlowEdge("image", "instruction"), FlowEdge("image", "context"),
        FlowEdge("instruction", "last"), FlowEdge("cues", "instruction"), FlowEdge("cues", "last"),
    ]
}

public struct InformationFlowResult: Sendable, Codable, Equatable {
    public var window: Int
    /// edge → target ("image", "text") → per-layer shift estimates, over all conflict items.
    public var shift: [String: [String: [Estimate]]]
    /// The same on the calibration and the held-out conflict items separately (empty without a split): a
    /// claim that picks an extreme (a layer, an edge, a band) picks it on calibration and tests it on held-out.
    public var calibrationShift: [String: [String: [Estimate]]]
    public var heldOutShift: [String: [String: [Estimate]]]
    public var seed: UInt64
}

public enum InformationFlow {
    /// Deliberate breakages for the mutation tests, set only from tests with `InformationFlow.$mutation.withValue`:
    /// each must make a test fail (KnockoutMutationTests). A task-local, so other tests running side by side are
    /// untouched.
    enum Mutation: Sendable { case knockoutDoesNothing }
    @TaskLocal static var mutation: Mutation?

    /// Default window: 7 for deep models (≥ 28 layers), scaled down for shallow ones (≈ layers/4, odd, ≥ 1).
    public static func defaultWindow(layers: Int) -> Int {
        let w = max(1, min(7, Int((Double(layers) / 4).rounded())))
        return w % 2 == 1 ? w : w - 1
    }

    /// Layers of the window centred on `layer`, clipped at the ends.
    public static func window(around layer: Int, width: Int, layers: Int) -> [Int] {
        let half = width / 2
        return Array(max(0, layer - half)...min(layers - 1, layer + half))
    }

    /// The conflict samples an edge is measured on: those with both of its spans (e.g. not those without context).
    static func usable(_ samples: [AnalysisSample], _ conflict: [Int], edge: FlowEdge) -> [Int] {
        conflict.filter { i in
            (try? samples[i].input.spans.positions(edge.keys))?.isEmpty == false
                && (try? samples[i].input.spans.positions(edge.queries))?.isEmpty == false
        }
    }

    /// One (sample, layer) knockout request per usable sample and layer, sample-major (also counted by `VerifyPlan`).
    static func requests(_ samples: [AnalysisSample], usable: [Int], edge: FlowEdge, width: Int,
                         layers: Int) throws -> [ScoreRequest] {
        try usable.flatMap { i in
            // Causal attention: a query changes only if it sits at or after a knocked key, and positions
            // before the first such query cannot change — recompute from there (for vision→text, from the
            // first text token after the image rather than the system prompt before it).
            let input = samples[i].input
            return try (0..<layers).map { layer in
                let w = Self.window(around: layer, width: width, layers: layers)
                let ko = mutation == .knockoutDoesNothing ? InterventionSet([])
                    : InterventionSet([.knockout(keys: .span(edge.keys), queries: .span(edge.queries),
                                                 layers: w, heads: nil)])
                let first = try ko.firstChangedPosition(tokenCount: input.ids.count, spans: input.spans) ?? 0
                return ScoreRequest(sample: i, interventions: ko, startLayer: w[0], unchangedBefore: first)
            }
        }
    }

    /// `calibration`: the indices of `samples` in the calibration split (nil: no split estimates); the other
    /// conflict samples are the held-out split.
    public static func measure(runner: AnalysisRunner, samples: [AnalysisSample], baselines: [BaselineRun],
                               edges: [FlowEdge] = FlowEdge.paperEdges, window: Int? = nil,
                               calibration: Set<Int>? = nil, seed: UInt64,
                               progress: (String) -> Void = { _ in }) throws -> InformationFlowResult {
        let layers = runner.layers
        let width = window ?? defaultWindow(layers: layers)
        guard width >= 1 && width <= layers else {
            throw AnalysisError.invalidParameter("knockout window \(width) must be between 1 and the model's "
                                                 + "\(layers) layers")
        }
        let conflict = samples.indices.filter { samples[$0].kind == "conflict" && samples[$0].target != nil }
        guard !conflict.isEmpty else {
            throw AnalysisError.tooFewSamples(what: "information flow (conflict samples)", have: 0, need: 1)
        }
        var shift: [String: [String: [Estimate]]] = [:]
        var calibrationShift = shift, heldOutShift = shift
        let usables = edges.map { Self.usable(samples, conflict, edge: $0) }
        let calls = try edges.indices.map { e in
            try Self.requests(samples, usable: usables[e], edge: edges[e], width: width, layers: layers)
        }
        let scored = try runner.scores(calls: calls, samples: samples, baselines: baselines) { e in
            progress(e.map { "knockout \(edges[$0]) (\($0 + 1)/\(edges.count))" }
                     ?? "knockouts of \(edges.count) edges at once (keys and values run again, a chunk of "
                        + "items at a time)")
        }
        for (e, edge) in edges.enumerated() {
            let usable = usables[e], requests = calls[e], knocked = scored[e]
            let shifts = requests.indices.map { knocked[$0].s - baselines[requests[$0].sample].score.s }
            let delta = (0..<layers).map { layer in usable.indices.map { shifts[$0 * layers + layer] } }
            // Per target, over the members `keep` allows; split k offsets the bootstrap seeds.
            func byTarget(_ split: UInt64, _ keep: (Int) -> Bool) -> [String: [Estimate]] {
                var result: [String: [Estimate]] = [:]
                for target in InstructionTarget.allCases {
                    let members = usable.indices.filter { samples[usable[$0]].target == target && keep(usable[$0]) }
                    let base = members.map { baselines[usable[$0]].score.s }
                    result[target.rawValue] = (0..<layers).map { layer in
                        Estimate.bootstrapRatio(members.map { delta[layer][$0] }, base,
                                                seed: seed &+ split &* 1_000_000 &+ UInt64(e * 1000 + layer),
                                                resamples: 500)
                    }
                }
                return result
            }
            shift[edge.description] = byTarget(0) { _ in true }
            if let calibration {
                calibrationShift[edge.description] = byTarget(1) { calibration.contains($0) }
                heldOutShift[edge.description] = byTarget(2) { !calibration.contains($0) }
            }
        }
        return InformationFlowResult(window: width, shift: shift, calibrationShift: calibrationShift,
                                     heldOutShift: heldOutShift, seed: seed)
    }
}
