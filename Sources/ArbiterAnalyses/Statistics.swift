// Statistics with recorded seeds: seeded bootstrap confidence intervals, means, and a small deterministic RNG.
import ArbiterData
import ArbiterTensor
import Foundation

/// Every random choice in the analyses (splits, bootstrap, random head sets) comes from a SplitMix64
/// generator seeded from a value recorded in the results.
public typealias SeededRNG = SplitMix64

/// A statistic with a 95% bootstrap interval.
public struct Estimate: Sendable, Codable, Equatable, CustomStringConvertible {
    public let value: Double
    public let low: Double
    public let high: Double
    public let count: Int

    public init(value: Double, low: Double, high: Double, count: Int) {
        self.value = value
        self.low = low
        self.high = high
        self.count = count
    }

    public var excludesZero: Bool { low > 0 || high < 0 }
    public var description: String { String(format: "%.3f [%.3f, %.3f] (n=%d)", value, low, high, count) }

    /// Point estimate `statistic(values)` with a percentile bootstrap over resampled values.
    public static func bootstrap(_ values: [Double], seed: UInt64, resamples: Int = 1000,
                                 statistic: ([Double]) -> Double = mean) -> Estimate {
        guard !values.isEmpty else { return Estimate(value: .nan, low: .nan, high: .nan, count: 0) }
        var rng = SeededRNG(seed: seed)
        var stats: [Double] = []
        stats.reserveCapacity(resamples)
        var buffer = values
        for _ in 0..<resamples {
            for i in buffer.indices { buffer[i] = values[Int(rng.next() % UInt64(values.count))] }
            stats.append(statistic(buffer))
        }
        stats.sort()
        let lo = stats[Int(0.025 * Double(resamples - 1))], hi = stats[Int(0.975 * Double(resamples - 1))]
        return Estimate(value: statistic(values), low: lo, high: hi, count: values.count)
    }

    /// Paired bootstrap of a ratio of means, Σa/Σb style: statistic(a-resample)/statistic(b-resample) over
    /// the same resampled indices.
    public static func bootstrapRatio(_ a: [Double], _ b: [Double], seed: UInt64, resamples: Int = 1000) -> Estimate {
        precondition(a.count == b.count)
        guard !a.isEmpty else { return Estimate(value: .nan, low: .nan, high: .nan, count: 0) }
        func ratio(_ idx: [Int]) -> Double {
            let num = idx.reduce(0.0) { $0 + a[$1] }, den = idx.reduce(0.0) { $0 + abs(b[$1]) }
            return den == 0 ? 0 : num / den
        }
        var rng = SeededRNG(seed: seed)
        var stats: [Double] = []
        for _ in 0..<resamples {
            stats.append(ratio((0..<a.count).map { _ in Int(rng.next() % UInt64(a.count)) }))
        }
        stats.sort()
        return Estimate(value: ratio(Array(a.indices)), low: stats[Int(0.025 * Double(resamples - 1))],
                        high: stats[Int(0.975 * Double(resamples - 1))], count: a.count)
    }
}

public func mean(_ values: [Double]) -> Double { values.isEmpty ? .nan : values.reduce(0, +) / Double(values.count) }

/// The q-quantile (linear interpolation) of values.
public func quantile(_ values: [Double], _ q: Double) -> Double {
    guard !values.isEmpty else { return .nan }
    let sorted = values.sorted()
    let position = q * Double(sorted.count - 1)
    let lo = Int(position.rounded(.down)), hi = min(lo + 1, sorted.count - 1)
    return sorted[lo] + (position - Double(lo)) * (sorted[hi] - sorted[lo])
}
