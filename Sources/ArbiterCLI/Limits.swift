// Ranges of the CLI's numeric options, checked at parse time (ArgumentParser's `validate`), so that no number
// typed on the command line can reach an allocation, a loop bound or an index unchecked.
import ArgumentParser

enum CLILimits {
    /// Items generated or read in one run. 100,000 items of the bundled models' size need ~20 GB of passes
    /// in `verify`; more is a typo, not a plan (use `--count` in several runs or shards).
    static let items = 1...100_000
    /// Random head sets of the head controls: each is a full set of intervened passes; 10,000 sets resolve an
    /// empirical p-value to 1e-4, beyond any verdict's need.
    static let randomSets = 1...10_000
    /// Top next tokens printed by `run`.
    static let top = 1...1_000
    /// Tokens of a benchmark forward pass (the model's max_position_embeddings bounds it further).
    static let tokens = 1...(1 << 20)
    /// Timed repeats of a benchmark.
    static let repeats = 1...1_000

    static func check(_ option: String, _ value: Int, _ range: ClosedRange<Int>) throws {
        guard range.contains(value) else {
            throw ValidationError("\(option) \(value) is out of range: give \(range.lowerBound)…\(range.upperBound)")
        }
    }
}
