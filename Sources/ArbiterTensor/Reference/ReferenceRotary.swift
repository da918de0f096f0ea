// Reference rotary embeddings: inverse frequencies straight from transformers' modeling_rope_utils
// formulas (`_compute_default_rope_parameters`, `_compute_linear_scaling_rope_parameters`,
// `_compute_dynamic_ntk_parameters`, `_compute_llama3_parameters`) in Double, and the rotation
// q·cos + rotate_half(q)·sin of `apply_rotary_pos_emb`.
import Foundation

extension ReferenceKernels {
    /// Inverse frequencies `[dimension / 2]` for a sequence whose largest position id is `maxPosition`.
    public static func ropeInverseFrequencies(_ p: RopeParameters, maxPosition: Int = 0) -> [Double] {
        let dim = Double(p.dimension)
        var base = p.theta
        if p.type == .dynamic {
            // seq_len = max(max(position_ids) + 1, max_position_embeddings)
            let seqLen = Double(max(maxPosition + 1, p.originalMaxPositions))
            let original = Double(p.originalMaxPositions)
            base = p.theta * pow(p.factor * seqLen / original - (p.factor - 1), dim / (dim - 2))
        }
        // inv_freq = 1 / base^(arange(0, dim, 2) / dim)
        let inv = stride(from: 0, to: p.dimension, by: 2).map { 1 / pow(base, Double($0) / dim) }
        switch p.type {
        case .default, .dynamic:
            return inv
        case .linear:
            return inv.map { $0 / p.factor }
        case .llama3:
            let oldContext = Double(p.originalMaxPositions)
            let lowFreqWavelen = oldContext / p.lowFreqFactor
            let highFreqWavelen = oldContext / p.highFreqFactor
            return inv.map { freq in
                let wavelen = 2 * Double.pi / freq
                if wavelen < highFreqWavelen { return freq }              // high frequency: unchanged
                if wavelen > lowFreqWavelen { return freq / p.factor }    // low frequency: scaled
                let smooth = (oldContext / wavelen - p.lowFreqFactor) / (p.highFreqFactor - p.lowFreqFactor)
                return (1 - smooth) * freq / p.factor + smooth * freq     // in between: interpolated
            }
        }
    }

    /// cos and sin tables `[positions.count, dimension]` laid out as `cat(freqs, freqs)`, in Double.
    public static func rotaryTables(_ p: RopeParameters, positions: [Int]) -> (cos: [Double], sin: [Double]) {
        let inv = ropeInverseFrequencies(p, maxPosition: positions.max() ?? 0)
        let half = inv.count, dim = 2 * half
        var c = [Double](repeating: 0, count: positions.count * dim)
        var s = c
        for (t, position) in positions.enumerated() {
            for i in 0..<dim {
                let angle = Double(position) * inv[i % half]
                c[t * dim + i] = cos(angle)
                s[t * dim + i] = sin(angle)
            }
        }
        return (c, s)
    }

    /// Rotates the first `p.dimension` features of every head of `x` `[tokens, heads · headDim]`:
    /// x·cos + rotate_half(x)·sin with rotate_half(x) = cat(−x₂, x₁); the remaining features pass through.
    public static func rotary(_ x: Tensor, heads: Int, headDim: Int, parameters p: RopeParameters,
                              positions: [Int]) -> Tensor {
        precondition(x.rows == positions.count && x.columns == heads * headDim && p.dimension <= headDim,
                     "reference rotary: shapes")
        let (c, s) = rotaryTables(p, positions: positions)
        let dim = p.dimension, half = dim / 2
        var y = x.scalars
        for t in 0..<x.rows {
            for h in 0..<heads {
                let offset = t * heads * headDim + h * headDim
                let v = (0..<dim).map { Double(x.scalars[offset + $0]) }
                let rotated = (0..<dim).map { i in i < half ? -v[i + half] : v[i - half] }
                for i in 0..<dim { y[offset + i] = Float(v[i] * c[t * dim + i] + rotated[i] * s[t * dim + i]) }
            }
        }
        return Tensor(shape: x.shape, scalars: y)
    }
}
