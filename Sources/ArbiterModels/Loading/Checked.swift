// Arithmetic on sizes read from config files: overflow is reported, never trapped on (debug) or wrapped
// around to a plausible value (release builds use -Ounchecked).

enum Checked {
    /// The product of `factors`, or nil when it overflows `Int`.
    static func product(_ factors: [Int]) -> Int? {
        var result = 1
        for f in factors {
            let (p, overflow) = result.multipliedReportingOverflow(by: f)
            if overflow { return nil }
            result = p
        }
        return result
    }

    /// The sum of `terms`, or nil when it overflows `Int`.
    static func sum(_ terms: [Int]) -> Int? {
        var result = 0
        for t in terms {
            let (s, overflow) = result.addingReportingOverflow(t)
            if overflow { return nil }
            result = s
        }
        return result
    }

    /// `value` rounded toward zero and clamped to `Int`'s range (NaN gives 0): `Int(_:)` traps outside it.
    static func truncating(_ value: Double) -> Int {
        guard !value.isNaN else { return 0 }
        if value >= 0x1p63 { return Int.max }
        if value < -0x1p63 { return Int.min }
        return Int(value)
    }
}

extension Checked {
    /// The product of `factors`, or a ModelError naming `what` (the config fields multiplied) in `file`.
    static func product(_ what: String, _ factors: [Int], file: String) throws -> Int {
        guard let p = product(factors) else {
            throw ModelError.invalidConfiguration(file: file, problem: "\(what) overflows 64-bit integers ("
                + factors.map(String.init).joined(separator: " × ") + ")")
        }
        return p
    }

    /// The sum of `terms`, or a ModelError naming `what` in `file`.
    static func sum(_ what: String, _ terms: [Int], file: String) throws -> Int {
        guard let s = sum(terms) else {
            throw ModelError.invalidConfiguration(file: file, problem: "\(what) overflows 64-bit integers")
        }
        return s
    }

    /// Product and sum that stop at `Int.max` (memory estimates: past it, everything is too large anyway).
    static func saturatingProduct(_ factors: Int...) -> Int { product(factors) ?? .max }
    static func saturatingSum(_ terms: Int...) -> Int { sum(terms) ?? .max }
}
