// The one seeded 64-bit generator of the package. It lives in the bottom layer so that every target and test
// target can import it: ArbiterData seeds its dataset stream with it, the analyses draw splits, bootstraps and
// random head sets from it, the bench commands fill tensors with it, and the test suites build reproducible
// cases and mutation corpora with it. Every stream is part of a golden, a dataset or a test case: the arithmetic
// must never change (ArbiterTensorTests pins its first outputs).

/// SplitMix64 (Steele, Lea, Flood 2014): a Weyl sequence through a 64-bit finaliser.
public struct SplitMix64: RandomNumberGenerator, Sendable {
    public private(set) var state: UInt64

    public init(seed: UInt64) { state = seed }

    public mutating func next() -> UInt64 {
        state &+= 0x9E37_79B9_7F4A_7C15
        var z = state
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }

    /// One SplitMix64 output for `value` (a stateless mixing function).
    public static func mix(_ value: UInt64) -> UInt64 {
        var s = SplitMix64(seed: value)
        return s.next()
    }
}
