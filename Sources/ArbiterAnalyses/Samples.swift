// The unit every analysis works on: one prompt (+ image), prepared for the model, with the first tokens of
// the instructed answer set and of the competing answer set.
import ArbiterFormats
import ArbiterModels
import ArbiterTensor

/// Which modality the instruction names.
public enum InstructionTarget: String, Codable, Sendable, CaseIterable {
    case image
    case text
}

/// What an analysis needs of a dataset item, independent of where it came from (our generator, the paper's
/// sets, MC²).
public struct ProbeItem: Sendable {
    public var id: String
    /// `conflict`, `consistent`, `no_instruction`, `image_only`, `text_only`.
    public var kind: String
    public var target: InstructionTarget?
    public var fields: PromptFields
    public var image: RGBImage?
    /// Candidate answers the instruction asks for (for consistent/unimodal items: the expected answer).
    public var instructed: [String]
    /// Candidate answers of the competing modality (for consistent/unimodal items: the other answers of the task).
    public var competitor: [String]

    public init(id: String, kind: String, target: InstructionTarget?, fields: PromptFields, image: RGBImage?,
                instructed: [String], competitor: [String]) {
        self.id = id
        self.kind = kind
        self.target = target
        self.fields = fields
        self.image = image
        self.instructed = instructed
        self.competitor = competitor
    }
}

/// A probe item tokenized for one model.
public struct AnalysisSample: Sendable {
    public let id: String
    public let kind: String
    public let target: InstructionTarget?
    public let input: PreparedInput
    /// First tokens of the instructed and competing answer sets (disjoint).
    public let instructed: [Int]
    public let competitor: [Int]
    /// First tokens both sets start with, removed from both: they tell neither answer apart.
    public let shared: [Int]

    /// A sample of given ids and spans, with placeholder answers: for plans made without a tokenizer
    /// (`VerifyPlan.syntheticSamples`), which count tokens and never score.
    init(id: String, kind: String, target: InstructionTarget?, input: PreparedInput) {
        self.id = id
        self.kind = kind
        self.target = target
        self.input = input
        instructed = [0]
        competitor = [1]
        shared = []
    }

    /// Prepares `item` for `session`. Throws when an answer set is empty or both sets share every first token.
    public init(_ item: ProbeItem, session: ModelSession) throws {
        id = item.id
        kind = item.kind
        target = item.target
        input = try session.prepare(item.fields, image: item.image)
        let a = try session.firstTokens(of: item.instructed, after: input)
        let b = try session.firstTokens(of: item.competitor, after: input)
        let shared = Set(a).intersection(b)
        instructed = a.filter { !shared.contains($0) }
        competitor = b.filter { !shared.contains($0) }
        self.shared = shared.sorted()
        guard !instructed.isEmpty, !competitor.isEmpty else {
            throw AnalysisError.badSample(id: item.id, problem: a.isEmpty || b.isEmpty
                ? "an answer candidate list is empty"
                : "the instructed and competing candidates start with the same tokens (\(shared.sorted())); the first "
                  + "answer token cannot tell them apart")
        }
    }
}

public enum AnalysisError: Error, CustomStringConvertible, Equatable {
    case badSample(id: String, problem: String)
    case tooFewSamples(what: String, have: Int, need: Int)
    case invalidParameter(String)
    /// The run would mean nothing (the model cannot read the items); says which items and why.
    case meaninglessRun(String)

    public var description: String {
        switch self {
        case .badSample(let id, let problem): return "item \(id): \(problem)"
        case .tooFewSamples(let what, let have, let need): return "\(what): \(have) samples, at least \(need) needed"
        case .invalidParameter(let m): return m
        case .meaninglessRun(let m): return "refusing a meaningless run: \(m)"
        }
    }
}
