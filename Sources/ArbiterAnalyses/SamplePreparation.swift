// From probe items to analysis samples for one model, refusing runs whose numbers would mean nothing: items
// the model cannot read (prompts mostly outside its vocabulary, answers that start with the unknown token), or
// too many items skipped. Shared by `arbiter verify`, `arbiter eval` and the claim tests.
import ArbiterModels

/// How bad items are treated.
public struct ItemPolicy: Sendable, Equatable {
    /// The largest share of items that may be skipped (cannot be scored) before the run is refused: beyond
    /// it, the items left are no longer the dataset the user chose (a tokenizer that cannot read the prompts
    /// skipped 65% of a generated set and still printed a full table).
    public static let maximumSkippedShare = 0.10
    /// A prompt with more than this share of its text tokens unknown (`unk_token`) is unreadable to the model.
    public static let maximumUnknownShare = 0.5

    /// Skip unreadable items and go on whatever their share (the user's explicit choice; the report lists
    /// every skipped item and its reason).
    public var keepGoing: Bool

    public init(keepGoing: Bool = false) { self.keepGoing = keepGoing }
}

/// An item left out of a run, and why.
public struct SkippedItem: Sendable, Codable, Equatable, CustomStringConvertible {
    public var id: String
    public var reason: String
    public init(id: String, reason: String) {
        self.id = id
        self.reason = reason
    }
    public var description: String { "\(id): \(reason)" }
}

public enum SamplePreparation {
    /// Samples for `items`, and the items skipped. Throws `AnalysisError.meaninglessRun` for an unreadable
    /// item (unless `policy.keepGoing`) or when more than `ItemPolicy.maximumSkippedShare` of the items are
    /// skipped (unless `policy.keepGoing`), naming the items, the tokens and the reasons.
    public static func prepare(_ items: [ProbeItem], session: ModelSession, policy: ItemPolicy = ItemPolicy())
        throws -> (samples: [AnalysisSample], skipped: [SkippedItem]) {
        guard !items.isEmpty else { throw AnalysisError.meaninglessRun("no items to run (the dataset is empty)") }
        var samples: [AnalysisSample] = [], skipped: [SkippedItem] = []
        for item in items {
            do {
                let sample = try AnalysisSample(item, session: session)
                if let problem = unreadable(sample, item: item, session: session) {
                    guard policy.keepGoing else {
                        throw AnalysisError.meaninglessRun("item \(item.id): \(problem) (--keep-going "
                                                           + "skips such items)")
                    }
                    skipped.append(SkippedItem(id: item.id, reason: problem))
                    continue
                }
                samples.append(sample)
            } catch let error as AnalysisError {
                if case .meaninglessRun = error { throw error }
                skipped.append(SkippedItem(id: item.id, reason: reason(error)))
            } catch {
                skipped.append(SkippedItem(id: item.id, reason: "\(error)"))
            }
        }
        let share = Double(skipped.count) / Double(items.count)
        if samples.isEmpty || (share > ItemPolicy.maximumSkippedShare && !policy.keepGoing) {
            let examples = skipped.prefix(3).map(\.description).joined(separator: "; ")
            let limit = Int(ItemPolicy.maximumSkippedShare * 100)
            let rest = samples.isEmpty ? "none is left" : "more than \(limit)%; --keep-going runs on the rest"
            throw AnalysisError.meaninglessRun(
                "\(skipped.count) of \(items.count) items cannot be scored by this model (\(rest)); first: \(examples)")
        }
        return (samples, skipped)
    }

    static func reason(_ error: AnalysisError) -> String {
        if case .badSample(_, let problem) = error { return problem }
        return error.description
    }

    /// Why the model cannot read `sample`, or nil: most of its text tokens unknown, or an answer whose first
    /// token is the unknown token.
    static func unreadable(_ sample: AnalysisSample, item: ProbeItem, session: ModelSession) -> String? {
        let tokenizer = session.tokenizer
        guard let unk = tokenizer.unknownTokenID else { return nil }
        let unkName = tokenizer.token(of: unk).map { "'\($0)'" } ?? "id \(unk)"
        let imageID = tokenizer.id(of: session.layout.imageToken)
        let text = sample.input.ids.filter { $0 != imageID && !tokenizer.isSpecial($0) }
        let unknown = text.filter { $0 == unk }.count
        if !text.isEmpty, Double(unknown) > ItemPolicy.maximumUnknownShare * Double(text.count) {
            let words = sample.input.text.split(whereSeparator: \.isWhitespace).map(String.init)
                .filter { $0 != session.layout.imageToken && tokenizer.id(of: $0) == nil }
            let shown = Array(uniqued(words).prefix(4)).map { "'\($0)'" }.joined(separator: ", ")
            return "\(unknown) of its \(text.count) text tokens are the unknown token \(unkName) "
                + "(the prompt is in words the tokenizer does not know\(shown.isEmpty ? "" : ", e.g. \(shown)"))"
        }
        // The sample holds every answer's first token already; the answers are tokenized again only to name one.
        guard (sample.instructed + sample.competitor + sample.shared).contains(unk) else { return nil }
        for answer in item.instructed + item.competitor where !answer.isEmpty {
            if let first = try? session.firstTokens(of: [answer], after: sample.input).first, first == unk {
                return "the answer '\(answer)' starts with the unknown token \(unkName): the model cannot score it"
            }
        }
        return nil
    }

    /// `values` without repeats, in first-seen order.
    static func uniqued(_ values: [String]) -> [String] {
        var seen = Set<String>()
        return values.filter { seen.insert($0).inserted }
    }
}
