// Causal interventions as values: attention knockout, head blocking and amplification, MLP scaling and
// activation patching. Each validates against a model and prompt before any computation, installs itself
// as editing hooks into one run, and describes itself for reports.
import ArbiterModels
import ArbiterTensor

/// A set of token positions: a span name of the prompt, or explicit positions.
public enum PositionSelector: Sendable, Equatable, CustomStringConvertible {
    case span(String)
    case positions([Int])

    public func resolve(_ spans: TokenSpans?, tokenCount: Int) throws -> [Int] {
        switch self {
        case .span(let name):
            guard let spans else {
                if name == "all" { return Array(0..<tokenCount) }
                if name == "last" { return tokenCount > 0 ? [tokenCount - 1] : [] }
                throw ModelError.invalidInput("span '\(name)' needs a prompt with spans (use --prompt, or "
                                              + "give positions)")
            }
            return try spans.positions(name)
        case .positions(let p):
            for i in p where i < 0 || i >= tokenCount {
                throw ModelError.invalidInput("position \(i) is outside the \(tokenCount) prompt tokens")
            }
            return Array(Set(p)).sorted()
        }
    }

    public var description: String {
        switch self {
        case .span(let name): return name
        case .positions(let p): return p.map(String.init).joined(separator: ",")
        }
    }
}

/// A (layer, head) pair.
public struct HeadIndex: Hashable, Sendable, Comparable, CustomStringConvertible, Codable {
    public let layer: Int
    public let head: Int
    public init(layer: Int, head: Int) { self.layer = layer; self.head = head }
    public static func < (a: HeadIndex, b: HeadIndex) -> Bool { (a.layer, a.head) < (b.layer, b.head) }
    public var description: String { "\(layer).\(head)" }
}

/// One causal intervention.
public enum Intervention: Sendable, CustomStringConvertible {
    /// Blocks attention from `queries` to `keys` (information flowing keys → queries) in `layers`, for
    /// `heads` (nil: all). Scores are set to -inf before the softmax. The self edge q → q is never blocked,
    /// so no query row is ever left with nothing to attend to.
    case knockout(keys: PositionSelector, queries: PositionSelector, layers: [Int], heads: [Int]?)
    /// Replaces the output (`attn.hook_z`) of each head by zero, or by a reference mean (`means[head]`, `[D]`).
    case blockHeads([HeadIndex], means: [HeadIndex: [Float]]?)
    /// Replaces the output (`attn.hook_z`) of each head by zero at the query positions `queries` only (the head
    /// still writes at every other position; `blockHeads` blocks it at all of them). Positions before the first
    /// query compute as without it, so a run may resume there (`InterventionSet.firstChangedPosition`).
    case blockHeadsAt([HeadIndex], queries: PositionSelector)
    /// Scales the output (`attn.hook_z`) of each head by `factor`.
    case amplifyHeads([HeadIndex], factor: Float)
    /// Scales the output (`attn.hook_z`) of each head by `factor` at the query positions `queries` only (as
    /// `blockHeadsAt` zeroes them there): a run may resume at the first query.
    case amplifyHeadsAt([HeadIndex], factor: Float, queries: PositionSelector)
    /// Scales the MLP output of `layers` by `factor` (0 ablates).
    case scaleMLP(layers: [Int], factor: Float)
    /// Replaces hook `hook`'s activation by `source` (same shape), at `positions` (rows of the first axis) or
    /// everywhere.
    case patch(hook: String, source: Tensor, positions: [Int]?)

    public var description: String {
        switch self {
        case .knockout(let keys, let queries, let layers, let heads):
            return "knockout \(keys)->\(queries)@\(layerText(layers))"
                + (heads.map { " heads \($0.map(String.init).joined(separator: ","))" } ?? "")
        case .blockHeads(let heads, let means):
            return "block heads \(heads.map(\.description).joined(separator: ","))"
                + (means == nil ? " (zero)" : " (mean)")
        case .blockHeadsAt(let heads, let queries):
            return "block heads \(heads.map(\.description).joined(separator: ",")) at \(queries) (zero)"
        case .amplifyHeads(let heads, let factor):
            return "amplify heads \(heads.map(\.description).joined(separator: ",")) ×\(factor)"
        case .amplifyHeadsAt(let heads, let factor, let queries):
            return "amplify heads \(heads.map(\.description).joined(separator: ",")) ×\(factor) at \(queries)"
        case .scaleMLP(let layers, let factor):
            return "scale MLP @\(layerText(layers)) ×\(factor)"
        case .patch(let hook, _, let positions):
            return "patch \(hook)" + (positions.map { " at \($0.map(String.init).joined(separator: ","))" } ?? "")
        }
    }
}

func layerText(_ layers: [Int]) -> String {
    guard let first = layers.first, let last = layers.last else { return "none" }
    if layers == Array(first...last) { return first == last ? "\(first)" : "\(first)-\(last)" }
    return layers.map(String.init).joined(separator: ",")
}
