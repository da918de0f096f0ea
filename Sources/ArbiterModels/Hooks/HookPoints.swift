// Hook points: named, identity-by-default places in the forward pass where activations can be read
// (cached) or edited. Names follow TransformerLens's module paths (`blocks.3.attn.hook_pattern`).
import ArbiterTensor

/// The hook points of one transformer block, in forward order: the declaration every block's names come
/// from (`LayerHookNames`) and callers name hooks with (`HookName.block(3, .pattern)`), so that no caller spells
/// a hook name. The raw value is the name below `blocks.{l}.`.
public enum BlockHook: String, CaseIterable, Sendable {
    case residPre = "hook_resid_pre"
    case ln1 = "ln1.hook_normalized"
    case q = "attn.hook_q"
    case k = "attn.hook_k"
    case v = "attn.hook_v"
    case rotQ = "attn.hook_rot_q"
    case rotK = "attn.hook_rot_k"
    case attnScores = "attn.hook_attn_scores"
    case pattern = "attn.hook_pattern"
    case z = "attn.hook_z"
    case result = "attn.hook_result"
    case attnOut = "hook_attn_out"
    case residMid = "hook_resid_mid"
    case ln2 = "ln2.hook_normalized"
    case mlpPre = "mlp.hook_pre"
    case mlpPreLinear = "mlp.hook_pre_linear"
    case mlpPost = "mlp.hook_post"
    case mlpOut = "hook_mlp_out"
    case residPost = "hook_resid_post"
}

/// Typed hook names for callers; strings are for the CLI and files only.
public enum HookName {
    public static let embed = "hook_embed"
    public static let imageFeatures = "hook_image_features"
    public static let finalNorm = "ln_final.hook_normalized"
    public static let logits = "hook_logits"

    /// `blocks.{layer}.{hook}` of the decoder (`prefix` names a nested model's, e.g. a vision tower's `vision.`).
    public static func block(_ layer: Int, _ hook: BlockHook, prefix: String = "") -> String {
        "\(prefix)blocks.\(layer).\(hook.rawValue)"
    }

    /// The cache pattern of `hook` at every decoder block (`blocks.*.{hook}`).
    public static func everyBlock(_ hook: BlockHook) -> String { "blocks.*.\(hook.rawValue)" }
}

/// One visit of a hook point during a run.
public struct HookPoint: Sendable, Equatable {
    /// Full hook name, e.g. `blocks.3.attn.hook_z`.
    public let name: String
    /// Layer index for per-layer hooks (`blocks.{l}.…`, `vision.blocks.{l}.…`), nil otherwise.
    public let layer: Int?
    /// At a decoder layer's attention hooks whose rows are the run's queries — `attn.hook_attn_scores` and
    /// `attn.hook_pattern` (axis 1), `attn.hook_z` and `attn.hook_result` (axis 0) — the token position of the
    /// first query row: the cached rows attended to before the run's own (a suffix run's prefix, a continued
    /// run's parent, the rows before the last at a batch's final layer), 0 in a full run. nil at every other
    /// hook point. Edits that act on some positions only find their rows with it.
    public let queryOffset: Int?

    public init(name: String, layer: Int?, queryOffset: Int? = nil) {
        self.name = name
        self.layer = layer
        self.queryOffset = queryOffset
    }
}

/// Which activations a run keeps.
public enum HookFilter: Sendable {
    case none
    case all
    case names(Set<String>)
    /// Names matching any of the patterns; `*` matches any run of characters (`blocks.*.hook_resid_post`).
    case patterns([String])

    public func matches(_ name: String) -> Bool {
        switch self {
        case .none: return false
        case .all: return true
        case .names(let set): return set.contains(name)
        case .patterns(let patterns): return patterns.contains { wildcardMatch(pattern: $0, name) }
        }
    }
}

/// Glob match with `*` as the only wildcard.
public func wildcardMatch(pattern: String, _ text: String) -> Bool {
    let p = Array(pattern.utf8), t = Array(text.utf8)
    var pi = 0, ti = 0, star = -1, mark = 0
    while ti < t.count {
        if pi < p.count && p[pi] != UInt8(ascii: "*") && p[pi] == t[ti] { pi += 1; ti += 1 }
        else if pi < p.count && p[pi] == UInt8(ascii: "*") { star = pi; mark = ti; pi += 1 }
        else if star >= 0 { pi = star + 1; mark += 1; ti = mark }
        else { return false }
    }
    while pi < p.count && p[pi] == UInt8(ascii: "*") { pi += 1 }
    return pi == p.count
}

/// An editing hook: receives the activation (shape as documented at the hook's declaration) and may
/// change it in place.
public typealias HookEdit = @Sendable (_ tensor: inout Tensor, _ point: HookPoint) throws -> Void

