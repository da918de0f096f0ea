// The synthetic conflict benchmark: seeded scenes (own rasteriser), a question per task, a text context
// paragraph asserting the text-side answer, a modality instruction and an output-format sentence.
// Deterministic: the same seed and configuration give the same items (and dataset bytes) on every run.
import ArbiterFormats
import Foundation

/// Relative weights of the item kinds.
public struct KindMix: Sendable, Equatable, Codable {
    public var weights: [ItemKind: Double]

    public init(_ weights: [ItemKind: Double]) { self.weights = weights }

    public static let standard = KindMix([.conflict: 0.65, .consistent: 0.15, .noInstruction: 0.10,
                                          .imageOnly: 0.05, .textOnly: 0.05])

    /// Parses `conflict=0.65,consistent=0.15,...` (kinds not named get weight 0; weights need not sum to 1).
    public init(parsing text: String) throws {
        var weights: [ItemKind: Double] = [:]
        for part in text.split(separator: ",") {
            let pair = part.split(separator: "=", omittingEmptySubsequences: false)
            let allowed = ItemKind.allCases.map(\.rawValue).joined(separator: ", ")
            guard pair.count == 2 else {
                throw GeneratorError("mix entry '\(part)' is not kind=weight (kinds: \(allowed))")
            }
            let name = pair[0].trimmingCharacters(in: .whitespaces)
            guard let kind = ItemKind(rawValue: name) else {
                throw GeneratorError("mix: unknown kind '\(name)' (kinds: \(allowed))")
            }
            guard let w = Double(pair[1].trimmingCharacters(in: .whitespaces)), w.isFinite, w >= 0 else {
                throw GeneratorError("mix: weight '\(pair[1])' of \(name) is not a non-negative number")
            }
            guard weights[kind] == nil else { throw GeneratorError("mix: kind \(name) given twice") }
            weights[kind] = w
        }
        self.weights = weights
        try validate()
    }

    public func validate() throws {
        guard weights.values.allSatisfy({ $0.isFinite && $0 >= 0 }) else {
            throw GeneratorError("mix: weights must be finite and non-negative")
        }
        guard weights.values.reduce(0, +) > 0 else { throw GeneratorError("mix: the weights sum to zero") }
    }

    /// Exact per-kind counts for `count` items (largest remainder; ties in `ItemKind.allCases` order).
    public func counts(for count: Int) -> [ItemKind: Int] {
        let total = weights.values.reduce(0, +)
        var result: [ItemKind: Int] = [:]
        var remainders: [(ItemKind, Double)] = []
        var assigned = 0
        for kind in ItemKind.allCases {
            let exact = Double(count) * (weights[kind] ?? 0) / total
            let whole = Int(exact.rounded(.down))
            result[kind] = whole
            assigned += whole
            remainders.append((kind, exact - Double(whole)))
        }
        let order = remainders.enumerated().sorted { a, b in
            a.element.1 != b.element.1 ? a.element.1 > b.element.1 : a.offset < b.offset
        }
        for i in 0..<(count - assigned) { result[order[i % order.count].element.0, default: 0] += 1 }
        return result
    }

    /// `conflict=0.65,consistent=0.15,…` in `ItemKind.allCases` order.
    public var text: String {
        ItemKind.allCases.compactMap { k in weights[k].map { "\(k.rawValue)=\($0)" } }.joined(separator: ",")
    }

    public init(from decoder: Decoder) throws {
        let raw = try [String: Double](from: decoder)
        var weights: [ItemKind: Double] = [:]
        for (k, v) in raw {
            guard let kind = ItemKind(rawValue: k) else {
                throw DecodingError.dataCorrupted(.init(codingPath: decoder.codingPath,
                                                        debugDescription: "unknown kind '\(k)'"))
            }
            weights[kind] = v
        }
        self.weights = weights
    }

    public func encode(to encoder: Encoder) throws {
        try Dictionary(uniqueKeysWithValues: weights.map { ($0.key.rawValue, $0.value) }).encode(to: encoder)
    }
}

public struct GeneratorError: Error, CustomStringConvertible, Sendable, Equatable {
    public let description: String
    public init(_ description: String) { self.description = description }
}

