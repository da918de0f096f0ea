// Rows added to the residual stream between decoder layers, a per-run input of the decoder: Qwen3-VL's DeepStack
// (transformers/models/qwen3_vl/modeling_qwen3_vl.py, Qwen3VLTextModel._deepstack_process) adds, after decoder
// layer l < L, the l-th DeepStack feature map of the vision tower at the image-token positions. Every way the
// decoder runs carries them: a full run, a run resumed at a layer (only the layers ≥ it add theirs: the
// resumed residual already holds the earlier ones), a suffix run or a continuation (only the rows it computes
// add theirs: positions count from the prompt's first token), and each run of a batch.
//
// Hook point (d d_model, K the rows of the run at the positions):
//   blocks.{l}.hook_deepstack   [K, d]   what is added after layer l (after `blocks.{l}.hook_resid_post`;
//                                        `blocks.{l+1}.hook_resid_pre` holds the sum), l < `layers.count`
import ArbiterTensor

/// Rows added to the residual stream after the first `layers.count` decoder layers, at token `positions`.
public struct ResidualAdditions: Sendable, Equatable {
    /// Token positions of the rows (from the prompt's first token), ascending.
    public let positions: [Int]
    /// `layers[l]`: `[positions.count, d]`, added after decoder layer l.
    public let layers: [Tensor]

    /// `positions` must ascend without repeats and every tensor have one row per position.
    public init(positions: [Int], layers: [Tensor]) throws {
        guard zip(positions, positions.dropFirst()).allSatisfy({ $0 < $1 }), positions.allSatisfy({ $0 >= 0 }) else {
            throw ModelError.invalidInput("residual additions: positions must ascend without repeats, got \(positions)")
        }
        if let bad = layers.firstIndex(where: { $0.rank != 2 || $0.rows != positions.count }) {
            throw ModelError.invalidInput("residual additions after layer \(bad) have shape \(layers[bad].shape); "
                                          + "want [\(positions.count), d] (one row per position)")
        }
        self.positions = positions
        self.layers = layers
    }

    /// The hook name of what is added after layer `layer` (`prefix` as the decoder's).
    public static func hookName(_ layer: Int, prefix: String = "") -> String {
        "\(prefix)blocks.\(layer).hook_deepstack"
    }

    /// The rows falling in a run whose first row is token `offset` and which has `count` rows: (row in the run,
    /// index in `positions`) pairs.
    func rows(offset: Int, count: Int) -> [(row: Int, index: Int)] {
        positions.enumerated().compactMap { index, p in
            p >= offset && p < offset + count ? (p - offset, index) : nil
        }
    }

    /// Adds layer `l`'s rows to `x` (a run's rows, the first at token `offset`; rows of `x` from `base` on),
    /// visiting `blocks.{l}.hook_deepstack` with the rows that fall in the run.
    func add(after l: Int, to x: inout Tensor, base: Int = 0, count: Int, offset: Int, name: String,
             hooks: HookRun?) throws {
        guard l < layers.count else { return }
        let picked = rows(offset: offset, count: count)
        guard !picked.isEmpty else { return }
        let d = layers[l].columns
        guard d == x.columns else {
            throw ModelError.invalidInput("residual additions after layer \(l) have \(d) columns; the residual "
                                          + "stream has \(x.columns)")
        }
        var added = Tensor(shape: [picked.count, d],
                           scalars: picked.flatMap { layers[l].scalars[($0.index * d)..<(($0.index + 1) * d)] })
        try hooks.visit(name, layer: l, &added)
        guard added.shape == [picked.count, d] else {
            throw ModelError.invalidInput("an edit at \(name) changed its shape from [\(picked.count), \(d)] to "
                                          + "\(added.shape)")
        }
        x.scalars.withUnsafeMutableBufferPointer { xp in
            added.scalars.withUnsafeBufferPointer { ap in
                for (k, (row, _)) in picked.enumerated() {
                    let to = (base + row) * d
                    for j in 0..<d { xp[to + j] += ap[k * d + j] }
                }
            }
        }
    }
}
