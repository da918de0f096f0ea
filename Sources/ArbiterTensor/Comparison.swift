// Comparing a computed tensor with a reference (transformers' golden, or a naive kernel):
// any NaN fails, infinities must agree, |a - r| ≤ atol + rtol·|r| elementwise, and NMSE under a bound.

/// Tolerances for one comparison, with the reason they are what they are.
public struct Tolerance: Sendable, CustomStringConvertible {
    public var atol: Float
    public var rtol: Float
    /// Normalised mean squared error bound: Σ(a−r)² / Σr².
    public var nmse: Double
    public var reason: String

    public init(atol: Float, rtol: Float = 0, nmse: Double, reason: String) {
        self.atol = atol
        self.rtol = rtol
        self.nmse = nmse
        self.reason = reason
    }

    public var description: String { "atol \(atol), rtol \(rtol), NMSE ≤ \(nmse) (\(reason))" }
}

/// The outcome of comparing `actual` with `reference`.
public struct ComparisonReport: Sendable, CustomStringConvertible {
    public struct Element: Sendable {
        public let index: [Int]
        public let actual: Float
        public let reference: Float
        public var difference: Float { abs(actual - reference) }
    }

    public let label: String
    public let shapeMatches: Bool
    public let actualShape: [Int]
    public let referenceShape: [Int]
    public let maxAbsoluteDifference: Float
    public let nmse: Double
    /// Elements outside `atol + rtol·|r|`, NaN or infinity mismatches.
    public let violations: Int
    public let nanCount: Int
    /// The worst elements by absolute difference (up to 5).
    public let worst: [Element]
    public let tolerance: Tolerance

    public var passed: Bool { shapeMatches && violations == 0 && nanCount == 0 && nmse <= tolerance.nmse }

    public var description: String {
        if !shapeMatches {
            return "\(label): shape \(actualShape) differs from reference \(referenceShape)"
        }
        var s = "\(label): \(passed ? "ok" : "MISMATCH") max|Δ| \(maxAbsoluteDifference), NMSE \(nmse), "
            + "\(violations) elements outside tolerance, \(nanCount) NaN [\(tolerance)]"
        if !passed && !worst.isEmpty {
            s += "; worst: " + worst.map { "\($0.index) got \($0.actual) want \($0.reference)" }.joined(separator: "; ")
        }
        return s
    }
}

/// Compares element by element. `label` should name model, layer and hook so failures say where.
public func compare(_ actual: Tensor, to reference: Tensor, tolerance: Tolerance, label: String) -> ComparisonReport {
    guard actual.shape == reference.shape else {
        return ComparisonReport(label: label, shapeMatches: false, actualShape: actual.shape,
                                referenceShape: reference.shape,
                                maxAbsoluteDifference: .infinity, nmse: .infinity,
                                violations: max(actual.count, reference.count),
                                nanCount: 0, worst: [], tolerance: tolerance)
    }
    var maxDiff: Float = 0, violations = 0, nans = 0
    var errSum = 0.0, refSum = 0.0
    var worstIdx: [(Int, Float)] = []
    for i in 0..<actual.count {
        let a = actual.scalars[i], r = reference.scalars[i]
        var diff: Float
        if a.isNaN || r.isNaN {
            nans += 1; violations += 1; diff = .infinity
        } else if a.isInfinite || r.isInfinite {
            diff = (a == r) ? 0 : .infinity
            if a != r { violations += 1 }
        } else {
            diff = abs(a - r)
            if diff > tolerance.atol + tolerance.rtol * abs(r) { violations += 1 }
            errSum += Double(diff) * Double(diff)
            refSum += Double(r) * Double(r)
        }
        if diff > maxDiff || diff.isNaN { maxDiff = diff }
        if diff > 0 {
            if worstIdx.count < 5 { worstIdx.append((i, diff)); worstIdx.sort { $0.1 > $1.1 } }
            else if diff > worstIdx[4].1 { worstIdx[4] = (i, diff); worstIdx.sort { $0.1 > $1.1 } }
        }
    }
    let nmse = refSum > 0 ? errSum / refSum : (errSum > 0 ? .infinity : 0)
    let worst = worstIdx.map { (i, _) in
        ComparisonReport.Element(index: unravel(i, shape: actual.shape), actual: actual.scalars[i],
                                 reference: reference.scalars[i])
    }
    return ComparisonReport(label: label, shapeMatches: true, actualShape: actual.shape,
                            referenceShape: reference.shape,
                            maxAbsoluteDifference: maxDiff, nmse: nmse, violations: violations, nanCount: nans,
                            worst: worst, tolerance: tolerance)
}

/// Multi-index of flat index `i` in a row-major `shape`.
public func unravel(_ i: Int, shape: [Int]) -> [Int] {
    var rest = i
    var index = [Int](repeating: 0, count: shape.count)
    for d in stride(from: shape.count - 1, through: 0, by: -1) {
        let n = max(shape[d], 1)
        index[d] = rest % n
        rest /= n
    }
    return index
}