public struct GeneratorConfiguration: Sendable, Equatable, Codable {
    /// Image side in pixels (square images; 16...1024).
    public var imageSize: Int
    public var tasks: [ConflictTask]
    public var mix: KindMix
    /// Percentage of images with a noisy background.
    public var noisyBackgroundPercent: Int
    /// Per-channel amplitude of background noise (0...24; the palette stays far from noisy backgrounds).
    public var noiseAmplitude: Int
    /// Whether held-out instruction paraphrases are used (false: only `train` paraphrases appear).
    public var includeHeldoutInstructions: Bool
    /// Whether half of the instructed items take a composed training paraphrase (`ComposedInstructions`)
    /// instead of a fixed one. Training data only; written to the dataset's generator record only when set,
    /// so datasets generated without it keep their bytes.
    public var composedInstructions: Bool {
        get { composedFlag ?? false }
        set { composedFlag = newValue ? true : nil }
    }
    private var composedFlag: Bool?

    enum CodingKeys: String, CodingKey {
        case tasks, mix
        case imageSize = "image_size"
        case noisyBackgroundPercent = "noisy_background_percent"
        case noiseAmplitude = "noise_amplitude"
        case includeHeldoutInstructions = "include_heldout_instructions"
        case composedFlag = "composed_instructions"
    }

    public init(imageSize: Int = 32, tasks: [ConflictTask] = ConflictTask.allCases, mix: KindMix = .standard,
                noisyBackgroundPercent: Int = 50, noiseAmplitude: Int = 12, includeHeldoutInstructions: Bool = true,
                composedInstructions: Bool = false) {
        self.imageSize = imageSize
        self.tasks = tasks
        self.mix = mix
        self.noisyBackgroundPercent = noisyBackgroundPercent
        self.noiseAmplitude = noiseAmplitude
        self.includeHeldoutInstructions = includeHeldoutInstructions
        self.composedInstructions = composedInstructions
    }

    public func validate() throws {
        guard (16...1024).contains(imageSize) else {
            throw GeneratorError("image size \(imageSize) is outside 16...1024")
        }
        guard !tasks.isEmpty else { throw GeneratorError("no tasks selected") }
        guard (0...100).contains(noisyBackgroundPercent) else {
            throw GeneratorError("noisy background percentage \(noisyBackgroundPercent) is outside 0...100")
        }
        guard (0...24).contains(noiseAmplitude) else {
            throw GeneratorError("noise amplitude \(noiseAmplitude) is outside 0...24")
        }
        try mix.validate()
    }
}

public struct ConflictGenerator: Sendable {
    public let seed: UInt64
    public let configuration: GeneratorConfiguration

    public init(seed: UInt64, configuration: GeneratorConfiguration = .init()) {
        self.seed = seed
        self.configuration = configuration
    }

    /// `count` items; ids `item-00000` …. Kinds follow the mix exactly (largest remainder), in seeded order.
    /// The configuration must be valid (`configuration.validate()`); an invalid one is a programming error.
    public func generate(count: Int) -> [ConflictItem] {
        precondition(count >= 0, "negative item count")
        precondition((try? configuration.validate()) != nil, "invalid generator configuration")
        let perKind = configuration.mix.counts(for: count)
        var kinds: [ItemKind] = ItemKind.allCases.flatMap { Array(repeating: $0, count: perKind[$0] ?? 0) }
        var order = SeededRandom(seed: seed, stream: UInt64.max)
        order.shuffle(&kinds)
        let width = max(5, String(count - 1).count)
        return kinds.enumerated().map { index, kind in
            var random = SeededRandom(seed: seed, stream: UInt64(index))
            let digits = String(index)
            let id = "item-" + String(repeating: "0", count: max(0, width - digits.count)) + digits
            return item(id: id, kind: kind, random: &random)
        }
    }

    /// The image of a generated item (nil for items without an image or without a scene).
    public static func image(for item: ConflictItem) -> RGBImage? {
        guard item.image != nil, let scene = item.scene, scene.problem() == nil else { return nil }
        return Rasterizer.render(scene)
    }

    // MARK: One item

