// Composed instruction paraphrases: many training wordings built from templates, so that a model trained on
// them cannot read the instructed modality off a single word ("ignore the text" and "trust the text" both
// name the text). They are training material only (`split` = `.train`, ids `img-g0001`, `txt-g0001`, …):
// no composed sentence equals a held-out paraphrase, and none uses a word that appears only in held-out
// paraphrases, so the held-out wording stays unseen by anything trained on composed data.

public enum ComposedInstructions {
    /// Source names. The image side and the text side never share a word.
    static let imageNames = ["the image", "the picture", "the photo", "the visual content", "the visual evidence"]
    static let textNames = ["the text context", "the text", "the written context", "the description",
                            "the written description", "the passage"]

    /// One template family: every sentence it can make for a followed source `a` and an ignored source `b`.
    typealias Template = @Sendable (_ a: String, _ b: String) -> [String]

    static let templates: [Template] = [
        { a, b in
            ["Trust", "Rely on", "Believe", "Use", "Follow", "Answer from"].flatMap { verb in
                ["", ", not \(b)", " over \(b)", " rather than \(b)", " instead of \(b)"].map { "\(verb) \(a)\($0)." }
            }
        },
        { a, b in
            ["Ignore", "Do not rely on", "Do not trust", "Set aside", "Pay no attention to",
             "Do not use"].flatMap { neg in
                ["", "; use \(a) instead", "; answer from \(a)", " and trust \(a)", " and rely on \(a) instead"].map {
                    "\(neg) \(b)\($0)."
                }
            }
        },
        { a, b in
            ["conflict", "disagree"].flatMap { verb in
                ["If \(a) and \(b) \(verb), answer according to \(a).",
                 "If \(b) and \(a) \(verb), answer according to \(a).",
                 "When \(b) and \(a) \(verb), trust \(a).", "In case \(a) and \(b) \(verb), use \(a)."]
            }
        },
        { a, b in
            ["takes priority over \(b)", "takes priority over \(b) in case of a mismatch", "is more reliable than \(b)",
             "is the one to believe", "is authoritative: answer from it rather than from \(b)"].map {
                capitalized("\(a) \($0).")
            }
        },
        { a, b in
            ["wrong", "misleading"].flatMap { flaw in
                [capitalized("\(b) may be \(flaw); answer from \(a)."), "Answer from \(a); \(b) may be \(flaw).",
                 "Never let \(b) override \(a)."]
            }
        },
    ]

    /// Words of the fixed paraphrases that appear only in held-out ones (lowercased, punctuation stripped).
    public static let heldoutOnlyWords: Set<String> = {
        let train = Set(Instructions.all.filter { $0.split == .train }.flatMap { words($0.text) })
        return Set(Instructions.all.filter { $0.split == .heldout }.flatMap { words($0.text) }).subtracting(train)
    }()

    /// Composed paraphrases for a target, grouped by template (a generator picks a template, then a sentence,
    /// so the largest family does not dominate). Ids are stable: `<img|txt>-g<number>` in this order.
    public static func families(for target: ConflictTarget) -> [[InstructionParaphrase]] {
        target == .image ? imageFamilies : textFamilies
    }

    public static func all(for target: ConflictTarget) -> [InstructionParaphrase] {
        families(for: target).flatMap { $0 }
    }

    private static let imageFamilies = make(.image)
    private static let textFamilies = make(.text)

    private static func make(_ target: ConflictTarget) -> [[InstructionParaphrase]] {
        let (followed, ignored) = target == .image ? (imageNames, textNames) : (textNames, imageNames)
        let heldout = Set(Instructions.all.filter { $0.split == .heldout }.map(\.text))
        let prefix = target == .image ? "img-g" : "txt-g"
        var seen = Set<String>()
        var number = 0
        return templates.map { template in
            var family: [InstructionParaphrase] = []
            for a in followed {
                for b in ignored {
                    for text in template(a, b) where !heldout.contains(text) && seen.insert(text).inserted {
                        guard words(text).isDisjoint(with: heldoutOnlyWords) else { continue }
                        number += 1
                        let digits = String(number)
                        family.append(InstructionParaphrase(
                            id: prefix + String(repeating: "0", count: max(0, 4 - digits.count)) + digits,
                            target: target, split: .train, text: text))
                    }
                }
            }
            return family
        }
    }

    static func words(_ text: String) -> Set<String> {
        Set(text.lowercased().split { !$0.isLetter }.map(String.init))
    }

    private static func capitalized(_ text: String) -> String { text.prefix(1).uppercased() + text.dropFirst() }
}
