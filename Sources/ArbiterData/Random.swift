// Seeded randomness for the generator: SplitMix64 (seeding) and xoshiro256** (the stream), with our own
// bounded-integer and shuffle routines so that a seed gives the same dataset bytes on every platform and
// Swift version (the standard library's `random(in:using:)` algorithms are not a stability promise).
// SplitMix64 itself is ArbiterTensor's, shared with every layer and test suite.
import ArbiterTensor

/// xoshiro256** 1.0 (Blackman, Vigna), seeded through SplitMix64.
public struct SeededRandom: Sendable {
    private var s: (UInt64, UInt64, UInt64, UInt64)

    public init(seed: UInt64) {
        var sm = SplitMix64(seed: seed)
        s = (sm.next(), sm.next(), sm.next(), sm.next())
    }

    /// A stream for sub-task `index` of `seed`, independent of every other index.
    public init(seed: UInt64, stream index: UInt64) {
        self.init(seed: SplitMix64.mix(seed ^ SplitMix64.mix(index &+ 0x5851_F42D_4C95_7F2D)))
    }

    private static func rotl(_ x: UInt64, _ k: UInt64) -> UInt64 { (x << k) | (x >> (64 - k)) }

    public mutating func next() -> UInt64 {
        let result = Self.rotl(s.1 &* 5, 7) &* 9
        let t = s.1 << 17
        s.2 ^= s.0
        s.3 ^= s.1
        s.1 ^= s.2
        s.0 ^= s.3
        s.2 ^= t
        s.3 = Self.rotl(s.3, 45)
        return result
    }

    /// Uniform in `0..<bound` (Lemire's multiply-shift with rejection; exact, no modulo bias).
    public mutating func below(_ bound: Int) -> Int {
        precondition(bound > 0, "bound must be positive")
        let n = UInt64(bound)
        var m = next().multipliedFullWidth(by: n)
        if m.low < n {
            let threshold = (0 &- n) % n
            while m.low < threshold { m = next().multipliedFullWidth(by: n) }
        }
        return Int(m.high)
    }

    /// Uniform in `range`.
    public mutating func int(in range: ClosedRange<Int>) -> Int {
        range.lowerBound + below(range.upperBound - range.lowerBound + 1)
    }

    /// True with probability `percent` / 100.
    public mutating func chance(percent: Int) -> Bool { below(100) < percent }

    /// A uniformly chosen element.
    public mutating func pick<T>(_ values: [T]) -> T {
        precondition(!values.isEmpty, "cannot pick from an empty list")
        return values[below(values.count)]
    }

    /// A uniformly chosen element other than `excluded`.
    public mutating func pick<T: Equatable>(_ values: [T], excluding excluded: T) -> T {
        let rest = values.filter { $0 != excluded }
        return pick(rest)
    }

    /// Fisher–Yates shuffle.
    public mutating func shuffle<T>(_ values: inout [T]) {
        guard values.count > 1 else { return }
        for i in stride(from: values.count - 1, to: 0, by: -1) {
            let j = below(i + 1)
            if i != j { values.swapAt(i, j) }
        }
    }
}