    private func item(id: String, kind: ItemKind, random: inout SeededRandom) -> ConflictItem {
        let task = random.pick(configuration.tasks)
        let values = Vocabulary.values(of: task)
        let imageValue = random.pick(values)
        let textValue = kind == .consistent ? imageValue : random.pick(values, excluding: imageValue)
        let size = configuration.imageSize
        let scene = makeScene(task: task, value: imageValue, size: size, random: &random)
        let object = scene.objects[0]
        let question = Templates.question(task: task, object: object, random: &random)
        let context = Templates.context(task: task, object: object, value: textValue, random: &random)

        var target: ConflictTarget?
        var paraphrase: InstructionParaphrase?
        if kind == .conflict || kind == .consistent {
            let t = random.pick(ConflictTarget.allCases)
            target = t
            let pool = configuration.includeHeldoutInstructions
                ? Instructions.paraphrases(for: t) : Instructions.paraphrases(for: t, split: .train)
            if configuration.composedInstructions && random.pick([false, true]) {
                paraphrase = random.pick(random.pick(ComposedInstructions.families(for: t)))
            } else {
                paraphrase = random.pick(pool)
            }
        }
        let constraint = random.pick(Instructions.constraints)
        let hasImage = kind != .textOnly
        let hasContext = kind != .imageOnly
        return ConflictItem(
            id: id, image: hasImage ? "images/\(id).png" : nil, task: task.rawValue, kind: kind, target: target,
            context: hasContext ? context : nil, instruction: paraphrase?.text, instructionID: paraphrase?.id,
            instructionSplit: paraphrase?.split, question: question, constraint: constraint,
            answerImg: imageValue, answerText: textValue,
            answerImgCandidates: Vocabulary.candidates(task: task, value: imageValue) ?? [imageValue],
            answerTextCandidates: Vocabulary.candidates(task: task, value: textValue) ?? [textValue],
            expected: ConflictItem.expectedAnswer(kind: kind, target: target, answerImg: imageValue,
                                                  answerText: textValue),
            scene: hasImage ? scene : nil)
    }

    /// A scene whose image answer to `task` is `value`. Geometry scales with `size`; objects keep a 1-pixel
    /// margin from the border (the oracle reads the background from the corners) and ≥ 2 pixels between them.
    func makeScene(task: ConflictTask, value: String, size: Int, random: inout SeededRandom) -> Scene {
        let background = random.pick(Vocabulary.backgrounds).name
        let noisy = random.chance(percent: configuration.noisyBackgroundPercent)
        let noise = noisy ? configuration.noiseAmplitude : 0
        let noiseSeed = random.below(1 << 31)
        var shape = random.pick(Shape.allCases)
        var color = random.pick(Vocabulary.colors).name
        var objects: [SceneObject] = []
        switch task {
        case .color, .shape:
            if task == .color { color = value } else { shape = Shape(rawValue: value) ?? .circle }
            let r = random.int(in: (size * 3 / 16)...(size * 5 / 16))
            let x = random.int(in: (r + 1)...(size - 2 - r))
            let y = random.int(in: (r + 1)...(size - 2 - r))
            objects = [SceneObject(shape: shape, color: color, x: x, y: y, r: r)]
        case .count:
            let n = Int(value) ?? 1
            var cells = [0, 1, 2, 3]
            random.shuffle(&cells)
            let cell = size / 2
            for c in cells.prefix(n) {
                let r = random.int(in: max(2, size / 16)...max(2, size * 5 / 32))
                let x0 = (c % 2) * cell, y0 = (c / 2) * cell
                let x = random.int(in: (x0 + r + 1)...(x0 + cell - r - 2))
                let y = random.int(in: (y0 + r + 1)...(y0 + cell - r - 2))
                objects.append(SceneObject(shape: shape, color: color, x: x, y: y, r: r))
            }
        case .position:
            let position = Position(rawValue: value) ?? .left
            let r = random.int(in: max(2, size / 10)...max(2, size / 8))
            let centre = size / 2
            let along = random.int(in: (size / 4)...(centre - r - 2))
            let across = random.int(in: -(size / 16)...(size / 16))
            switch position {
            case .left: objects = [SceneObject(shape: shape, color: color, x: centre - along, y: centre + across, r: r)]
            case .right: objects = [SceneObject(shape: shape, color: color, x: centre + along, y: centre + across,
                                                r: r)]
            case .top: objects = [SceneObject(shape: shape, color: color, x: centre + across, y: centre - along, r: r)]
            case .bottom: objects = [SceneObject(shape: shape, color: color, x: centre + across, y: centre + along,
                                                 r: r)]
            }
        }
        return Scene(size: size, background: background, noise: noise, noiseSeed: noiseSeed, objects: objects)
    }
}
