// The one pre-norm transformer block of every model (TransformerLens's single block): the decoder's and every
// vision tower's are `HookedBlock`s over their own norm, attention and MLP. The block visits its residual hook
// points and its norms'; the attention and the MLP visit theirs and declare them (`hookPoints`) beside the code
// that visits them, so a block's hook names come from the same declarations as its visits
// (`HookNamesTests` runs every bundled model and checks the visits against the names, in order).
import ArbiterFormats
import ArbiterTensor

/// Where a block sends its hook visits: one run's hooks (`RunHooks`), or the runs of a batch, each its own
/// rows (`[DecoderSegment]`).
protocol HookVisits {
    func visit(_ name: String, layer: Int, _ tensor: inout Tensor) throws
}

/// The hooks of one run.
struct RunHooks: HookVisits {
    let hooks: HookRun?
    @inline(__always)
    func visit(_ name: String, layer: Int, _ tensor: inout Tensor) throws {
        try hooks.visit(name, layer: layer, &tensor)
    }
    /// Whether the run caches or edits `name` (an attention then builds the dense pattern).
    func wants(_ name: String) -> Bool { hooks.wants(name) }
}

extension Array: HookVisits where Element == DecoderSegment {}

/// A block's normalization.
enum BlockNorm: @unchecked Sendable {
    case rms(weight: StoredTensor, eps: Float)
    case layer(weight: StoredTensor, bias: StoredTensor, eps: Float)

    /// LayerNorm with `{name}.weight` and `{name}.bias` of `width`.
    static func layer(_ w: inout WeightStore, _ name: String, width: Int, eps: Float) throws -> BlockNorm {
        .layer(weight: try w.take("\(name).weight", shape: [width]), bias: try w.take("\(name).bias", shape: [width]),
               eps: eps)
    }

    /// RMSNorm with `{name}.weight` of `width`.
    static func rms(_ w: inout WeightStore, _ name: String, width: Int, eps: Float) throws -> BlockNorm {
        .rms(weight: try w.take("\(name).weight", shape: [width]), eps: eps)
    }

    func callAsFunction(_ x: Tensor) -> Tensor {
        switch self {
        case .rms(let weight, let eps): return rmsNorm(x, weight: weight, eps: eps)
        case .layer(let weight, let bias, let eps): return layerNorm(x, weight: weight, bias: bias, eps: eps)
        }
    }
}

/// A block's attention: returns its output (the block's `hook_attn_out` before its hook).
protocol BlockAttention: Sendable {
    /// What it needs beside its input (rotary tables, attention segments; `Void` for none).
    associatedtype Context
    associatedtype Visits: HookVisits
    /// The hook points it visits, in order (within `attn.`).
    static var hookPoints: [BlockHook] { get }
    func callAsFunction(_ x: Tensor, context: Context, layer: Int, names: LayerHookNames,
                        visits: Visits) throws -> Tensor
}

/// A block's MLP: returns its output (the block's `hook_mlp_out` before its hook).
protocol BlockMLP: Sendable {
    associatedtype Visits: HookVisits
    /// The hook points it visits, in order (within `mlp.`).
    static var hookPoints: [BlockHook] { get }
    func callAsFunction(_ x: Tensor, layer: Int, names: LayerHookNames, visits: Visits) throws -> Tensor
}

/// x → x + attention(norm1(x)) → + mlp(norm2(·)), visiting `hook_resid_pre`, `ln1.hook_normalized` (when the
/// norms are hook points), the attention's, `hook_attn_out`, `hook_resid_mid`, `ln2.hook_normalized`, the
/// MLP's, `hook_mlp_out` and `hook_resid_post`.
struct HookedBlock<Attention: BlockAttention, MLP: BlockMLP>: @unchecked Sendable
where MLP.Visits == Attention.Visits {
    let norm1: BlockNorm
    let attention: Attention
    let norm2: BlockNorm
    let mlp: MLP
    /// Whether the norms' outputs are hook points (`ln1`, `ln2`: the decoder's and Qwen-VL's are; CLIP's are
    /// not, as in its hook list since the first release).
    let hooksNorms: Bool

    /// The hook points `callAsFunction` visits, in order.
    var hookPoints: [BlockHook] {
        [.residPre] + (hooksNorms ? [.ln1] : []) + Attention.hookPoints + [.attnOut, .residMid]
            + (hooksNorms ? [.ln2] : []) + MLP.hookPoints + [.mlpOut, .residPost]
    }

    /// The hook names of the block under `names`' prefix.
    func hookNames(_ names: LayerHookNames) -> [String] { hookPoints.map(names.name) }

    func callAsFunction(_ residual: Tensor, context: Attention.Context, layer l: Int, names n: LayerHookNames,
                        visits: Attention.Visits) throws -> Tensor {
        var x = residual
        try visits.visit(n.residPre, layer: l, &x)
        var h = norm1(x)
        if hooksNorms { try visits.visit(n.ln1, layer: l, &h) }
        var attnOut = try attention(h, context: context, layer: l, names: n, visits: visits)
        try visits.visit(n.attnOut, layer: l, &attnOut)
        add(&x, attnOut)
        try visits.visit(n.residMid, layer: l, &x)
        var h2 = norm2(x)
        if hooksNorms { try visits.visit(n.ln2, layer: l, &h2) }
        var mlpOut = try mlp(h2, layer: l, names: n, visits: visits)
        try visits.visit(n.mlpOut, layer: l, &mlpOut)
        add(&x, mlpOut)
        try visits.visit(n.residPost, layer: l, &x)
        return x
    }
}

/// fc1 → activation → fc2, with biases: the MLP of the CLIP, Qwen2-VL and Qwen3-VL (`linear_fc1`, `linear_fc2`)
/// vision blocks.
struct FeedForwardMLP: BlockMLP, @unchecked Sendable {
    static let hookPoints: [BlockHook] = [.mlpPre, .mlpPost]
    let fc1: StoredTensor, fc1Bias: StoredTensor, fc2: StoredTensor, fc2Bias: StoredTensor
    let activation: Activation

    init(_ w: inout WeightStore, prefix p: String, width d: Int, intermediate m: Int, activation: String,
         names: (fc1: String, fc2: String) = ("fc1", "fc2")) throws {
        fc1 = try w.take("\(p).\(names.fc1).weight", shape: [m, d])
        fc1Bias = try w.take("\(p).\(names.fc1).bias", shape: [m])
        fc2 = try w.take("\(p).\(names.fc2).weight", shape: [d, m])
        fc2Bias = try w.take("\(p).\(names.fc2).bias", shape: [d])
        self.activation = try Activation(named: activation)
    }

    func callAsFunction(_ x: Tensor, layer l: Int, names n: LayerHookNames, visits: RunHooks) throws -> Tensor {
        var pre = linear(x, weight: fc1, bias: fc1Bias)
        try visits.visit(n.mlpPre, layer: l, &pre)
        activation.apply(&pre)
        try visits.visit(n.mlpPost, layer: l, &pre)
        return linear(pre, weight: fc2, bias: fc2Bias)
    }
}

@inline(__always)
func add(_ x: inout Tensor, _ y: Tensor) {
    x.scalars.withUnsafeMutableBufferPointer { xp in
        y.scalars.withUnsafeBufferPointer { yp in
            for i in xp.indices { xp[i] += yp[i] }
        }
    }
}
