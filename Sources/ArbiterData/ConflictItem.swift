// One item of a modality-conflict dataset, in the paper's field layout (image, text context, modality
// instruction, question, output-format sentence, the answer each modality supports with its candidate words).
import ArbiterModels
import Foundation

/// What an item tests.
public enum ItemKind: String, Codable, Sendable, CaseIterable {
    /// Image and context disagree; the instruction names the modality to follow.
    case conflict
    /// The context agrees with the image.
    case consistent
    /// Image and context disagree and there is no instruction (the model's own modality preference).
    case noInstruction = "no_instruction"
    /// No text context.
    case imageOnly = "image_only"
    /// No image.
    case textOnly = "text_only"
}

public struct ConflictItem: Codable, Sendable, Equatable {
    public var id: String
    /// Image path relative to the dataset's image root; nil when the item has no image.
    public var image: String?
    public var task: String
    public var kind: ItemKind
    /// The modality the instruction names (nil without an instruction).
    public var target: ConflictTarget?
    public var context: String?
    public var instruction: String?
    public var instructionID: String?
    public var instructionSplit: InstructionSplit?
    public var question: String
    /// The output-format sentence.
    public var constraint: String?
    public var answerImg: String
    public var answerText: String
    public var answerImgCandidates: [String]
    public var answerTextCandidates: [String]
    /// The answer a model following the instruction gives (nil for `no_instruction`).
    public var expected: String?
    /// What the generator drew (nil for loaded third-party sets).
    public var scene: Scene?

    enum CodingKeys: String, CodingKey {
        case id, image, task, kind, target, context, instruction, question, constraint, expected, scene
        case instructionID = "instruction_id"
        case instructionSplit = "instruction_split"
        case answerImg = "answer_img"
        case answerText = "answer_text"
        case answerImgCandidates = "answer_img_candidate_list"
        case answerTextCandidates = "answer_text_candidate_list"
    }

    public init(id: String, image: String?, task: String, kind: ItemKind, target: ConflictTarget?, context: String?,
                instruction: String?, instructionID: String?, instructionSplit: InstructionSplit?, question: String,
                constraint: String?, answerImg: String, answerText: String, answerImgCandidates: [String],
                answerTextCandidates: [String], expected: String?, scene: Scene? = nil) {
        self.id = id
        self.image = image
        self.task = task
        self.kind = kind
        self.target = target
        self.context = context
        self.instruction = instruction
        self.instructionID = instructionID
        self.instructionSplit = instructionSplit
        self.question = question
        self.constraint = constraint
        self.answerImg = answerImg
        self.answerText = answerText
        self.answerImgCandidates = answerImgCandidates
        self.answerTextCandidates = answerTextCandidates
        self.expected = expected
        self.scene = scene
    }

    /// Every key is written, absent values as `null`, so each item of a file has the same shape.
    public func encode(to encoder: Encoder) throws {
        var c = encoder.container(keyedBy: CodingKeys.self)
        try c.encode(id, forKey: .id)
        try c.encode(image, forKey: .image)
        try c.encode(task, forKey: .task)
        try c.encode(kind, forKey: .kind)
        try c.encode(target, forKey: .target)
        try c.encode(context, forKey: .context)
        try c.encode(instruction, forKey: .instruction)
        try c.encode(instructionID, forKey: .instructionID)
        try c.encode(instructionSplit, forKey: .instructionSplit)
        try c.encode(question, forKey: .question)
        try c.encode(constraint, forKey: .constraint)
        try c.encode(answerImg, forKey: .answerImg)
        try c.encode(answerText, forKey: .answerText)
        try c.encode(answerImgCandidates, forKey: .answerImgCandidates)
        try c.encode(answerTextCandidates, forKey: .answerTextCandidates)
        try c.encode(expected, forKey: .expected)
        try c.encode(scene, forKey: .scene)
    }

    /// The prompt pieces (the image goes into the layout's image slot separately).
    public var fields: PromptFields {
        PromptFields(context: context, instruction: instruction, question: question, constraint: constraint)
    }

    /// The answer the instruction calls for, by the rules of `kind` (what `expected` must be).
    public static func expectedAnswer(kind: ItemKind, target: ConflictTarget?, answerImg: String,
                                      answerText: String) -> String? {
        switch kind {
        case .conflict:
            guard let target else { return nil }
            return target == .image ? answerImg : answerText
        case .consistent, .imageOnly: return answerImg
        case .textOnly: return answerText
        case .noInstruction: return nil
        }
    }

    /// Answers compared as scoring compares them: trimmed and case-folded.
    public static func sameAnswer(_ a: String, _ b: String) -> Bool {
        a.trimmingCharacters(in: .whitespacesAndNewlines).lowercased()
            == b.trimmingCharacters(in: .whitespacesAndNewlines).lowercased()
    }
}
