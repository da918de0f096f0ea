// Ranges of the CLI's numeric options, checked at parse time (ArgumentParser's `validate`), so that no number
// typed on the command line can reach an allocation, a loop bound or an index unchecked.
import ArbiterAnalyses
import ArbiterData
import ArgumentParser
import Foundation

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

    /// Candidates of a two-stage head ranking: 2^20 heads is beyond any model's layers × heads (a 7B has 1,024);
    /// a C above the model's heads ablates every head.
    static let headCandidates = 1...(1 << 20)

    /// `--head-ranking`: exact (nil), dla:C or last-position:C with C in `headCandidates`.
    static func headRanking(_ text: String, option: String = "--head-ranking") throws -> TwoStageRanking? {
        let method: TwoStageRanking?
        do { method = try TwoStageRanking.parse(text) } catch { throw ValidationError("\(option) \(error)") }
        if let c = method?.candidates, !headCandidates.contains(c) {
            throw ValidationError("\(option) '\(text)': the candidate count \(c) is out of range: give "
                                  + "\(headCandidates.lowerBound)…\(headCandidates.upperBound)")
        }
        return method
    }

    /// `--head-positions`: all (nil, the default protocol) or after-image.
    static func headPositions(_ text: String) throws -> HeadPositions? {
        guard let positions = HeadPositions(rawValue: text) else {
            throw ValidationError("--head-positions '\(text)' is not one of: "
                                  + HeadPositions.allCases.map(\.rawValue).joined(separator: ", "))
        }
        return positions == .all ? nil : positions
    }

    /// Conflict items per instruction target and split (`--minimum-per-target`): 1 lets a few-item run through
    /// (its claims inconclusive); above 10,000 no generated run could meet it.
    static let perTarget = 1...10_000
    /// Conflict items generated for amplification's failures (`--top-up`); 0 generates none.
    static let topUp = 0...100_000
    /// `--key-value-memory` and `--stream-memory` in GiB: up to 4 TiB; 0 keeps none.
    static let keyValueGiB = 0.0...4096.0

    /// `--mix` (`data generate`, `verify`): kind=weight pairs (`KindMix(parsing:)`, which validates them), nil
    /// when not given.
    static func mix(_ text: String?) throws -> KindMix? {
        guard let text else { return nil }
        do { return try KindMix(parsing: text) } catch { throw ValidationError("--mix '\(text)': \(error)") }
    }

    /// `--key-value-memory` (or `option`, e.g. `--stream-memory`) GiB as bytes.
    static func keyValueBytes(_ gib: Double, option: String = "--key-value-memory") throws -> Int {
        guard keyValueGiB.contains(gib) else {
            throw ValidationError("\(option) \(gib) is out of range: give \(Int(keyValueGiB.lowerBound))…"
                                  + "\(Int(keyValueGiB.upperBound)) (GiB)")
        }
        return Int((gib * Double(1 << 30)).rounded())
    }

    static func check(_ option: String, _ value: Int, _ range: ClosedRange<Int>) throws {
        guard range.contains(value) else {
            throw ValidationError("\(option) \(value) is out of range: give \(range.lowerBound)…\(range.upperBound)")
        }
    }
}

/// Paths and lists typed on the command line, checked at parse time: an empty path would otherwise be read as
/// the current folder, and an empty list entry ("1.0,,2.0") be skipped in silence.
enum CLIPaths {
    static func checkNotEmpty(_ options: KeyValuePairs<String, String?>) throws {
        for case let (option, value?) in options where value.trimmingCharacters(in: .whitespaces).isEmpty {
            throw ValidationError("\(option) is empty; give a path")
        }
    }

    static func checkList(_ option: String, _ value: String?) throws {
        guard let value else { return }
        let entries = value.split(separator: ",", omittingEmptySubsequences: false)
        if entries.contains(where: { $0.trimmingCharacters(in: .whitespaces).isEmpty }) {
            throw ValidationError("\(option) '\(value)' has an empty entry; give a comma-separated list without gaps")
        }
    }

    /// Throws unless `path` is a file (a folder given where a file is expected gets its own message).
    static func checkFile(_ option: String, _ path: String?) throws {
        guard let path else { return }
        var isFolder: ObjCBool = false
        if FileManager.default.fileExists(atPath: path, isDirectory: &isFolder), isFolder.boolValue {
            throw ValidationError("\(option) \(path) is a folder; give a file")
        }
    }
}
