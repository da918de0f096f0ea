// Position ids for rotary embeddings: one axis for Llama/Qwen2, three (temporal, height, width) for the
// multimodal rotary of Qwen2-VL / Qwen2.5-VL. Designed in from the start so that every run, hook and
// intervention is position-agnostic.
import ArbiterTensor

public struct PositionIDs: Sendable, Equatable {
    /// `axes[a][t]`: position of token `t` on axis `a`. One axis, or three for multimodal rotary.
    public let axes: [[Int]]

    public init(axes: [[Int]]) throws {
        guard let first = axes.first, axes.allSatisfy({ $0.count == first.count }) else {
            throw ModelError.invalidInput("position ids: axes must be non-empty and of equal length")
        }
        guard axes.count == 1 || axes.count == 3 else {
            throw ModelError.invalidInput("position ids: want 1 or 3 axes, got \(axes.count)")
        }
        guard axes.allSatisfy({ $0.allSatisfy { $0 >= 0 } }) else {
            throw ModelError.invalidInput("position ids must be non-negative")
        }
        self.axes = axes
    }

    /// Positions `offset, offset+1, …` for `count` tokens.
    public static func sequential(_ count: Int, offset: Int = 0) -> PositionIDs {
        // Safe: one axis, non-negative values.
        PositionIDs(unchecked: [Array(offset..<(offset + count))])
    }

    init(unchecked axes: [[Int]]) { self.axes = axes }

    public var count: Int { axes[0].count }
    public var isMultimodal: Bool { axes.count == 3 }

    /// The positions of tokens `range` (for runs resumed or sliced).
    public func slice(_ range: Range<Int>) -> PositionIDs {
        PositionIDs(unchecked: axes.map { Array($0[range]) })
    }

    /// cos/sin tables. For three axes, frequency `i` uses the axis whose `mropeSection` block holds `i`
    /// (transformers' `apply_multimodal_rotary_pos_emb`), or with `interleaved` (Qwen3-VL's
    /// `mrope_interleaved`) the axis of its place in the pattern T, H, W, T, H, W, …: H at 1, 4, … below
    /// 3·section[1], W at 2, 5, … below 3·section[2], T everywhere else (`Qwen3VLTextRotaryEmbedding.
    /// recomposition_frequencies`).
    public func rotaryTables(_ rope: RopeParameters, mropeSection: [Int]?, interleaved: Bool = false) -> RotaryTables {
        if axes.count == 1 {
            return RotaryTables(parameters: rope, positions: axes[0])
        }
        let inv = rope.inverseFrequencies(maxPosition: axes.flatMap { $0 }.max() ?? 0)
        let section = mropeSection ?? [inv.count, 0, 0]
        var axisOfFrequency = [Int](repeating: 0, count: inv.count)
        if interleaved, section.count == 3 {
            for axis in 1...2 {
                for i in stride(from: axis, to: min(3 * section[axis], inv.count), by: 3) { axisOfFrequency[i] = axis }
            }
        } else {
            var start = 0
            for (axis, width) in section.enumerated() {
                for i in start..<min(start + width, inv.count) { axisOfFrequency[i] = axis }
                start += width
            }
        }
        let axes = self.axes
        return RotaryTables(inverseFrequencies: inv, positionsPerFrequency: { i, t in axes[axisOfFrequency[i]][t] },
                            count: count)
    }
}
