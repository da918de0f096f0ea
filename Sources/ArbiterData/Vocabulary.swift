// The generator's vocabulary: tasks, the named colour palette, shapes, counts and positions, each value with
// its lemma and synonyms (the candidate lists scoring looks at).

/// The tasks the generator produces. Loaded datasets may carry other task names (the paper's sets have
/// `attribute`, `sentiment_understanding`, …), so `ConflictItem.task` is a string.
public enum ConflictTask: String, Codable, Sendable, CaseIterable {
    case color, shape, count, position
}

/// A palette colour: its name, its exact RGB value, and the words that name it.
public struct PaletteColor: Sendable, Equatable {
    public let name: String
    public let rgb: (UInt8, UInt8, UInt8)
    public let synonyms: [String]

    public static func == (a: PaletteColor, b: PaletteColor) -> Bool { a.name == b.name }

    /// The lemma first, then the synonyms.
    public var candidates: [String] { [name] + synonyms }
}

public enum Vocabulary {
    /// Ten colours, pairwise far apart and all far from the light backgrounds (every colour differs from every
    /// background by more than 100 in some channel), so that an oracle can read them back from pixels.
    public static let colors: [PaletteColor] = [
        PaletteColor(name: "red", rgb: (220, 30, 30), synonyms: ["crimson", "scarlet"]),
        PaletteColor(name: "green", rgb: (30, 160, 50), synonyms: ["emerald"]),
        PaletteColor(name: "blue", rgb: (30, 70, 220), synonyms: ["navy", "azure"]),
        PaletteColor(name: "yellow", rgb: (240, 210, 20), synonyms: ["golden"]),
        PaletteColor(name: "orange", rgb: (245, 130, 20), synonyms: ["tangerine"]),
        PaletteColor(name: "purple", rgb: (130, 40, 170), synonyms: ["violet"]),
        PaletteColor(name: "pink", rgb: (240, 110, 180), synonyms: ["rose"]),
        PaletteColor(name: "brown", rgb: (120, 70, 25), synonyms: ["chocolate"]),
        PaletteColor(name: "black", rgb: (20, 20, 20), synonyms: ["ebony"]),
        PaletteColor(name: "cyan", rgb: (20, 190, 210), synonyms: ["turquoise", "teal"]),
    ]

    public static func color(named name: String) -> PaletteColor? { colors.first { $0.name == name } }

    /// Backgrounds: name → RGB. All light, so every palette colour stands out.
    public static let backgrounds: [(name: String, rgb: (UInt8, UInt8, UInt8))] = [
        ("white", (255, 255, 255)), ("light-gray", (228, 228, 228)), ("cream", (245, 240, 222)),
    ]

    public static func background(named name: String) -> (UInt8, UInt8, UInt8)? {
        backgrounds.first { $0.name == name }?.rgb
    }

    /// Shape lemma → synonyms.
    public static let shapeSynonyms: [Shape: [String]] = [
        .circle: ["disc", "round"], .square: ["box"], .triangle: ["triangular"],
        .diamond: ["rhombus", "lozenge"], .cross: ["plus"],
    ]

    /// Count value (1...4) → number word, with the digit first in candidate lists.
    public static let numberWords = ["zero", "one", "two", "three", "four", "five"]

    public static let countRange = 1...4

    public static func countCandidates(_ n: Int) -> [String] {
        var list = [String(n), numberWords[n]]
        if n == 1 { list.append("single") }
        return list
    }

    /// Position lemma → synonyms.
    public static let positionSynonyms: [Position: [String]] = [
        .left: ["leftmost"], .right: ["rightmost"], .top: ["upper", "above"], .bottom: ["lower", "below"],
    ]

    /// The candidate list for a task's value (lemma plus synonyms), or nil for a value the task does not have.
    public static func candidates(task: ConflictTask, value: String) -> [String]? {
        switch task {
        case .color: return color(named: value)?.candidates
        case .shape: return Shape(rawValue: value).map { [$0.rawValue] + (shapeSynonyms[$0] ?? []) }
        case .count: return Int(value).flatMap { countRange.contains($0) ? countCandidates($0) : nil }
        case .position: return Position(rawValue: value).map { [$0.rawValue] + (positionSynonyms[$0] ?? []) }
        }
    }

    /// Every value a task takes.
    public static func values(of task: ConflictTask) -> [String] {
        switch task {
        case .color: return colors.map(\.name)
        case .shape: return Shape.allCases.map(\.rawValue)
        case .count: return countRange.map(String.init)
        case .position: return Position.allCases.map(\.rawValue)
        }
    }
}

/// A drawable shape.
public enum Shape: String, Codable, Sendable, CaseIterable {
    case circle, square, triangle, diamond, cross

    public var plural: String { self == .cross ? "crosses" : rawValue + "s" }
}

/// Where a single object sits in the image.
public enum Position: String, Codable, Sendable, CaseIterable {
    case left, right, top, bottom

    /// The phrase a text context uses ("on the left side", "at the top").
    public var phrase: String {
        switch self {
        case .left: return "on the left side"
        case .right: return "on the right side"
        case .top: return "at the top"
        case .bottom: return "at the bottom"
        }
    }
}