/// The hooks of one run: a cache filter and editing closures keyed by hook name. A `HookRun` is passed
/// to a single forward call, so no hook outlives the call it was registered for (scoped registration).
public final class HookRun: @unchecked Sendable {
    public let filter: HookFilter
    private var edits: [String: [HookEdit]]
    /// Activations kept by the filter, after edits were applied, keyed by hook name.
    public private(set) var cache: [String: Tensor] = [:]
    /// Hook names in the order the run visited them.
    public private(set) var visited: [String] = []
    /// Whether to record `visited` (used by the test that pins hook order).
    public var recordsVisits = false

    /// The keys of `edits`: an intervened run edits one or a few of the ~20 points a layer visits for each
    /// run it batches, and comparing a few names (lengths first) rejects the others faster than hashing each.
    private var editedPoints: [String]

    @inline(__always)
    private func hasEdits(_ name: String) -> Bool {
        editedPoints.count <= 16 ? editedPoints.contains(name) : edits[name] != nil
    }

    public init(cache filter: HookFilter = .none, edits: [String: [HookEdit]] = [:]) {
        self.filter = filter
        self.edits = edits
        editedPoints = Array(edits.keys)
    }

    /// Adds an edit at `name` (applied after earlier edits at the same point).
    public func addEdit(at name: String, _ edit: @escaping HookEdit) {
        if edits[name] == nil { editedPoints.append(name) }
        edits[name, default: []].append(edit)
    }

    public var editedNames: [String] { Array(edits.keys).sorted() }

    /// Applies the edits registered at `name` (used to replay a run's edits).
    public func applyEdits(_ name: String, _ tensor: inout Tensor, _ point: HookPoint) throws {
        for edit in edits[name] ?? [] { try edit(&tensor, point) }
    }

    /// Whether an edit is registered at `name`.
    public func edits(_ name: String) -> Bool { hasEdits(name) }

    /// Whether anything happens at `name` (lets the model skip optional work such as `attn.hook_result`).
    @inline(__always)
    public func wants(_ name: String) -> Bool {
        hasEdits(name) || filter.matches(name)
    }

    /// Visits a hook point: applies edits, then caches the result when the filter keeps it. `queryOffset`: see
    /// `HookPoint.queryOffset`.
    @inline(__always)
    public func visit(_ name: String, layer: Int? = nil, queryOffset: Int? = nil, _ tensor: inout Tensor) throws {
        if recordsVisits { visited.append(name) }
        if hasEdits(name), let list = edits[name] {
            let point = HookPoint(name: name, layer: layer, queryOffset: queryOffset)
            for edit in list { try edit(&tensor, point) }
        }
        if filter.matches(name) { cache[name] = tensor }
    }

    /// Throws if an edit or an explicitly named cache entry refers to a hook the model does not have.
    public func validate(against known: [String], model: String) throws {
        try validate(against: Set(known), ordered: known, model: model)
    }

    /// `validate(against:model:)` with the names as a set (built once for many runs: the analyses install
    /// interventions into thousands of runs).
    public func validate(against known: Set<String>, model: String) throws {
        try validate(against: known, ordered: nil, model: model)
    }

    /// `ordered`: the names in the model's order, for the suggestions (sorted names when nil).
    private func validate(against set: Set<String>, ordered: [String]?, model: String) throws {
        if case .none = filter, edits.keys.allSatisfy(set.contains) { return }
        let known = ordered ?? set.sorted()
        var unknown = edits.keys.filter { !set.contains($0) }
        if case .names(let names) = filter { unknown += names.filter { !set.contains($0) } }
        if case .patterns(let patterns) = filter {
            unknown += patterns.filter { p in !known.contains { wildcardMatch(pattern: p, $0) } }
        }
        guard unknown.isEmpty else {
            throw ModelError.unknownHook(names: unknown.sorted(), model: model,
                                         suggestions: suggestions(for: unknown[0], in: known))
        }
    }
}

/// Up to three known names closest to `name` (shared prefix, then length difference).
func suggestions(for name: String, in known: [String]) -> [String] {
    func score(_ candidate: String) -> Int {
        let common = zip(candidate.utf8, name.utf8).prefix { $0 == $1 }.count
        return common * 4 - abs(candidate.utf8.count - name.utf8.count)
    }
    return Array(known.sorted { score($0) > score($1) }.prefix(3))
}

/// Optional-chaining helper used by model code: `try hooks.visit(...)` when a run has hooks.
extension Optional where Wrapped == HookRun {
    @inline(__always)
    func visit(_ name: String, layer: Int? = nil, queryOffset: Int? = nil, _ tensor: inout Tensor) throws {
        if let run = self { try run.visit(name, layer: layer, queryOffset: queryOffset, &tensor) }
    }
    @inline(__always)
    func wants(_ name: String) -> Bool { self?.wants(name) ?? false }
}
