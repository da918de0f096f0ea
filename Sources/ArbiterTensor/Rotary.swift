// Rotary position embeddings as transformers' `modeling_rope_utils` computes them.
import CKernels
import Foundation

/// The rope types Arbiter implements (`rope_type` / legacy `type` in a config).
public enum RopeType: String, Sendable, CaseIterable {
    case `default`
    case linear
    case dynamic
    case llama3
}

/// Rotary parameters after config parsing.
public struct RopeParameters: Sendable, Equatable {
    public var type: RopeType
    public var theta: Double
    /// Dimensions rotated per head (head_dim × partial_rotary_factor).
    public var dimension: Int
    public var factor: Double
    public var lowFreqFactor: Double
    public var highFreqFactor: Double
    /// `original_max_position_embeddings` (llama3) or `max_position_embeddings` (dynamic).
    public var originalMaxPositions: Int

    public init(type: RopeType = .default, theta: Double, dimension: Int, factor: Double = 1,
                lowFreqFactor: Double = 1, highFreqFactor: Double = 4, originalMaxPositions: Int = 2048) {
        self.type = type
        self.theta = theta
        self.dimension = dimension
        self.factor = factor
        self.lowFreqFactor = lowFreqFactor
        self.highFreqFactor = highFreqFactor
        self.originalMaxPositions = originalMaxPositions
    }

    /// Inverse frequencies for a sequence whose largest position id is `maxPosition` (only the
    /// `dynamic` type depends on it), mirroring torch's float32 arithmetic step by step (tensor ⊙ Python
    /// scalar computes in float32; `2π / t` and `n / t` are `reciprocal(t) · scalar` in torch).
    public func inverseFrequencies(maxPosition: Int = 0) -> [Float] {
        let dim = dimension
        var baseF = Float(theta)
        if type == .dynamic && maxPosition + 1 > originalMaxPositions {
            // dynamic_rope_update: seq_len = max(position_ids) + 1 is a tensor, so the grown base is float32
            // (torch's pow(float tensor, Python float) evaluates std::pow(float, double)).
            let ratio = Float(factor) * Float(maxPosition + 1) / Float(originalMaxPositions) - Float(factor - 1)
            baseF = Float(theta) * Float(pow(Double(ratio), Double(dim) / Double(dim - 2)))
        }
        var inv: [Float] = stride(from: 0, to: dim, by: 2).map { i in
            let exponent = Float(i) / Float(dim)
            return 1 / Float(pow(Double(baseF), Double(exponent)))
        }
        switch type {
        case .default, .dynamic: break
        case .linear: inv = inv.map { $0 / Float(factor) }
        case .llama3:
            let oldContext = Float(originalMaxPositions)
            let lowWavelen = Float(Double(originalMaxPositions) / lowFreqFactor)
            let highWavelen = Float(Double(originalMaxPositions) / highFreqFactor)
            let f = Float(factor)
            inv = inv.map { freq in
                let wavelen = (1 / freq) * Float(2 * Double.pi)
                var scaled = wavelen > lowWavelen ? freq / f : freq
                if !(wavelen < highWavelen) && !(wavelen > lowWavelen) {
                    let smooth = ((1 / wavelen) * oldContext - Float(lowFreqFactor))
                        / Float(highFreqFactor - lowFreqFactor)
                    scaled = (1 - smooth) * scaled / f + smooth * scaled
                }
                return scaled
            }
        }
        return inv
    }
}

/// cos/sin tables for given positions: each `[positions.count, dimension]`, laid out as
/// `cat(freqs, freqs)` like transformers (the rotate-half convention).
public struct RotaryTables: Sendable {
    public let cos: [Float]
    public let sin: [Float]
    public let dimension: Int

    /// One position per token (1-D positions, Llama/Qwen2).
    public init(parameters: RopeParameters, positions: [Int]) {
        let inv = parameters.inverseFrequencies(maxPosition: positions.max() ?? 0)
        self.init(inverseFrequencies: inv, positionsPerFrequency: { _, t in positions[t] }, count: positions.count)
    }

    /// General form: the position used for frequency `i` of token `t` (multimodal rotary picks the
    /// temporal, height or width position per frequency section).
    public init(inverseFrequencies inv: [Float], positionsPerFrequency: (Int, Int) -> Int, count: Int) {
        let half = inv.count, dim = 2 * half
        var c = [Float](repeating: 0, count: count * dim)
        var s = [Float](repeating: 0, count: count * dim)
        for t in 0..<count {
            for i in 0..<half {
                let angle = Float(positionsPerFrequency(i, t)) * inv[i]
                let cv = Float(Foundation.cos(Double(angle))), sv = Float(Foundation.sin(Double(angle)))
                c[t * dim + i] = cv; c[t * dim + half + i] = cv
                s[t * dim + i] = sv; s[t * dim + half + i] = sv
            }
        }
        self.cos = c
        self.sin = s
        self.dimension = dim
    }

    /// The tables of several token sequences one after the other (for runs stacked along the token axis).
    public init(concatenating parts: [RotaryTables]) {
        precondition(Set(parts.map(\.dimension)).count <= 1, "rotary: concatenating tables of different widths")
        self.init(cos: parts.flatMap(\.cos), sin: parts.flatMap(\.sin), dimension: parts.first?.dimension ?? 0)
    }

    /// The tables of the given token rows, in that order.
    public func rows(_ indices: [Int]) -> RotaryTables {
        RotaryTables(cos: indices.flatMap { cos[($0 * dimension)..<(($0 + 1) * dimension)] },
                     sin: indices.flatMap { sin[($0 * dimension)..<(($0 + 1) * dimension)] }, dimension: dimension)
    }

    init(cos: [Float], sin: [Float], dimension: Int) {
        self.cos = cos
        self.sin = sin
        self.dimension = dimension
    }

    /// Rotates, in place, the first `dimension` features of each of `heads` heads of width `headDim`
    /// in rows of `x` (`[tokens, heads * headDim]`): x·cos + rotate_half(x)·sin.
    public func apply(to x: inout Tensor, heads: Int, headDim: Int) {
        let width = heads * headDim, half = dimension / 2, dim = dimension
        precondition(width > 0 && x.count % width == 0 && dim <= headDim, "rotary: bad shape \(x.shape)")
        let tokens = x.count / width  // x may be [T, H·D] or [T, H, D]
        precondition(cos.count >= tokens * dim && sin.count >= tokens * dim,
                     "rotary: \(tokens) rows but cos/sin tables for \(cos.count / max(dim, 1)) positions")
        guard half > 0 else { return }
        // In C (`arbiter_rotary`, AVX2 when the CPU has it): per feature a·cos − b·sin and b·cos + a·sin,
        // each product rounded, no fused multiply-add — the bits of the scalar formula.
        cos.withUnsafeBufferPointer { cp in
            sin.withUnsafeBufferPointer { sp in
                x.scalars.withUnsafeMutableBufferPointer { xp in
                    arbiter_rotary(xp.baseAddress!, cp.baseAddress!, sp.baseAddress!, tokens, heads, headDim, dim)
                }
            }
        }
    }
}
